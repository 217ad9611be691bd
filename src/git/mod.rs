//! The only place that touches gix. Everything else asks this module for refs, trees, blobs and
//! commits, and for a compare-and-swap move of a ref.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use gix::bstr::{BString, ByteSlice};
use gix::objs::tree::EntryKind;

pub use gix::ObjectId as Oid;

use crate::error::{Error, Result};

mod ahead;
mod objects;
mod packing;
mod url;

pub use url::{RemoteUrl, redact_url, redact_urls};

/// One entry of a tree: its name, its object and what it is. Only a plain file (`is_blob`) can
/// be a document and only a tree (`is_tree`) can hold them; anything else that a remote may push
/// (a gitlink, a symlink, a name like `..` or with a slash) is neither, and `odd` says what it is.
#[derive(Debug, Clone)]
pub struct TreeEntry {
    pub name: String,
    pub oid: Oid,
    pub is_tree: bool,
    pub is_blob: bool,
    pub odd: Option<&'static str>,
}

impl TreeEntry {
    fn new(name: &[u8], oid: Oid, mode: gix::objs::tree::EntryMode) -> TreeEntry {
        let odd = if !is_fit_name(name) {
            Some("an entry whose name git-coord never writes")
        } else if mode.is_tree() {
            None
        } else if mode.is_commit() {
            Some("a gitlink (a submodule entry), not a file")
        } else if mode.is_link() {
            Some("a symbolic link, not a file")
        } else {
            None
        };
        TreeEntry {
            name: name.to_str_lossy().into_owned(),
            oid,
            is_tree: odd.is_none() && mode.is_tree(),
            is_blob: odd.is_none() && mode.is_blob(),
            odd,
        }
    }
}

/// One entry of a tree's bytes: all of it, and its mode, name and object id.
#[derive(Clone, Copy)]
struct RawEntry<'a> {
    bytes: &'a [u8],
    mode: &'a [u8],
    name: &'a [u8],
    id: &'a [u8],
}

/// A tree's mode, as git writes it.
const TREE_MODE: &[u8] = b"40000";

impl RawEntry<'_> {
    fn is_tree(&self) -> bool {
        self.mode == TREE_MODE
    }

    /// Git's order of this entry against `other`.
    fn order(&self, other: &RawEntry<'_>) -> std::cmp::Ordering {
        git_order(self.name, self.is_tree(), other.name, other.is_tree())
    }
}

/// Splits a tree's bytes into entries: `MODE SP NAME NUL` and the object id. An entry that is not
/// whole (no space, no NUL, a short id) ends it with an error.
struct RawEntries<'a> {
    rest: &'a [u8],
    hash_len: usize,
}

impl<'a> Iterator for RawEntries<'a> {
    type Item = Result<RawEntry<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let whole = self.rest.find_byte(0).and_then(|nul| {
            let end = nul.checked_add(1 + self.hash_len)?;
            let space = self.rest[..nul].find_byte(b' ')?;
            (end <= self.rest.len()).then_some((space, nul, end))
        });
        let Some((space, nul, end)) = whole else {
            self.rest = &[];
            return Some(Err(Error::Git(
                "a tree whose entries are not whole (damaged or not made by git)".into(),
            )));
        };
        let (bytes, rest) = self.rest.split_at(end);
        self.rest = rest;
        Some(Ok(RawEntry {
            bytes,
            mode: &bytes[..space],
            name: &bytes[space + 1..nul],
            id: &bytes[nul + 1..],
        }))
    }
}

/// Git's order of tree entries: by name, a tree's name as if it ended with `/`.
fn git_order(a: &[u8], a_tree: bool, b: &[u8], b_tree: bool) -> std::cmp::Ordering {
    let end = |name: &[u8], tree: bool, at: usize| match name.get(at) {
        Some(&c) => c,
        None if tree => b'/',
        None => 0,
    };
    let common = a.len().min(b.len());
    a[..common].cmp(&b[..common]).then_with(|| {
        match (a.len() == common && b.len() == common, a_tree == b_tree) {
            (true, true) => std::cmp::Ordering::Equal,
            _ => end(a, a_tree, common).cmp(&end(b, b_tree, common)),
        }
    })
}

/// Whether `name` may be one component of a path in a tree git-coord writes: not empty, not `.`,
/// `..` or `.git`, no slash, no NUL.
pub fn is_fit_name(name: &[u8]) -> bool {
    !name.is_empty()
        && name != b"."
        && name != b".."
        && !name.eq_ignore_ascii_case(b".git")
        && !name.contains(&b'/')
        && !name.contains(&0)
}

/// A change to apply to a tree: write `Some(blob)` at a path, or remove it with `None`.
#[derive(Debug, Clone)]
pub struct PathEdit {
    pub path: String,
    pub blob: Option<Oid>,
}

/// Who wrote a commit: name, email and the time in seconds since the epoch.
#[derive(Debug, Clone)]
pub struct Author {
    pub name: String,
    pub email: String,
    pub seconds: i64,
}

/// A commit as the audit log shows it.
#[derive(Debug, Clone)]
pub struct CommitInfo {
    pub oid: Oid,
    pub seconds: i64,
    pub author: String,
    pub message: String,
    pub parents: Vec<Oid>,
}

/// The outcome of a compare-and-swap on a ref.
#[derive(Debug, PartialEq, Eq)]
pub enum Cas {
    Moved,
    /// Another writer moved the ref (or holds its lock): re-read and try again.
    Lost,
}

/// The order to read objects in ([`Repo::pack_order`]): indexes into the objects asked about.
#[derive(Debug)]
pub struct PackOrder {
    pub order: Vec<usize>,
    /// How many of `order`, from its start, are in a pack of the repository.
    pub packed: usize,
}

/// A repository opened in-process.
pub struct Repo {
    inner: gix::Repository,
    kept: objects::Kept,
    spares: ahead::Spares,
    unpacked: packing::Unpacked,
    /// What this repository did on its own that the user should hear (a stale lock removed),
    /// for the command to show as warnings.
    notes: std::cell::RefCell<Vec<String>>,
}

impl std::fmt::Debug for Repo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repo")
            .field("git_dir", &self.inner.git_dir())
            .finish_non_exhaustive()
    }
}

impl Repo {
    /// Finds the repository that contains `dir`, as git does (linked worktrees included).
    pub fn discover(dir: &Path) -> Result<Repo> {
        let trust: gix::sec::trust::Mapping<gix::open::Options> = Default::default();
        let trust = gix::sec::trust::Mapping {
            full: trust.full.object_store_slots(OBJECT_STORE_SLOTS),
            reduced: trust.reduced.object_store_slots(OBJECT_STORE_SLOTS),
        };
        let inner = gix::ThreadSafeRepository::discover_with_environment_overrides_opts(
            dir,
            Default::default(),
            trust,
        )
        .map_err(|_| Error::NotARepository(dir.to_path_buf()))?
        .to_thread_local();
        Ok(Repo::around(inner, true))
    }

    /// Opens the repository at `git_dir` (for another thread on the same repository).
    pub fn open(git_dir: &Path) -> Result<Repo> {
        let options = gix::open::Options::default().object_store_slots(OBJECT_STORE_SLOTS);
        let inner = gix::open_opts(git_dir, options).map_err(git_err)?;
        Ok(Repo::around(inner, true))
    }

    /// A `Repo` around gix's, keeping the objects it reads when `keep`.
    fn around(inner: gix::Repository, keep: bool) -> Repo {
        Repo {
            inner,
            kept: objects::Kept::new(keep),
            spares: ahead::Spares::default(),
            unpacked: packing::Unpacked::default(),
            notes: Default::default(),
        }
    }

    /// Where the repository's git directory is (per worktree).
    pub fn git_dir(&self) -> PathBuf {
        self.inner.git_dir().to_path_buf()
    }

    /// The directory shared by every worktree (`.git` of the main worktree).
    pub fn common_dir(&self) -> PathBuf {
        self.inner.common_dir().to_path_buf()
    }

    /// A string from the repository's git configuration.
    pub fn config_string(&self, key: &str) -> Option<String> {
        self.inner
            .config_snapshot()
            .string(key)
            .map(|s| s.to_str_lossy().into_owned())
    }

    /// Every `key` of a `[section "NAME"]` in this repository's own configuration file (what
    /// `git config --local` reads, includes not followed), read afresh, as (NAME, value) in the
    /// file's order: without a `git config` process.
    pub fn local_config_values(&self, section: &str, key: &str) -> Vec<(String, String)> {
        let path = self.common_dir().join("config");
        let Ok(file) = gix::config::File::from_path_no_includes(path, gix::config::Source::Local)
        else {
            return Vec::new();
        };
        let mut found = Vec::new();
        for s in file.sections_by_name(section).into_iter().flatten() {
            let Some(name) = s.header().subsection_name() else {
                continue;
            };
            for value in s.values(key) {
                found.push((
                    name.to_str_lossy().into_owned(),
                    value.to_str_lossy().into_owned(),
                ));
            }
        }
        found
    }

    /// The commit a ref points at, or None if the ref does not exist.
    pub fn ref_tip(&self, name: &str) -> Result<Option<Oid>> {
        if name.starts_with("refs/coord")
            && let Some(tip) = self.coord_ref_tip(name)?
        {
            return Ok(tip);
        }
        let found = self.inner.try_find_reference(name).map_err(git_err)?;
        Ok(match found {
            Some(mut r) => Some(r.peel_to_id().map_err(git_err)?.detach()),
            None => None,
        })
    }

    /// One of git-coord's own refs, read where git's files backend keeps it: its loose file, else
    /// packed-refs. None when that is not plainly a commit (a symbolic ref, a tag, a damaged
    /// file): [`Repo::ref_tip`] then asks gix, which peels or fails as git would. This spares
    /// gix's lookup of a short name, which for a missing ref tries five more places.
    fn coord_ref_tip(&self, name: &str) -> Result<Option<Option<Oid>>> {
        let full: &gix::refs::FullNameRef = name
            .try_into()
            .map_err(|e| Error::Git(format!("bad ref name {name}: {e}")))?;
        let oid = match std::fs::read(self.inner.common_dir().join(name)) {
            Ok(text) => match text.strip_suffix(b"\n").map(Oid::from_hex) {
                Some(Ok(oid)) => oid,
                _ => return Ok(None),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let packed = self.inner.refs.cached_packed_buffer().map_err(git_err)?;
                match packed.as_ref().map(|p| p.try_find(full)) {
                    None | Some(Ok(None)) => return Ok(Some(None)),
                    Some(Ok(Some(r))) => r.object(),
                    Some(Err(_)) => return Ok(None),
                }
            }
            Err(_) => return Ok(None),
        };
        Ok(self
            .object_bytes(oid, gix::objs::Kind::Commit)
            .is_ok()
            .then_some(Some(oid)))
    }

    /// The tree of a commit.
    pub fn commit_tree(&self, commit: Oid) -> Result<Oid> {
        let data = self.object_bytes(commit, gix::objs::Kind::Commit)?;
        gix::objs::CommitRefIter::from_bytes(&data, self.inner.object_hash())
            .tree_id()
            .map_err(git_err)
    }

    /// The parents of a commit.
    pub fn commit_parents(&self, commit: Oid) -> Result<Vec<Oid>> {
        let data = self.object_bytes(commit, gix::objs::Kind::Commit)?;
        Ok(
            gix::objs::CommitRefIter::from_bytes(&data, self.inner.object_hash())
                .parent_ids()
                .collect(),
        )
    }

    fn decode_tree<'a>(&self, data: &'a [u8]) -> Result<gix::objs::TreeRef<'a>> {
        gix::objs::TreeRef::from_bytes(data, self.inner.object_hash()).map_err(git_err)
    }

    /// The entries of a tree, in tree order.
    pub fn tree_entries(&self, tree: Oid) -> Result<Vec<TreeEntry>> {
        let data = self.object_bytes(tree, gix::objs::Kind::Tree)?;
        let decoded = self.decode_tree(&data)?;
        Ok(decoded
            .entries
            .iter()
            .map(|e| TreeEntry::new(e.filename, e.oid.to_owned(), e.mode))
            .collect())
    }

    /// The entries that differ between two trees, by name, in tree order: (in `old`, in `new`).
    /// Equal entries are equal bytes, so they are passed over undecoded: a tree of a few hundred
    /// entries that differs in one decodes that one.
    pub fn tree_diff(
        &self,
        old: Oid,
        new: Oid,
    ) -> Result<Vec<(Option<TreeEntry>, Option<TreeEntry>)>> {
        let (old_data, new_data) = (
            self.object_bytes(old, gix::objs::Kind::Tree)?,
            self.object_bytes(new, gix::objs::Kind::Tree)?,
        );
        let (mut a, mut b) = (self.raw_entries(&old_data), self.raw_entries(&new_data));
        let (mut x, mut y) = (a.next().transpose()?, b.next().transpose()?);
        let mut out = Vec::new();
        loop {
            match (x, y) {
                (None, None) => break,
                (Some(ex), Some(ey)) if ex.name == ey.name => {
                    if ex.bytes != ey.bytes {
                        out.push((Some(self.tree_entry(ex)?), Some(self.tree_entry(ey)?)));
                    }
                    (x, y) = (a.next().transpose()?, b.next().transpose()?);
                }
                (Some(ex), ey) if ey.is_none_or(|ey| ex.order(&ey).is_lt()) => {
                    out.push((Some(self.tree_entry(ex)?), None));
                    x = a.next().transpose()?;
                }
                (_, ey) => {
                    let ey = ey.expect("the arm above takes every other entry on the old side");
                    out.push((None, Some(self.tree_entry(ey)?)));
                    y = b.next().transpose()?;
                }
            }
        }
        Ok(out)
    }

    /// The blob or tree at `path` (slash-separated) inside `tree`, if any. An entry that is
    /// neither (a gitlink, a symlink) is not there for git-coord.
    pub fn lookup_path(&self, tree: Oid, path: &str) -> Result<Option<Oid>> {
        let mut current = tree;
        let mut is_tree = true;
        for component in path.split('/') {
            if !is_tree {
                return Ok(None);
            }
            let data = self.object_bytes(current, gix::objs::Kind::Tree)?;
            let mut found = None;
            for raw in self.raw_entries(&data) {
                let raw = raw?;
                if raw.name == component.as_bytes() {
                    found = Some(raw);
                    break;
                }
            }
            let Some(raw) = found else { return Ok(None) };
            let entry = self.tree_entry(raw)?;
            if entry.odd.is_some() || !(entry.is_tree || entry.is_blob) {
                return Ok(None);
            }
            current = entry.oid;
            is_tree = entry.is_tree;
        }
        Ok(Some(current))
    }

    /// The entries of a tree's bytes, each split off whole (`MODE NAME\0ID`) but not decoded.
    fn raw_entries<'a>(&self, data: &'a [u8]) -> RawEntries<'a> {
        RawEntries {
            rest: data,
            hash_len: self.inner.object_hash().len_in_bytes(),
        }
    }

    /// One entry, decoded (its mode checked) by gix.
    fn tree_entry(&self, raw: RawEntry<'_>) -> Result<TreeEntry> {
        let e = gix::objs::TreeRefIter::from_bytes(raw.bytes, self.inner.object_hash())
            .next()
            .ok_or_else(|| Error::Git("a tree entry that is not one".into()))?
            .map_err(git_err)?;
        Ok(TreeEntry::new(e.filename, e.oid.to_owned(), e.mode))
    }

    /// The bytes of a blob.
    pub fn read_blob(&self, oid: Oid) -> Result<Vec<u8>> {
        let object = objects::looked_up_twice(oid, || self.inner.try_find_object(oid))?;
        if object.kind != gix::objs::Kind::Blob {
            return Err(Error::Git(format!(
                "object {oid} is a {}, where a blob was expected",
                object.kind
            )));
        }
        Ok(object.detach().data)
    }

    /// Whether `oid` is a commit in this repository.
    pub fn has_commit(&self, oid: Oid) -> Result<bool> {
        let mut header = self.inner.try_find_header(oid).map_err(git_err)?;
        if header.is_none() {
            // Looked for once more: see [`objects::looked_up_twice`].
            header = self.inner.try_find_header(oid).map_err(git_err)?;
        }
        Ok(header.is_some_and(|h| h.kind() == gix::objs::Kind::Commit))
    }

    /// The size of an object without reading it whole.
    pub fn object_size(&self, oid: Oid) -> Result<u64> {
        let header = objects::looked_up_twice(oid, || self.inner.try_find_header(oid))?;
        Ok(header.size())
    }

    /// The same repository, keeping the last 64 objects it inflated from a delta chain (up to
    /// 4 MiB in all): for reading many objects in [`Repo::pack_order`], where each delta's base
    /// is usually among the objects just read. Without it, every delta inflates its whole chain.
    /// It keeps no objects read whole: each is read once.
    pub fn for_bulk_reads(&self) -> Repo {
        const CACHE_BYTES: usize = 4 << 20;
        let mut inner = self.inner.clone();
        inner.objects.unset_object_cache();
        inner.objects.set_pack_cache(|| {
            Box::new(gix::odb::pack::cache::lru::StaticLinkedList::<64>::new(
                CACHE_BYTES,
            ))
        });
        Repo::around(inner, false)
    }

    /// The order in which to read `oids` one after another: the positions of `oids`, sorted by
    /// pack and by offset in the pack. Read in that order, a delta finds its base among the
    /// objects just read (in the pack cache) instead of inflating its whole chain again, which
    /// for blobs written one after another (as `git fast-import` or a repack stores them) is most
    /// of the cost. Objects in no pack of this repository (loose, or in an alternate) come last,
    /// in their given order. Nothing is read but the pack indexes; an index that cannot be
    /// opened only leaves its objects unordered.
    pub fn pack_order(&self, oids: &[Oid]) -> PackOrder {
        let pack_dir = self.inner.objects.store_ref().path().join("pack");
        let mut idx_paths: Vec<PathBuf> = std::fs::read_dir(&pack_dir)
            .map(|dir| {
                dir.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "idx"))
                    .collect()
            })
            .unwrap_or_default();
        idx_paths.sort();
        let hash = self.inner.object_hash();
        let indexes: Vec<gix::odb::pack::index::File> = idx_paths
            .iter()
            .filter_map(|p| gix::odb::pack::index::File::at(p, hash).ok())
            .collect();
        let mut last = 0;
        let place = |oid: &Oid, last: &mut usize| -> (usize, u64) {
            // Objects of one tree usually sit in one pack: ask the pack of the last one first.
            let tries = std::iter::once(*last).chain((0..indexes.len()).filter(|n| n != last));
            for n in tries {
                let Some(index) = indexes.get(n) else {
                    continue;
                };
                if let Some(entry) = index.lookup(oid) {
                    *last = n;
                    return (n, index.pack_offset_at_index(entry));
                }
            }
            (usize::MAX, 0)
        };
        let mut keyed: Vec<((usize, u64), usize)> = oids
            .iter()
            .enumerate()
            .map(|(i, oid)| (place(oid, &mut last), i))
            .collect();
        keyed.sort_unstable();
        let packed = keyed.partition_point(|&((pack, _), _)| pack != usize::MAX);
        PackOrder {
            order: keyed.into_iter().map(|(_, i)| i).collect(),
            packed,
        }
    }

    pub fn write_blob(&self, bytes: &[u8]) -> Result<Oid> {
        self.write_object_bytes(gix::objs::Kind::Blob, bytes)
    }

    /// Applies `edits` to `base` (None: the empty tree) and writes the resulting trees.
    pub fn edit_tree(&self, base: Option<Oid>, edits: &[PathEdit]) -> Result<Oid> {
        let base = base.unwrap_or_else(|| self.inner.empty_tree().id);
        let entries: Vec<EntryEdit> = edits
            .iter()
            .map(|e| EntryEdit {
                path: e.path.clone(),
                entry: e.blob.map(|oid| (oid, false)),
            })
            .collect();
        self.edit_entries(base, &entries)
    }

    /// [`Repo::edit_entries`] on `base` as it is; if that fails because `base` holds an entry no
    /// tree may hold (a name like `..`, pushed by hand), once more on `base` without such entries.
    fn edit_or_clean(&self, base: Oid, edits: &[EntryEdit]) -> Result<Oid> {
        if let Some(tree) = self.splice_entries(base, edits)? {
            return Ok(tree);
        }
        match self.edit_entries_as_is(base, edits) {
            Ok(tree) => Ok(tree),
            Err(err) => {
                let clean = self.without_unfit_names(base)?;
                if clean == base {
                    return Err(err);
                }
                self.note(format!("left out tree entries no document can have: {err}"));
                self.edit_entries_as_is(clean, edits)
            }
        }
    }

    /// `tree` without the entries whose names [`is_fit_name`] refuses, at any depth.
    pub fn without_unfit_names(&self, tree: Oid) -> Result<Oid> {
        let data = self.object_bytes(tree, gix::objs::Kind::Tree)?;
        let decoded = self.decode_tree(&data)?;
        let mut changed = false;
        let mut entries = Vec::with_capacity(decoded.entries.len());
        for e in &decoded.entries {
            if !is_fit_name(e.filename) {
                changed = true;
                continue;
            }
            let mut owned: gix::objs::tree::Entry = (*e).into();
            if e.mode.is_tree() {
                let cleaned = self.without_unfit_names(e.oid.to_owned())?;
                if cleaned != owned.oid {
                    owned.oid = cleaned;
                    changed = true;
                }
            }
            entries.push(owned);
        }
        if !changed {
            return Ok(tree);
        }
        self.write_object(&gix::objs::Tree { entries })
    }

    /// Writes a commit object (the ref is not moved).
    pub fn write_commit(
        &self,
        tree: Oid,
        parents: &[Oid],
        author: &Author,
        message: &str,
    ) -> Result<Oid> {
        let sig = gix::actor::Signature {
            name: BString::from(author.name.as_str()),
            email: BString::from(author.email.as_str()),
            time: gix::date::Time::new(author.seconds, 0),
        };
        let commit = gix::objs::Commit {
            tree,
            parents: parents.iter().copied().collect(),
            author: sig.clone(),
            committer: sig,
            encoding: None,
            message: BString::from(message),
            extra_headers: Vec::new(),
        };
        self.write_object(&commit)
    }

    /// Moves `name` to `new` only if it still points at `expected` (None: it must not exist yet).
    ///
    /// Done as git's files backend does an update: lock the ref alone (`<ref>.lock`, created
    /// exclusively), read its value (loose, else packed-refs, without locking packed-refs),
    /// compare, write the lock, rename it over the ref. packed-refs.lock is never taken, so a
    /// process killed here can only leave the ref's own lock, which [`Repo::recover_stale_lock`] clears.
    pub fn cas_ref(
        &self,
        name: &str,
        expected: Option<Oid>,
        new: Oid,
        _reason: &str,
    ) -> Result<Cas> {
        let Some(lock) = self.try_lock_ref(name)? else {
            return Ok(Cas::Lost);
        };
        if lock.tip()? != expected {
            tracing::debug!(%name, "compare-and-swap lost");
            return Ok(Cas::Lost);
        }
        lock.commit(new)
    }

    /// Takes the lock of ref `name` (git's own `<ref>.lock`), or None when another writer holds
    /// it. A lock left by a killed process is cleared once it is stale.
    pub fn try_lock_ref(&self, name: &str) -> Result<Option<RefLock<'_>>> {
        self.try_lock_ref_checking(name, true)
    }

    /// [`Repo::try_lock_ref`]; a held lock is checked for staleness only when `check_stale`
    /// (a writer waiting for the lock checks now and then, not on every look).
    fn try_lock_ref_checking(&self, name: &str, check_stale: bool) -> Result<Option<RefLock<'_>>> {
        let checked: &gix::refs::FullNameRef = name
            .try_into()
            .map_err(|e| Error::Git(format!("bad ref name {name}: {e}")))?;
        let common = self.common_dir();
        let path = common.join(checked.as_bstr().to_str_lossy().as_ref());
        let lock = common.join(format!("{name}.lock"));
        let create = || {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&lock)
        };
        let created = match self.link_lock_made_ahead(&lock).unwrap_or_else(create) {
            // The ref's directory does not exist yet (a first write).
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(dir) = lock.parent() {
                    std::fs::create_dir_all(dir)
                        .map_err(|e| Error::Git(format!("cannot create {}: {e}", dir.display())))?;
                }
                create()
            }
            other => other,
        };
        let file = match created {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                // Another writer holds it, or a killed one left it.
                tracing::debug!(%name, "ref lock held");
                if check_stale {
                    self.recover_stale_lock(&lock);
                }
                return Ok(None);
            }
            Err(e) => return Err(Error::Git(format!("cannot lock {name}: {e}"))),
        };
        use std::os::unix::fs::MetadataExt;
        let ino = file
            .metadata()
            .map_err(|e| Error::Git(format!("cannot lock {name}: {e}")))?
            .ino();
        Ok(Some(RefLock {
            repo: self,
            name: name.to_string(),
            held: HeldLock {
                path: lock,
                ino,
                armed: true,
            },
            path,
            file,
        }))
    }

    /// Takes the lock of ref `name`, waiting while other writers hold it (they hold it for the
    /// moment it takes to write one commit), until `deadline`: None if it is still held then.
    pub fn lock_ref(&self, name: &str, deadline: Instant) -> Result<Option<RefLock<'_>>> {
        let mut pause = Duration::from_micros(20);
        // A lock is stale only after seconds: checked on the first look, then every 100 ms.
        let mut next_check = Instant::now();
        loop {
            let now = Instant::now();
            let check_stale = now >= next_check;
            if check_stale {
                next_check = now + Duration::from_millis(100);
            }
            if let Some(lock) = self.try_lock_ref_checking(name, check_stale)? {
                return Ok(Some(lock));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_micros(500));
        }
    }

    /// Every path that exists for this worktree: the files of HEAD's tree, and the working tree's
    /// tracked and untracked files that are not ignored (`git ls-files --cached --others
    /// --exclude-standard`). Sorted, without repeats. A bare repository has only HEAD's files.
    pub fn existing_paths(&self) -> Result<Vec<String>> {
        let head = self.inner.head_tree_id_or_empty().map_err(git_err)?;
        let tree = self.inner.find_tree(head).map_err(git_err)?;
        let mut paths: Vec<String> = tree
            .traverse()
            .breadthfirst
            .files()
            .map_err(git_err)?
            .into_iter()
            .filter(|e| !e.mode.is_tree())
            .map(|e| e.filepath.to_str_lossy().into_owned())
            .collect();
        if let Some(workdir) = self.inner.workdir() {
            let listed = run_git(
                workdir,
                &[
                    "ls-files",
                    "-z",
                    "--cached",
                    "--others",
                    "--exclude-standard",
                ],
            )?;
            paths.extend(
                listed
                    .split('\0')
                    .filter(|p| !p.is_empty())
                    .map(String::from),
            );
        }
        paths.sort_unstable();
        paths.dedup();
        Ok(paths)
    }

    /// Visits the commits reachable from `tip`, newest first, until `visit` returns false.
    pub fn walk_history(&self, tip: Oid, mut visit: impl FnMut(CommitInfo) -> bool) -> Result<()> {
        let walk = self
            .inner
            .rev_walk([tip])
            .sorting(gix::revision::walk::Sorting::ByCommitTime(
                Default::default(),
            ))
            .all()
            .map_err(git_err)?;
        for info in walk {
            let info = info.map_err(git_err)?;
            let commit = self.inner.find_commit(info.id).map_err(git_err)?;
            let decoded = commit.decode().map_err(git_err)?;
            let keep_going = visit(CommitInfo {
                oid: info.id,
                seconds: decoded.committer().map_err(git_err)?.seconds(),
                author: decoded
                    .author()
                    .map_err(git_err)?
                    .name
                    .to_str_lossy()
                    .into_owned(),
                message: decoded.message.to_str_lossy().into_owned(),
                parents: decoded.parents().collect(),
            });
            if !keep_going {
                break;
            }
        }
        Ok(())
    }
}

/// Slots for pack indices in gix's object store, fixed for the life of a `Repo`. gix's default
/// (10% more than the packs on disk when it opens, at least 32) ran out in a clone where `git gc
/// --auto` kept writing packs while commands ran ("The object database has too few index
/// slots"), and an object moved into a new pack then could not be found. Each slot is a few
/// words.
const OBJECT_STORE_SLOTS: gix::odb::store::init::Slots =
    gix::odb::store::init::Slots::AsNeededByDiskState {
        multiplier: 2.0,
        minimum: 512,
    };

impl Repo {
    /// Removes the ref locks under `prefix` (a folder of refs, such as `refs/coord-sync/origin/`)
    /// that a killed process left: each older than the stale-lock age, as for any ref lock.
    pub fn recover_stale_locks_under(&self, prefix: &str) {
        let common = self.common_dir();
        let mut dirs = vec![common.join(prefix.trim_end_matches('/'))];
        while let Some(dir) = dirs.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                match entry.file_type() {
                    Ok(t) if t.is_dir() => dirs.push(path),
                    Ok(t) if t.is_file() && path.extension().is_some_and(|e| e == "lock") => {
                        self.recover_stale_lock(&path);
                    }
                    _ => {}
                }
            }
        }
    }

    /// Removes packed-refs.lock if a killed process left it (older than [`STALE_PACKED_LOCK`]),
    /// before running a git command that deletes refs and so must take it.
    pub fn recover_stale_packed_refs_lock(&self) {
        let common = self.common_dir();
        let lock = common.join("packed-refs.lock");
        if lock.exists() && recover_lock_older_than(&lock, &common.join("coord"), STALE_PACKED_LOCK)
        {
            self.note_removed(&lock);
        }
    }
}

/// A ref lock this process created (its path and inode) and has not yet renamed over its ref:
/// removed on every way out, if it is still the file this process created.
struct HeldLock {
    path: PathBuf,
    ino: u64,
    /// Cleared once the lock is renamed over its ref, or found to be another writer's.
    armed: bool,
}

impl HeldLock {
    fn still_ours(&self) -> bool {
        use std::os::unix::fs::MetadataExt;
        std::fs::symlink_metadata(&self.path).is_ok_and(|m| m.ino() == self.ino)
    }
}

impl Drop for HeldLock {
    fn drop(&mut self) {
        if self.armed && self.still_ours() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// A ref this process holds the lock of: read it, then move it with [`RefLock::commit`].
/// Dropped without a commit, the lock is let go and the ref is unchanged.
pub struct RefLock<'r> {
    repo: &'r Repo,
    name: String,
    held: HeldLock,
    path: PathBuf,
    file: std::fs::File,
}

impl std::fmt::Debug for RefLock<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefLock")
            .field("name", &self.name)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl RefLock<'_> {
    /// The ref's value now; no other well-behaved writer can move it while the lock is held.
    pub fn tip(&self) -> Result<Option<Oid>> {
        self.repo.ref_tip(&self.name)
    }

    /// Points the ref at `new` and lets go of the lock. [`Cas::Lost`] if the lock was taken
    /// away meanwhile (cleared as stale while this process stood still): the ref is unchanged.
    pub fn commit(mut self, new: Oid) -> Result<Cas> {
        let lock = self.held.path.clone();
        let line = format!("{new}\n");
        allocate(&self.file, line.len());
        self.file
            .write_all(line.as_bytes())
            .and_then(|()| self.file.flush())
            .map_err(|e| Error::Git(format!("cannot write {}: {e}", lock.display())))?;
        if !self.held.still_ours() {
            // Taken for a stale one while this process stood still: what the lock path holds
            // now is another writer's. Leave it, and count this try as lost.
            self.held.armed = false;
            return Ok(Cas::Lost);
        }
        // Held open, to be freed after the write (see `ahead`).
        let replaced = std::fs::File::open(&self.path).ok();
        std::fs::rename(&lock, &self.path)
            .map_err(|e| Error::Git(format!("cannot update {}: {e}", self.name)))?;
        self.held.armed = false; // renamed: nothing left to remove
        if let Some(file) = replaced {
            self.repo.hold_replaced(file);
        }
        self.repo.note_written_objects();
        Ok(Cas::Moved)
    }
}

/// Allocates the disk blocks of the `len` bytes about to be written into a new ref lock, where
/// the file system can (Linux's `fallocate`; elsewhere, or where it fails, nothing changes). On
/// ext4, whose writes are allocated only when written back, renaming a file whose blocks are not
/// yet allocated over another (the lock over its ref) allocates them and starts writing them
/// back inside the rename (`auto_da_alloc`), while the ref's directory is locked to every other
/// writer of a ref beside it.
fn allocate(file: &std::fs::File, len: usize) {
    #[cfg(target_os = "linux")]
    {
        let _ = rustix::fs::fallocate(file, rustix::fs::FallocateFlags::empty(), 0, len as u64);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, len);
}

/// A ref lock older than this was left by a killed process: git-coord holds its locks for
/// microseconds, and git's own ref updates for milliseconds.
pub const STALE_LOCK: std::time::Duration = std::time::Duration::from_secs(5);
/// packed-refs.lock older than this was left by a killed process: git holds it while it rewrites
/// packed-refs (pack-refs, gc, deleting a packed ref), which takes well under this even for a
/// large repository.
const STALE_PACKED_LOCK: std::time::Duration = std::time::Duration::from_secs(30);

impl Repo {
    /// Removes ref lock `lock` if it is stale ([`recover_lock_older_than`]), noting it for the
    /// user.
    fn recover_stale_lock(&self, lock: &Path) {
        if recover_lock_older_than(lock, &self.common_dir().join("coord"), STALE_LOCK) {
            self.note_removed(lock);
        }
    }

    fn note_removed(&self, lock: &Path) {
        self.note(format!(
            "removed a stale lock left by a killed process: {}",
            lock.display()
        ));
    }

    /// Keeps `text` for the command to show the user as a warning ([`Repo::take_notes`]).
    pub fn note(&self, text: String) {
        tracing::debug!("{text}");
        self.notes.borrow_mut().push(text);
    }

    /// What this repository did on its own since the last call that the user should hear.
    pub fn take_notes(&self) -> Vec<String> {
        std::mem::take(&mut *self.notes.borrow_mut())
    }
}

/// Removes `lock` if it is older than `limit`; returns whether it did. The lock is first renamed
/// into `aside_dir`, which only one process can do; if what was renamed turns out to be fresh (a
/// live writer's lock that replaced the stale one in between), it is put back.
fn recover_lock_older_than(lock: &Path, aside_dir: &Path, limit: std::time::Duration) -> bool {
    let is_stale = |path: &Path| {
        std::fs::metadata(path)
            .and_then(|m| m.modified())
            // A time far in the future (a skewed clock) is as suspect as one far in the past.
            .is_ok_and(|t| match t.elapsed() {
                Ok(age) => age > limit,
                Err(ahead) => ahead.duration() > limit,
            })
    };
    if !is_stale(lock) {
        return false;
    }
    // Set aside outside refs/, so that a kill right here leaves no broken ref behind.
    let _ = std::fs::create_dir_all(aside_dir);
    // One name per attempt, so that threads of one process (the dashboard, MCP) never collide.
    static ASIDE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = ASIDE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let aside = aside_dir.join(format!("stale-lock-{}-{n}", std::process::id()));
    if std::fs::rename(lock, &aside).is_err() {
        return false; // another process took it first
    }
    let removed = is_stale(&aside);
    if !removed {
        let _ = std::fs::hard_link(&aside, lock);
    }
    let _ = std::fs::remove_file(&aside);
    removed
}

/// The one way git-coord runs the git binary: in `dir`, with no terminal prompts and no stdin,
/// in the C locale (so its words can be parsed), and without the filesystem monitor, which is a
/// command the repository's configuration names. Hooks and filters run only where the command
/// itself needs them (a merge in an agent's own worktree), never on a path a document named
/// before that path is proven to be ours.
fn git_command(dir: &Path, args: &[&str]) -> std::process::Command {
    let mut cmd = std::process::Command::new("git");
    cmd.args(["-c", "core.fsmonitor=false"])
        .args(args)
        .current_dir(dir)
        .env("LC_ALL", "C")
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(std::process::Stdio::null());
    cmd
}

fn output_of(mut cmd: std::process::Command) -> Result<GitOutput> {
    let out = cmd
        .output()
        .map_err(|e| Error::Git(format!("cannot run git: {e}")))?;
    Ok(GitOutput {
        success: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).trim_end().to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).trim_end().to_string(),
    })
}

/// Runs git in `dir` and returns its trimmed stdout; a failure is an error carrying git's words.
pub fn run_git(dir: &Path, args: &[&str]) -> Result<String> {
    output_of(git_command(dir, args))?.stdout_of(args)
}

/// What a git process said, for commands whose failure is an answer to show (a hook refusing).
#[derive(Debug)]
pub struct GitOutput {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl GitOutput {
    /// What git printed, or, when it failed, an error carrying its words (`args` name the command).
    pub fn stdout_of(self, args: &[&str]) -> Result<String> {
        if !self.success {
            // The command line or git's words may hold a URL with its password.
            return Err(Error::Git(
                redact_urls(&format!(
                    "git {} failed: {}",
                    args.join(" "),
                    self.stderr.trim()
                ))
                .into_owned(),
            ));
        }
        Ok(self.stdout)
    }

    /// Git's first complaint, with the names it lists under it on the lines that follow (indented
    /// with a tab, as "would be overwritten by merge:" does), on one line.
    pub fn failure(&self) -> String {
        let mut lines = self.stderr.lines().skip_while(|l| l.trim().is_empty());
        let Some(first) = lines.next() else {
            return String::new();
        };
        let first = first.trim();
        let first = first
            .strip_prefix("error: ")
            .or_else(|| first.strip_prefix("fatal: "))
            .unwrap_or(first);
        let names: Vec<&str> = lines
            .take_while(|l| l.starts_with('\t'))
            .map(str::trim)
            .collect();
        if names.is_empty() {
            first.to_string()
        } else {
            format!("{first} {}", names.join(", "))
        }
    }
}

/// Runs git in `dir` with extra environment variables and returns what it said, success or not.
pub fn run_git_with_env(
    dir: &Path,
    args: &[&str],
    env: &[(&str, std::ffi::OsString)],
) -> Result<GitOutput> {
    let mut cmd = git_command(dir, args);
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    output_of(cmd)
}

fn git_err(err: impl std::fmt::Display) -> Error {
    Error::Git(err.to_string())
}

/// The values of one trailer in a commit message (`Key: value` lines), in order.
pub fn trailer_values<'m>(message: &'m str, key: &str) -> Vec<&'m str> {
    message
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == key).then(|| v.trim())
        })
        .filter(|v| !v.is_empty())
        .collect()
}

/// Runs git like [`run_git`], but returns None when git exits non-zero: for questions whose
/// answer is a failure ("does this resolve?", "is this an ancestor?").
pub fn probe_git(dir: &Path, args: &[&str]) -> Result<Option<String>> {
    let out = output_of(git_command(dir, args))?;
    Ok(out.success.then_some(out.stdout))
}

impl Repo {
    /// The working tree of this worktree, if it has one.
    pub fn workdir(&self) -> Option<PathBuf> {
        self.inner.workdir().map(Path::to_path_buf)
    }

    /// The working tree of the main worktree (the one whose `.git` is the common directory).
    pub fn main_workdir(&self) -> Option<PathBuf> {
        let common = self.common_dir();
        let common = common.canonicalize().unwrap_or(common);
        match common.file_name() {
            Some(name) if name == ".git" => common.parent().map(Path::to_path_buf),
            _ => None,
        }
    }
}

/// The directory git runs hooks from, as seen from `dir` (core.hooksPath respected).
pub fn hooks_dir(dir: &Path) -> Result<PathBuf> {
    let path = PathBuf::from(run_git(dir, &["rev-parse", "--git-path", "hooks"])?);
    Ok(if path.is_absolute() {
        path
    } else {
        dir.join(path)
    })
}

/// The paths a commit made now would touch: staged additions, changes and deletions (renames as
/// their two paths).
pub fn staged_paths(dir: &Path) -> Result<Vec<String>> {
    let out = run_git(
        dir,
        &["diff", "--cached", "--name-only", "--no-renames", "-z"],
    )?;
    Ok(out
        .split('\0')
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect())
}

/// The paths changed by the commits reachable from `tip` and not from `exclude` (an object id,
/// or `--remotes=NAME`).
pub fn paths_changed(dir: &Path, tip: &str, exclude: &[&str]) -> Result<Vec<String>> {
    let mut args = vec![
        "log",
        "--format=",
        "--name-only",
        "--no-renames",
        "-z",
        tip,
        "--not",
    ];
    args.extend_from_slice(exclude);
    let out = run_git(dir, &args)?;
    let mut paths: Vec<String> = out
        .split(['\0', '\n'])
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect();
    paths.sort();
    paths.dedup();
    Ok(paths)
}

/// Whether `oid` names an object in this repository.
pub fn has_object(dir: &Path, oid: &str) -> Result<bool> {
    Ok(probe_git(dir, &["cat-file", "-e", &format!("{oid}^{{commit}}")])?.is_some())
}

/// A change to one entry of a tree: `Some((oid, is_tree))` to put, None to remove.
#[derive(Debug, Clone)]
pub struct EntryEdit {
    pub path: String,
    pub entry: Option<(Oid, bool)>,
}

impl Repo {
    /// Applies `edits` (blobs and whole subtrees) to `base` and writes the resulting trees.
    pub fn edit_entries(&self, base: Oid, edits: &[EntryEdit]) -> Result<Oid> {
        self.edit_or_clean(base, edits)
    }

    /// gix's object-level tree editor, writing each changed tree as it is. (gix's repository-level
    /// editor also looks up every entry of every tree it writes, which for the 256 shards of a
    /// store costs more than the rest of the write.) An entry no tree may hold fails the write,
    /// as it would there.
    fn edit_entries_as_is(&self, base: Oid, edits: &[EntryEdit]) -> Result<Oid> {
        let root: gix::objs::Tree = if base.is_empty_tree() {
            gix::objs::Tree::empty()
        } else {
            let data = self.object_bytes(base, gix::objs::Kind::Tree)?;
            self.decode_tree(&data)?.into()
        };
        let find = objects::KeptFind(self);
        let mut editor = gix::objs::tree::Editor::new(root, &find, self.inner.object_hash());
        for edit in edits {
            let path = edit.path.split('/');
            match edit.entry {
                Some((oid, is_tree)) => {
                    let kind = if is_tree {
                        EntryKind::Tree
                    } else {
                        EntryKind::Blob
                    };
                    editor.upsert(path, kind, oid).map_err(git_err)?;
                }
                None => {
                    editor.remove(path).map_err(git_err)?;
                }
            }
        }
        let written = editor.write(|tree| -> Result<Oid> {
            if let Some(unfit) = tree.entries.iter().find(|e| !is_fit_name(&e.filename)) {
                return Err(Error::Git(format!(
                    "a tree cannot hold an entry named {:?}",
                    unfit.filename
                )));
            }
            self.write_object(tree)
        })?;
        Ok(written)
    }

    /// The usual write, done on the trees' bytes: entries put (none removed) at distinct paths
    /// none of which is inside another, where no entry changes between tree and not. Unchanged
    /// entries are copied as they are, the others spliced in at their place in git's order, so
    /// the 256 entries of a store's shards are neither decoded nor encoded again. The trees
    /// written are the ones [`Repo::edit_entries_as_is`] writes, byte for byte. None when the
    /// edits or a tree on the way are not of that kind (an unfit or unusual entry, a tree not in
    /// git's order): the editor then does it (the trees this wrote below such a tree stay
    /// behind unused, for `git gc` to drop).
    fn splice_entries(&self, base: Oid, edits: &[EntryEdit]) -> Result<Option<Oid>> {
        let mut puts: Vec<(Vec<&[u8]>, Oid, bool)> = Vec::with_capacity(edits.len());
        for edit in edits {
            let Some((oid, is_tree)) = edit.entry else {
                return Ok(None);
            };
            puts.push((
                edit.path.as_bytes().split(|&b| b == b'/').collect(),
                oid,
                is_tree,
            ));
        }
        puts.sort_by(|a, b| a.0.cmp(&b.0));
        let nested = puts
            .windows(2)
            .any(|w| w[1].0.len() >= w[0].0.len() && w[1].0[..w[0].0.len()] == w[0].0[..]);
        if puts.is_empty() || nested {
            return Ok(None);
        }
        // A tree that cannot be read (missing, or another kind of object) is the editor's to
        // report, as it always was.
        let spliced = self.splice_level((!base.is_empty_tree()).then_some(base), &puts, 0);
        Ok(spliced.unwrap_or(None))
    }

    /// One tree of [`Repo::splice_entries`]: `tree` (None: a new one) with `puts`, whose paths
    /// all go through it (their component `depth` names an entry of it).
    fn splice_level(
        &self,
        tree: Option<Oid>,
        puts: &[(Vec<&[u8]>, Oid, bool)],
        depth: usize,
    ) -> Result<Option<Oid>> {
        const BLOB: &[u8] = b"100644";
        let data = match tree {
            Some(tree) => self.object_bytes(tree, gix::objs::Kind::Tree)?,
            None => std::rc::Rc::from(&[][..]),
        };
        let mut entries: Vec<RawEntry> = Vec::new();
        for entry in self.raw_entries(&data) {
            let Ok(entry) = entry else { return Ok(None) };
            let usual = [BLOB, TREE_MODE, b"100755", b"120000", b"160000"].contains(&entry.mode);
            let in_order = entries.last().is_none_or(|last| last.order(&entry).is_lt());
            if !usual || !is_fit_name(entry.name) || !in_order {
                return Ok(None);
            }
            entries.push(entry);
        }
        // What this tree's entries become, in git's order: (name, is a tree, object id).
        let mut changes: Vec<(&[u8], bool, Oid)> = Vec::new();
        for group in puts.chunk_by(|a, b| a.0[depth] == b.0[depth]) {
            let name = group[0].0[depth];
            if !is_fit_name(name) {
                return Ok(None);
            }
            let held = entries.iter().find(|e| e.name == name);
            let (is_tree, oid) = if group[0].0.len() == depth + 1 {
                (group[0].2, group[0].1)
            } else {
                let child = match held {
                    Some(e) if e.is_tree() => Some(Oid::try_from(e.id).map_err(git_err)?),
                    Some(_) => return Ok(None),
                    None => None,
                };
                match self.splice_level(child, group, depth + 1)? {
                    Some(oid) => (true, oid),
                    None => return Ok(None),
                }
            };
            if held.is_some_and(|e| e.is_tree() != is_tree) {
                return Ok(None);
            }
            changes.push((name, is_tree, oid));
        }
        changes.sort_by(|a, b| git_order(a.0, a.1, b.0, b.1));
        let mut out = Vec::with_capacity(data.len() + changes.len() * 64);
        let mut changes = changes.into_iter().peekable();
        let put = |out: &mut Vec<u8>, (name, is_tree, oid): (&[u8], bool, Oid)| {
            out.extend_from_slice(if is_tree { TREE_MODE } else { BLOB });
            out.push(b' ');
            out.extend_from_slice(name);
            out.push(0);
            out.extend_from_slice(oid.as_bytes());
        };
        for entry in &entries {
            while let Some(change) =
                changes.next_if(|c| git_order(c.0, c.1, entry.name, entry.is_tree()).is_lt())
            {
                put(&mut out, change);
            }
            match changes.next_if(|c| c.0 == entry.name) {
                Some(change) => put(&mut out, change),
                None => out.extend_from_slice(entry.bytes),
            }
        }
        changes.for_each(|change| put(&mut out, change));
        self.write_object_bytes(gix::objs::Kind::Tree, &out)
            .map(Some)
    }

    /// Runs the git binary on this repository (`--git-dir`), for what gix does not do here:
    /// merge bases, fetch and push. Returns what it said, success or not.
    pub fn git(&self, args: &[&str]) -> Result<GitOutput> {
        let git_dir = self.git_dir();
        let git_dir = git_dir.to_str().ok_or_else(|| {
            Error::Git(format!(
                "the git directory is not UTF-8: {}",
                git_dir.display()
            ))
        })?;
        let mut all = vec!["--git-dir", git_dir];
        all.extend_from_slice(args);
        let dir = self.workdir().unwrap_or_else(|| self.git_dir());
        run_git_with_env(&dir, &all, &[("GIT_TERMINAL_PROMPT", "0".into())])
    }

    /// Like [`Repo::git`], but a failure is an error carrying git's words.
    pub fn git_ok(&self, args: &[&str]) -> Result<String> {
        self.git(args)?.stdout_of(args)
    }

    /// Whether `ancestor` is reachable from `descendant` (or is it).
    pub fn is_ancestor(&self, ancestor: Oid, descendant: Oid) -> Result<bool> {
        if ancestor == descendant {
            return Ok(true);
        }
        let (a, d) = (ancestor.to_string(), descendant.to_string());
        Ok(self.git(&["merge-base", "--is-ancestor", &a, &d])?.success)
    }

    /// The best common ancestor of two commits, if they share history.
    pub fn merge_base(&self, a: Oid, b: Oid) -> Result<Option<Oid>> {
        let out = self.git(&["merge-base", &a.to_string(), &b.to_string()])?;
        if !out.success {
            return Ok(None);
        }
        Oid::from_hex(out.stdout.trim().as_bytes())
            .map(Some)
            .map_err(|e| Error::Git(format!("merge-base printed {}: {e}", out.stdout)))
    }

    /// Every ref under `prefix`, with the commit it points at.
    pub fn refs_under(&self, prefix: &str) -> Result<Vec<(String, Oid)>> {
        let platform = self.inner.references().map_err(git_err)?;
        let mut out = Vec::new();
        for r in platform.prefixed(prefix).map_err(git_err)? {
            let mut r = r.map_err(git_err)?;
            let name = r.name().as_bstr().to_str_lossy().into_owned();
            let id = r.peel_to_id().map_err(git_err)?.detach();
            out.push((name, id));
        }
        Ok(out)
    }

    /// Deletes a ref (for staging refs of a sync), whatever it points at. git takes
    /// packed-refs.lock to delete; one a killed process left is recovered first.
    pub fn delete_ref(&self, name: &str) -> Result<()> {
        self.recover_stale_packed_refs_lock();
        self.git_ok(&["update-ref", "-d", name]).map(|_| ())
    }

    /// Points `name` at `oid` whatever it pointed at (only for refs git-coord owns outright: the
    /// staging refs of a sync, never refs/coord/*).
    /// A lock that a killed process left on it is waited out until it is stale, then recovered.
    pub fn set_ref(&self, name: &str, oid: Oid) -> Result<()> {
        // In-process, as a compare-and-swap moves a ref: a sync sets a staging ref for every ref
        // it pushed, and a `git update-ref` process each cost milliseconds.
        let deadline = Instant::now() + STALE_LOCK * 2;
        loop {
            let Some(lock) = self.lock_ref(name, deadline)? else {
                return Err(Error::Git(format!(
                    "cannot lock {name}: another process kept it locked"
                )));
            };
            if lock.commit(oid)? == Cas::Moved {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Error::Git(format!(
                    "cannot set {name}: its lock was taken from this process"
                )));
            }
        }
    }
}

/// One ref of a transaction: moved to `new` (None: deleted) only if it still points at `old`
/// (None: it must not exist yet).
#[derive(Debug, Clone)]
pub struct RefEdit {
    pub name: String,
    pub old: Option<Oid>,
    pub new: Option<Oid>,
}

impl Repo {
    /// Moves every ref of `edits` or none: git's own ref transaction (`git update-ref --stdin`
    /// with `start`, `prepare`, `commit`), which locks them all, checks each against its `old`,
    /// and only then renames the locks over the refs. [`Cas::Lost`] when a ref no longer points
    /// at its `old`, or another writer holds a lock (a stale one, left by a killed process, is
    /// cleared for the next try): nothing moved. The transaction is git's process, so killing
    /// this one, even while git commits, never leaves some refs moved and others not; without
    /// `commit` (this process killed while it writes them), git aborts the whole transaction.
    pub fn update_refs(&self, edits: &[RefEdit], reason: &str) -> Result<Cas> {
        let zero = Oid::null(self.inner.object_hash());
        let mut input = String::from("start\n");
        for edit in edits {
            let checked: &gix::refs::FullNameRef = edit
                .name
                .as_str()
                .try_into()
                .map_err(|e| Error::Git(format!("bad ref name {}: {e}", edit.name)))?;
            input.push_str(&match edit.new {
                Some(new) => format!(
                    "update {} {new} {}\n",
                    checked.as_bstr(),
                    edit.old.unwrap_or(zero)
                ),
                // Deleting a ref that must not exist would be no edit: without `old`, any value.
                None => match edit.old {
                    Some(old) => format!("delete {} {old}\n", checked.as_bstr()),
                    None => format!("delete {}\n", checked.as_bstr()),
                },
            });
        }
        input.push_str("prepare\ncommit\n");
        let git_dir = self.git_dir().display().to_string();
        let args = [
            "--git-dir",
            git_dir.as_str(),
            "update-ref",
            "-m",
            reason,
            "--stdin",
        ];
        let dir = self.workdir().unwrap_or_else(|| self.git_dir());
        let mut cmd = git_command(&dir, &args);
        cmd.stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd
            .spawn()
            .map_err(|e| Error::Git(format!("cannot run git: {e}")))?;
        // One write: git sees the whole transaction, or an end without `commit` and aborts.
        let written = child
            .stdin
            .take()
            .map(|mut stdin| stdin.write_all(input.as_bytes()));
        let out = child
            .wait_with_output()
            .map_err(|e| Error::Git(format!("cannot run git: {e}")))?;
        if out.status.success() {
            return Ok(Cas::Moved);
        }
        if let Some(Err(e)) = written {
            return Err(Error::Git(format!("cannot run git update-ref: {e}")));
        }
        for edit in edits {
            if self.ref_tip(&edit.name)? != edit.old {
                tracing::debug!(name = %edit.name, "ref transaction lost");
                return Ok(Cas::Lost);
            }
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        if stderr.contains(".lock': File exists") {
            let common = self.common_dir();
            for edit in edits {
                self.recover_stale_lock(&common.join(format!("{}.lock", edit.name)));
            }
            return Ok(Cas::Lost);
        }
        Err(Error::Git(format!(
            "git update-ref failed: {}",
            stderr.trim()
        )))
    }
}

/// The result of merging two commits in memory (`git merge-tree --write-tree`).
#[derive(Debug)]
pub enum TreeMerge {
    Clean(Oid),
    /// The paths both sides changed in ways git cannot reconcile.
    Conflicted(Vec<String>),
}

/// A worktree of the repository, as `git worktree list` shows it.
#[derive(Debug, Clone)]
pub struct Worktree {
    pub path: PathBuf,
    /// The branch checked out there (`refs/heads/...`), if any.
    pub branch: Option<String>,
}

fn parse_oid(text: &str) -> Result<Oid> {
    Oid::from_hex(text.trim().as_bytes())
        .map_err(|e| Error::Git(format!("expected an object id, got '{}': {e}", text.trim())))
}

impl Repo {
    /// The commit checked out in this worktree (None: an unborn branch), read in-process.
    pub fn head_commit(&self) -> Result<Option<Oid>> {
        let head = self.inner.head().map_err(git_err)?;
        Ok(head.id().map(|id| id.detach()))
    }

    /// The commit `rev` names, if it names one.
    pub fn resolve_commit(&self, rev: &str) -> Result<Option<Oid>> {
        let out = self.git(&[
            "rev-parse",
            "--verify",
            "--quiet",
            &format!("{rev}^{{commit}}"),
        ])?;
        if !out.success {
            return Ok(None);
        }
        parse_oid(&out.stdout).map(Some)
    }

    /// Merges `theirs` into `ours` in memory; no worktree or index is touched.
    pub fn merge_commits(&self, ours: Oid, theirs: Oid) -> Result<TreeMerge> {
        self.merge_tree(None, ours, theirs)
    }

    /// Merges in memory as if `base` were the merge base: with `base` a commit and `theirs` its
    /// parent, the changes of `base` undone on `ours` (a revert).
    pub fn merge_on_base(&self, base: Oid, ours: Oid, theirs: Oid) -> Result<TreeMerge> {
        self.merge_tree(Some(base), ours, theirs)
    }

    fn merge_tree(&self, base: Option<Oid>, ours: Oid, theirs: Oid) -> Result<TreeMerge> {
        let base = base.map(|b| format!("--merge-base={b}"));
        let (ours, theirs) = (ours.to_string(), theirs.to_string());
        let mut args = vec!["merge-tree", "--write-tree", "--name-only", "--no-messages"];
        args.extend(base.as_deref());
        args.extend([ours.as_str(), theirs.as_str()]);
        let out = self.git(&args)?;
        let mut lines = out.stdout.lines();
        let first = lines.next().unwrap_or_default();
        if out.success {
            return Ok(TreeMerge::Clean(parse_oid(first)?));
        }
        if parse_oid(first).is_err() {
            return Err(Error::Git(format!(
                "git merge-tree failed: {}",
                out.stderr.trim()
            )));
        }
        let mut paths: Vec<String> = lines
            .take_while(|l| !l.is_empty())
            .map(str::to_string)
            .collect();
        paths.dedup();
        Ok(TreeMerge::Conflicted(paths))
    }

    /// The commits on the first-parent line of `tip` down to (not including) what `not` reaches,
    /// newest first: what was done on a branch since `not`.
    pub fn first_parent_commits(&self, tip: Oid, not: Oid) -> Result<Vec<Oid>> {
        let out = self.git_ok(&[
            "rev-list",
            "--first-parent",
            &tip.to_string(),
            "--not",
            &not.to_string(),
        ])?;
        out.lines().map(parse_oid).collect()
    }

    /// The paths whose content differs between two commits (a rename as its two paths).
    pub fn changed_paths(&self, from: Oid, to: Oid) -> Result<Vec<String>> {
        let out = self.git_ok(&[
            "diff",
            "--name-only",
            "--no-renames",
            "-z",
            &from.to_string(),
            &to.to_string(),
        ])?;
        Ok(out
            .split('\0')
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .collect())
    }

    /// The commits reachable from `tip` and not from `not` that change `path` against their
    /// parent (merges aside), newest first.
    pub fn commits_changing(&self, tip: Oid, not: Oid, path: &str) -> Result<Vec<Oid>> {
        let out = self.git_ok(&[
            "--literal-pathspecs",
            "log",
            "--full-history",
            "--no-merges",
            "--format=%H",
            &tip.to_string(),
            "--not",
            &not.to_string(),
            "--",
            path,
        ])?;
        out.lines().map(parse_oid).collect()
    }

    /// A commit's message, whole.
    pub fn commit_message(&self, oid: Oid) -> Result<String> {
        let commit = self.inner.find_commit(oid).map_err(git_err)?;
        let decoded = commit.decode().map_err(git_err)?;
        Ok(decoded.message.to_str_lossy().into_owned())
    }

    /// Writes a commit with the given tree and parents, as the repository's user.
    pub fn commit_tree_as_user(&self, tree: Oid, parents: &[Oid], message: &str) -> Result<Oid> {
        let tree = tree.to_string();
        let parents: Vec<String> = parents.iter().map(Oid::to_string).collect();
        let mut args = vec!["commit-tree", tree.as_str(), "-m", message];
        for p in &parents {
            args.push("-p");
            args.push(p);
        }
        parse_oid(&self.git_ok(&args)?)
    }

    /// Every worktree, with the branch checked out in it.
    pub fn worktrees(&self) -> Result<Vec<Worktree>> {
        let out = self.git_ok(&["worktree", "list", "--porcelain"])?;
        let mut list = Vec::new();
        let mut current: Option<Worktree> = None;
        for line in out.lines() {
            if let Some(path) = line.strip_prefix("worktree ") {
                list.extend(current.take());
                current = Some(Worktree {
                    path: PathBuf::from(path),
                    branch: None,
                });
            } else if let Some(branch) = line.strip_prefix("branch ")
                && let Some(w) = current.as_mut()
            {
                w.branch = Some(branch.to_string());
            }
        }
        list.extend(current);
        Ok(list)
    }

    /// The unified diff of `path` between two commits.
    pub fn diff_path(&self, from: Oid, to: Oid, path: &str) -> Result<String> {
        self.git_ok(&[
            "diff",
            "--no-color",
            &from.to_string(),
            &to.to_string(),
            "--",
            path,
        ])
    }
}

/// The author of the unit tests' commits.
#[cfg(test)]
pub(crate) fn test_author() -> Author {
    Author {
        name: "t".into(),
        email: "t@example.com".into(),
        seconds: 1,
    }
}

/// A repository in a new temporary directory, made by `git init` outside any configuration, for
/// the unit tests.
#[cfg(test)]
pub(crate) fn test_repo() -> (tempfile::TempDir, Repo) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let init = std::process::Command::new("git")
        .args(["init", "-q"])
        .arg(dir.path())
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .status()
        .expect("git runs");
    assert!(init.success(), "git init failed");
    let repo = Repo::discover(dir.path()).expect("a repository");
    (dir, repo)
}

#[cfg(test)]
mod transaction_tests {
    use super::{Cas, RefEdit, test_repo};

    /// Two refs move together, and when one no longer points where it must move from, neither
    /// moves.
    #[test]
    fn a_ref_transaction_moves_every_ref_or_none() {
        let (_dir, repo) = test_repo();
        let blob = repo.write_blob(b"x").expect("a blob");
        let tree = repo
            .edit_tree(
                None,
                &[super::PathEdit {
                    path: "x".into(),
                    blob: Some(blob),
                }],
            )
            .expect("a tree");
        let first = repo
            .write_commit(tree, &[], &super::test_author(), "first\n")
            .expect("a commit");
        let second = repo
            .write_commit(tree, &[first], &super::test_author(), "second\n")
            .expect("a commit");
        let edit = |name: &str, old, new| RefEdit {
            name: name.into(),
            old,
            new: Some(new),
        };
        let created = [
            edit("refs/coord/a", None, first),
            edit("refs/coord/b", None, first),
        ];
        assert_eq!(repo.update_refs(&created, "t").expect("runs"), Cas::Moved);
        // b is not where this transaction says: a must not move either.
        let stale = [
            edit("refs/coord/a", Some(first), second),
            edit("refs/coord/b", Some(second), second),
        ];
        assert_eq!(repo.update_refs(&stale, "t").expect("runs"), Cas::Lost);
        assert_eq!(repo.ref_tip("refs/coord/a").expect("read"), Some(first));
        let both = [
            edit("refs/coord/a", Some(first), second),
            edit("refs/coord/b", Some(first), second),
        ];
        assert_eq!(repo.update_refs(&both, "t").expect("runs"), Cas::Moved);
        assert_eq!(repo.ref_tip("refs/coord/b").expect("read"), Some(second));
        // A ref that must not exist yet, and does.
        let again = [edit("refs/coord/a", None, first)];
        assert_eq!(repo.update_refs(&again, "t").expect("runs"), Cas::Lost);
        // A deletion and a move together.
        let delete = RefEdit {
            name: "refs/coord/a".into(),
            old: Some(second),
            new: None,
        };
        let with = [delete, edit("refs/coord/b", Some(second), first)];
        assert_eq!(repo.update_refs(&with, "t").expect("runs"), Cas::Moved);
        assert_eq!(repo.ref_tip("refs/coord/a").expect("read"), None);
        assert_eq!(repo.ref_tip("refs/coord/b").expect("read"), Some(first));
    }
}
