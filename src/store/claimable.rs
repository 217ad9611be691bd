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
use crate::git::{Oid, Repo};
use crate::model::MAX_DOCUMENT_BYTES;
use crate::model::task::{State, Task, TaskSummary};
use crate::store::{Snapshot, read_blob};

/// Names the layout of the file and the build that wrote it.
const MAGIC: &str = concat!("git-coord claimable 1, ", env!("CARGO_PKG_VERSION"));

/// How many candidates the file keeps.
pub const KEEP: usize = 128;

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
    crate::model::task::takeable(t.kind, t.state, t.assignee.as_deref(), &Default::default())
        && crate::model::task::role_fits(t.role.as_deref(), role)
}

fn file(repo: &Repo, role: Option<&str>) -> PathBuf {
    repo.common_dir()
        .join("coord")
        .join("cache")
        .join(format!("claimable-{}", role.unwrap_or_default()))
}

/// Saves `c` as the list for `role`. Failing to save is never an error: the next claim takes the
/// full path.
pub fn save(repo: &Repo, role: Option<&str>, c: &Claimable) {
    let Some(tree) = c.tree else { return };
    let path = file(repo, role);
    let Some(dir) = path.parent() else { return };
    // Only what is kept is complete: a longer list cut short no longer is.
    let complete = c.complete && c.list.len() <= KEEP;
    let mut text = format!("{MAGIC}\ntree {tree}\ncomplete {}\n", u8::from(complete));
    for cand in c.list.iter().take(KEEP) {
        text.push_str(&format!("{} {} {}\n", cand.priority, cand.created, cand.id));
    }
    text.push_str("end\n");
    let tmp = dir.join(format!("tmp-claimable-{}", std::process::id()));
    let saved = std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::write(&tmp, text))
        .and_then(|()| std::fs::rename(&tmp, &path));
    if let Err(e) = saved {
        tracing::debug!("claim cache not saved: {e}");
        let _ = std::fs::remove_file(&tmp);
    }
}

/// Reads the saved list for `role`, if any fits this build.
fn read(repo: &Repo, role: Option<&str>) -> Option<Claimable> {
    let text = std::fs::read_to_string(file(repo, role)).ok()?;
    let mut lines = text.lines();
    if lines.next()? != MAGIC {
        return None;
    }
    let tree = Oid::from_hex(lines.next()?.strip_prefix("tree ")?.as_bytes()).ok()?;
    let complete = match lines.next()? {
        "complete 1" => true,
        "complete 0" => false,
        _ => return None,
    };
    let mut list = Vec::new();
    for line in lines {
        if line == "end" {
            return Some(Claimable {
                tree: Some(tree),
                complete,
                list,
            });
        }
        let mut parts = line.split(' ');
        let priority = parts.next()?.parse().ok()?;
        let created = parts.next()?.to_string();
        let id = parts.next()?.to_string();
        if parts.next().is_some() || !crate::model::id::is_full_id(&id) {
            return None;
        }
        list.push(Candidate {
            priority,
            created,
            id,
        });
    }
    None // no end line: not a whole file
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
        let Some(old_doc) = summary(repo, &path, old) else {
            return Ok(None);
        };
        let Some(new_doc) = summary(repo, &path, new) else {
            return Ok(None);
        };
        let Some(new_doc) = new_doc else {
            return Ok(None); // deleted
        };
        let done = |d: &Option<TaskSummary>| d.as_ref().is_some_and(|d| d.state == State::Done);
        let id = path
            .rsplit('/')
            .next()
            .and_then(|n| n.strip_suffix(".yaml"));
        if done(&old_doc) || new_doc.state == State::Done || id != Some(new_doc.id.as_str()) {
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
    let (a, b) = (repo.tree_entries(old)?, repo.tree_entries(new)?);
    let mut out = Vec::new();
    let (mut i, mut j) = (0, 0);
    loop {
        let (x, y) = (a.get(i), b.get(j));
        let (name, old, new, odd) = match (x, y) {
            (None, None) => break,
            (Some(x), Some(y)) if x.name == y.name => {
                i += 1;
                j += 1;
                if x.oid == y.oid && x.is_tree == y.is_tree && x.odd == y.odd {
                    continue;
                }
                let odd = x.odd.is_some() || y.odd.is_some();
                (
                    &x.name,
                    Some((x.oid, x.is_tree)),
                    Some((y.oid, y.is_tree)),
                    odd,
                )
            }
            (Some(x), y) if y.is_none_or(|y| x.name < y.name) => {
                i += 1;
                (&x.name, Some((x.oid, x.is_tree)), None, x.odd.is_some())
            }
            (_, y) => {
                let y = y.expect("the arm above takes every other entry on the old side");
                j += 1;
                (&y.name, None, Some((y.oid, y.is_tree)), y.odd.is_some())
            }
        };
        if odd {
            return Ok(None);
        }
        out.push((name.clone(), old, new));
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo() -> (tempfile::TempDir, Repo) {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let init = std::process::Command::new("git")
            .args(["init", "-q"])
            .arg(dir.path())
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .status()
            .expect("git runs");
        assert!(init.success());
        let repo = Repo::discover(dir.path()).expect("a repository");
        (dir, repo)
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
        for bad in [
            whole.replace("end\n", ""),
            whole.replace("complete 0", "complete maybe"),
            whole.replacen("2 2026", "x 2026", 1),
            whole.replacen("000000000000", "not-an-id", 1),
            whole.replacen("git-coord claimable 1", "git-coord claimable 0", 1),
        ] {
            std::fs::write(&path, &bad).expect("write");
            assert!(read(&repo, None).is_none(), "{bad}");
        }
    }
}
