//! Writes confirmed at the remote (online claims and leases): a wrapper around a store write that
//! reports success only once the remote accepted the new commit.

use std::time::{Duration, Instant};

use crate::error::Result;
use crate::git::{Cas, Oid};
use crate::remote::Courier;
use crate::remote::presence::pending_along;
use crate::remote::sync::merge_into_local;
use crate::remote::transport::{CONFIRM_TIME, pause};
use crate::remote::transport::{Pushed, Remote, fetch, is_refusal, push, push_with};
use crate::store::{Actor, Change, PRESENCE_REF, Snapshot, Store};

/// How long after a refused push the writes of this clone to that ref fetch first: on a remote
/// that others keep moving, a push on the tip last fetched would mostly be refused, and cost a
/// round trip more than fetching first.
pub const BUSY_FOR: Duration = Duration::from_secs(120);

/// The file whose age says when a push of `refname` to `remote` was last refused here:
/// `<common git dir>/coord/refused/<staging slug>-<kind>`.
fn refused_marker(repo: &crate::git::Repo, remote: &Remote, refname: &str) -> std::path::PathBuf {
    let staged = remote.staged(refname);
    let name = staged
        .trim_start_matches("refs/coord-sync/")
        .replace('/', "-");
    repo.common_dir().join("coord").join("refused").join(name)
}

fn recently_refused(repo: &crate::git::Repo, remote: &Remote, refname: &str) -> bool {
    std::fs::metadata(refused_marker(repo, remote, refname))
        .and_then(|m| m.modified())
        .is_ok_and(|at| at.elapsed().is_ok_and(|age| age < BUSY_FOR))
}

/// Best effort: without the marker, the next write only pushes first once more.
fn note_refused(repo: &crate::git::Repo, remote: &Remote, refname: &str) {
    let marker = refused_marker(repo, remote, refname);
    if let Some(dir) = marker.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let _ = std::fs::write(marker, "");
}

/// A write confirmed at `remote`, in one round trip when nobody races: the operation runs on the
/// local ref merged with the remote's tip as last fetched (the staging ref), and its commit is
/// pushed fast-forward only, so the remote takes it only if it holds nothing this snapshot lacks.
/// Only then does the local ref move. A rejected push means someone else wrote first: fetch,
/// merge, run the operation again (re-checking its preconditions), push again, for up to
/// [`CONFIRM_TIME`]. With no staging ref yet, or within [`BUSY_FOR`] of a refused push of this
/// ref, it fetches first. An operation that fails, or has nothing to do, on a snapshot not
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
    let _turn = crate::remote::transport::take_turn(repo);
    let started = Instant::now();
    let mut fetched =
        repo.ref_tip(&remote.staged(refname))?.is_none() || recently_refused(repo, remote, refname);
    if fetched {
        fetch(repo, remote, &[refname])?;
    }
    let mut losses = 0;
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
                if started.elapsed() >= CONFIRM_TIME {
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
        let trip = Instant::now();
        // Fast-forward only is the lease: the remote takes `new` only while its tip is in the
        // history the operation ran on, so every precondition it checked holds there.
        match push_write(repo, remote, refname, new)? {
            Pushed::Accepted => {
                tracing::debug!(refname, attempts = attempt, "confirmed at {}", remote.name);
                // The write holds from here on: it is at the remote. Bringing it home is
                // best-effort; whatever fails here, the next fetch or sync brings it.
                let home = bring_home(
                    store,
                    remote,
                    courier,
                    (staged, &snap),
                    new,
                    &change.subject,
                );
                if let Err(e) = home {
                    courier.warn(format!(
                        "{refname} was written at {}; updating this clone failed ({e}); the next sync brings it",
                        remote.name
                    ));
                }
                return Ok(value);
            }
            Pushed::Rejected => {
                losses += 1;
                note_refused(repo, remote, refname);
                if started.elapsed() >= CONFIRM_TIME {
                    return Err(crate::remote::transport::gave_up(
                        &remote.name,
                        format!("{refname} at {}", remote.name),
                        attempt,
                    ));
                }
                pause(trip.elapsed(), losses);
                fetch(repo, remote, &[refname])?;
                fetched = true;
            }
        }
    }
}

/// Pushes the write's commit `new` to `refname`, fast-forward only, with this clone's unshared
/// heartbeats along in the same connection (best effort: whether they land does not decide the
/// write). A remote that refuses the pair on purpose (a policy on presence for all pushes) is
/// asked again for the write alone, which then has the last word.
fn push_write(repo: &crate::git::Repo, remote: &Remote, refname: &str, new: Oid) -> Result<Pushed> {
    let alone = || push(repo, &remote.name, &[(refname.to_string(), new)]);
    let presence = match refname {
        PRESENCE_REF => None,
        _ => pending_along(repo, remote).unwrap_or_else(|e| {
            tracing::debug!("no presence along the write: {e}");
            None
        }),
    };
    let Some(presence) = presence else {
        return alone();
    };
    match push_with(repo, &remote.name, (refname, new), &presence.along()) {
        Ok((pushed, landed)) => {
            if landed && let Err(e) = presence.landed(repo, remote) {
                tracing::debug!("presence went to {}, not recorded here: {e}", remote.name);
            }
            Ok(pushed)
        }
        Err(e) if is_refusal(&e) => alone(),
        Err(e) => Err(e),
    }
}

/// Moves the local ref (and the staging ref) to a commit the remote accepted: a fast-forward of
/// the tip it was built on, else a merge when another local writer moved the ref meanwhile.
/// The staging ref moves by compare-and-swap from `staged`, in-process: if a sibling's fetch or
/// write moved it meanwhile, theirs stays, and at worst the next write is refused once and
/// fetches.
fn bring_home(
    store: &Store,
    remote: &Remote,
    courier: &dyn Courier,
    (staged, snap): (Option<Oid>, &Snapshot),
    new: Oid,
    subject: &str,
) -> Result<()> {
    let (repo, refname) = (store.repo, store.refname);
    let staging = remote.staged(refname);
    if repo.cas_ref(&staging, staged, new, "coord: pushed")? == Cas::Lost {
        tracing::debug!("{staging} moved meanwhile: left as it is");
    }
    if repo.cas_ref(refname, snap.tip, new, subject)? == Cas::Lost {
        let (_, found, _) = merge_into_local(repo, refname, Some(new), &remote.name)?;
        courier.deliver(&found)?;
    }
    Ok(())
}
