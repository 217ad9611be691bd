//! Commits and trees kept once read or written; loose objects written stored, and loose blobs
//! read in one go.
//!
//! gix reads an object afresh each time it is asked for it, and writes each loose object with a
//! compressor of its own (a few hundred KB, zeroed and freed again), after looking for it in
//! every pack, where a miss rescans the pack directory. A git-coord write reads the tip's commit
//! and trees several times (its snapshot, the claim cache's diff, lookups, the tree edit, the
//! check under the lock) and writes up to five objects that cannot exist yet; the MCP server
//! reads the same trees on every call. So this process keeps the commits and trees it read or
//! wrote (an object never changes under its id), and writes loose objects itself, stored in zlib
//! streams without compression (as git does with `core.looseCompression=0`; the checksum is
//! zlib-rs's): a tree is mostly object ids, which do not compress, and a document is a few
//! hundred bytes (docs/PERFORMANCE.md, "Loose objects written stored", has the figures). `git gc`
//! compresses them all into its packs. A loose blob is read with one open and one inflate, its
//! size checked against the caller's limit on the way.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::Write;
use std::rc::Rc;

use gix::objs::{Kind, WriteTo};

use super::ahead::{Made, temporary_in};
use super::{Oid, Repo, git_err};
use crate::error::{Error, Result};

/// At most this many bytes of commits and trees are kept; past it, all are let go. A write at
/// 100,000 tasks reads about 50 KB of trees; a walk of every shard (an index build) reads 5 MB,
/// which would only add to the peak memory of a cold read.
const KEEP_BYTES: usize = 1 << 20;

/// An object's kind and bytes.
type Object = (Kind, Rc<[u8]>);

/// What one [`Repo`] keeps of the objects it read and wrote.
pub(super) struct Kept {
    /// Off for a repository handle that reads each object once ([`Repo::for_bulk_reads`]).
    on: bool,
    objects: RefCell<HashMap<Oid, Object>>,
    bytes: std::cell::Cell<usize>,
}

impl Kept {
    pub(super) fn new(on: bool) -> Kept {
        Kept {
            on,
            objects: RefCell::new(HashMap::new()),
            bytes: std::cell::Cell::new(0),
        }
    }

    fn get(&self, oid: &gix::oid) -> Option<Object> {
        self.objects.borrow().get(oid).cloned()
    }

    /// Keeps `data` if it is a commit or a tree.
    fn put(&self, oid: Oid, kind: Kind, data: &Rc<[u8]>) {
        if !self.on || !matches!(kind, Kind::Tree | Kind::Commit) || data.len() > KEEP_BYTES {
            return;
        }
        let mut objects = self.objects.borrow_mut();
        if self.bytes.get() + data.len() > KEEP_BYTES {
            objects.clear();
            self.bytes.set(0);
        }
        if objects.insert(oid, (kind, data.clone())).is_none() {
            self.bytes.set(self.bytes.get() + data.len());
        }
    }

    /// Keeps a copy of `data` if it is a commit or a tree.
    fn put_copy(&self, oid: Oid, kind: Kind, data: &[u8]) {
        if self.on && matches!(kind, Kind::Tree | Kind::Commit) {
            self.put(oid, kind, &Rc::from(data));
        }
    }
}

impl Repo {
    /// The bytes of object `oid`, which must be a `kind`.
    pub(super) fn object_bytes(&self, oid: Oid, kind: Kind) -> Result<Rc<[u8]>> {
        let (found, data) = match self.kept.get(&oid) {
            Some(hit) => hit,
            None => {
                let object = looked_up_twice(oid, || self.inner.try_find_object(oid))?;
                let data: Rc<[u8]> = Rc::from(&object.data[..]);
                self.kept.put(oid, object.kind, &data);
                (object.kind, data)
            }
        };
        if found != kind {
            return Err(Error::Git(format!(
                "object {oid} is a {found}, where a {kind} was expected"
            )));
        }
        Ok(data)
    }

    /// Where object `oid` is (or would be) stored loose: `objects/xx/<the other 38 digits>`.
    pub(super) fn loose_path(&self, oid: Oid) -> std::path::PathBuf {
        let hex = oid.to_string();
        let objects = self.inner.objects.store_ref().path();
        objects.join(&hex[..2]).join(&hex[2..])
    }

    /// The bytes of blob `oid` if it is at most `limit` bytes, else (`Err`) its size: for a loose
    /// blob, from one read of its file; otherwise the header first, then the blob. A loose file
    /// that is not plainly such a blob (damaged, another kind, larger than a blob within the
    /// limit can be) is left to gix, which names what is wrong with it.
    pub fn read_blob_within(
        &self,
        oid: Oid,
        limit: u64,
    ) -> Result<std::result::Result<Vec<u8>, u64>> {
        if let Some(read) = self.loose_blob_within(oid, limit) {
            return Ok(read);
        }
        self.read_packed_blob_within(oid, limit)
    }

    /// [`Repo::read_blob_within`] for a blob its pack index lists ([`Repo::pack_order`]): no
    /// loose file is looked for first (a cold index build would look for 100,000 in vain). gix
    /// still finds the blob wherever it is.
    pub fn read_packed_blob_within(
        &self,
        oid: Oid,
        limit: u64,
    ) -> Result<std::result::Result<Vec<u8>, u64>> {
        let size = self.object_size(oid)?;
        if size > limit {
            return Ok(Err(size));
        }
        self.read_blob(oid).map(Ok)
    }

    fn loose_blob_within(&self, oid: Oid, limit: u64) -> Option<std::result::Result<Vec<u8>, u64>> {
        use gix::zlib::{Decompress, FlushDecompress, Status};
        use std::io::Read;
        let mut file = std::fs::File::open(self.loose_path(oid)).ok()?;
        // Stored, a blob of `limit` bytes takes 5 bytes more per 64 KB block; compressed, less.
        let most = limit + limit / 8192 + 64;
        let len = file.metadata().ok()?.len();
        if len > most {
            return None;
        }
        let mut stream = Vec::with_capacity(len as usize);
        file.read_to_end(&mut stream).ok()?;
        let mut inflate = Decompress::new();
        let mut head = [0u8; 32];
        inflate
            .decompress(&stream, &mut head, FlushDecompress::None)
            .ok()?;
        let head = &head[..inflate.total_out() as usize];
        let nul = head.iter().position(|&b| b == 0)?;
        let size: u64 = std::str::from_utf8(head[..nul].strip_prefix(b"blob ")?)
            .ok()?
            .parse()
            .ok()?;
        if size > limit {
            return Some(Err(size));
        }
        let mut out = vec![0u8; nul + 1 + size as usize];
        out[..head.len()].copy_from_slice(head);
        let (read, wrote) = (inflate.total_in() as usize, head.len());
        let status = inflate
            .decompress(&stream[read..], &mut out[wrote..], FlushDecompress::Finish)
            .ok()?;
        if status != Status::StreamEnd || inflate.total_out() as usize != out.len() {
            return None;
        }
        out.drain(..=nul);
        Some(Ok(out))
    }

    /// Writes `object` as a loose object.
    pub(super) fn write_object(&self, object: &impl WriteTo) -> Result<Oid> {
        let mut data = Vec::with_capacity(object.size() as usize);
        object
            .write_to(&mut data)
            .map_err(|e| Error::Git(format!("cannot encode a {}: {e}", object.kind())))?;
        self.write_object_bytes(object.kind(), &data)
    }

    /// Writes `data` as a loose object of `kind`, as git does: its zlib stream (stored, see the
    /// module's words) goes into a temporary file (`objects/xx/tmp_obj_*`, which `git prune`
    /// clears if a killed process leaves one; made ahead when there is one, else beside where the
    /// object belongs), then is renamed into place. An
    /// object already there loose is not written again; one in a pack is, which is harmless
    /// (`git prune-packed` drops it).
    pub(super) fn write_object_bytes(&self, kind: Kind, data: &[u8]) -> Result<Oid> {
        let oid = gix::objs::compute_hash(self.inner.object_hash(), kind, data).map_err(git_err)?;
        let path = self.loose_path(oid);
        if std::fs::symlink_metadata(&path).is_ok() {
            self.kept.put_copy(oid, kind, data);
            return Ok(oid);
        }
        let mut input = format!("{kind} {}\0", data.len()).into_bytes();
        input.extend_from_slice(data);
        let stream = stored(&input);
        let cannot = |e: std::io::Error| Error::Git(format!("cannot write object {oid}: {e}"));
        let dir = path.parent().expect("objects/xx/ holds every loose object");
        let spare = self.object_file_made_ahead();
        // A file made ahead that cannot be used (removed meanwhile by `git prune
        // --expire=now`, say) gives way to a new one.
        if spare.is_none_or(|spare| fill_and_rename(spare, &stream, &path).is_err()) {
            fill_and_rename(
                temporary_in(dir, Made::Object).map_err(cannot)?,
                &stream,
                &path,
            )
            .map_err(cannot)?;
        }
        self.unpacked.note(oid);
        self.kept.put_copy(oid, kind, data);
        Ok(oid)
    }
}

/// Writes `bytes` into the temporary file `tmp` and renames it to `path`, making `path`'s
/// directory when it is missing (a file made ahead sits in another one). The temporary file is
/// removed when that fails.
fn fill_and_rename(
    (tmp, mut file): (std::path::PathBuf, std::fs::File),
    bytes: &[u8],
    path: &std::path::Path,
) -> std::io::Result<()> {
    let written = file.write_all(bytes).and_then(|()| {
        drop(file);
        // `git prune-packed` (run by `git gc --auto` in another process) removes a fan-out
        // directory it emptied, maybe between the two calls: make it again, a few times.
        let mut tries = 0;
        loop {
            match std::fs::rename(&tmp, path) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && tmp.exists() && tries < 8 => {
                    tries += 1;
                    std::fs::create_dir_all(path.parent().expect("objects/xx/ holds it"))?;
                }
                other => return other,
            }
        }
    });
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// `input` as a zlib stream of stored (uncompressed) deflate blocks (RFC 1950 and 1951): the
/// header of a stream at the fastest level, blocks of at most 65,535 bytes each with its length
/// and that length's complement, the last one marked, then the Adler-32 of `input`. `input` is
/// never empty: it begins with the object's header.
fn stored(input: &[u8]) -> Vec<u8> {
    const BLOCK: usize = 65_535;
    let blocks = input.len().div_ceil(BLOCK);
    let mut out = Vec::with_capacity(2 + input.len() + blocks * 5 + 4);
    out.extend_from_slice(&[0x78, 0x01]);
    for (n, block) in input.chunks(BLOCK).enumerate() {
        out.push(u8::from(n + 1 == blocks));
        let len = block.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(block);
    }
    out.extend_from_slice(&zlib_rs::adler32::adler32(1, input).to_be_bytes());
    out
}

/// Finds objects for gix's tree editor through what the [`Repo`] keeps.
pub(super) struct KeptFind<'r>(pub &'r Repo);

impl gix::objs::Find for KeptFind<'_> {
    fn try_find<'a>(
        &self,
        id: &gix::oid,
        buffer: &'a mut Vec<u8>,
    ) -> std::result::Result<Option<gix::objs::Data<'a>>, gix::Error> {
        let repo = self.0;
        if let Some((kind, data)) = repo.kept.get(id) {
            buffer.clear();
            buffer.extend_from_slice(&data);
            return Ok(Some(gix::objs::Data {
                kind,
                object_hash: repo.inner.object_hash(),
                data: buffer,
            }));
        }
        let mut kind = None;
        // Looked for once more after a miss: see [`looked_up_twice`].
        for _ in 0..2 {
            kind = gix::objs::Find::try_find(&repo.inner.objects, id, buffer)?.map(|d| d.kind);
            if kind.is_some() {
                break;
            }
        }
        let found = kind.map(|kind| gix::objs::Data {
            kind,
            object_hash: repo.inner.object_hash(),
            data: buffer,
        });
        if let Some(data) = &found {
            repo.kept.put_copy(id.to_owned(), data.kind, data.data);
        }
        Ok(found)
    }
}

/// `find` (a gix lookup of `oid`), once more if it misses, then the object or a "not found"
/// error. gix looks in the packs it knows, then for a loose file, then in packs new on disk;
/// when `git prune-packed` (run by `git gc --auto` in another process) deletes the loose file
/// between gix's check for it and its read of it, the object (already in a new pack) is
/// reported missing. git looks once more in that case too (`odb.c`), and so does this.
pub(super) fn looked_up_twice<T, E: std::fmt::Display>(
    oid: Oid,
    mut find: impl FnMut() -> std::result::Result<Option<T>, E>,
) -> Result<T> {
    match find().map_err(git_err)? {
        Some(found) => Ok(found),
        None => find()
            .map_err(git_err)?
            .ok_or_else(|| Error::Git(format!("object {oid} could not be found"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::git::EntryEdit;

    fn git(dir: &std::path::Path, args: &[&str], input: Option<&[u8]>) -> String {
        let mut child = std::process::Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("git runs");
        if let Some(input) = input {
            child
                .stdin
                .take()
                .expect("a stdin")
                .write_all(input)
                .expect("git reads");
        }
        let out = child.wait_with_output().expect("git ends");
        assert!(out.status.success(), "git {args:?} failed");
        String::from_utf8(out.stdout).expect("text")
    }

    fn repo() -> (tempfile::TempDir, Repo) {
        crate::git::test_repo()
    }

    /// A tree of blobs, by name (and content).
    fn tree_with(repo: &Repo, files: &[(&str, &str)]) -> Oid {
        let edits: Vec<_> = files
            .iter()
            .map(|(name, text)| crate::git::PathEdit {
                path: name.to_string(),
                blob: Some(repo.write_blob(text.as_bytes()).expect("written")),
            })
            .collect();
        repo.edit_tree(None, &edits).expect("written")
    }

    #[test]
    fn splicing_entries_writes_the_same_trees_as_the_editor() {
        let (_dir, repo) = repo();
        // Names around `/` in git's order (`-` and `.` sort before a tree's `/`, `0` after), at
        // several depths, some new, one both a blob and a tree's name (so not spliced).
        let paths = [
            "a",
            "a-b",
            "a.b",
            "a0",
            "d/x",
            "d/y.yaml",
            "d/z/q",
            "d.x",
            "d0",
            "d-y/k",
            "e/f/g/h",
            "new/one",
            "x/a",
            "x",
            "tasks/3f/3f00.yaml",
            "tasks/3f/3e00.yaml",
        ];
        let mut base = tree_with(
            &repo,
            &[("a0", "0"), ("d/x", "0"), ("d.x", "0"), ("q", "0")],
        );
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut below = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let (mut spliced, mut rounds) = (0, 0);
        for round in 0..300 {
            let edits: Vec<EntryEdit> = (0..1 + below(4))
                .map(|n| {
                    let path = paths[below(paths.len() as u64) as usize].to_string();
                    let blob = repo
                        .write_blob(format!("{round} {n}").as_bytes())
                        .expect("written");
                    EntryEdit {
                        path,
                        entry: Some((blob, false)),
                    }
                })
                .collect();
            let by_editor = repo.edit_entries_as_is(base, &edits).ok();
            match repo.splice_entries(base, &edits).expect("read") {
                Some(tree) => {
                    assert_eq!(Some(tree), by_editor, "{edits:?}");
                    spliced += 1;
                }
                // Only a blob where a tree is (or the other way round) stops a single put.
                None => assert!(
                    edits.len() > 1 || ["x", "x/a"].contains(&edits[0].path.as_str()),
                    "{edits:?} not spliced"
                ),
            }
            if let Some(tree) = by_editor {
                base = tree;
            }
            rounds += 1;
        }
        assert!(
            spliced > rounds / 3,
            "only {spliced} of {rounds} edits were spliced"
        );
        // A tree put as a tree, and an edit on the empty tree.
        let sub = tree_with(&repo, &[("k", "1")]);
        let edits = [EntryEdit {
            path: "d/z".into(),
            entry: Some((sub, true)),
        }];
        let by_editor = repo.edit_entries_as_is(base, &edits).expect("written");
        assert_eq!(
            repo.splice_entries(base, &edits).expect("read"),
            Some(by_editor)
        );
        let empty = repo.inner.empty_tree().id;
        let by_editor = repo.edit_entries_as_is(empty, &edits).expect("written");
        assert_eq!(
            repo.splice_entries(empty, &edits).expect("read"),
            Some(by_editor)
        );
        // Removals and nested paths are left to the editor.
        let removal = [EntryEdit {
            path: "a0".into(),
            entry: None,
        }];
        assert_eq!(repo.splice_entries(base, &removal).expect("read"), None);
    }

    #[test]
    fn a_tree_diff_names_only_what_changed_came_or_went_and_a_damaged_tree_is_an_error() {
        let (dir, repo) = repo();
        let old = tree_with(&repo, &[("a", "1"), ("g", "1"), ("h", "1"), ("z", "1")]);
        let new = tree_with(&repo, &[("a", "1"), ("g", "2"), ("i", "1"), ("z", "1")]);
        let names = |old, new| -> Vec<_> {
            let diff = repo.tree_diff(old, new).expect("read");
            diff.into_iter()
                .map(|(x, y)| (x.map(|e| e.name), y.map(|e| e.name)))
                .collect()
        };
        let name = |n: &str| Some(n.to_string());
        assert_eq!(
            names(old, new),
            [(name("g"), name("g")), (name("h"), None), (None, name("i"))]
        );
        assert!(repo.tree_diff(old, old).expect("read").is_empty());
        // In git's order a tree `a` comes after a blob `a.b` (as if it were `a/`): the tree
        // changed and the blob went, nothing came.
        let old_a = tree_with(&repo, &[("a.b", "1"), ("a/x", "1")]);
        let new_a = tree_with(&repo, &[("a/x", "2")]);
        assert_eq!(
            names(old_a, new_a),
            [(name("a.b"), None), (name("a"), name("a"))]
        );
        assert!(repo.lookup_path(new, "i").expect("read").is_some());
        assert!(repo.lookup_path(new, "h").expect("read").is_none());

        // An entry cut short: its id is 5 bytes, not 20.
        let damaged = git(
            dir.path(),
            &["hash-object", "-t", "tree", "--literally", "-w", "--stdin"],
            Some(b"100644 a\0short"),
        );
        let damaged = Oid::from_hex(damaged.trim().as_bytes()).expect("an id");
        let err = repo.tree_diff(old, damaged).expect_err("a damaged tree");
        assert!(err.to_string().contains("not whole"), "{err}");
        assert!(repo.lookup_path(damaged, "a").is_err());
    }

    /// A tree holding `blob` as `f`.
    fn tree_of(repo: &Repo, blob: Oid) -> Oid {
        let edit = crate::git::PathEdit {
            path: "f".into(),
            blob: Some(blob),
        };
        repo.edit_tree(None, &[edit]).expect("written")
    }

    #[test]
    fn objects_are_written_as_git_writes_them() {
        let (dir, repo) = repo();
        let dir = dir.path();
        let small = repo.write_blob(b"title: one\n").expect("written");
        assert_eq!(
            git(dir, &["hash-object", "--stdin"], Some(b"title: one\n")).trim(),
            small.to_string()
        );
        // More than one stored block.
        let mut noise = Vec::with_capacity(1 << 20);
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        while noise.len() < 1 << 20 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            noise.extend_from_slice(&x.to_le_bytes());
        }
        let big = repo.write_blob(&noise).expect("written");
        let tree = repo
            .edit_tree(
                None,
                &[
                    crate::git::PathEdit {
                        path: "a/one.yaml".into(),
                        blob: Some(small),
                    },
                    crate::git::PathEdit {
                        path: "noise".into(),
                        blob: Some(big),
                    },
                ],
            )
            .expect("written");
        let author = crate::git::test_author();
        let commit = repo
            .write_commit(tree, &[], &author, "one\n")
            .expect("written");
        git(
            dir,
            &["update-ref", "refs/coord/test", &commit.to_string()],
            None,
        );
        git(dir, &["fsck", "--strict", "--no-dangling"], None);
        assert_eq!(
            git(
                dir,
                &["cat-file", "blob", &format!("{commit}:a/one.yaml")],
                None
            ),
            "title: one\n"
        );
        assert_eq!(
            git(dir, &["rev-parse", &format!("{commit}:noise")], None).trim(),
            big.to_string()
        );
        // Written again: the same id, and no temporary file left anywhere.
        assert_eq!(repo.write_blob(b"title: one\n").expect("written"), small);
        let leftovers = git(dir, &["count-objects", "-v"], None);
        assert!(leftovers.contains("garbage: 0"), "{leftovers}");
        assert_eq!(repo.commit_tree(commit).expect("a commit"), tree);
    }

    /// The stored stream is zlib's own: byte for byte what gix's writer makes at level 0 for an
    /// input it passes on in one piece (a document, a tree), and read back whole (its Adler-32 checked) by gix's
    /// reader at every size around the block boundary.
    #[test]
    fn stored_streams_are_what_zlib_writes_and_reads() {
        use gix::zlib::{Decompress, FlushDecompress, Status};
        use std::io::Write;
        let mut x: u32 = 0x9e37_79b9;
        let bytes: Vec<u8> = (0..200_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                (x % 7) as u8 + b'a'
            })
            .collect();
        for len in [
            1, 2, 300, 5551, 5552, 5553, 20_000, 40_000, 65_534, 65_535, 65_536, 131_071, 200_000,
        ] {
            let input = &bytes[..len];
            let stream = super::stored(input);
            if len <= 20_000 {
                let mut level0 = gix::zlib::stream::deflate::Write::new(
                    Vec::new(),
                    gix::zlib::Compression::new(0).expect("a level"),
                );
                level0.write_all(input).expect("in memory");
                level0.flush().expect("in memory");
                assert_eq!(stream, level0.into_inner(), "{len} bytes");
            }
            let mut out = vec![0; len + 1];
            let mut inflate = Decompress::new();
            let status = inflate
                .decompress(&stream, &mut out, FlushDecompress::Finish)
                .expect("a valid stream");
            assert_eq!(status, Status::StreamEnd, "{len} bytes");
            assert_eq!(inflate.total_out(), len as u64);
            assert_eq!(&out[..len], input, "{len} bytes");
        }
    }

    #[test]
    fn a_tree_larger_than_one_stored_block_is_read_back_whole() {
        let (dir, repo) = repo();
        let blob = repo.write_blob(b"x\n").expect("written");
        let edits: Vec<_> = (0..3000)
            .map(|i| crate::git::PathEdit {
                path: format!("f{i:04}.yaml"),
                blob: Some(blob),
            })
            .collect();
        let tree = repo.edit_tree(None, &edits).expect("written");
        let bytes = repo.object_bytes(tree, Kind::Tree).expect("kept");
        assert!(
            bytes.len() > 65_535,
            "only {} bytes: it fits one block",
            bytes.len()
        );
        let listed = git(dir.path(), &["ls-tree", &tree.to_string()], None);
        assert_eq!(listed.lines().count(), 3000);
        assert!(
            listed
                .lines()
                .last()
                .expect("a line")
                .ends_with("\tf2999.yaml")
        );
        git(
            dir.path(),
            &["update-ref", "refs/coord/t", &tree.to_string()],
            None,
        );
        git(dir.path(), &["fsck", "--strict", "--no-dangling"], None);
        // And the same bytes when read afresh, not from what this process kept.
        let fresh = Repo::discover(dir.path()).expect("a repository");
        assert_eq!(fresh.tree_entries(tree).expect("a tree").len(), 3000);
    }

    #[test]
    fn the_pack_order_puts_packed_objects_first_and_says_how_many_they_are() {
        let (dir, repo) = repo();
        let blobs: Vec<Oid> = (0..5)
            .map(|n| repo.write_blob(format!("blob {n}\n").as_bytes()))
            .collect::<Result<_>>()
            .expect("written");
        // Blobs 1, 3 and 4 go into a pack (and their loose files away); 0 and 2 stay loose.
        let packed = [blobs[1], blobs[3], blobs[4]];
        let list: String = packed.iter().map(|oid| format!("{oid}\n")).collect();
        git(
            dir.path(),
            &["pack-objects", ".git/objects/pack/pack"],
            Some(list.as_bytes()),
        );
        for oid in packed {
            std::fs::remove_file(repo.loose_path(oid)).expect("the loose copy removed");
        }
        let repo = Repo::open(&repo.git_dir()).expect("opened again, seeing the pack");
        let order = repo.pack_order(&blobs);
        assert_eq!(order.packed, 3);
        let mut first: Vec<usize> = order.order[..3].to_vec();
        first.sort_unstable();
        assert_eq!(first, [1, 3, 4]);
        assert_eq!(
            order.order[3..],
            [0, 2],
            "loose ones last, in their given order"
        );
        // Packed or not, a blob read as packed is the blob (gix finds a loose one too).
        for (n, &oid) in blobs.iter().enumerate() {
            let bytes = repo.read_packed_blob_within(oid, 100).expect("read");
            assert_eq!(bytes, Ok(format!("blob {n}\n").into_bytes()));
        }
        assert_eq!(
            repo.read_packed_blob_within(blobs[1], 3).expect("a size"),
            Err(7)
        );
    }

    #[test]
    fn a_loose_blob_is_read_in_one_go_within_its_limit() {
        let (dir, repo) = repo();
        let small = repo.write_blob(b"id: x\n").expect("written");
        let big_bytes = vec![b'y'; 200_000];
        let big = repo.write_blob(&big_bytes).expect("written");
        // From the loose file itself, small (the header and all in the first bytes) or not.
        let read = |oid, limit| {
            repo.loose_blob_within(oid, limit)
                .expect("read from the file")
        };
        assert_eq!(read(small, 100), Ok(b"id: x\n".to_vec()));
        assert_eq!(read(big, 200_000), Ok(big_bytes.clone()));
        assert_eq!(read(big, 199_999), Err(200_000));
        assert_eq!(
            repo.read_blob_within(big, 10).expect("a size"),
            Err(200_000)
        );
        // Written by git, compressed: the same.
        let by_git = git(
            dir.path(),
            &["hash-object", "-w", "--stdin"],
            Some(b"from git\n"),
        );
        let by_git = Oid::from_hex(by_git.trim().as_bytes()).expect("an id");
        assert_eq!(read(by_git, 100), Ok(b"from git\n".to_vec()));
        // Not a blob, or damaged: gix says what is wrong.
        let tree = tree_of(&repo, small);
        assert!(repo.loose_blob_within(tree, 100).is_none());
        assert!(repo.read_blob_within(tree, 100).is_err());
        let path = repo.loose_path(small);
        let mut stream = std::fs::read(&path).expect("loose");
        let last = stream.len() - 1;
        stream[last] ^= 0xff; // the checksum no longer fits
        std::fs::remove_file(&path).expect("removed");
        std::fs::write(&path, &stream).expect("written");
        assert!(repo.loose_blob_within(small, 100).is_none());
        assert!(repo.read_blob_within(small, 100).is_err());
    }

    #[test]
    fn trees_and_commits_are_kept_and_written_stored() {
        let (dir, repo) = repo();
        let blob = repo.write_blob(b"text\n").expect("written");
        let tree = tree_of(&repo, blob);
        // Stored: the loose file holds the tree's bytes as they are.
        let bytes = repo.object_bytes(tree, Kind::Tree).expect("kept");
        let file = std::fs::read(repo.loose_path(tree)).expect("loose");
        assert!(file.windows(bytes.len()).any(|w| w == &bytes[..]));
        // Kept: still readable by this process once the loose file is gone, not by a new one.
        std::fs::remove_file(repo.loose_path(tree)).expect("removed");
        assert_eq!(repo.tree_entries(tree).expect("kept").len(), 1);
        let fresh = Repo::discover(dir.path()).expect("a repository");
        assert!(fresh.tree_entries(tree).is_err());
        // A blob is not kept.
        std::fs::remove_file(repo.loose_path(blob)).expect("removed");
        assert!(repo.read_blob(blob).is_err());
    }

    #[test]
    fn an_object_of_another_kind_is_refused_whether_kept_or_not() {
        let (dir, repo) = repo();
        let blob = repo.write_blob(b"text\n").expect("written");
        let tree = tree_of(&repo, blob);
        assert!(repo.commit_tree(tree).is_err(), "a kept tree is no commit");
        assert!(repo.tree_entries(blob).is_err(), "a blob is no tree");
        let fresh = Repo::discover(dir.path()).expect("a repository");
        assert!(fresh.commit_tree(tree).is_err(), "a read tree is no commit");
        assert_eq!(fresh.tree_entries(tree).expect("a tree").len(), 1);
    }

    #[test]
    fn own_refs_read_the_same_loose_packed_or_through_a_tag() {
        let (dir, repo) = repo();
        let dir = dir.path();
        let author = crate::git::test_author();
        let tree = repo.edit_tree(None, &[]).expect("written");
        let commit = repo
            .write_commit(tree, &[], &author, "one\n")
            .expect("written");
        let hex = commit.to_string();
        assert_eq!(repo.ref_tip("refs/coord/tasks").expect("read"), None);
        git(dir, &["update-ref", "refs/coord/tasks", &hex], None);
        assert_eq!(
            repo.ref_tip("refs/coord/tasks").expect("read"),
            Some(commit)
        );
        git(dir, &["pack-refs", "--all"], None);
        assert!(!dir.join(".git/refs/coord/tasks").exists());
        assert_eq!(
            repo.ref_tip("refs/coord/tasks").expect("read"),
            Some(commit)
        );
        // A ref naming a tag is peeled to its commit, as before.
        git(dir, &["tag", "-a", "-m", "t", "v1", &hex], None);
        let tag = git(dir, &["rev-parse", "v1"], None);
        git(dir, &["update-ref", "refs/coord/inbox", tag.trim()], None);
        assert_eq!(
            repo.ref_tip("refs/coord/inbox").expect("read"),
            Some(commit)
        );
    }

    #[test]
    fn a_miss_is_looked_up_once_more_and_then_named() {
        let oid = Oid::null(gix::hash::Kind::Sha1);
        let mut tries = 0;
        let found = looked_up_twice(oid, || {
            tries += 1;
            Ok::<_, String>((tries == 2).then_some(7))
        });
        assert_eq!((found.expect("found"), tries), (7, 2));
        let missing = looked_up_twice(oid, || Ok::<Option<u8>, String>(None));
        let Err(Error::Git(e)) = missing else {
            panic!("a miss twice is an error")
        };
        assert!(e.contains("could not be found"), "{e}");
    }
}
