//! Reading a document with its size checked first. The size comes from the object's header, so a
//! document over its limit (a 200 MB blob pushed by a remote) is refused without being read.

use crate::error::{Error, Result};
use crate::git::{Oid, Repo};
use crate::model::MAX_DOCUMENT_BYTES;
use crate::store::{Snapshot, Store};

/// The bytes of the document at `path` in `snap`, if there is one; an error naming it when it is
/// over [`MAX_DOCUMENT_BYTES`].
pub fn read(store: &Store, snap: &Snapshot, path: &str) -> Result<Option<Vec<u8>>> {
    read_within(store, snap, path, MAX_DOCUMENT_BYTES)
}

/// As [`read`], for content with a limit of its own.
pub fn read_within(
    store: &Store,
    snap: &Snapshot,
    path: &str,
    limit: u64,
) -> Result<Option<Vec<u8>>> {
    let Some(tree) = snap.tree else {
        return Ok(None);
    };
    match store.repo.lookup_path(tree, path)? {
        Some(oid) => read_blob(store.repo, oid, limit, store.refname, path).map(Some),
        None => Ok(None),
    }
}

/// Whether `path` exists in `snap` (its bytes are not read).
pub fn exists(store: &Store, snap: &Snapshot, path: &str) -> Result<bool> {
    Ok(match snap.tree {
        Some(tree) => store.repo.lookup_path(tree, path)?.is_some(),
        None => false,
    })
}

/// The bytes of blob `oid`, known as `refname:path`, when it is at most `limit` bytes.
pub fn read_blob(repo: &Repo, oid: Oid, limit: u64, refname: &str, path: &str) -> Result<Vec<u8>> {
    let size = repo.object_size(oid)?;
    if size > limit {
        return Err(Error::Malformed {
            refname: refname.into(),
            path: path.into(),
            why: format!("{size} bytes, over the {limit}-byte limit"),
        });
    }
    repo.read_blob(oid)
}
