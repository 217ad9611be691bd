//! Writes confirmed at the remote (online claims and leases): a wrapper around a store write that
//! reports success only once the remote accepted the new commit.

use std::time::Duration;

use crate::error::Result;
use crate::git::{Cas, Oid};
use crate::remote::Courier;
use crate::remote::sync::merge_into_local;
use crate::remote::transport::{MAX_TRIES, Pushed, Remote, fetch, push};
use crate::store::{Actor, Change, Snapshot, Store, backoff};

/// A write confirmed at `remote`, in one round trip when nobody races: the operation runs on the
/// local ref merged with the remote's tip as last fetched (the staging ref), and its commit is
/// pushed fast-forward only, so the remote takes it only if it holds nothing this snapshot lacks.
/// Only then does the local ref move. A rejected push means someone else wrote first: fetch,
/// merge, run the operation again (re-checking its preconditions), push again. With no staging
/// ref yet, it fetches first. An operation that fails, or has nothing to do, on a snapshot not
/// fetched in this call runs again on a fetched one before that answer is believed.
pub fn confirmed_update<T>(
    store: &Store,
    remote: &Remote,
    courier: &dyn Courier,
    actor: &Actor,
    mut op: impl FnMut(&Snapshot) -> Result<(Change, T)>,
) -> Result<T> {
    let repo = store.repo;
    let refname = store.refname;
    let mut fetched = repo.ref_tip(&remote.staged(refname))?.is_none();
    if fetched {
        fetch(repo, remote, &[refname])?;
    }
    let mut attempt = 0;
    loop {
        attempt += 1;
        let staged = repo.ref_tip(&remote.staged(refname))?;
        let (_, found, _) = merge_into_local(repo, refname, staged, &remote.name)?;
        courier.deliver(&found)?;
        let mut snap = store.snapshot()?;
        if snap.tip.is_none() {
            store.ensure_root()?;
            snap = store.snapshot()?;
            if snap.tip.is_none() {
                if attempt >= MAX_TRIES * 4 {
                    return Err(crate::error::Error::Contended {
                        refname: refname.into(),
                        attempts: attempt,
                    });
                }
                // Another writer holds the ref's lock: start over.
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
        }
        let outcome = op(&snap);
        let unpushed = snap.tip.is_some() && snap.tip != staged;
        let (change, value) = match outcome {
            // What a stale snapshot says (no such task, claimed, nothing ready) is asked again
            // of the remote's state.
            Err(_) if !fetched => {
                fetch(repo, remote, &[refname])?;
                fetched = true;
                continue;
            }
            Err(e) => return Err(e),
            Ok(done) => done,
        };
        if change.docs.is_empty() && !unpushed {
            if !fetched {
                fetch(repo, remote, &[refname])?;
                fetched = true;
                continue;
            }
            return Ok(value);
        }
        let new = if change.docs.is_empty() {
            snap.tip.expect("a tip")
        } else {
            store.write_commit(&snap, actor, &change)?
        };
        // Fast-forward only is the lease: the remote takes `new` only while its tip is in the
        // history the operation ran on, so every precondition it checked holds there.
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
            Pushed::Rejected => {
                if attempt >= MAX_TRIES * 4 {
                    return Err(crate::remote::transport::gave_up(
                        &remote.name,
                        format!("{refname} at {}", remote.name),
                        attempt,
                    ));
                }
                backoff(attempt);
                fetch(repo, remote, &[refname])?;
                fetched = true;
            }
        }
    }
}

/// Moves the local ref (and the staging ref) to a commit the remote accepted: a fast-forward of
/// the tip it was built on, else a merge when another local writer moved the ref meanwhile.
fn bring_home(
    store: &Store,
    remote: &Remote,
    courier: &dyn Courier,
    snap: &Snapshot,
    new: Oid,
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
