//! The derived task index: a cache of task summaries, one file per shard, named by the shard's
//! tree id. Every run reads the ref tip and its shard trees, so a cache file is only ever used for
//! the exact tree it was built from; a changed shard is rebuilt from its blobs, an unchanged one is
//! reused. The index is never the source of truth: delete `.git/coord/cache` and nothing is lost.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::git::{Oid, Repo};
use crate::model::MAX_DOCUMENT_BYTES;
use crate::model::task::{Kind, State, Task, TaskSummary};
use crate::store::Snapshot;

const MAGIC: &[u8] = b"git-coord task index 2\n";

/// A document that could not be loaded, with where it is and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub why: String,
}

/// One document of a shard: its file name, its blob, and what it loaded as.
#[derive(Debug, Clone)]
struct Entry {
    name: String,
    blob: Oid,
    doc: std::result::Result<TaskSummary, String>,
}

#[derive(Debug, Clone, Default)]
struct Shard {
    tree: Option<Oid>,
    entries: Vec<Entry>,
}

/// Every task summary of one snapshot of refs/coord/tasks.
#[derive(Debug, Default)]
pub struct TaskIndex {
    shards: HashMap<String, Shard>,
}

impl TaskIndex {
    /// Loads the index for `snap`, reusing shards already in memory, cache files, and the
    /// unchanged documents of a shard that changed.
    pub fn refresh(&mut self, repo: &Repo, refname: &str, snap: &Snapshot) -> Result<()> {
        let shard_trees = match snap.tree {
            Some(tree) => match repo.lookup_path(tree, "tasks")? {
                Some(tasks) => repo
                    .tree_entries(tasks)?
                    .into_iter()
                    .filter(|e| e.is_tree)
                    .collect(),
                None => Vec::new(),
            },
            None => Vec::new(),
        };
        let cache_dir = cache_dir(repo);
        let mut next = HashMap::with_capacity(shard_trees.len());
        let mut missing = Vec::new();
        let mut older_caches: Option<HashMap<String, Oid>> = None;
        for entry in shard_trees {
            let previous = self.shards.remove(&entry.name);
            if let Some(shard) = previous.as_ref().filter(|s| s.tree == Some(entry.oid)) {
                next.insert(entry.name, shard.clone());
                continue;
            }
            if let Some(shard) = read_cache(&cache_dir, &entry.name, entry.oid) {
                next.insert(entry.name, shard);
                continue;
            }
            // Reuse what an older version of this shard already parsed.
            let base = previous.or_else(|| {
                let older = older_caches.get_or_insert_with(|| list_caches(&cache_dir));
                older
                    .get(&entry.name)
                    .and_then(|tree| read_cache(&cache_dir, &entry.name, *tree))
            });
            missing.push((entry.name, entry.oid, base.unwrap_or_default()));
        }
        for (name, shard) in build_shards(repo, refname, missing)? {
            write_cache(&cache_dir, &name, &shard);
            next.insert(name, shard);
        }
        self.shards = next;
        Ok(())
    }

    pub fn tasks(&self) -> impl Iterator<Item = &TaskSummary> {
        self.shards
            .values()
            .flat_map(|s| s.entries.iter().filter_map(|e| e.doc.as_ref().ok()))
    }

    /// Documents that failed to load, in path order.
    pub fn problems(&self) -> Vec<Problem> {
        let mut all: Vec<Problem> = self
            .shards
            .iter()
            .flat_map(|(shard, s)| {
                s.entries.iter().filter_map(move |e| {
                    e.doc.as_ref().err().map(|why| Problem {
                        path: format!("tasks/{shard}/{}", e.name),
                        why: why.clone(),
                    })
                })
            })
            .collect();
        all.sort_by(|a, b| a.path.cmp(&b.path));
        all
    }

    pub fn by_id(&self) -> HashMap<&str, &TaskSummary> {
        self.tasks().map(|t| (t.id.as_str(), t)).collect()
    }
}

fn cache_dir(repo: &Repo) -> PathBuf {
    repo.common_dir().join("coord").join("cache").join("tasks")
}

/// The cache files present, shard name to the tree they were built from.
fn list_caches(dir: &Path) -> HashMap<String, Oid> {
    let Ok(entries) = fs::read_dir(dir) else {
        return HashMap::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let (shard, tree) = name.split_once('.')?;
            Some((shard.to_string(), Oid::from_hex(tree.as_bytes()).ok()?))
        })
        .collect()
}

/// Builds shards from their blobs, on two threads when there are many.
fn build_shards(
    repo: &Repo,
    refname: &str,
    missing: Vec<(String, Oid, Shard)>,
) -> Result<Vec<(String, Shard)>> {
    if missing.len() < 8 {
        return missing
            .into_iter()
            .map(|(name, tree, base)| build_shard(repo, refname, name, tree, base))
            .collect();
    }
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(4);
    let mut parts: Vec<Vec<_>> = (0..threads).map(|_| Vec::new()).collect();
    for (n, item) in missing.into_iter().enumerate() {
        parts[n % threads].push(item);
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = parts
            .into_iter()
            .map(|part| {
                let git_dir = repo.git_dir();
                scope.spawn(move || {
                    let repo = Repo::open(&git_dir)?;
                    part.into_iter()
                        .map(|(name, tree, base)| build_shard(&repo, refname, name, tree, base))
                        .collect::<Result<Vec<_>>>()
                })
            })
            .collect();
        let mut out = Vec::new();
        for handle in handles {
            out.extend(
                handle
                    .join()
                    .map_err(|_| Error::Other("index builder thread panicked".into()))??,
            );
        }
        Ok(out)
    })
}

/// Builds one shard, parsing only the documents whose blob is not already in `base`.
fn build_shard(
    repo: &Repo,
    refname: &str,
    name: String,
    tree: Oid,
    base: Shard,
) -> Result<(String, Shard)> {
    let known: HashMap<Oid, Entry> = base.entries.into_iter().map(|e| (e.blob, e)).collect();
    let mut shard = Shard {
        tree: Some(tree),
        entries: Vec::new(),
    };
    for entry in repo.tree_entries(tree)? {
        if entry.is_tree {
            continue; // per-task attachments live in subtrees beside the documents
        }
        if let Some(old) = known.get(&entry.oid).filter(|e| e.name == entry.name) {
            shard.entries.push(old.clone());
            continue;
        }
        let path = format!("tasks/{name}/{}", entry.name);
        let size = repo.object_size(entry.oid)?;
        let doc = if size > MAX_DOCUMENT_BYTES {
            Err(format!(
                "{size} bytes, over the {MAX_DOCUMENT_BYTES}-byte limit"
            ))
        } else {
            let bytes = repo.read_blob(entry.oid)?;
            match Task::from_yaml(&bytes, refname, &path) {
                Ok(task) if task.id.starts_with(&name) => Ok(TaskSummary::from(&task)),
                Ok(task) => Err(format!("task {} is in the wrong shard", task.id)),
                Err(Error::Malformed { why, .. }) => Err(why),
                Err(other) => Err(other.to_string()),
            }
        };
        shard.entries.push(Entry {
            name: entry.name,
            blob: entry.oid,
            doc,
        });
    }
    Ok((name, shard))
}

fn cache_file(dir: &Path, shard: &str, tree: Oid) -> PathBuf {
    dir.join(format!("{shard}.{tree}"))
}

fn read_cache(dir: &Path, shard: &str, tree: Oid) -> Option<Shard> {
    let bytes = fs::read(cache_file(dir, shard, tree)).ok()?;
    let mut r = Reader {
        bytes: bytes.strip_prefix(MAGIC)?,
    };
    let count = r.u32()? as usize;
    let mut entries = Vec::with_capacity(count);
    for _ in 0..count {
        let name = r.string()?;
        let blob = Oid::try_from(r.take(20)?).ok()?;
        let doc = match r.u8()? {
            0 => Ok(TaskSummary {
                id: r.string()?,
                title: r.string()?,
                kind: [
                    Kind::Bug,
                    Kind::Feature,
                    Kind::Task,
                    Kind::Chore,
                    Kind::Epic,
                ]
                .get(r.u8()? as usize)
                .copied()?,
                state: [State::Open, State::Claimed, State::Done, State::Blocked]
                    .get(r.u8()? as usize)
                    .copied()?,
                priority: r.u8()?,
                role: r.opt()?,
                labels: r.list()?,
                deps: r.list()?,
                parent: r.opt()?,
                assignee: r.opt()?,
                summary: r.opt()?,
                block_reason: r.opt()?,
                created: r.string()?,
                updated: r.string()?,
            }),
            1 => Err(r.string()?),
            _ => return None,
        };
        entries.push(Entry { name, blob, doc });
    }
    r.bytes.is_empty().then_some(Shard {
        tree: Some(tree),
        entries,
    })
}

/// Writes the cache file for one shard (atomically, by rename) and drops older files of that shard.
/// Failing to write a cache is never an error: the next run rebuilds it.
fn write_cache(dir: &Path, shard: &str, data: &Shard) {
    let Some(tree) = data.tree else { return };
    let mut w = Vec::with_capacity(64 + data.entries.len() * 200);
    w.extend_from_slice(MAGIC);
    put_u32(&mut w, data.entries.len() as u32);
    for e in &data.entries {
        put_str(&mut w, &e.name);
        w.extend_from_slice(e.blob.as_bytes());
        match &e.doc {
            Ok(t) => {
                w.push(0);
                put_str(&mut w, &t.id);
                put_str(&mut w, &t.title);
                w.push(t.kind as u8);
                w.push(t.state as u8);
                w.push(t.priority);
                put_opt(&mut w, &t.role);
                put_list(&mut w, &t.labels);
                put_list(&mut w, &t.deps);
                put_opt(&mut w, &t.parent);
                put_opt(&mut w, &t.assignee);
                put_opt(&mut w, &t.summary);
                put_opt(&mut w, &t.block_reason);
                put_str(&mut w, &t.created);
                put_str(&mut w, &t.updated);
            }
            Err(why) => {
                w.push(1);
                put_str(&mut w, why);
            }
        }
    }
    if fs::create_dir_all(dir).is_err() {
        return;
    }
    let target = cache_file(dir, shard, tree);
    let tmp = dir.join(format!("tmp-{shard}-{}-{tree}", std::process::id()));
    let written = fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(&w))
        .and_then(|_| fs::rename(&tmp, &target));
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
        return;
    }
    if let Ok(entries) = fs::read_dir(dir) {
        let keep = target.file_name().map(|n| n.to_owned());
        let prefix = format!("{shard}.");
        for entry in entries.flatten() {
            let name = entry.file_name();
            if name.to_str().is_some_and(|n| n.starts_with(&prefix)) && Some(&name) != keep.as_ref()
            {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
}

fn put_u32(w: &mut Vec<u8>, n: u32) {
    w.extend_from_slice(&n.to_le_bytes());
}

fn put_str(w: &mut Vec<u8>, s: &str) {
    put_u32(w, s.len() as u32);
    w.extend_from_slice(s.as_bytes());
}

fn put_opt(w: &mut Vec<u8>, s: &Option<String>) {
    match s {
        Some(s) => {
            w.push(1);
            put_str(w, s);
        }
        None => w.push(0),
    }
}

fn put_list(w: &mut Vec<u8>, items: &[String]) {
    put_u32(w, items.len() as u32);
    for item in items {
        put_str(w, item);
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.bytes.len() < n {
            return None;
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn string(&mut self) -> Option<String> {
        let len = self.u32()? as usize;
        String::from_utf8(self.take(len)?.to_vec()).ok()
    }

    fn opt(&mut self) -> Option<Option<String>> {
        match self.u8()? {
            0 => Some(None),
            1 => Some(Some(self.string()?)),
            _ => None,
        }
    }

    fn list(&mut self) -> Option<Vec<String>> {
        let n = self.u32()? as usize;
        (0..n).map(|_| self.string()).collect()
    }
}
