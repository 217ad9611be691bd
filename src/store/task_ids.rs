//! Which task a prefix of its id names, in a snapshot of refs/coord/tasks: read from the one
//! shard folder the prefix falls in, without the index. Below every operation that takes a task
//! id from a user (tasks, leases, artifacts, messages).

use crate::error::{Error, Result};
use crate::git::Repo;
use crate::model::id;
use crate::store::{Snapshot, Store, TASKS_REF};

/// The full id of the one task whose id starts with `prefix` (a checked prefix) in `snap`.
pub fn resolve(repo: &Repo, snap: &Snapshot, prefix: &str) -> Result<String> {
    let Some(tree) = snap.tree else {
        return Err(Error::NoSuchTask(prefix.into()));
    };
    let Some(shard) = repo.lookup_path(tree, &format!("tasks/{}", id::shard(prefix)))? else {
        return Err(Error::NoSuchTask(prefix.into()));
    };
    let mut candidates: Vec<String> = repo
        .tree_entries(shard)?
        .into_iter()
        .filter(|e| e.is_blob)
        .filter_map(|e| e.name.strip_suffix(".yaml").map(str::to_string))
        .filter(|id| id.starts_with(prefix))
        .collect();
    match candidates.len() {
        0 => Err(Error::NoSuchTask(prefix.into())),
        1 => Ok(candidates.remove(0)),
        _ if candidates.iter().any(|c| c == prefix) => Ok(prefix.to_string()),
        _ => Err(Error::AmbiguousId {
            prefix: prefix.into(),
            candidates,
        }),
    }
}

/// The full id of the task `input` (a prefix as a user types it) names now.
pub fn resolve_now(repo: &Repo, input: &str) -> Result<String> {
    let prefix = id::parse_prefix(input)?;
    resolve(repo, &Store::new(repo, TASKS_REF).snapshot()?, &prefix)
}
