//! The files a write needs, made before it, and the file of the ref it replaces, freed after it.
//!
//! Creating a file is most of what a loose object or a ref lock costs on a journaling file
//! system, and much more when its inode table has to be read back from the disk: on this
//! machine's ext4, 2,000 files of 400 bytes, three rounds, 198-349 us a file created, filled and
//! renamed, 18-23 us one made ahead, filled and renamed; 2,000 locks taken by turns, 8-180 us
//! created, 9-11 us linked. A write holds its ref's lock while it writes its objects, and every
//! other writer of the ref waits. So the empty files of its objects and of its lock are made
//! before the lock is taken ([`Repo::prepare_write_files`]; in the MCP server, after each reply),
//! in one fan-out directory of `objects/`, as git makes its temporary files. Under the lock the
//! objects' are filled and renamed into place, and the lock's is linked into place
//! ([`Repo::link_lock_made_ahead`]).
//!
//! Likewise the file of the ref a write replaces is held open ([`Repo::hold_replaced`]), so that
//! the file system frees it when it is closed, after the write, rather than inside the rename
//! that replaces it: freeing a small file's blocks took 80-95 us here, renaming it 20 us. A
//! command closes them when it ends, the MCP server once each reply is out
//! ([`Repo::close_replaced_refs`]).
//!
//! Failing to make a file ahead is no error: the write then makes its own. Files left unused are
//! removed when the repository is closed ([`Repo::discard_write_files`]); a process killed first
//! leaves empty `tmp_obj_*` files (`tmp_obj_lock_*` for a lock), which `git prune` removes as it
//! does git's own.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use super::Repo;

/// The files made ahead, and the replaced refs' files to close.
#[derive(Default)]
pub(super) struct Spares {
    objects: RefCell<Vec<(PathBuf, File)>>,
    lock: RefCell<Option<LockAhead>>,
    /// Set once linking a lock made ahead failed for want of hard links: none is made again.
    no_links: Cell<bool>,
    /// The files of refs this process's writes replaced, oldest first.
    replaced: RefCell<VecDeque<File>>,
}

/// At most this many replaced refs' files are held: a long command closes the oldest first.
const REPLACED_HELD: usize = 32;

/// A ref lock made ahead, and when its time was last set: a lock's modification time is its age
/// to the other writers, who take one older than seconds for a killed process's.
struct LockAhead {
    path: PathBuf,
    file: File,
    touched: Instant,
}

impl Spares {
    /// Removes the files not used.
    fn discard(&self) {
        let lock = self.lock.take().map(|lock| lock.path);
        for path in self
            .objects
            .take()
            .into_iter()
            .map(|(path, _)| path)
            .chain(lock)
        {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl Drop for Spares {
    fn drop(&mut self) {
        self.discard();
    }
}

impl Repo {
    /// Makes empty files ahead for the next `n` loose objects this process writes, and for the
    /// next ref lock it takes (see the module's words).
    pub fn prepare_write_files(&self, n: usize) {
        let objects = self.inner.objects.store_ref().path();
        let dir = objects.join(format!("{:02x}", std::process::id() & 0xff));
        let spares = &self.spares;
        if spares.lock.borrow().is_none() && !spares.no_links.get() {
            match temporary_in(&dir, Made::Lock) {
                Ok((path, file)) => {
                    let touched = Instant::now();
                    *spares.lock.borrow_mut() = Some(LockAhead {
                        path,
                        file,
                        touched,
                    });
                }
                Err(e) => tracing::debug!("no ref lock made ahead in {}: {e}", dir.display()),
            }
        }
        let mut objects = spares.objects.borrow_mut();
        while objects.len() < n {
            match temporary_in(&dir, Made::Object) {
                Ok(file) => objects.push(file),
                Err(e) => {
                    tracing::debug!("no object file made ahead in {}: {e}", dir.display());
                    return;
                }
            }
        }
    }

    /// Removes the files made ahead and not used.
    pub fn discard_write_files(&self) {
        self.spares.discard();
    }

    /// Closes the files of the refs this process replaced, freeing them.
    pub fn close_replaced_refs(&self) {
        self.spares.replaced.borrow_mut().clear();
    }

    /// A file made ahead for a loose object, if one is left.
    pub(super) fn object_file_made_ahead(&self) -> Option<(PathBuf, File)> {
        self.spares.objects.borrow_mut().pop()
    }

    /// Holds the file of a ref a write just replaced, to be closed later.
    pub(super) fn hold_replaced(&self, file: File) {
        let mut replaced = self.spares.replaced.borrow_mut();
        if replaced.len() >= REPLACED_HELD {
            replaced.pop_front();
        }
        replaced.push_back(file);
    }

    /// Takes the ref lock `lock` with the lock file made ahead, if there is one: linked to
    /// `lock`, which fails if the lock exists (another writer holds it), as creating it would.
    /// None when there is no file made ahead or it cannot be linked (the lock's folder does not
    /// exist yet, the file was removed meanwhile, the file system has no hard links): the caller
    /// creates the lock itself.
    pub(super) fn link_lock_made_ahead(&self, lock: &Path) -> Option<std::io::Result<File>> {
        let mut ahead = self.spares.lock.take()?;
        // Dated now before it is linked, so that no other writer takes it for a stale lock.
        if ahead.touched.elapsed() > Duration::from_secs(1) {
            if ahead.file.set_modified(SystemTime::now()).is_err() {
                let _ = std::fs::remove_file(&ahead.path);
                return None;
            }
            ahead.touched = Instant::now();
        }
        match std::fs::hard_link(&ahead.path, lock) {
            Ok(()) => {
                let _ = std::fs::remove_file(&ahead.path);
                Some(Ok(ahead.file))
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                *self.spares.lock.borrow_mut() = Some(ahead);
                Some(Err(e))
            }
            Err(e) => {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::debug!("no ref lock linked ({e}): locks are created from now on");
                    self.spares.no_links.set(true);
                }
                let _ = std::fs::remove_file(&ahead.path);
                None
            }
        }
    }
}

/// What a temporary file is made for.
#[derive(Clone, Copy)]
pub(super) enum Made {
    Object,
    Lock,
}

/// A new file for writing in `dir` (made if missing): for an object, read-only once closed, as
/// objects are.
pub(super) fn temporary_in(dir: &Path, made: Made) -> std::io::Result<(PathBuf, File)> {
    use std::os::unix::fs::OpenOptionsExt;
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let (prefix, mode) = match made {
        Made::Object => ("tmp_obj", 0o444), // git's objects are read-only
        // Named as `git fsck` expects a temporary file in objects/ to be named.
        Made::Lock => ("tmp_obj_lock", 0o666), // as git makes a ref (less the umask)
    };
    let mut made_dir = 0;
    loop {
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = dir.join(format!("{prefix}_{}_{n}", std::process::id()));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
        {
            Ok(file) => return Ok((tmp, file)),
            // Left by a killed process that had this pid: take the next name.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            // Missing, or removed again by a concurrent `git prune-packed`: made again.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && made_dir < 8 => {
                std::fs::create_dir_all(dir)?;
                made_dir += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::git::Oid;

    /// How the name of a lock made ahead begins.
    const LOCK: &str = "tmp_obj_lock_";

    /// The names of the files in `objects/`'s fan-out directories that were made ahead, objects'
    /// and locks'.
    fn made_ahead(objects: &Path) -> Vec<String> {
        let mut found = Vec::new();
        for fanout in std::fs::read_dir(objects).expect("objects") {
            let Ok(files) = std::fs::read_dir(fanout.expect("an entry").path()) else {
                continue;
            };
            for file in files {
                let name = file.expect("an entry").file_name();
                let name = name.to_string_lossy();
                if name.starts_with("tmp_obj_") {
                    found.push(name.into_owned());
                }
            }
        }
        found
    }

    /// Objects written through files made ahead are the objects git would write, in their own
    /// fan-out directories (made when missing); what is left unused is removed.
    #[test]
    fn objects_written_through_files_made_ahead_are_whole_and_leave_nothing_behind() {
        let (dir, repo) = crate::git::test_repo();
        let objects = dir.path().join(".git/objects");
        let leftovers = || {
            let mut found = made_ahead(&objects);
            found.retain(|name| !name.starts_with(LOCK));
            found
        };
        repo.prepare_write_files(4);
        assert_eq!(leftovers().len(), 4);
        let blobs: Vec<Oid> = (0..3)
            .map(|n| {
                repo.write_blob(format!("blob {n}\n").as_bytes())
                    .expect("written")
            })
            .collect();
        assert_eq!(leftovers().len(), 1, "one made ahead per object written");
        for (n, blob) in blobs.iter().enumerate() {
            let shown = repo
                .git(&["cat-file", "-p", &blob.to_string()])
                .expect("git runs")
                .stdout;
            assert_eq!(shown, format!("blob {n}"));
        }
        assert!(repo.git(&["fsck", "--strict"]).expect("git runs").success);
        repo.discard_write_files();
        assert!(leftovers().is_empty());
        // One removed meanwhile (`git prune --expire=now`): the write makes its own.
        repo.prepare_write_files(1);
        let spare = leftovers().pop().expect("one made ahead");
        for fanout in std::fs::read_dir(&objects).expect("objects") {
            let _ = std::fs::remove_file(fanout.expect("an entry").path().join(&spare));
        }
        let blob = repo
            .write_blob(b"after a prune\n")
            .expect("written all the same");
        let shown = repo
            .git(&["cat-file", "-p", &blob.to_string()])
            .expect("git runs")
            .stdout;
        assert_eq!(shown, "after a prune");
        assert!(leftovers().is_empty());
        // Dropped unused, they go too.
        let other = Repo::discover(dir.path()).expect("a repository");
        other.prepare_write_files(2);
        assert_eq!(leftovers().len(), 2);
        drop(other);
        assert!(leftovers().is_empty());
    }

    /// A ref lock made ahead is linked into place as the lock: a held lock leaves it for the
    /// next write, one made long ago is dated now before it is linked (or the other writers would
    /// take it for a killed process's), and the ref moves as git moves it, leaving no other name.
    #[test]
    fn a_ref_lock_made_ahead_is_linked_into_place_dated_now() {
        use std::os::unix::fs::MetadataExt;
        let (dir, repo) = crate::git::test_repo();
        let objects = dir.path().join(".git/objects");
        let locks_made = || {
            let found = made_ahead(&objects);
            found.iter().filter(|name| name.starts_with(LOCK)).count()
        };
        let author = crate::git::test_author();
        let tree = repo.edit_tree(None, &[]).expect("written");
        let one = repo
            .write_commit(tree, &[], &author, "one\n")
            .expect("written");
        let two = repo
            .write_commit(tree, &[one], &author, "two\n")
            .expect("written");
        repo.prepare_write_files(0);
        assert_eq!(locks_made(), 1);
        // Held by another writer: linking fails as creating would, and the file stays made.
        let held = dir.path().join(".git/refs/coord/tasks.lock");
        std::fs::create_dir_all(held.parent().expect("refs/coord")).expect("made");
        std::fs::write(&held, "").expect("written");
        assert!(
            repo.try_lock_ref("refs/coord/tasks")
                .expect("looked")
                .is_none()
        );
        assert_eq!(locks_made(), 1);
        std::fs::remove_file(&held).expect("removed");
        // Made an hour ago.
        {
            let mut lock = repo.spares.lock.borrow_mut();
            let ahead = lock.as_mut().expect("still made ahead");
            let long_ago = SystemTime::now() - Duration::from_secs(3600);
            ahead.file.set_modified(long_ago).expect("dated");
            ahead.touched = Instant::now()
                .checked_sub(Duration::from_secs(2))
                .expect("up for 2 s");
        }
        let lock = repo
            .try_lock_ref("refs/coord/tasks")
            .expect("looked")
            .expect("taken");
        assert_eq!(locks_made(), 0, "linked, and its first name removed");
        let dated = std::fs::metadata(&held)
            .expect("the lock")
            .modified()
            .expect("a time");
        assert!(dated.elapsed().unwrap_or_default() < crate::git::STALE_LOCK);
        assert_eq!(lock.commit(one).expect("moved"), crate::git::Cas::Moved);
        let file = dir.path().join(".git/refs/coord/tasks");
        assert_eq!(
            std::fs::read_to_string(&file).expect("the ref"),
            format!("{one}\n")
        );
        assert_eq!(std::fs::metadata(&file).expect("the ref").nlink(), 1);
        assert!(!held.exists());
        // Without one made ahead the lock is created; the ref it replaces is held until closed.
        let lock = repo
            .try_lock_ref("refs/coord/tasks")
            .expect("looked")
            .expect("taken");
        assert_eq!(lock.commit(two).expect("moved"), crate::git::Cas::Moved);
        assert_eq!(repo.spares.replaced.borrow().len(), 1);
        repo.close_replaced_refs();
        assert!(repo.spares.replaced.borrow().is_empty());
        let tip = repo
            .git(&["rev-parse", "refs/coord/tasks"])
            .expect("git runs");
        assert_eq!(tip.stdout.trim(), two.to_string());
        assert!(repo.git(&["fsck", "--strict"]).expect("git runs").success);
    }
}
