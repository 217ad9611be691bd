//! Documents in a ref: read a snapshot, write one commit whose parent is the tip read, move the ref
//! by compare-and-swap, and on a lost race re-read and re-apply (the operation re-checks its own
//! preconditions against the new snapshot).

pub mod checkpoint_log;
pub mod claimable;
pub mod foreign;
pub mod inbox_cache;
pub mod index;
pub mod mapped;
pub mod task_ids;

use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::git::{Author, Cas, Oid, PathEdit, RefEdit, Repo};
use crate::model::MAX_DOCUMENT_BYTES;

/// Attempts before a write gives up; each lost race waits a little longer, with jitter.
const MAX_ATTEMPTS: u32 = 400;
const MAX_RETRY_TIME: Duration = Duration::from_secs(30);

/// The coordination refs, one per kind of document: named here once.
pub const TASKS_REF: &str = "refs/coord/tasks";
pub const INBOX_REF: &str = "refs/coord/inbox";
pub const LEASES_REF: &str = "refs/coord/leases";
pub const AGENTS_REF: &str = "refs/coord/agents";
pub const CHECKPOINTS_REF: &str = "refs/coord/checkpoints";

/// Every ref git-coord keeps, one per kind of document.
pub const COORD_REFS: [&str; 5] = [
    TASKS_REF,
    INBOX_REF,
    LEASES_REF,
    AGENTS_REF,
    CHECKPOINTS_REF,
];

/// Presence (heartbeats): outside [`COORD_REFS`] on purpose. Its commits replace each other, so
/// frequent heartbeats never grow a history (but on a remote that only fast-forwards); sync
/// exchanges it apart.
pub const PRESENCE_REF: &str = "refs/coord/presence";

/// A document that could not be loaded, with where it is and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub why: String,
}

impl Problem {
    /// A tree entry that cannot be a document (a gitlink, a symlink, a name like `..`).
    pub fn odd(path: String, what: &str) -> Problem {
        Problem {
            path,
            why: format!("skipped: {what}"),
        }
    }
}

/// The state of a ref at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    pub tip: Option<Oid>,
    pub tree: Option<Oid>,
}

/// Who performs a write, as recorded in the commit and its trailers.
#[derive(Debug, Clone)]
pub struct Actor {
    pub agent: String,
    /// The human behind the agent, `Name <email>` as git knows them.
    pub human: String,
    pub email: String,
}

/// One write: documents to put or remove, and the words of the commit.
#[derive(Debug, Default)]
pub struct Change {
    pub docs: Vec<(String, Option<Vec<u8>>)>,
    pub subject: String,
    pub trailers: Vec<(&'static str, String)>,
    /// When set, the operation's decision depends only on these documents and the ones it
    /// writes: after a lost race in which none of them changed, the same change is committed on
    /// the new tip without running the operation again (a rebase, not a merge).
    pub reads: Option<Vec<String>>,
}

impl Change {
    /// How many objects committing this change writes, at most: its distinct documents, a tree
    /// for each folder on their paths and the root, and the commit. Trees that come out as they
    /// were are not written again, so it may be fewer.
    pub fn objects_written(&self) -> usize {
        let mut blobs: Vec<&[u8]> = self.docs.iter().filter_map(|(_, b)| b.as_deref()).collect();
        blobs.sort_unstable();
        blobs.dedup();
        let mut folders: Vec<&str> = self
            .docs
            .iter()
            .flat_map(|(path, _)| path.match_indices('/').map(|(at, _)| &path[..at]))
            .collect();
        folders.sort_unstable();
        folders.dedup();
        blobs.len() + folders.len() + 2
    }
}

/// What a write moving other refs with it ([`Store::update_together`]) came to.
#[derive(Debug)]
pub enum Together<T> {
    /// Every ref moved.
    Written(T),
    /// This ref (a branch, say) no longer pointed where it was to move from: nothing moved.
    OtherMoved(String),
}

pub struct Store<'r> {
    pub repo: &'r Repo,
    pub refname: &'static str,
}

impl<'r> Store<'r> {
    pub fn new(repo: &'r Repo, refname: &'static str) -> Self {
        Store { repo, refname }
    }

    pub fn snapshot(&self) -> Result<Snapshot> {
        self.snapshot_of(self.refname)
    }

    /// A snapshot of another ref holding this store's documents (a remote's copy in staging).
    pub fn snapshot_of(&self, refname: &str) -> Result<Snapshot> {
        let tip = self.repo.ref_tip(refname)?;
        let tree = match tip {
            Some(tip) => Some(self.repo.commit_tree(tip)?),
            None => None,
        };
        Ok(Snapshot { tip, tree })
    }

    /// The bytes of the document at `path` in `snap`, if there is one; an error naming it when
    /// it is over [`MAX_DOCUMENT_BYTES`]. The size comes from the object's header, so a document
    /// over its limit (a 200 MB blob pushed by a remote) is refused without being read.
    pub fn read(&self, snap: &Snapshot, path: &str) -> Result<Option<Vec<u8>>> {
        self.read_within(snap, path, MAX_DOCUMENT_BYTES)
    }

    /// As [`Store::read`], for content with a limit of its own.
    pub fn read_within(&self, snap: &Snapshot, path: &str, limit: u64) -> Result<Option<Vec<u8>>> {
        let Some(tree) = snap.tree else {
            return Ok(None);
        };
        match self.repo.lookup_path(tree, path)? {
            Some(oid) => read_blob(self.repo, oid, limit, self.refname, path).map(Some),
            None => Ok(None),
        }
    }

    /// Whether `path` exists in `snap` (its bytes are not read).
    pub fn exists(&self, snap: &Snapshot, path: &str) -> Result<bool> {
        Ok(match snap.tree {
            Some(tree) => self.repo.lookup_path(tree, path)?.is_some(),
            None => false,
        })
    }

    /// The commit every history of this ref starts from: the same in every clone, so replicas
    /// that were initialised apart still share a merge base.
    pub fn root_commit(&self) -> Result<Oid> {
        let kind = self.refname.rsplit('/').next().unwrap_or(self.refname);
        let marker = format!("format: 1\nkind: {kind}\n");
        let blob = self.repo.write_blob(marker.as_bytes())?;
        let tree = self.repo.edit_tree(
            None,
            &[PathEdit {
                path: "coord.yaml".into(),
                blob: Some(blob),
            }],
        )?;
        let author = Author {
            name: "git-coord".into(),
            email: "git-coord@localhost".into(),
            seconds: 0,
        };
        self.repo.write_commit(
            tree,
            &[],
            &author,
            &format!("coord: start {}\n", self.refname),
        )
    }

    /// Creates the ref at its root commit if it does not exist yet. Returns whether it did.
    pub fn ensure_root(&self) -> Result<bool> {
        if self.repo.ref_tip(self.refname)?.is_some() {
            return Ok(false);
        }
        let root = self.root_commit()?;
        Ok(self.repo.cas_ref(self.refname, None, root, "coord: init")? == Cas::Moved)
    }

    /// Runs `op` against the current snapshot and commits what it returns, retrying on lost races.
    ///
    /// `op` runs without holding anything. Then the ref's lock is taken (waiting while another
    /// writer holds it) and the ref read again: unmoved, the change is committed; moved, it is
    /// committed on the new tip if none of the documents it read or writes changed (a rebase,
    /// see [`Change::reads`]); else the lock is let go and `op` runs again on the new snapshot.
    /// Objects are written only under the lock, so a try that loses writes none; the empty files
    /// they are written into, and the lock's own, are made before it is taken
    /// ([`Repo::prepare_write_files`]).
    pub fn update<T>(
        &self,
        actor: &Actor,
        op: impl FnMut(&Snapshot) -> Result<(Change, T)>,
    ) -> Result<T> {
        self.update_or_repick(actor, op, |_, _| Ok(None))
    }

    /// As [`Store::update`], with a second chance under the lock: when the ref moved and the
    /// change no longer holds, `repick(base, now)` may return another change that holds on `now`
    /// (`claim --next` taking its next candidate), which is committed without letting go of the
    /// lock. It must be cheap: other writers wait while it runs.
    pub fn update_or_repick<T>(
        &self,
        actor: &Actor,
        mut op: impl FnMut(&Snapshot) -> Result<(Change, T)>,
        mut repick: impl FnMut(&Snapshot, &Snapshot) -> Result<Option<(Change, T)>>,
    ) -> Result<T> {
        let mut retry = Retry::new();
        while retry.again() {
            let mut snap = self.snapshot()?;
            let expected = snap.tip;
            if snap.tip.is_none() {
                let root = self.root_commit()?;
                snap = Snapshot {
                    tip: Some(root),
                    tree: Some(self.repo.commit_tree(root)?),
                };
            }
            let (change, value) = op(&snap)?;
            if change.docs.is_empty() {
                return Ok(value); // nothing to write: the state already says what was asked
            }
            self.repo.prepare_write_files(change.objects_written());
            let Some(lock) = self.repo.lock_ref(self.refname, retry.deadline())? else {
                break;
            };
            let tip = lock.tip()?;
            let mut repicked = false;
            let (base, change, value) = if tip == expected {
                (snap, change, value)
            } else {
                let now = match tip {
                    Some(tip) => Snapshot {
                        tip: Some(tip),
                        tree: Some(self.repo.commit_tree(tip)?),
                    },
                    None => {
                        drop(lock);
                        retry.lost_race(); // the ref was deleted: start again from nothing
                        continue;
                    }
                };
                if self.untouched(&change, &snap, &now)? {
                    (now, change, value)
                } else if let Some((change, value)) = repick(&snap, &now)? {
                    if change.docs.is_empty() {
                        return Ok(value);
                    }
                    repicked = true;
                    (now, change, value)
                } else {
                    drop(lock);
                    retry.lost_race();
                    continue;
                }
            };
            let new = self.write_commit(&base, actor, &change)?;
            match lock.commit(new)? {
                Cas::Moved => {
                    tracing::debug!(
                        refname = self.refname,
                        attempts = retry.attempts,
                        repicked,
                        "wrote {}",
                        change.subject
                    );
                    return Ok(value);
                }
                // The lock was cleared as stale while this process stood still.
                Cas::Lost => retry.lost_race(),
            }
        }
        Err(Error::Contended {
            refname: self.refname.into(),
            attempts: retry.attempts,
        })
    }

    /// As [`Store::update`], moving `others` in the same ref transaction
    /// ([`Repo::update_refs`]): this ref's commit and every ref of `others` move together, or
    /// nothing does. Each of `others` moves only from the `old` it names; when one no longer
    /// points there, nothing moves and [`Together::OtherMoved`] names it. A race on this ref
    /// alone runs `op` again on the new snapshot.
    pub fn update_together<T>(
        &self,
        actor: &Actor,
        others: &[RefEdit],
        mut op: impl FnMut(&Snapshot) -> Result<(Change, T)>,
    ) -> Result<Together<T>> {
        let mut retry = Retry::new();
        while retry.again() {
            let mut snap = self.snapshot()?;
            let expected = snap.tip;
            if snap.tip.is_none() {
                let root = self.root_commit()?;
                snap = Snapshot {
                    tip: Some(root),
                    tree: Some(self.repo.commit_tree(root)?),
                };
            }
            let (change, value) = op(&snap)?;
            let mut edits = Vec::with_capacity(others.len() + 1);
            if !change.docs.is_empty() {
                let new = self.write_commit(&snap, actor, &change)?;
                edits.push(RefEdit {
                    name: self.refname.to_string(),
                    old: expected,
                    new: Some(new),
                });
            }
            edits.extend_from_slice(others);
            match self.repo.update_refs(&edits, &change.subject)? {
                Cas::Moved => {
                    tracing::debug!(
                        refname = self.refname,
                        attempts = retry.attempts,
                        "wrote {} with {} other ref(s)",
                        change.subject,
                        others.len()
                    );
                    return Ok(Together::Written(value));
                }
                Cas::Lost => {
                    for other in others {
                        if self.repo.ref_tip(&other.name)? != other.old {
                            return Ok(Together::OtherMoved(other.name.clone()));
                        }
                    }
                    retry.lost(self.repo.ref_tip(self.refname)? != expected);
                }
            }
        }
        Err(Error::Contended {
            refname: self.refname.into(),
            attempts: retry.attempts,
        })
    }

    /// Writes to several refs of documents together: `op` gets a snapshot of each of `stores`
    /// and returns a change for each, in the same order (an empty one leaves its ref as it is);
    /// every ref with a change moves in one ref transaction ([`Repo::update_refs`]), or none
    /// does, and a race on any of them runs `op` again on new snapshots.
    pub fn update_many<T>(
        stores: &[&Store],
        actor: &Actor,
        mut op: impl FnMut(&[Snapshot]) -> Result<(Vec<Change>, T)>,
    ) -> Result<T> {
        let Some(first) = stores.first() else {
            return op(&[]).map(|(_, value)| value);
        };
        let mut retry = Retry::new();
        while retry.again() {
            let mut snaps = Vec::with_capacity(stores.len());
            let mut expected = Vec::with_capacity(stores.len());
            for store in stores {
                let mut snap = store.snapshot()?;
                expected.push(snap.tip);
                if snap.tip.is_none() {
                    let root = store.root_commit()?;
                    snap = Snapshot {
                        tip: Some(root),
                        tree: Some(store.repo.commit_tree(root)?),
                    };
                }
                snaps.push(snap);
            }
            let (changes, value) = op(&snaps)?;
            let mut edits = Vec::new();
            let mut subject = String::new();
            for (n, change) in changes.iter().enumerate().take(stores.len()) {
                if change.docs.is_empty() {
                    continue;
                }
                if subject.is_empty() {
                    subject.clone_from(&change.subject);
                }
                edits.push(RefEdit {
                    name: stores[n].refname.to_string(),
                    old: expected[n],
                    new: Some(stores[n].write_commit(&snaps[n], actor, change)?),
                });
            }
            if edits.is_empty() {
                return Ok(value);
            }
            match first.repo.update_refs(&edits, &subject)? {
                Cas::Moved => return Ok(value),
                Cas::Lost => {
                    let mut moved = false;
                    for (store, tip) in stores.iter().zip(&expected) {
                        moved |= store.repo.ref_tip(store.refname)? != *tip;
                    }
                    retry.lost(moved);
                }
            }
        }
        Err(Error::Contended {
            refname: first.refname.into(),
            attempts: retry.attempts,
        })
    }

    /// Like [`Store::update`], but the new commit has no parent: it replaces the ref's content
    /// instead of adding to its history (the presence ref). Retries on lost races.
    pub fn replace<T>(
        &self,
        actor: &Actor,
        mut op: impl FnMut(&Snapshot) -> Result<(Change, T)>,
    ) -> Result<T> {
        let mut retry = Retry::new();
        while retry.again() {
            let snap = self.snapshot()?;
            let (change, value) = op(&snap)?;
            if change.docs.is_empty() {
                return Ok(value);
            }
            let detached = Snapshot {
                tip: None,
                tree: snap.tree,
            };
            let new = build_commit(self.repo, &detached, actor, &change)?;
            match self
                .repo
                .cas_ref(self.refname, snap.tip, new, &change.subject)?
            {
                Cas::Moved => return Ok(value),
                Cas::Lost => retry.lost(self.repo.ref_tip(self.refname)? != snap.tip),
            }
        }
        Err(Error::Contended {
            refname: self.refname.into(),
            attempts: retry.attempts,
        })
    }

    /// Whether every document `change` read or writes is the same in `now` as in `base`, so that
    /// `change` still holds on `now` (false when it declared no reads).
    fn untouched(&self, change: &Change, base: &Snapshot, now: &Snapshot) -> Result<bool> {
        let Some(reads) = &change.reads else {
            return Ok(false);
        };
        if base.tree.is_none() || now.tree.is_none() {
            return Ok(false);
        }
        for path in reads.iter().chain(change.docs.iter().map(|(p, _)| p)) {
            if !self.same_in(base, now, path)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Whether the entry at `path` is the same in both snapshots (or absent from both).
    pub fn same_in(&self, a: &Snapshot, b: &Snapshot, path: &str) -> Result<bool> {
        let find = |snap: &Snapshot| match snap.tree {
            Some(tree) => self.repo.lookup_path(tree, path),
            None => Ok(None),
        };
        Ok(find(a)? == find(b)?)
    }

    /// Writes the commit of `change` on top of `snap` (the ref is not moved).
    pub fn write_commit(&self, snap: &Snapshot, actor: &Actor, change: &Change) -> Result<Oid> {
        build_commit(self.repo, snap, actor, change)
    }
}

/// The bytes of blob `oid`, known as `refname:path`, when it is at most `limit` bytes.
pub fn read_blob(repo: &Repo, oid: Oid, limit: u64, refname: &str, path: &str) -> Result<Vec<u8>> {
    repo.read_blob_within(oid, limit)?
        .map_err(|size| Error::Malformed {
            refname: refname.into(),
            path: path.into(),
            why: format!("{size} bytes, over the {limit}-byte limit"),
        })
}

/// Writes the commit of `change` on top of `snap`, in any ref's history (the ref is not moved).
pub fn build_commit(repo: &Repo, snap: &Snapshot, actor: &Actor, change: &Change) -> Result<Oid> {
    let mut edits = Vec::with_capacity(change.docs.len());
    for (path, bytes) in &change.docs {
        let blob = match bytes {
            Some(bytes) => Some(repo.write_blob(bytes)?),
            None => None,
        };
        edits.push(PathEdit {
            path: path.clone(),
            blob,
        });
    }
    let tree = repo.edit_tree(snap.tree, &edits)?;
    let mut message = format!(
        "{}\n\nCoord-Agent: {}\nCoord-Human: {}\n",
        change.subject, actor.agent, actor.human
    );
    for (key, value) in &change.trailers {
        message.push_str(&format!("{key}: {value}\n"));
    }
    let author = Author {
        name: actor.agent.clone(),
        email: actor.email.clone(),
        seconds: crate::model::time::now_seconds(),
    };
    repo.write_commit(tree, snap.tip.as_slice(), &author, &message)
}

/// The retries of one compare-and-swap write. A race lost to another writer counts as an
/// attempt; a ref lock held by someone who has not moved the ref yet (or by a killed process,
/// whose lock is cleared once stale) does not: it is waited out, within the time limit.
pub struct Retry {
    started: Instant,
    tried: bool,
    pub attempts: u32,
}

impl Default for Retry {
    fn default() -> Self {
        Self::new()
    }
}

impl Retry {
    pub fn new() -> Retry {
        Retry {
            started: Instant::now(),
            tried: false,
            attempts: 0,
        }
    }

    /// When waiting for a lock stops.
    pub fn deadline(&self) -> Instant {
        self.started + MAX_RETRY_TIME
    }

    /// Whether to try (again): a first try always, then within the attempts and the time.
    pub fn again(&mut self) -> bool {
        let go = !self.tried
            || (self.attempts < MAX_ATTEMPTS && self.started.elapsed() < MAX_RETRY_TIME);
        if go {
            self.tried = true;
            self.attempts += 1;
        }
        go
    }

    /// Another writer moved the ref first.
    pub fn lost_race(&mut self) {
        backoff(self.attempts);
    }

    /// A compare-and-swap failed: the ref moved (`moved`), or only its lock was held.
    pub fn lost(&mut self, moved: bool) {
        if moved {
            self.lost_race();
        } else {
            self.attempts -= 1;
            std::thread::sleep(LOCK_WAIT);
        }
    }
}

/// How long to wait for a ref lock held by a writer that has not finished.
const LOCK_WAIT: Duration = Duration::from_millis(20);

/// Waits before the next attempt: short at first, longer as the losses pile up, always jittered
/// so racing processes spread out.
pub fn backoff(attempt: u32) {
    let mut byte = [0u8; 2];
    let _ = getrandom::fill(&mut byte);
    let ceiling_us = 200u64 << attempt.min(6);
    let micros = u64::from(u16::from_le_bytes(byte)) % ceiling_us;
    std::thread::sleep(Duration::from_micros(micros));
}

#[cfg(test)]
mod tests {
    use super::Change;

    fn change(docs: &[(&str, &str)]) -> Change {
        Change {
            docs: docs
                .iter()
                .map(|(path, text)| (path.to_string(), Some(text.as_bytes().to_vec())))
                .collect(),
            subject: "test".into(),
            trailers: Vec::new(),
            reads: None,
        }
    }

    /// A claim writes its document, three trees (its shard, `tasks`, the root) and the commit; a
    /// message writes one blob under three paths, with the trees of each.
    #[test]
    fn a_change_counts_its_distinct_blobs_its_folders_the_root_and_the_commit() {
        assert_eq!(
            change(&[("tasks/ab/abcdef.yaml", "state: claimed")]).objects_written(),
            5
        );
        let message = change(&[
            ("messages/c0/c0ffee.yaml", "text"),
            ("boxes/ned/c0/c0ffee.yaml", "text"),
            ("threads/c0/c0ffee/c0ffee.yaml", "text"),
        ]);
        assert_eq!(message.objects_written(), 11);
    }
}
