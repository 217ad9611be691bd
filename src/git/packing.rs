//! The loose objects this clone's writes made, packed in batches as they go.
//!
//! Every write leaves its objects loose (see `objects.rs`), and `git push` would have to read,
//! delta-compress and deflate each of them at push time: a sync pushing 1,000 writes took 3.5-4x
//! a push of the same history already packed. So every ref move appends the ids of the objects
//! written for it to `coord/unpacked` in git's common directory; once that list holds
//! [`BATCH`] objects, the process whose move filled it takes the list (a rename: only one can),
//! has `git pack-objects` write them into a pack of `objects/pack/` (its deltas are then reused
//! by every push), and removes their loose copies.
//!
//! Killed at any instant, nothing a ref points to is lost: `git pack-objects` puts its pack and
//! then its index in place by renames, and a loose copy is removed only once it exits with both
//! there. A list taken by a process killed before it packed is left as `coord/unpacked.<pid>-<n>`
//! and its objects stay loose (and readable): `git gc` packs them as it packs any.

use std::cell::RefCell;
use std::io::Write;
use std::path::PathBuf;

use super::{Oid, Repo, git_command};

/// How many objects' ids the list gathers before they are packed: about 100 writes (a blob, two
/// or three trees and a commit each). A sync then pushes at most this many loose objects.
const BATCH: u64 = 512;

/// `gc.autoPackLimit`'s default: past this many packs, `git gc --auto` folds them.
const MANY_PACKS: usize = 50;

/// One line of the list: an object id in hex and a newline.
const LINE: u64 = 41;

/// The objects this process wrote loose since it last moved a ref.
#[derive(Default)]
pub(super) struct Unpacked {
    written: RefCell<Vec<Oid>>,
}

impl Unpacked {
    pub(super) fn note(&self, oid: Oid) {
        self.written.borrow_mut().push(oid);
    }
}

impl Repo {
    fn unpacked_list(&self) -> PathBuf {
        self.common_dir().join("coord/unpacked")
    }

    /// Adds the objects written since the last ref move to the list, and packs the list once it
    /// is full. Best effort: whatever fails leaves the objects loose, as they were.
    pub(super) fn note_written_objects(&self) {
        let written = std::mem::take(&mut *self.unpacked.written.borrow_mut());
        if written.is_empty() {
            return;
        }
        let lines: String = written.iter().map(|oid| format!("{oid}\n")).collect();
        let list = self.unpacked_list();
        let open = || {
            std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(&list)
        };
        let file = open().or_else(|_| {
            std::fs::create_dir_all(list.parent().expect("coord/ holds it"))?;
            open()
        });
        // One write of a few hundred bytes with O_APPEND: lines of two writers never interleave.
        let Ok(len) = file.and_then(|mut f| {
            f.write_all(lines.as_bytes())?;
            f.metadata().map(|m| m.len())
        }) else {
            return;
        };
        if len >= BATCH * LINE {
            self.pack_list(&list);
        }
    }

    /// Takes the full list `list` and packs what it names.
    fn pack_list(&self, list: &std::path::Path) {
        static TAKEN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = TAKEN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let taken = list.with_file_name(format!("unpacked.{}-{n}", std::process::id()));
        if std::fs::rename(list, &taken).is_err() {
            return; // another process took it first
        }
        let Ok(text) = std::fs::read_to_string(&taken) else {
            return;
        };
        let mut oids: Vec<Oid> = text
            .lines()
            .filter_map(|l| Oid::from_hex(l.as_bytes()).ok())
            .collect();
        oids.sort_unstable();
        oids.dedup();
        // Objects gone since (an orphan of a lost race pruned by `git gc --prune=now`) would
        // fail the whole pack: only those still loose are named.
        oids.retain(|oid| self.loose_path(*oid).exists());
        if !oids.is_empty() && self.pack_objects(&oids) {
            for oid in &oids {
                let _ = std::fs::remove_file(self.loose_path(*oid));
            }
            self.fold_packs_if_many();
        }
        let _ = std::fs::remove_file(&taken);
    }

    /// Runs `git gc --auto` (which folds the packs into one past `gc.autoPackLimit`, and goes
    /// on in the background) once there are more than [`MANY_PACKS`]: git-coord's fetches run
    /// without git's automatic maintenance, so the packs it makes are its to fold.
    fn fold_packs_if_many(&self) {
        let dir = self.inner.objects.store_ref().path().join("pack");
        let packs = std::fs::read_dir(dir).map_or(0, |entries| {
            entries
                .filter(|e| {
                    e.as_ref()
                        .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".pack"))
                })
                .count()
        });
        if packs > MANY_PACKS {
            let _ = self.git(&["gc", "--auto", "--quiet"]);
        }
    }

    /// Has `git pack-objects` write `oids` into a new pack of this repository; whether it did.
    fn pack_objects(&self, oids: &[Oid]) -> bool {
        let objects = self.inner.objects.store_ref().path().to_path_buf();
        let (Some(git_dir), Some(base)) = (
            self.git_dir().to_str().map(str::to_string),
            objects.join("pack/pack").to_str().map(str::to_string),
        ) else {
            return false;
        };
        let mut cmd = git_command(
            &self.git_dir(),
            &[
                "--git-dir",
                &git_dir,
                "pack-objects",
                "-q",
                "--delta-base-offset",
                &base,
            ],
        );
        cmd.stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        let Ok(mut child) = cmd.spawn() else {
            return false;
        };
        let input: String = oids.iter().map(|oid| format!("{oid}\n")).collect();
        let fed = child
            .stdin
            .take()
            .is_some_and(|mut stdin| stdin.write_all(input.as_bytes()).is_ok());
        match child.wait_with_output() {
            Ok(out) if fed && out.status.success() => true,
            Ok(out) => {
                tracing::debug!(
                    "packing {} objects failed: {}",
                    oids.len(),
                    String::from_utf8_lossy(&out.stderr).trim()
                );
                false
            }
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_list_is_packed_and_its_loose_copies_removed() {
        let (dir, repo) = crate::git::test_repo();
        let mut blobs = Vec::new();
        for n in 0..BATCH {
            blobs.push(
                repo.write_blob(format!("document {n}\n").as_bytes())
                    .expect("written"),
            );
            if n % 5 == 4 {
                repo.note_written_objects();
            }
        }
        // Not full yet: the last few are still waiting, every object still loose.
        assert!(blobs.iter().all(|b| repo.loose_path(*b).exists()));
        repo.note_written_objects();
        assert!(
            blobs.iter().all(|b| !repo.loose_path(*b).exists()),
            "packed and removed"
        );
        assert!(!repo.unpacked_list().exists());
        let fresh = Repo::discover(dir.path()).expect("a repository");
        for (n, blob) in blobs.iter().enumerate() {
            assert_eq!(
                fresh.read_blob(*blob).expect("in the pack"),
                format!("document {n}\n").into_bytes()
            );
        }
    }
}
