//! Writes confirmed at the remote (online claims and leases): a wrapper around a store write that
//! reports success only once the remote accepted the new commit.

use crate::error::Result;
use crate::git::Cas;
use crate::remote::Courier;
use crate::remote::sync::merge_into_local;
use crate::remote::transport::{MAX_TRIES, Pushed, Remote, fetch, push};
use crate::store::{Actor, Change, Snapshot, Store, backoff};

/// A write confirmed at `remote`: fetch and merge the ref, apply the operation on the result,
/// push the new commit, and only once the remote accepted it, move the local ref. A rejected
/// push means someone else wrote first: start over, re-checking the operation's preconditions.
pub fn confirmed_update<T>(
    store: &Store,
    remote: &Remote,
    courier: &dyn Courier,
    actor: &Actor,
    mut op: impl FnMut(&Snapshot) -> Result<(Change, T)>,
) -> Result<T> {
    let repo = store.repo;
    let refname = store.refname;
    for attempt in 1..=MAX_TRIES * 4 {
        fetch(repo, remote, &[refname])?;
        let staged = repo.ref_tip(&remote.staged(refname))?;
        let (_, found, _) = merge_into_local(repo, refname, staged, &remote.name)?;
        courier.deliver(&found)?;
        let mut snap = store.snapshot()?;
        if snap.tip.is_none() {
            store.ensure_root()?;
            snap = store.snapshot()?;
            if snap.tip.is_none() {
                backoff(attempt); // another writer holds the ref's lock: start over
                continue;
            }
        }
        let (change, value) = op(&snap)?;
        let unpushed = snap.tip.is_some() && snap.tip != staged;
        if change.docs.is_empty() && !unpushed {
            return Ok(value);
        }
        let new = if change.docs.is_empty() {
            snap.tip.expect("a tip")
        } else {
            store.write_commit(&snap, actor, &change)?
        };
        match push(repo, &remote.name, &[(refname.to_string(), new)])? {
            Pushed::Accepted => {
                tracing::debug!(refname, attempts = attempt, "confirmed at {}", remote.name);
                // The write holds from here on: it is at the remote. Bringing it home is
                // best-effort; whatever fails here, the next fetch or sync brings it.
                if let Err(e) = bring_home(store, remote, courier, &snap, new, &change.subject) {
                    tracing::warn!(
                        "{refname} was written at {}; updating this clone failed ({e}); the next sync brings it",
                        remote.name
                    );
                }
                return Ok(value);
            }
            Pushed::Rejected => backoff(attempt),
        }
    }
    Err(crate::remote::transport::gave_up(
        &remote.name,
        format!("{refname} at {}", remote.name),
        MAX_TRIES * 4,
    ))
}

/// Moves the local ref (and the staging ref) to a commit the remote accepted: a fast-forward of
/// the tip it was built on, else a merge when another local writer moved the ref meanwhile.
fn bring_home(
    store: &Store,
    remote: &Remote,
    courier: &dyn Courier,
    snap: &Snapshot,
    new: crate::git::Oid,
    subject: &str,
) -> Result<()> {
    let (repo, refname) = (store.repo, store.refname);
    repo.set_ref(&remote.staged(refname), new)?;
    if repo.cas_ref(refname, snap.tip, new, subject)? == Cas::Lost {
        let (_, found, _) = merge_into_local(repo, refname, Some(new), &remote.name)?;
        courier.deliver(&found)?;
    }
    Ok(())
}
