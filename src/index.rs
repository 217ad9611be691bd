//! The derived task index: task summaries per shard, each tagged with the id of the shard tree it
//! was built from, cached in one file (`.git/coord/cache/tasks.index`). Every run reads the ref
//! tip and its shard trees, so a cached shard is only used for the exact tree it was built from;
//! in a changed shard only the documents whose blob changed are parsed again. The index is never the source of truth: delete `.git/coord/cache` and nothing is
//! lost.
//!
//! In memory a shard is one string buffer and fixed-size records of spans into it, so loading
//! 100,000 summaries costs a few reads and no allocation per task; [`TaskRef`] reads a record.

use std::collections::HashMap;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::git::{Oid, Repo};
use crate::model::MAX_DOCUMENT_BYTES;
use crate::model::task::{Kind, State, TaskSummary};
use crate::store::Snapshot;

/// Names the layout of cache files and the task format of the build that wrote them, so an
/// upgraded git-coord never trusts what an older one made.
const MAGIC: &[u8] = b"git-coord task index 4 (task format 1)\n";

/// A document that could not be loaded, with where it is and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub why: String,
}

/// A piece of a shard's text; `start == u32::MAX` marks an absent optional field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: u32,
    len: u32,
}

const ABSENT: Span = Span {
    start: u32::MAX,
    len: 0,
};

/// Lists (labels, deps) are stored joined by this byte; names and ids never contain it.
const LIST_SEP: char = '\n';

/// One document of a shard. For a document that failed to load, `ok` is false and `title` holds
/// why.
#[derive(Debug, Clone, Copy)]
struct Rec {
    name: Span,
    blob: Oid,
    ok: bool,
    state: State,
    kind: Kind,
    priority: u8,
    id: Span,
    title: Span,
    role: Span,
    labels: Span,
    deps: Span,
    parent: Span,
    assignee: Span,
    summary: Span,
    block_reason: Span,
    created: Span,
    updated: Span,
}

const SPANS_PER_REC: usize = 13;
const STATES: [State; 4] = [State::Open, State::Claimed, State::Done, State::Blocked];
const KINDS: [Kind; 5] = [
    Kind::Bug,
    Kind::Feature,
    Kind::Task,
    Kind::Chore,
    Kind::Epic,
];

impl Rec {
    fn spans(&self) -> [Span; SPANS_PER_REC] {
        [
            self.name,
            self.id,
            self.title,
            self.role,
            self.labels,
            self.deps,
            self.parent,
            self.assignee,
            self.summary,
            self.block_reason,
            self.created,
            self.updated,
            Span { start: 0, len: 0 },
        ]
    }
}

#[derive(Debug, Clone, Default)]
struct Shard {
    tree: Option<Oid>,
    text: String,
    recs: Vec<Rec>,
}

impl Shard {
    fn str(&self, span: Span) -> &str {
        if span.start == u32::MAX {
            return "";
        }
        &self.text[span.start as usize..(span.start + span.len) as usize]
    }

    fn opt(&self, span: Span) -> Option<&str> {
        (span.start != u32::MAX).then(|| self.str(span))
    }

    fn push(&mut self, s: &str) -> Span {
        let span = Span {
            start: self.text.len() as u32,
            len: s.len() as u32,
        };
        self.text.push_str(s);
        span
    }

    fn push_opt(&mut self, s: Option<&str>) -> Span {
        s.map_or(ABSENT, |s| self.push(s))
    }

    fn push_list<'s>(&mut self, items: impl Iterator<Item = &'s str>) -> Span {
        let start = self.text.len();
        for (n, item) in items.enumerate() {
            if n > 0 {
                self.text.push(LIST_SEP);
            }
            self.text.push_str(item);
        }
        Span {
            start: start as u32,
            len: (self.text.len() - start) as u32,
        }
    }

    fn push_summary(&mut self, name: &str, blob: Oid, t: TaskRef<'_>) {
        let rec = Rec {
            name: self.push(name),
            blob,
            ok: true,
            state: t.state(),
            kind: t.kind(),
            priority: t.priority(),
            id: self.push(t.id()),
            title: self.push(t.title()),
            role: self.push_opt(t.role()),
            labels: self.push_list(t.labels()),
            deps: self.push_list(t.deps()),
            parent: self.push_opt(t.parent()),
            assignee: self.push_opt(t.assignee()),
            summary: self.push_opt(t.summary()),
            block_reason: self.push_opt(t.block_reason()),
            created: self.push(t.created()),
            updated: self.push(t.updated()),
        };
        self.recs.push(rec);
    }

    fn push_owned(&mut self, name: &str, blob: Oid, t: &TaskSummary) {
        let rec = Rec {
            name: self.push(name),
            blob,
            ok: true,
            state: t.state,
            kind: t.kind,
            priority: t.priority,
            id: self.push(&t.id),
            title: self.push(&t.title),
            role: self.push_opt(t.role.as_deref()),
            labels: self.push_list(t.labels.iter().map(String::as_str)),
            deps: self.push_list(t.deps.iter().map(String::as_str)),
            parent: self.push_opt(t.parent.as_deref()),
            assignee: self.push_opt(t.assignee.as_deref()),
            summary: self.push_opt(t.summary.as_deref()),
            block_reason: self.push_opt(t.block_reason.as_deref()),
            created: self.push(&t.created),
            updated: self.push(&t.updated),
        };
        self.recs.push(rec);
    }

    fn push_problem(&mut self, name: &str, blob: Oid, why: &str) {
        let rec = Rec {
            name: self.push(name),
            blob,
            ok: false,
            state: State::Open,
            kind: Kind::Task,
            priority: 0,
            id: ABSENT,
            title: self.push(why),
            role: ABSENT,
            labels: ABSENT,
            deps: ABSENT,
            parent: ABSENT,
            assignee: ABSENT,
            summary: ABSENT,
            block_reason: ABSENT,
            created: ABSENT,
            updated: ABSENT,
        };
        self.recs.push(rec);
    }
}

/// A task of the index, read in place.
#[derive(Debug, Clone, Copy)]
pub struct TaskRef<'a> {
    shard: &'a Shard,
    rec: &'a Rec,
}

impl<'a> TaskRef<'a> {
    pub fn id(&self) -> &'a str {
        self.shard.str(self.rec.id)
    }
    pub fn title(&self) -> &'a str {
        self.shard.str(self.rec.title)
    }
    pub fn state(&self) -> State {
        self.rec.state
    }
    pub fn kind(&self) -> Kind {
        self.rec.kind
    }
    pub fn priority(&self) -> u8 {
        self.rec.priority
    }
    pub fn role(&self) -> Option<&'a str> {
        self.shard.opt(self.rec.role)
    }
    pub fn labels(&self) -> impl Iterator<Item = &'a str> + use<'a> {
        split_list(self.shard.str(self.rec.labels))
    }
    pub fn deps(&self) -> impl Iterator<Item = &'a str> + use<'a> {
        split_list(self.shard.str(self.rec.deps))
    }
    pub fn has_deps(&self) -> bool {
        self.rec.deps.len > 0
    }
    pub fn parent(&self) -> Option<&'a str> {
        self.shard.opt(self.rec.parent)
    }
    pub fn assignee(&self) -> Option<&'a str> {
        self.shard.opt(self.rec.assignee)
    }
    pub fn summary(&self) -> Option<&'a str> {
        self.shard.opt(self.rec.summary)
    }
    pub fn block_reason(&self) -> Option<&'a str> {
        self.shard.opt(self.rec.block_reason)
    }
    pub fn created(&self) -> &'a str {
        self.shard.str(self.rec.created)
    }
    pub fn updated(&self) -> &'a str {
        self.shard.str(self.rec.updated)
    }

    /// Urgency order: lower priority number first, then older first, then id.
    pub fn urgency_key(&self) -> (u8, &'a str, &'a str) {
        (self.priority(), self.created(), self.id())
    }

    pub fn to_summary(&self) -> TaskSummary {
        TaskSummary {
            id: self.id().into(),
            title: self.title().into(),
            kind: self.kind(),
            state: self.state(),
            priority: self.priority(),
            role: self.role().map(Into::into),
            labels: self.labels().map(Into::into).collect(),
            deps: self.deps().map(Into::into).collect(),
            parent: self.parent().map(Into::into),
            assignee: self.assignee().map(Into::into),
            summary: self.summary().map(Into::into),
            block_reason: self.block_reason().map(Into::into),
            created: self.created().into(),
            updated: self.updated().into(),
        }
    }
}

impl serde::Serialize for TaskRef<'_> {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        self.to_summary().serialize(serializer)
    }
}

fn split_list(joined: &str) -> impl Iterator<Item = &str> {
    joined.split(LIST_SEP).filter(|s| !s.is_empty())
}

/// Every task summary of one snapshot of refs/coord/tasks.
#[derive(Debug, Default)]
pub struct TaskIndex {
    shards: HashMap<String, Shard>,
    /// Whether the cache file was read (once per process; later refreshes start from memory).
    loaded: bool,
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
        let file = cache_file(repo);
        let first = !self.loaded;
        if first {
            self.shards = read_cache(&file).unwrap_or_default();
            self.loaded = true;
        }
        let mut next = HashMap::with_capacity(shard_trees.len());
        let mut missing = Vec::new();
        for entry in shard_trees {
            match self.shards.remove(&entry.name) {
                Some(shard) if shard.tree == Some(entry.oid) => {
                    next.insert(entry.name, shard);
                }
                // A changed shard: parse only the documents its older version lacks.
                base => missing.push((entry.name, entry.oid, base.unwrap_or_default())),
            }
        }
        let changed = !missing.is_empty() || !self.shards.is_empty();
        next.extend(build_shards(repo, refname, missing)?);
        self.shards = next;
        // A retry after a lost race refreshes again within moments; only the first refresh of a
        // process saves its work for the next one.
        if changed && first {
            write_cache(&file, &self.shards);
        }
        Ok(())
    }

    /// Every task that loaded, in no particular order.
    pub fn tasks(&self) -> impl Iterator<Item = TaskRef<'_>> {
        self.shards.values().flat_map(|shard| {
            shard
                .recs
                .iter()
                .filter(|r| r.ok)
                .map(move |rec| TaskRef { shard, rec })
        })
    }

    /// The task with this full id, found in its shard by binary search.
    pub fn get(&self, id: &str) -> Option<TaskRef<'_>> {
        let shard = self.shards.get(id.get(..crate::model::id::SHARD_LEN)?)?;
        let name = format!("{id}.yaml");
        let at = shard
            .recs
            .binary_search_by(|r| shard.str(r.name).cmp(name.as_str()))
            .ok()?;
        let rec = &shard.recs[at];
        rec.ok.then_some(TaskRef { shard, rec })
    }

    /// Documents that failed to load, in path order.
    pub fn problems(&self) -> Vec<Problem> {
        let mut all: Vec<Problem> = self
            .shards
            .iter()
            .flat_map(|(name, shard)| {
                shard.recs.iter().filter(|r| !r.ok).map(move |r| Problem {
                    path: format!("tasks/{name}/{}", shard.str(r.name)),
                    why: shard.str(r.title).to_string(),
                })
            })
            .collect();
        all.sort_by(|a, b| a.path.cmp(&b.path));
        all
    }
}

fn cache_file(repo: &Repo) -> PathBuf {
    repo.common_dir()
        .join("coord")
        .join("cache")
        .join("tasks.index")
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
    let known: HashMap<Oid, &Rec> = base.recs.iter().map(|r| (r.blob, r)).collect();
    let mut shard = Shard {
        tree: Some(tree),
        ..Shard::default()
    };
    for entry in repo.tree_entries(tree)? {
        if entry.is_tree || !entry.name.ends_with(".yaml") {
            continue; // per-task attachments live beside the documents
        }
        if let Some(old) = known
            .get(&entry.oid)
            .filter(|r| base.str(r.name) == entry.name)
        {
            if old.ok {
                shard.push_summary(
                    &entry.name,
                    entry.oid,
                    TaskRef {
                        shard: &base,
                        rec: old,
                    },
                );
            } else {
                shard.push_problem(&entry.name, entry.oid, base.str(old.title));
            }
            continue;
        }
        let path = format!("tasks/{name}/{}", entry.name);
        let size = repo.object_size(entry.oid)?;
        let loaded = if size > MAX_DOCUMENT_BYTES {
            Err(format!(
                "{size} bytes, over the {MAX_DOCUMENT_BYTES}-byte limit"
            ))
        } else {
            let bytes = repo.read_blob(entry.oid)?;
            match TaskSummary::from_yaml(&bytes, refname, &path) {
                Ok(task) if !task.id.starts_with(&name) => {
                    Err(format!("task {} is in the wrong shard", task.id))
                }
                Ok(task)
                    if task
                        .labels
                        .iter()
                        .chain(&task.deps)
                        .any(|s| s.contains(LIST_SEP)) =>
                {
                    Err("a label or dependency contains a line break".to_string())
                }
                Ok(task) => Ok(task),
                Err(Error::Malformed { why, .. }) => Err(why),
                Err(Error::NewerFormat {
                    found, supported, ..
                }) => Err(format!(
                    "format version {found} is newer than this git-coord understands ({supported})"
                )),
                Err(other) => Err(other.to_string()),
            }
        };
        match loaded {
            Ok(task) => shard.push_owned(&entry.name, entry.oid, &task),
            Err(why) => shard.push_problem(&entry.name, entry.oid, &why),
        }
    }
    Ok((name, shard))
}

/// Reads the cache file: every shard it holds, with the tree each was built from.
fn read_cache(file: &Path) -> Option<HashMap<String, Shard>> {
    let file = fs::File::open(file).ok()?;
    let mut left = file.metadata().ok()?.len();
    let mut input = std::io::BufReader::new(file);
    let mut magic = vec![0u8; MAGIC.len()];
    input.read_exact(&mut magic).ok()?;
    if magic != MAGIC {
        return None;
    }
    let count = read_u32(&mut input)? as usize;
    left = left.checked_sub(MAGIC.len() as u64 + 4)?;
    let mut shards = HashMap::new();
    for _ in 0..count {
        // Each shard is stored as its length, its checksum and its bytes, read one at a time.
        let len = read_u32(&mut input)? as u64;
        let sum = read_u64(&mut input)?;
        left = left.checked_sub(12)?.checked_sub(len)?; // never trust a length the file cannot hold
        let mut bytes = vec![0u8; len as usize];
        input.read_exact(&mut bytes).ok()?;
        if checksum(&bytes) != sum {
            return None;
        }
        let mut r = Reader { bytes: &bytes };
        let (name, shard) = read_shard(&mut r)?;
        if !r.bytes.is_empty() {
            return None;
        }
        shards.insert(name, shard);
    }
    (left == 0).then_some(shards)
}

fn read_u64(input: &mut impl Read) -> Option<u64> {
    let mut b = [0u8; 8];
    input.read_exact(&mut b).ok()?;
    Some(u64::from_le_bytes(b))
}

/// A fast 64-bit checksum, to notice a damaged cache file (not a defence against forgery: the
/// cache is local and never the source of truth).
fn checksum(bytes: &[u8]) -> u64 {
    let mut h = 0x9e37_79b9_7f4a_7c15_u64 ^ bytes.len() as u64;
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let word = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
        h = (h ^ word).wrapping_mul(0x0100_0000_01b3).rotate_left(31);
    }
    for &b in chunks.remainder() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn read_u32(input: &mut impl Read) -> Option<u32> {
    let mut b = [0u8; 4];
    input.read_exact(&mut b).ok()?;
    Some(u32::from_le_bytes(b))
}

fn read_shard(r: &mut Reader<'_>) -> Option<(String, Shard)> {
    let name_len = r.u32()? as usize;
    let name = std::str::from_utf8(r.take(name_len)?).ok()?.to_string();
    let tree = Oid::try_from(r.take(20)?).ok()?;
    let count = r.u32()? as usize;
    let text_len = r.u32()? as usize;
    let mut recs = Vec::with_capacity(count.min(r.bytes.len() / 64));
    for _ in 0..count {
        let blob = Oid::try_from(r.take(20)?).ok()?;
        let flags = r.take(4)?;
        let (ok, priority) = (flags[0] == 1, flags[3]);
        let (state, kind) = (
            *STATES.get(flags[1] as usize)?,
            *KINDS.get(flags[2] as usize)?,
        );
        let mut span = || {
            Some(Span {
                start: r.u32()?,
                len: r.u32()?,
            })
        };
        let rec = Rec {
            name: span()?,
            blob,
            ok,
            state,
            kind,
            priority,
            id: span()?,
            title: span()?,
            role: span()?,
            labels: span()?,
            deps: span()?,
            parent: span()?,
            assignee: span()?,
            summary: span()?,
            block_reason: span()?,
            created: span()?,
            updated: span()?,
        };
        span()?; // reserved
        recs.push(rec);
    }
    let text = std::str::from_utf8(r.take(text_len)?).ok()?.to_string();
    let in_bounds = |s: Span| {
        s.start == u32::MAX
            || text
                .get(s.start as usize..s.start as usize + s.len as usize)
                .is_some()
    };
    if !recs.iter().all(|r| r.spans().into_iter().all(in_bounds)) {
        return None;
    }
    Some((
        name,
        Shard {
            tree: Some(tree),
            text,
            recs,
        },
    ))
}

/// Writes the cache file (atomically, by rename). Failing to write it is never an error: the
/// next run rebuilds what it needs.
fn write_cache(file: &Path, shards: &HashMap<String, Shard>) {
    let Some(dir) = file.parent() else { return };
    if fs::create_dir_all(dir).is_err() {
        return;
    }
    let mut suffix = [0u8; 4];
    let _ = getrandom::fill(&mut suffix);
    let tmp = dir.join(format!(
        "tmp-{}-{}",
        std::process::id(),
        u32::from_le_bytes(suffix)
    ));
    let written = fs::File::create(&tmp)
        .and_then(|f| {
            let mut out = std::io::BufWriter::new(f);
            out.write_all(MAGIC)?;
            let built: Vec<(&String, &Shard, Oid)> = shards
                .iter()
                .filter_map(|(name, shard)| Some((name, shard, shard.tree?)))
                .collect();
            out.write_all(&(built.len() as u32).to_le_bytes())?;
            let mut w = Vec::new();
            for (name, shard, tree) in built {
                w.clear();
                write_shard(&mut w, name, tree, shard);
                out.write_all(&(w.len() as u32).to_le_bytes())?;
                out.write_all(&checksum(&w).to_le_bytes())?;
                out.write_all(&w)?;
            }
            out.flush()
        })
        .and_then(|_| fs::rename(&tmp, file));
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
}

fn write_shard(w: &mut Vec<u8>, name: &str, tree: Oid, shard: &Shard) {
    put_u32(w, name.len() as u32);
    w.extend_from_slice(name.as_bytes());
    w.extend_from_slice(tree.as_bytes());
    put_u32(w, shard.recs.len() as u32);
    put_u32(w, shard.text.len() as u32);
    for rec in &shard.recs {
        w.extend_from_slice(rec.blob.as_bytes());
        w.extend_from_slice(&[rec.ok as u8, rec.state as u8, rec.kind as u8, rec.priority]);
        for span in rec.spans() {
            put_u32(w, span.start);
            put_u32(w, span.len);
        }
    }
    w.extend_from_slice(shard.text.as_bytes());
}

fn put_u32(w: &mut Vec<u8>, n: u32) {
    w.extend_from_slice(&n.to_le_bytes());
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

    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
}
