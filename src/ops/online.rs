//! Writes confirmed at the remote (online claims and leases) as the operations use them.

use crate::error::Result;
use crate::ops::context::Coord;
use crate::ops::notices::Notices;
use crate::remote::confirmed_update;
use crate::store::{Actor, Change, Snapshot, Store};

/// Runs `op` as a write to `store`: confirmed at the coordination remote when there is one (and
/// not `--offline`), else a local compare-and-swap.
pub fn update<T>(
    coord: &Coord,
    store: &Store,
    actor: &Actor,
    op: impl FnMut(&Snapshot) -> Result<(Change, T)>,
) -> Result<T> {
    update_or_repick(coord, store, actor, op, |_, _| Ok(None))
}

/// As [`update`], with [`Store::update_or_repick`]'s second chance under the local ref lock.
/// A write confirmed at the remote races there, where no lock is held: it runs `op` again.
pub fn update_or_repick<T>(
    coord: &Coord,
    store: &Store,
    actor: &Actor,
    op: impl FnMut(&Snapshot) -> Result<(Change, T)>,
    repick: impl FnMut(&Snapshot, &Snapshot) -> Result<Option<(Change, T)>>,
) -> Result<T> {
    match coord.confirm_remote()? {
        Some(remote) => {
            let mut op = op;
            let value = reaching(coord, || {
                confirmed_update(store, &remote, &Notices::new(coord), actor, &mut op)
            })?;
            // Only once the write is confirmed: a heartbeat never delays or fails it.
            crate::ops::presence::Presence::new(coord, crate::ops::presence::stale_after(coord))
                .share_pending(&remote);
            Ok(value)
        }
        None => store.update_or_repick(actor, op, repick),
    }
}

/// What [`update_or_keep`] did: the operation's value, and, when the remote could not be
/// reached, which remote and why: then the write was kept here alone, to go out with the next
/// sync.
pub struct Kept<T> {
    pub value: T,
    pub unreached: Option<(String, String)>,
}

impl<T> Kept<T> {
    /// The error that says the write `what` was kept here, not confirmed; None when it was.
    pub fn unconfirmed(&self, what: impl FnOnce(&T) -> String) -> Option<crate::error::Error> {
        let (remote, why) = self.unreached.clone()?;
        Some(crate::error::Error::Unconfirmed {
            what: what(&self.value),
            remote,
            why,
        })
    }

    /// The value, with a kept write said as a warning.
    pub fn warned(self, coord: &Coord, what: impl FnOnce(&T) -> String) -> T {
        if let Some(e) = self.unconfirmed(what) {
            coord.warn(e.to_string());
        }
        self.value
    }
}

/// As [`update`], for a write that must not wait for the network to hold (a task done,
/// released or blocked): confirmed at the remote when it can be reached, else written here
/// alone, to go out with the next sync, and said in [`Kept::unconfirmed`]. A remote that refuses
/// it on purpose, or keeps winning, is an error as for any confirmed write.
pub fn update_or_keep<T>(
    coord: &Coord,
    store: &Store,
    actor: &Actor,
    mut op: impl FnMut(&Snapshot) -> Result<(Change, T)>,
) -> Result<Kept<T>> {
    let Some(remote) = coord.confirm_remote()? else {
        let value = store.update(actor, op)?;
        return Ok(Kept {
            value,
            unreached: None,
        });
    };
    match reaching(coord, || {
        confirmed_update(store, &remote, &Notices::new(coord), actor, &mut op)
    }) {
        Err(e @ crate::error::Error::Remote { .. })
            if !crate::remote::transport::is_refusal(&e) =>
        {
            let value = store.update(actor, op)?;
            Ok(Kept {
                value,
                unreached: Some((remote.name.to_string(), e.to_string())),
            })
        }
        Ok(value) => {
            crate::ops::presence::Presence::new(coord, crate::ops::presence::stale_after(coord))
                .share_pending(&remote);
            Ok(Kept {
                value,
                unreached: None,
            })
        }
        Err(e) => Err(e),
    }
}

/// How long an online write keeps trying a remote it cannot reach, unless `git config
/// coord.remoteWait` says otherwise (a duration; `0s` fails at once).
pub const REMOTE_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// `git config coord.remoteWait`: `0s` (or `0`) for not at all, else a duration as everywhere
/// ([`REMOTE_WAIT`] when unset; a value that does not read is said, and the default holds).
fn remote_wait(coord: &Coord) -> std::time::Duration {
    let Some(text) = coord.repo.config_string("coord.remoteWait") else {
        return REMOTE_WAIT;
    };
    let text = text.trim();
    let number = text.strip_suffix('s').unwrap_or(text);
    if !number.is_empty() && number.chars().all(|c| c == '0') {
        return std::time::Duration::ZERO;
    }
    crate::ops::config::parse_duration(text).unwrap_or_else(|e| {
        coord.warn(format!(
            "git config coord.remoteWait: {e}; waiting {} s",
            REMOTE_WAIT.as_secs()
        ));
        REMOTE_WAIT
    })
}

/// Runs `write` (a write confirmed at the remote) again while the remote cannot be reached
/// (not a refusal), pausing 1, 2, 4 seconds (then every 5) for up to `coord.remoteWait`
/// ([`REMOTE_WAIT`]): a remote down for a moment (a restart, a network blip) delays a claim
/// rather than failing it. A write that waited and then held says so as a warning.
fn reaching<T>(coord: &Coord, mut write: impl FnMut() -> Result<T>) -> Result<T> {
    let wait = remote_wait(coord);
    let started = std::time::Instant::now();
    let mut pause = std::time::Duration::from_secs(1);
    let mut waited = false;
    loop {
        match write() {
            Err(e @ crate::error::Error::Remote { .. })
                if !crate::remote::transport::is_refusal(&e)
                    && started.elapsed() + pause <= wait =>
            {
                tracing::debug!("the remote cannot be reached ({e}); trying again in {pause:?}");
                std::thread::sleep(pause);
                waited = true;
                pause = (pause * 2).min(std::time::Duration::from_secs(5));
            }
            Ok(value) => {
                if waited {
                    coord.warn(format!(
                        "the remote could not be reached for {} s; this write waited for it",
                        started.elapsed().as_secs()
                    ));
                }
                return Ok(value);
            }
            Err(e) => return Err(e),
        }
    }
}

/// Sends what the inbox holds to the coordination remote now, by an empty write confirmed there
/// (no remote, or `--offline`: nothing), so that a notice just filed reaches its reader without
/// waiting for a sync. Best effort: a failure leaves it for the next sync.
pub fn push_inbox(coord: &Coord) {
    let Ok(actor) = coord.actor() else {
        return;
    };
    let inbox = Store::new(&coord.repo, crate::store::INBOX_REF);
    // Once, without waiting for a remote that cannot be reached: the message is sent here.
    let pushed = match coord.confirm_remote() {
        Ok(Some(remote)) => confirmed_update(&inbox, &remote, &Notices::new(coord), &actor, |_| {
            Ok((Change::default(), ()))
        }),
        Ok(None) => Ok(()),
        Err(e) => Err(e),
    };
    if let Err(e) = pushed {
        tracing::debug!("the inbox goes with the next sync: {e}");
    }
}

/// What a read-only fetch of the coordination remote brought into this clone, for views that
/// follow the remote (`status --fetch`, `serve --fetch`): from where, when, and what failed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Fetched {
    pub remote: String,
    pub at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

fn last_fetch_file(coord: &Coord) -> std::path::PathBuf {
    coord
        .repo
        .common_dir()
        .join("coord")
        .join("last-fetch.json")
}

/// Fetches every coordination ref and presence from the coordination remote and merges them
/// here, pushing nothing; remembers when (`<common git dir>/coord/last-fetch.json`). None
/// without a remote (or `--offline`). A remote that cannot be reached is reported in `error`.
pub fn fetch_for_view(coord: &Coord) -> Result<Option<Fetched>> {
    let Some(remote) = coord.confirm_remote()? else {
        return Ok(None);
    };
    let fetched = crate::remote::fetch_and_merge(&coord.repo, &remote, &Notices::new(coord))
        .and_then(|_| {
            crate::ops::presence::Presence::new(coord, crate::ops::presence::stale_after(coord))
                .share_fetched(&remote, false)
        });
    let report = Fetched {
        remote: remote.name.to_string(),
        at: crate::model::time::now(),
        error: fetched.err().map(|e| e.to_string()),
    };
    let file = last_fetch_file(coord);
    if let Some(dir) = file.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let tmp = file.with_extension("tmp");
    if serde_json::to_vec(&report)
        .ok()
        .is_some_and(|bytes| std::fs::write(&tmp, bytes).is_ok())
    {
        let _ = std::fs::rename(&tmp, &file);
    }
    Ok(Some(report))
}

/// The last [`fetch_for_view`] of this clone, if any.
pub fn last_fetch(coord: &Coord) -> Option<Fetched> {
    let bytes = std::fs::read(last_fetch_file(coord)).ok()?;
    serde_json::from_slice(&bytes).ok()
}
