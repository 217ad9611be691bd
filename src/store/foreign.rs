//! What this clone last fetched of related projects: their refs/coord/tasks and refs/coord/inbox
//! under `refs/coord-projects/<name>/` (read-only copies, never pushed), when each was last
//! fetched, and the state of the tasks this project's tasks depend on there.

use std::collections::HashMap;
use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::git::{Oid, RemoteUrl, Repo, TreeEntry};
use crate::model::task::{Task, TaskSummary};

/// Where the fetched copies of related projects' refs live.
pub const PROJECTS_NS: &str = "refs/coord-projects/";

/// Where a clone keeps, per related project, the tips its last notices were sent for.
pub const NOTIFIED_NS: &str = "refs/coord-notified/";

/// The fetched copy of `kind` (`tasks`, `inbox`, ...) of project `name`.
pub fn staged_ref(name: &str, kind: &str) -> String {
    format!("{PROJECTS_NS}{name}/{kind}")
}

fn state_dir(repo: &Repo, name: &str) -> PathBuf {
    repo.common_dir().join("coord/projects").join(name)
}

/// When project `name` was last fetched, if ever (RFC 3339).
pub fn fetched_at(repo: &Repo, name: &str) -> Option<String> {
    let text = std::fs::read_to_string(state_dir(repo, name).join("fetched")).ok()?;
    let at = text.trim().to_string();
    crate::model::time::parse(&at).map(|_| at)
}

/// Records that project `name` was fetched now.
pub fn record_fetch(repo: &Repo, name: &str) -> Result<()> {
    let dir = state_dir(repo, name);
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("fetched"), crate::model::time::now())?;
    Ok(())
}

/// The URL (as shown: its password redacted) this clone's copy of project `name` was fetched
/// from, when recorded.
pub fn fetched_from(repo: &Repo, name: &str) -> Option<String> {
    let text = std::fs::read_to_string(state_dir(repo, name).join("source")).ok()?;
    Some(text.trim_end_matches('\n').to_string()).filter(|url| !url.is_empty())
}

/// Records that this clone's copy of project `name` comes from `url` (never its password).
pub fn record_source(repo: &Repo, name: &str, url: &RemoteUrl) -> Result<()> {
    let dir = state_dir(repo, name);
    std::fs::create_dir_all(&dir)?;
    // Whole or not at all: a reader never sees half a URL.
    let tmp = dir.join(format!("source.{}", std::process::id()));
    std::fs::write(&tmp, format!("{url}\n"))?;
    std::fs::rename(&tmp, dir.join("source"))?;
    Ok(())
}

/// Whether this clone holds state fetched from project `name`: its copy, or the tips notices
/// were last sent for.
pub fn has_copy(repo: &Repo, name: &str) -> Result<bool> {
    Ok(!repo
        .refs_under(&format!("{PROJECTS_NS}{name}/"))?
        .is_empty()
        || !repo
            .refs_under(&format!("{NOTIFIED_NS}{name}/"))?
            .is_empty())
}

/// Forgets what this clone fetched of project `name` (its copy, the tips notices were sent for,
/// when and where from it was fetched), so that the next fetch starts afresh and tells no one
/// of what differs. What this clone filed there is kept.
pub fn drop_copy(repo: &Repo, name: &str) -> Result<()> {
    for ns in [PROJECTS_NS, NOTIFIED_NS] {
        for (refname, _) in repo.refs_under(&format!("{ns}{name}/"))? {
            repo.delete_ref(&refname)?;
        }
    }
    let dir = state_dir(repo, name);
    for file in ["fetched", "source"] {
        match std::fs::remove_file(dir.join(file)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
    }
    Ok(())
}

/// The ids of the tasks this clone filed into project `name`.
pub fn filed(repo: &Repo, name: &str) -> Vec<String> {
    std::fs::read_to_string(state_dir(repo, name).join("filed"))
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|id| crate::model::id::is_full_id(id))
        .map(str::to_string)
        .collect()
}

/// Remembers that this clone filed task `id` into project `name` (after the remote accepted it,
/// or once a sync found it there), once.
pub fn record_filed(repo: &Repo, name: &str, id: &str) -> Result<()> {
    use std::io::Write;
    if filed(repo, name).iter().any(|f| f == id) {
        return Ok(());
    }
    let dir = state_dir(repo, name);
    std::fs::create_dir_all(&dir)?;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("filed"))?;
    writeln!(file, "{id}")?;
    Ok(())
}

/// A filing into another project, as recorded before it is pushed: where it goes and what it
/// writes, so that a later sync can tell whether it landed, and complete one that landed in
/// part (a remote killed between the refs of its atomic push).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filing {
    /// The URL it is pushed to, as shown (redacted).
    pub url: String,
    pub task: String,
    pub message: String,
    /// Every document it writes: (ref, path, blob).
    pub docs: Vec<(String, String, Oid)>,
    /// Kept for later because the project could not be reached (the outbox): the next sync
    /// that reaches it pushes it, where an interrupted filing that is not there is forgotten.
    pub queued: bool,
}

impl Filing {
    fn to_text(&self) -> String {
        let mut text = format!(
            "url {}\ntask {}\nmessage {}\n",
            self.url, self.task, self.message
        );
        for (refname, path, blob) in &self.docs {
            text.push_str(&format!("doc {refname} {blob} {path}\n"));
        }
        text.push_str("end\n");
        text
    }

    /// A record as written, or None if it is torn (its writer died before it pushed anything).
    fn from_text(text: &str) -> Option<Filing> {
        let mut filing = Filing {
            url: String::new(),
            task: String::new(),
            message: String::new(),
            docs: Vec::new(),
            queued: false,
        };
        let mut complete = false;
        for line in text.lines() {
            if complete {
                // After `end`, only the outbox's mark: a mark cut short by a kill (the command
                // never said "queued") leaves the record as it was, not torn.
                filing.queued |= line == "queued";
                continue;
            }
            let (key, value) = line.split_once(' ').unwrap_or((line, ""));
            match key {
                "url" => filing.url = value.to_string(),
                "task" => filing.task = value.to_string(),
                "message" => filing.message = value.to_string(),
                "doc" => {
                    let mut parts = value.splitn(3, ' ');
                    let (refname, blob, path) = (parts.next()?, parts.next()?, parts.next()?);
                    let blob = Oid::from_hex(blob.as_bytes()).ok()?;
                    filing.docs.push((refname.into(), path.into(), blob));
                }
                "end" => complete = true,
                _ => return None,
            }
        }
        let ids_ok = crate::model::id::is_full_id(&filing.task)
            && crate::model::id::is_full_id(&filing.message);
        (complete && ids_ok).then_some(filing)
    }
}

/// A filing's record, held (locked) by the process it belongs to: another process sees it is
/// alive, and a killed one's lock goes with it.
pub struct FilingRecord {
    path: PathBuf,
    file: std::fs::File,
}

impl FilingRecord {
    /// Marks the filing as queued in the outbox: the project could not be reached, and the next
    /// sync that reaches it pushes it.
    pub fn queue(&mut self) -> Result<()> {
        use std::io::Write;
        self.file.write_all(b"queued\n")?;
        self.file.sync_data()?;
        Ok(())
    }

    /// Forgets the record: the filing is in `filed`, or known never to have landed.
    pub fn settle(self) -> Result<()> {
        std::fs::remove_file(&self.path)?;
        drop(self.file);
        Ok(())
    }
}

fn filings_dir(repo: &Repo, name: &str) -> PathBuf {
    state_dir(repo, name).join("filing")
}

/// Records `filing` into project `name` before it is pushed, and holds the record while this
/// process lives.
pub fn begin_filing(repo: &Repo, name: &str, filing: &Filing) -> Result<FilingRecord> {
    use std::io::Write;
    let dir = filings_dir(repo, name);
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(&filing.task);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)?;
    file.lock()?;
    // Written whole before anything is pushed: a torn record is one that never pushed.
    file.write_all(filing.to_text().as_bytes())?;
    Ok(FilingRecord { path, file })
}

/// The recorded filings into project `name` whose process is gone, each held now: the record
/// (None when torn) and its hold.
pub fn orphaned_filings(repo: &Repo, name: &str) -> Vec<(Option<Filing>, FilingRecord)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(filings_dir(repo, name)) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let is_record = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(crate::model::id::is_full_id);
        if !is_record {
            continue;
        }
        let Ok(file) = std::fs::OpenOptions::new().read(true).open(&path) else {
            continue;
        };
        if file.try_lock().is_err() {
            continue; // its filing is still at work
        }
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        out.push((Filing::from_text(&text), FilingRecord { path, file }));
    }
    out
}

/// Whether any filing into project `name` is recorded and not yet settled.
pub fn has_filings(repo: &Repo, name: &str) -> bool {
    std::fs::read_dir(filings_dir(repo, name))
        .map(|mut entries| entries.next().is_some())
        .unwrap_or(false)
}

/// A task of another project in its fetched copy at `tip`. No entry for it is `None`; an entry
/// that is not a readable task (malformed, oversized, a gitlink, a symbolic link) is an error
/// naming the copy's ref and path, never this project's own refs/coord/tasks.
pub fn load_task(repo: &Repo, name: &str, tip: Option<Oid>, id: &str) -> Result<Option<Task>> {
    match task_bytes(repo, name, tip, id)? {
        Some((refname, path, bytes)) => Task::from_yaml(&bytes, &refname, &path).map(Some),
        None => Ok(None),
    }
}

/// The bytes of task `id` in the copy at `tip`, with the copy's ref and the path, to parse.
fn task_bytes(
    repo: &Repo,
    name: &str,
    tip: Option<Oid>,
    id: &str,
) -> Result<Option<(String, String, Vec<u8>)>> {
    let Some(tip) = tip else {
        return Ok(None);
    };
    let refname = staged_ref(name, "tasks");
    let path = Task::path(id);
    match entry_at(repo, repo.commit_tree(tip)?, &path)? {
        None => Ok(None),
        Some(e) if e.is_blob => {
            let bytes = read_bounded(repo, &refname, e.oid, &path)?;
            Ok(Some((refname, path, bytes)))
        }
        Some(e) => Err(Error::Malformed {
            refname,
            path,
            why: format!("skipped: {}", e.odd.unwrap_or("a directory, not a file")),
        }),
    }
}

/// The entry at `path` inside `tree`, whatever it is (a gitlink or a symbolic link too).
fn entry_at(repo: &Repo, tree: Oid, path: &str) -> Result<Option<TreeEntry>> {
    let (dir, file) = path.rsplit_once('/').unwrap_or(("", path));
    let dir = if dir.is_empty() {
        Some(tree)
    } else {
        repo.lookup_path(tree, dir)?
    };
    let Some(dir) = dir else {
        return Ok(None);
    };
    Ok(repo
        .tree_entries(dir)
        .ok()
        .and_then(|entries| entries.into_iter().find(|e| e.name == file)))
}

/// A document fetched from another project, refused by its size before it is read.
fn read_bounded(repo: &Repo, refname: &str, blob: Oid, path: &str) -> Result<Vec<u8>> {
    crate::store::read_blob(repo, blob, crate::model::MAX_DOCUMENT_BYTES, refname, path)
}

/// A dependency on a task of another project, as this clone last fetched it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ForeignDep {
    pub title: String,
    /// The task's state there, `missing` if the fetched copy lacks it, `unreadable` if its
    /// entry there is no readable task (malformed, a gitlink...), `not fetched` if the project
    /// was never fetched.
    pub state: String,
    pub done: bool,
    /// When the project was last fetched.
    pub fetched: Option<String>,
}

/// The state of every `NAME:ID` dependency in `deps`, from the fetched copies.
pub fn load_deps<'d>(
    repo: &Repo,
    deps: impl Iterator<Item = &'d str>,
) -> Result<HashMap<String, ForeignDep>> {
    let mut out = HashMap::new();
    let mut tips: HashMap<String, Option<Oid>> = HashMap::new();
    for dep in deps {
        if out.contains_key(dep) {
            continue;
        }
        let Some((name, id)) = crate::model::id::split_foreign(dep) else {
            continue;
        };
        if crate::model::name::validate("project name", name).is_err()
            || !crate::model::id::is_full_id(id)
        {
            continue;
        }
        let tip = match tips.get(name) {
            Some(tip) => *tip,
            None => {
                let tip = repo.ref_tip(&staged_ref(name, "tasks"))?;
                tips.insert(name.to_string(), tip);
                tip
            }
        };
        let fetched = fetched_at(repo, name);
        let found = match tip {
            None => ForeignDep {
                title: String::new(),
                state: "not fetched".into(),
                done: false,
                fetched,
            },
            Some(tip) => {
                let summary = task_bytes(repo, name, Some(tip), id).and_then(|found| {
                    found
                        .map(|(refname, path, b)| TaskSummary::from_yaml(&b, &refname, &path))
                        .transpose()
                });
                let (title, state) = match summary {
                    Ok(Some(s)) => (s.title, s.state.as_str()),
                    Ok(None) => (String::new(), "missing"),
                    Err(_) => (String::new(), "unreadable"),
                };
                ForeignDep {
                    title,
                    done: state == crate::model::task::State::Done.as_str(),
                    state: state.into(),
                    fetched,
                }
            }
        };
        out.insert(dep.to_string(), found);
    }
    Ok(out)
}

/// The filings queued for project `name` (the outbox): their task ids, oldest first.
pub fn queued_filings(repo: &Repo, name: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(filings_dir(repo, name)) else {
        return Vec::new();
    };
    let mut found: Vec<(std::time::SystemTime, String)> = entries
        .flatten()
        .filter_map(|e| {
            let text = std::fs::read_to_string(e.path()).ok()?;
            let filing = Filing::from_text(&text).filter(|f| f.queued)?;
            let when = e.metadata().and_then(|m| m.modified()).ok()?;
            Some((when, filing.task))
        })
        .collect();
    found.sort();
    found.into_iter().map(|(_, task)| task).collect()
}

/// Where a queued filing's documents are kept reachable: git gc prunes loose objects that no ref
/// reaches once they are two weeks old, and a project may stay unreachable longer than that.
fn outbox_ref(name: &str, task: &str) -> String {
    format!("refs/coord-outbox/{name}/{task}")
}

/// Keeps the documents `docs` (ref, path, blob) of the filing of `task` into project `name`
/// reachable until it is settled: a commit of them under `refs/coord-outbox/` (outside
/// refs/coord/, so nothing pushes it).
pub fn keep_queued(
    repo: &Repo,
    name: &str,
    task: &str,
    docs: &[(String, String, Oid)],
) -> Result<()> {
    let edits: Vec<crate::git::PathEdit> = docs
        .iter()
        .map(|(refname, path, blob)| crate::git::PathEdit {
            path: format!("{}/{path}", refname.rsplit('/').next().unwrap_or("ref")),
            blob: Some(*blob),
        })
        .collect();
    let tree = repo.edit_tree(None, &edits)?;
    let author = crate::git::Author {
        name: "git-coord".into(),
        email: "git-coord@localhost".into(),
        seconds: crate::model::time::now_seconds(),
    };
    let message = format!("coord: outbox: filing of {task} into {name}\n");
    let commit = repo.write_commit(tree, &[], &author, &message)?;
    repo.set_ref(&outbox_ref(name, task), commit)
}

/// Lets the documents of a settled filing go (see [`keep_queued`]).
pub fn forget_queued(repo: &Repo, name: &str, task: &str) {
    let refname = outbox_ref(name, task);
    if repo.ref_tip(&refname).ok().flatten().is_some() {
        let _ = repo.delete_ref(&refname);
    }
}

/// Mail or a comment for a related project that could not be reached, kept in the outbox with
/// its id chosen: the next sync that reaches the project writes it there, once (a write whose id
/// is already there is not written again).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct QueuedWrite {
    /// The URL it is for, as shown (redacted): one whose project moved waits, as a filing does.
    pub url: String,
    /// The message's or the comment's id.
    pub id: String,
    /// Mail: its documents in refs/coord/inbox, as (path, blob), kept reachable by
    /// [`keep_queued`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub docs: Vec<(String, String)>,
    /// A comment: the task there it goes on, and the comment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<(String, crate::model::task::Comment)>,
}

impl QueuedWrite {
    /// What it is, for `status`: `message ID` or `comment on TASK`.
    pub fn describe(&self) -> String {
        match &self.comment {
            Some((task, _)) => format!("comment on {task}"),
            None => format!("message {}", self.id),
        }
    }
}

fn writes_dir(repo: &Repo, name: &str) -> PathBuf {
    state_dir(repo, name).join("outbox")
}

/// Keeps `write` for project `name` in the outbox: whole or not at all (written aside, flushed,
/// then renamed into place), so a kill never leaves half a record.
pub fn queue_write(repo: &Repo, name: &str, write: &QueuedWrite) -> Result<()> {
    use std::io::Write;
    if !crate::model::id::is_full_id(&write.id) {
        return Err(Error::Other(format!(
            "an outbox entry with a bad id '{}'",
            write.id
        )));
    }
    let dir = writes_dir(repo, name);
    std::fs::create_dir_all(&dir)?;
    let tmp = dir.join(format!(".{}.{}", write.id, std::process::id()));
    let mut file = std::fs::File::create(&tmp)?;
    let written = serde_json::to_writer(&mut file, write)
        .map_err(|e| Error::Other(format!("cannot record the outbox entry: {e}")))
        .and_then(|()| Ok(file.flush().and_then(|()| file.sync_data())?))
        .and_then(|()| Ok(std::fs::rename(&tmp, dir.join(&write.id))?));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// The mail and comments queued for project `name`, oldest first. A record that cannot be read
/// (not one this build wrote) is left where it is and not listed.
pub fn queued_writes(repo: &Repo, name: &str) -> Vec<QueuedWrite> {
    let Ok(entries) = std::fs::read_dir(writes_dir(repo, name)) else {
        return Vec::new();
    };
    let mut found: Vec<(std::time::SystemTime, QueuedWrite)> = entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(crate::model::id::is_full_id)
        })
        .filter_map(|e| {
            let text = std::fs::read(e.path()).ok()?;
            let write: QueuedWrite = serde_json::from_slice(&text).ok()?;
            let when = e.metadata().and_then(|m| m.modified()).ok()?;
            (e.file_name().to_str() == Some(write.id.as_str())).then_some((when, write))
        })
        .collect();
    found.sort_by_key(|(when, _)| *when);
    found.into_iter().map(|(_, write)| write).collect()
}

/// Forgets the queued write `id` for project `name` (it is there now) and lets its documents go.
pub fn forget_write(repo: &Repo, name: &str, id: &str) -> Result<()> {
    match std::fs::remove_file(writes_dir(repo, name).join(id)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
        _ => {}
    }
    forget_queued(repo, name, id);
    Ok(())
}
