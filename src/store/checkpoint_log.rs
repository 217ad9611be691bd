//! The checkpoints recorded in refs/coord/checkpoints, read: below the flows that run them
//! (ops/checkpoints.rs) and those that count them (the breaker, the history).

use crate::error::{Error, Result};
use crate::git::Repo;
use crate::model::MAX_DOCUMENT_BYTES;
use crate::model::checkpoint::Checkpoint;
use crate::store::{CHECKPOINTS_REF, Store};

/// Every checkpoint, oldest first, and the documents that do not load.
pub fn list(repo: &Repo) -> Result<(Vec<Checkpoint>, Vec<String>)> {
    let snap = Store::new(repo, CHECKPOINTS_REF).snapshot()?;
    let mut out = Vec::new();
    let mut problems = Vec::new();
    let Some(tree) = snap.tree else {
        return Ok((out, problems));
    };
    let Some(dir) = repo.lookup_path(tree, "checkpoints")? else {
        return Ok((out, problems));
    };
    for e in repo.tree_entries(dir)? {
        let path = format!("checkpoints/{}", e.name.escape_debug());
        if let Some(odd) = e.odd {
            problems.push(format!("{CHECKPOINTS_REF}:{path}: skipped: {odd}"));
            continue;
        }
        if !e.is_blob {
            continue;
        }
        let bytes =
            crate::store::read_blob(repo, e.oid, MAX_DOCUMENT_BYTES, CHECKPOINTS_REF, &path);
        match bytes.and_then(|b| Checkpoint::from_yaml(&b, CHECKPOINTS_REF, &path)) {
            Ok(c) => out.push(c),
            Err(err) => problems.push(err.to_string()),
        }
    }
    out.sort_by_key(|c| c.seq);
    Ok((out, problems))
}

/// Checkpoint `seq`.
pub fn show(repo: &Repo, seq: u64) -> Result<Checkpoint> {
    let store = Store::new(repo, CHECKPOINTS_REF);
    let path = Checkpoint::path(seq);
    let bytes = store.read(&store.snapshot()?, &path)?.ok_or_else(|| {
        Error::invalid(
            "checkpoint",
            seq.to_string(),
            "no such checkpoint; `git coord checkpoint list` shows them",
        )
    })?;
    Checkpoint::from_yaml(&bytes, CHECKPOINTS_REF, &path)
}
