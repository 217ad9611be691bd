//! The claim cache: the most urgent tasks `claim --next` may take, as of one tree of
//! refs/coord/tasks, in `.git/coord/cache/claimable-<role>` (`claimable-` for any role). A claim
//! brings it up to date from the few documents that changed since that tree, so that it needs
//! neither the whole task index nor a scan of every task: its cost follows what changed, not the
//! size of the store.
//!
//! It is only a shortcut, never the source of truth. It is used only where its answer is provably
//! the one the index would give: no agent is stale (their claims would be candidates too), no
//! related project was fetched (dependencies there change without this ref changing), and no
//! document that changed since was or became done, or was deleted (that can make other tasks
//! ready or not ready). Anything else, and the caller takes the full path through the index.

use std::path::PathBuf;

use crate::error::Result;
use crate::git::{Oid, Repo, TreeEntry};
use crate::model::MAX_DOCUMENT_BYTES;
use crate::model::task::{State, Task, TaskSummary};
use crate::store::{Snapshot, read_blob};

/// Names the layout of the file and the build that wrote it.
const MAGIC: &str = concat!("git-coord claimable 2, ", env!("CARGO_PKG_VERSION"));

/// How many candidates the file keeps.
pub const KEEP: usize = 256;

/// Changed documents beyond which bringing the list up to date costs more than the index.
const MAX_CHANGED: usize = 64;

/// A task `claim --next` may take, with its place in urgency order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub priority: u8,
    pub created: String,
    pub id: String,
}

impl Candidate {
    fn key(&self) -> (u8, &str, &str) {
        (self.priority, &self.created, &self.id)
    }
}

/// The most urgent claimable tasks of one tree of the tasks ref, most urgent first.
#[derive(Debug, Clone)]
pub struct Claimable {
    /// The tree it was made for (None: the ref had none, and it is not saved).
    pub tree: Option<Oid>,
    /// Whether every claimable task is listed (else: exactly those up to the last one listed).
    pub complete: bool,
    pub list: Vec<Candidate>,
}

/// Whether a task summary is one `claim --next` may take (for `role`, if given), its
/// dependencies aside: an open, unassigned task that is not an epic, of that role or of none.
pub fn takeable(t: &TaskSummary, role: Option<&str>) -> bool {
    // No stale agents: the cache is used only when there are none.
    crate::model::task::takeable(
        t.kind,
        t.state,
        || t.assignee.as_deref(),
        &Default::default(),
    ) && crate::model::task::role_fits(t.role.as_deref(), role)
}

fn file(repo: &Repo, role: Option<&str>) -> PathBuf {
    repo.common_dir()
        .join("coord")
        .join("cache")
        .join(format!("claimable-{}", role.unwrap_or_default()))
}

/// Saves `c` as the list for `role`. Failing to save is never an error: the next claim takes the
/// full path.
///
/// The file is rewritten in place under an exclusive lock (`flock`; readers take a shared one),
/// not replaced by a rename: a new file at every claim costs a new inode, and on ext4 a rename
/// over an existing file also makes the kernel flush the new file's data. The last line holds a
/// checksum of the rest, so a writer killed mid-write leaves a file that is ignored, and whole
/// again after the next claim.
pub fn save(repo: &Repo, role: Option<&str>, c: &Claimable) {
    use std::fmt::Write as _;
    use std::io::Write as _;
    let Some(tree) = c.tree else { return };
    let path = file(repo, role);
    // Only what is kept is complete: a longer list cut short no longer is.
    let complete = c.complete && c.list.len() <= KEEP;
    let mut text = String::with_capacity(128 + 48 * KEEP);
    // Writing into a String cannot fail.
    let _ = write!(
        text,
        "{MAGIC}\ntree {tree}\ncomplete {}\n",
        u8::from(complete)
    );
    for cand in c.list.iter().take(KEEP) {
        let _ = write!(text, "{} ", cand.priority);
        for part in [&cand.created, " ", &cand.id, "\n"] {
            text.push_str(part);
        }
    }
    let _ = writeln!(text, "end {:016x}", checksum(text.as_bytes()));
    let open = || {
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
    };
    let saved = match open() {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => path
            .parent()
            .map_or(Err(e), std::fs::create_dir_all)
            .and_then(|()| open()),
        other => other,
    }
    .and_then(|mut f| {
        f.lock()?;
        f.write_all(text.as_bytes())?;
        f.set_len(text.len() as u64)
    });
    if let Err(e) = saved {
        tracing::debug!("claim cache not saved: {e}");
    }
}

/// FNV-1a: enough to notice a torn or damaged file (the file is local and never the source of
/// truth).
fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Reads the saved list for `role`, if any fits this build.
fn read(repo: &Repo, role: Option<&str>) -> Option<Claimable> {
    let text = {
        use std::io::Read;
        let mut f = std::fs::File::open(file(repo, role)).ok()?;
        f.lock_shared().ok()?;
        let mut text = String::new();
        f.read_to_string(&mut text).ok()?;
        text
    };
    // The last line vouches for the rest: a torn or damaged file is not read.
    let (body, last) = text.split_at(text.rfind("\nend ")? + 1);
    let sum = u64::from_str_radix(last.strip_prefix("end ")?.strip_suffix('\n')?, 16).ok()?;
    if sum != checksum(body.as_bytes()) {
        return None;
    }
    let mut lines = body.lines();
    if lines.next()? != MAGIC {
        return None;
    }
    let tree = Oid::from_hex(lines.next()?.strip_prefix("tree ")?.as_bytes()).ok()?;
    let complete = match lines.next()? {
        "complete 1" => true,
        "complete 0" => false,
        _ => return None,
    };
    let mut list = Vec::with_capacity(KEEP);
    for line in lines {
        let (priority, rest) = line.split_once(' ')?;
        let (created, id) = rest.split_once(' ')?;
        // A full id is hex: a line with a fourth field fails here too.
        if !crate::model::id::is_full_id(id) {
            return None;
        }
        list.push(Candidate {
            priority: priority.parse().ok()?,
            created: created.to_string(),
            id: id.to_string(),
        });
    }
    Some(Claimable {
        tree: Some(tree),
        complete,
        list,
    })
}

/// The list for `role` as of `now`: the saved one, brought up to date from the documents that
/// changed since its tree. None when there is none, or when the full path must decide (see the
/// module's words).
pub fn load(repo: &Repo, role: Option<&str>, now: &Snapshot) -> Result<Option<Claimable>> {
    let (Some(saved), Some(tree)) = (read(repo, role), now.tree) else {
        return Ok(None);
    };
    let Some(saved_tree) = saved.tree else {
        return Ok(None);
    };
    if saved_tree == tree {
        tracing::debug!("claim cache: up to date");
        return Ok(Some(saved));
    }
    let Some(changed) = changed_docs(repo, saved_tree, tree)? else {
        tracing::debug!("claim cache: too much changed, using the index");
        return Ok(None);
    };
    let count = changed.len();
    let Claimable {
        complete, mut list, ..
    } = saved;
    for (path, old, new) in changed {
        let id = path
            .rsplit('/')
            .next()
            .and_then(|n| n.strip_suffix(".yaml"));
        // A listed task was open on the saved tree, so not done: its old text need not be read
        // (the usual case: a task of the list was claimed).
        let listed = id.is_some_and(|id| list.iter().any(|c| c.id == id));
        let old_done = match listed {
            true => false,
            false => match summary(repo, &path, old) {
                Some(old_doc) => old_doc.is_some_and(|d| d.state == State::Done),
                None => return Ok(None),
            },
        };
        let Some(new_doc) = summary(repo, &path, new) else {
            return Ok(None);
        };
        let Some(new_doc) = new_doc else {
            return Ok(None); // deleted
        };
        let done = |d: &Option<TaskSummary>| d.as_ref().is_some_and(|d| d.state == State::Done);
        if old_done || new_doc.state == State::Done || id != Some(new_doc.id.as_str()) {
            return Ok(None);
        }
        list.retain(|c| c.id != new_doc.id);
        if !takeable(&new_doc, role) {
            continue;
        }
        let mut ready = true;
        for dep in &new_doc.deps {
            if !crate::model::id::is_full_id(dep) {
                return Ok(None); // another project's, or odd: the index decides
            }
            let found = match repo.lookup_path(tree, &Task::path(dep))? {
                Some(oid) => summary(repo, &Task::path(dep), Some(oid)),
                None => Some(None),
            };
            let Some(found) = found else {
                return Ok(None);
            };
            ready &= done(&found);
        }
        if !ready {
            continue;
        }
        let cand = Candidate {
            priority: new_doc.priority,
            created: new_doc.created,
            id: new_doc.id,
        };
        // Past the last one listed, only a complete list knows where it goes.
        let at = list.partition_point(|c| c.key() < cand.key());
        if at < list.len() || complete {
            list.insert(at, cand);
        }
    }
    tracing::debug!("claim cache: brought up to date from {count} changed documents");
    Ok(Some(Claimable {
        tree: Some(tree),
        complete,
        list,
    }))
}

/// The summary of the document `oid` at `path`: Some(None) for no document, None when it cannot
/// be read or parsed (the full path then names the problem).
fn summary(repo: &Repo, path: &str, oid: Option<Oid>) -> Option<Option<TaskSummary>> {
    let Some(oid) = oid else {
        return Some(None);
    };
    let bytes = read_blob(
        repo,
        oid,
        MAX_DOCUMENT_BYTES,
        crate::store::COORD_REFS[0],
        path,
    )
    .ok()?;
    TaskSummary::from_yaml(&bytes, crate::store::COORD_REFS[0], path)
        .ok()
        .map(Some)
}

/// Task documents that differ between two trees of the tasks ref: (path, old blob, new blob).
/// None when there are too many, or an entry that is not a plain document changed.
type Changed = Vec<(String, Option<Oid>, Option<Oid>)>;

fn changed_docs(repo: &Repo, old: Oid, new: Oid) -> Result<Option<Changed>> {
    let (Some(old_tasks), Some(new_tasks)) = (
        repo.lookup_path(old, "tasks")?,
        repo.lookup_path(new, "tasks")?,
    ) else {
        return Ok(None);
    };
    let Some(shards) = diff(repo, old_tasks, new_tasks)? else {
        return Ok(None);
    };
    let mut out = Vec::new();
    for (shard, old_shard, new_shard) in shards {
        let docs = match (old_shard, new_shard) {
            (Some((old_shard, true)), Some((new_shard, true))) => diff(repo, old_shard, new_shard)?,
            // A new shard: every document in it is new.
            (None, Some((new_shard, true))) => added(repo, new_shard)?,
            // A shard that went, or a document where a shard belongs: the full path.
            _ => None,
        };
        let Some(docs) = docs else {
            return Ok(None);
        };
        for (name, old_doc, new_doc) in docs {
            let is_doc = |e: &Entry| e.is_none_or(|(_, tree)| !tree);
            if !name.ends_with(".yaml") || !is_doc(&old_doc) || !is_doc(&new_doc) {
                return Ok(None);
            }
            out.push((
                format!("tasks/{shard}/{name}"),
                old_doc.map(|e| e.0),
                new_doc.map(|e| e.0),
            ));
            if out.len() > MAX_CHANGED {
                return Ok(None);
            }
        }
    }
    Ok(Some(out))
}

/// Every entry of a new tree, as added; None if one is odd.
fn added(repo: &Repo, tree: Oid) -> Result<Option<Vec<(String, Entry, Entry)>>> {
    let mut out = Vec::new();
    for e in repo.tree_entries(tree)? {
        if e.odd.is_some() {
            return Ok(None);
        }
        out.push((e.name, None, Some((e.oid, e.is_tree))));
    }
    Ok(Some(out))
}

/// An entry of a tree: its object and whether it is a tree.
type Entry = Option<(Oid, bool)>;

/// The entries that differ between two trees, by name: (name, in old, in new). None when one
/// that differs is odd (not a plain blob or tree, or a name no document can have).
fn diff(repo: &Repo, old: Oid, new: Oid) -> Result<Option<Vec<(String, Entry, Entry)>>> {
    let mut out = Vec::new();
    for (x, y) in repo.tree_diff(old, new)? {
        if x.iter().chain(&y).any(|e| e.odd.is_some()) {
            return Ok(None);
        }
        let entry = |e: &Option<TreeEntry>| e.as_ref().map(|e| (e.oid, e.is_tree));
        let (old_entry, new_entry) = (entry(&x), entry(&y));
        let name = x.or(y).expect("a difference has an entry on one side").name;
        out.push((name, old_entry, new_entry));
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo() -> (tempfile::TempDir, Repo) {
        crate::git::test_repo()
    }

    fn candidates(n: usize) -> Vec<Candidate> {
        (0..n)
            .map(|i| Candidate {
                priority: 2,
                created: "2026-01-01T00:00:00.000Z".into(),
                id: format!("{i:012x}"),
            })
            .collect()
    }

    #[test]
    fn a_complete_list_cut_to_what_is_kept_is_saved_as_incomplete() {
        let (_dir, repo) = repo();
        let tree = Oid::from_hex(b"4b825dc642cb6eb9a060e54bf8d69288fbee4904").expect("an id");
        for (n, complete) in [(KEEP + 10, false), (KEEP, true), (3, true)] {
            let c = Claimable {
                tree: Some(tree),
                complete: true,
                list: candidates(n),
            };
            save(&repo, Some("dev"), &c);
            let back = read(&repo, Some("dev")).expect("read back");
            assert_eq!(back.complete, complete, "{n} listed");
            assert_eq!(back.list, candidates(n.min(KEEP)));
            assert_eq!(back.tree, Some(tree));
            assert!(read(&repo, None).is_none(), "each role has its own list");
        }
    }

    #[test]
    fn a_file_cut_short_or_out_of_shape_is_ignored() {
        let (_dir, repo) = repo();
        let tree = Oid::from_hex(b"4b825dc642cb6eb9a060e54bf8d69288fbee4904").expect("an id");
        save(
            &repo,
            None,
            &Claimable {
                tree: Some(tree),
                complete: false,
                list: candidates(5),
            },
        );
        let path = file(&repo, None);
        let whole = std::fs::read_to_string(&path).expect("saved");
        assert!(read(&repo, None).is_some());
        let body = &whole[..whole.rfind("end ").expect("an end line")];
        let signed = |body: String| format!("{body}end {:016x}\n", checksum(body.as_bytes()));
        assert_eq!(signed(body.to_string()), whole);
        // A shorter list saved over a longer one leaves nothing of the longer behind.
        save(
            &repo,
            None,
            &Claimable {
                tree: Some(tree),
                complete: true,
                list: candidates(2),
            },
        );
        let short = read(&repo, None).expect("saved");
        assert_eq!((short.list, short.complete), (candidates(2), true));
        for bad in [
            // Cut short, damaged, torn (a new beginning over an old end).
            body.to_string(),
            whole.replacen("2 2026", "3 2026", 1),
            format!("{}{}", &whole[..40], &whole[20..]),
            // Vouched for, but out of shape.
            signed(body.replace("complete 0", "complete maybe")),
            signed(body.replacen("2 2026", "x 2026", 1)),
            signed(body.replacen("000000000000", "not-an-id", 1)),
            signed(body.replacen("git-coord claimable 2", "git-coord claimable 1", 1)),
        ] {
            std::fs::write(&path, &bad).expect("write");
            assert!(read(&repo, None).is_none(), "{bad}");
        }
    }
}
