//! Presence across clones: fetch refs/coord/presence into staging, merge it heartbeat by
//! heartbeat (of two heartbeats of one agent the later stays), and push the result as a commit
//! without parent that replaces the remote's, leased on the commit fetched; to a remote that
//! allows fast-forward updates only, as a child of the remote's tip instead. Nothing here touches
//! the audited refs, so a heartbeat never races with a task write.

use std::collections::BTreeMap;

use crate::error::Result;
use crate::git::{Author, Cas, Oid, PathEdit, Repo};
use crate::model::presence::{Heartbeat, later};
use crate::remote::transport::{MAX_TRIES, Pushed, Remote, fetch, push, push_replacing};
use crate::store::{PRESENCE_REF, backoff};

/// What an exchange of presence did.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Exchanged {
    /// up-to-date, fetched, pushed, merged+pushed, absent.
    pub action: String,
    /// Heartbeats that came from the remote and won over what this clone had.
    #[serde(skip)]
    pub arrived: Vec<Heartbeat>,
}

/// The heartbeats of a presence commit, by agent; unreadable documents are left out.
pub fn heartbeats(repo: &Repo, commit: Option<Oid>) -> Result<BTreeMap<String, (Oid, Heartbeat)>> {
    let mut out = BTreeMap::new();
    let Some(commit) = commit else {
        return Ok(out);
    };
    let tree = repo.commit_tree(commit)?;
    let Some(dir) = repo.lookup_path(tree, "heartbeats")? else {
        return Ok(out);
    };
    for entry in repo.tree_entries(dir)? {
        // Anything but a plain file of a fit name, or a document over the size limit (read from
        // the object's header), is ignored: presence from a remote is data.
        if !entry.is_blob || entry.odd.is_some() {
            continue;
        }
        let path = format!("heartbeats/{}", entry.name);
        let Ok(bytes) = crate::store::read_blob(
            repo,
            entry.oid,
            crate::model::MAX_DOCUMENT_BYTES,
            PRESENCE_REF,
            &path,
        ) else {
            continue;
        };
        if let Ok(beat) = Heartbeat::from_yaml(&bytes, PRESENCE_REF, &path) {
            out.insert(beat.agent.clone(), (entry.oid, beat));
        }
    }
    Ok(out)
}

/// Writes a commit without parent whose tree holds `beats`.
fn write_presence(repo: &Repo, beats: &BTreeMap<String, (Oid, Heartbeat)>) -> Result<Oid> {
    let edits: Vec<PathEdit> = beats
        .iter()
        .map(|(name, (oid, _))| PathEdit {
            path: Heartbeat::path(name),
            blob: Some(*oid),
        })
        .collect();
    let tree = repo.edit_tree(None, &edits)?;
    let message = format!(
        "coord: presence of {} agent(s)\n\nCoord-Op: presence-merge\n",
        beats.len()
    );
    repo.write_commit(tree, &[], &presence_author(), &message)
}

fn presence_author() -> Author {
    Author {
        name: "git-coord".into(),
        email: "git-coord@localhost".into(),
        seconds: crate::model::time::now_seconds(),
    }
}

/// How a remote takes refs/coord/presence: replaced (one commit, no history), or, on a server
/// that refuses anything but fast-forward updates, as a child of its tip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Replace,
    FastForward,
}

/// Where this clone remembers that `remote` takes presence only as fast-forwards: the file
/// `<common git dir>/coord/presence-fast-forward/<staging slug>`.
fn fast_forward_marker(repo: &Repo, remote: &Remote) -> std::path::PathBuf {
    let slug = remote
        .staging
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or("remote")
        .to_string();
    repo.common_dir()
        .join("coord")
        .join("presence-fast-forward")
        .join(slug)
}

fn mode(repo: &Repo, remote: &Remote) -> Mode {
    match fast_forward_marker(repo, remote).exists() {
        true => Mode::FastForward,
        false => Mode::Replace,
    }
}

fn remember_fast_forward(repo: &Repo, remote: &Remote) {
    let marker = fast_forward_marker(repo, remote);
    if let Some(dir) = marker.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let _ = std::fs::write(marker, "");
}

/// The commit to push so that it fast-forwards the remote's `theirs`: `local` itself when it
/// already is a child of `theirs`, else a commit with `local`'s tree whose parent is `theirs`.
fn fast_forward_of(repo: &Repo, local: Oid, theirs: Option<Oid>) -> Result<Oid> {
    let Some(theirs) = theirs else {
        return Ok(local);
    };
    if repo.commit_parents(local)? == [theirs] {
        return Ok(local);
    }
    let message = "coord: presence\n\nCoord-Op: presence-merge\n";
    repo.write_commit(
        repo.commit_tree(local)?,
        &[theirs],
        &presence_author(),
        message,
    )
}

pub use crate::remote::transport::is_refusal;

/// Pushes `local` as presence: replacing the remote's commit (leased on `theirs`) or, where the
/// remote takes only fast-forwards, as a child of `theirs`. A remote that refuses to replace is
/// tried once with a fast-forward, and remembered. Returns what went out and how.
fn push_presence(
    repo: &Repo,
    remote: &Remote,
    local: Oid,
    theirs: Option<Oid>,
) -> Result<(Pushed, Oid)> {
    if mode(repo, remote) == Mode::Replace {
        match push_replacing(repo, &remote.name, PRESENCE_REF, local, theirs) {
            Ok(pushed) => return Ok((pushed, local)),
            Err(refused) if theirs.is_some() && is_refusal(&refused) => {
                let child = fast_forward_of(repo, local, theirs)?;
                return match push(repo, &remote.name, &[(PRESENCE_REF.to_string(), child)]) {
                    Ok(pushed) => {
                        remember_fast_forward(repo, remote);
                        repo.note(format!(
                            "{} refuses to replace {PRESENCE_REF}; presence goes there as fast-forwards from now on",
                            remote.name
                        ));
                        Ok((pushed, child))
                    }
                    Err(e) => Err(refused_presence(remote, &refused, &e)),
                };
            }
            Err(e) => return Err(e),
        }
    }
    let child = fast_forward_of(repo, local, theirs)?;
    match push(repo, &remote.name, &[(PRESENCE_REF.to_string(), child)]) {
        Ok(pushed) => Ok((pushed, child)),
        Err(e) if is_refusal(&e) => Err(refused_presence(remote, &e, &e)),
        Err(e) => Err(e),
    }
}

/// The remote refused presence both ways: in its own words, and what git-coord needs there.
fn refused_presence(
    remote: &Remote,
    replacing: &crate::error::Error,
    forward: &crate::error::Error,
) -> crate::error::Error {
    let words = |e: &crate::error::Error| match e {
        crate::error::Error::Remote { why, .. } => why.clone(),
        other => other.to_string(),
    };
    let mut why = words(replacing);
    if words(forward) != why {
        why = format!("{why}; as a fast-forward: {}", words(forward));
    }
    crate::error::Error::Remote {
        remote: remote.name.to_string(),
        what: format!("push {PRESENCE_REF} to"),
        why: format!(
            "{why}; git-coord needs to create and update {PRESENCE_REF} there (forced updates keep it one commit; fast-forward updates are enough; docs/FORMAT.md, \"Server permissions\")"
        ),
    }
}

/// The most heartbeats a presence tree keeps: one per agent of a large team, and a bound on
/// what a hostile push can make every later exchange read.
pub const MAX_HEARTBEATS: usize = 1000;

/// Whose heartbeats presence keeps, as this clone's registrations say: an active agent's always
/// (within [`MAX_HEARTBEATS`]), a retired agent's never, and an agent this clone does not know
/// (registered elsewhere, not yet synced here; or junk) only within the bound, the most recent
/// first.
#[derive(Debug, Default, Clone)]
pub struct Roster {
    pub active: std::collections::HashSet<String>,
    pub retired: std::collections::HashSet<String>,
}

impl Roster {
    /// Drops from `beats` what presence does not keep; whether anything was dropped.
    fn bound(&self, beats: &mut BTreeMap<String, (Oid, Heartbeat)>) -> bool {
        let before = beats.len();
        beats.retain(|name, _| !self.retired.contains(name));
        if beats.len() > MAX_HEARTBEATS {
            let mut ranked: Vec<(bool, String, String)> = beats
                .iter()
                .map(|(name, (_, beat))| {
                    (self.active.contains(name), beat.at.clone(), name.clone())
                })
                .collect();
            // Active agents first, then the most recent heartbeats.
            ranked.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| b.1.cmp(&a.1)));
            for (_, _, name) in ranked.into_iter().skip(MAX_HEARTBEATS) {
                beats.remove(&name);
            }
        }
        beats.len() != before
    }

    /// Whether the tree of `commit` holds more than presence keeps, seen from its entries' names
    /// alone (no document read).
    fn overflows(&self, repo: &Repo, commit: Option<Oid>) -> Result<bool> {
        let Some(commit) = commit else {
            return Ok(false);
        };
        let Some(dir) = repo.lookup_path(repo.commit_tree(commit)?, "heartbeats")? else {
            return Ok(false);
        };
        let entries = repo.tree_entries(dir)?;
        Ok(entries.len() > MAX_HEARTBEATS
            || entries.iter().any(|e| {
                e.name
                    .strip_suffix(".yaml")
                    .is_some_and(|n| self.retired.contains(n))
            }))
    }
}

/// How many entries the `heartbeats` folder of `commit`'s tree has, read or not.
fn tree_entry_count(repo: &Repo, commit: Option<Oid>) -> Result<usize> {
    let Some(commit) = commit else {
        return Ok(0);
    };
    match repo.lookup_path(repo.commit_tree(commit)?, "heartbeats")? {
        Some(dir) => Ok(repo.tree_entries(dir)?.len()),
        None => Ok(0),
    }
}

/// Fetches the remote's presence, merges it into the local one and pushes the result, until the
/// remote accepts or [`MAX_TRIES`] rounds are spent.
pub fn exchange(repo: &Repo, remote: &Remote, roster: &Roster) -> Result<Exchanged> {
    exchange_with(repo, remote, true, false, roster)
}

/// Fetches the remote's presence and merges it into the local one, pushing the result when
/// `push` (else the local ref may hold heartbeats the remote lacks, sent on the next exchange).
/// What `roster` does not keep is dropped from the result. With `fetched`, the caller has just
/// fetched the remote's presence (a sync fetches it with the coordination refs): the first round
/// reads that instead of fetching again.
pub fn exchange_with(
    repo: &Repo,
    remote: &Remote,
    push: bool,
    fetched: bool,
    roster: &Roster,
) -> Result<Exchanged> {
    let staged_name = remote.staged(PRESENCE_REF);
    let mut arrived: BTreeMap<String, Heartbeat> = BTreeMap::new();
    for attempt in 1..=MAX_TRIES {
        if attempt > 1 || !fetched {
            fetch(repo, remote, &[PRESENCE_REF])?;
        }
        let theirs = repo.ref_tip(&staged_name)?;
        let ours = repo.ref_tip(PRESENCE_REF)?;
        if ours == theirs && !roster.overflows(repo, ours)? {
            let action = if ours.is_none() {
                "absent"
            } else {
                "up-to-date"
            };
            return Ok(done(action, arrived));
        }
        let mine = heartbeats(repo, ours)?;
        let remote_beats = heartbeats(repo, theirs)?;
        let mut merged = mine.clone();
        let mut took_any = false;
        for (name, (oid, beat)) in &remote_beats {
            let keep = match mine.get(name) {
                Some((_, have)) => later(have, beat) == beat && have != beat,
                None => true,
            };
            if keep {
                merged.insert(name.clone(), (*oid, beat.clone()));
                arrived.insert(name.clone(), beat.clone());
                took_any = true;
            }
        }
        // Past the bound, entries of theirs that are no readable heartbeat (junk a hostile clone
        // pushed) go too: the merged commit is written and pushed without them, rather than the
        // remote's taken as it is. (Under the bound they cost no more than heartbeats would, and
        // may be a newer build's.)
        let junk_there = tree_entry_count(repo, theirs)? > MAX_HEARTBEATS;
        let dropped = roster.bound(&mut merged) | junk_there;
        arrived.retain(|name, _| merged.contains_key(name));
        let same_as_theirs = theirs.is_some()
            && !dropped
            && merged.len() == remote_beats.len()
            && merged
                .iter()
                .all(|(n, (oid, _))| remote_beats.get(n).is_some_and(|(o, _)| o == oid));
        if same_as_theirs {
            let theirs = theirs.expect("checked");
            if repo.cas_ref(PRESENCE_REF, ours, theirs, "coord: presence fetched")? == Cas::Moved {
                return Ok(done("fetched", arrived));
            }
            backoff(attempt);
            continue;
        }
        // Nothing taken from the remote: the local commit goes as it is, no new one is written
        // (on a remote that takes fast-forwards only, a child of its tip with the same tree).
        let new = match ours.filter(|_| !took_any && !dropped) {
            Some(ours) => ours,
            None => {
                let new = write_presence(repo, &merged)?;
                if repo.cas_ref(PRESENCE_REF, ours, new, "coord: presence merged")? == Cas::Lost {
                    backoff(attempt);
                    continue;
                }
                new
            }
        };
        if !push {
            return Ok(done(
                if took_any { "merged" } else { "local-only" },
                arrived,
            ));
        }
        match push_presence(repo, remote, new, theirs)? {
            (Pushed::Accepted, sent) => {
                repo.set_ref(&staged_name, sent)?;
                if sent != new {
                    // The local ref follows what the remote holds; a writer that moved it
                    // meanwhile keeps its heartbeat, which goes with the next exchange.
                    let _ = repo.cas_ref(PRESENCE_REF, Some(new), sent, "coord: presence pushed");
                }
                let action = if took_any { "merged+pushed" } else { "pushed" };
                return Ok(done(action, arrived));
            }
            (Pushed::Rejected, _) => backoff(attempt + 3),
        }
    }
    Err(crate::remote::transport::gave_up(
        &remote.name,
        format!("{PRESENCE_REF} at {}", remote.name),
        MAX_TRIES,
    ))
}

/// Pushes local presence the remote has not seen, leased on the last commit fetched from it,
/// without fetching first; a rejection (someone else's heartbeat got there first) falls back to
/// a full [`exchange`]. Returns None when there was nothing to push.
pub fn push_pending(repo: &Repo, remote: &Remote, roster: &Roster) -> Result<Option<Exchanged>> {
    let staged_name = remote.staged(PRESENCE_REF);
    let Some(ours) = repo.ref_tip(PRESENCE_REF)? else {
        return Ok(None);
    };
    let staged = repo.ref_tip(&staged_name)?;
    if staged == Some(ours) {
        return Ok(None);
    }
    if mode(repo, remote) == Mode::FastForward && !worth_a_commit(repo, ours, staged)? {
        return Ok(None);
    }
    match push_presence(repo, remote, ours, staged)? {
        (Pushed::Accepted, sent) => {
            repo.set_ref(&staged_name, sent)?;
            if sent != ours {
                let _ = repo.cas_ref(PRESENCE_REF, Some(ours), sent, "coord: presence pushed");
            }
            Ok(Some(done("pushed", BTreeMap::new())))
        }
        (Pushed::Rejected, _) => exchange(repo, remote, roster).map(Some),
    }
}

/// Heartbeats this clone has not shared with `remote`, made ready to go along the push of a
/// confirmed write (one connection for both): what to push and its lease, as [`push_pending`]
/// would push it. None when there is nothing worth sending.
pub fn pending_along(repo: &Repo, remote: &Remote) -> Result<Option<PendingPresence>> {
    let Some(ours) = repo.ref_tip(PRESENCE_REF)? else {
        return Ok(None);
    };
    let staged = repo.ref_tip(&remote.staged(PRESENCE_REF))?;
    if staged == Some(ours) {
        return Ok(None);
    }
    Ok(Some(match mode(repo, remote) {
        Mode::Replace => PendingPresence {
            ours,
            staged,
            sent: ours,
            replace: true,
        },
        Mode::FastForward if worth_a_commit(repo, ours, staged)? => PendingPresence {
            ours,
            staged,
            sent: fast_forward_of(repo, ours, staged)?,
            replace: false,
        },
        Mode::FastForward => return Ok(None),
    }))
}

/// Presence pushed along a write, see [`pending_along`].
pub struct PendingPresence {
    ours: Oid,
    staged: Option<Oid>,
    sent: Oid,
    replace: bool,
}

impl PendingPresence {
    /// The ref update to push along.
    pub fn along(&self) -> crate::remote::transport::Along<'static> {
        crate::remote::transport::Along {
            refname: PRESENCE_REF,
            new: self.sent,
            lease: self.replace.then_some(self.staged),
        }
    }

    /// Records that the remote took it: the staging ref moves to what was sent (and the local
    /// ref too, when a fast-forward child was sent), each only if nobody moved it meanwhile.
    pub fn landed(&self, repo: &Repo, remote: &Remote) -> Result<()> {
        repo.cas_ref(
            &remote.staged(PRESENCE_REF),
            self.staged,
            self.sent,
            "coord: presence pushed",
        )?;
        if self.sent != self.ours {
            repo.cas_ref(
                PRESENCE_REF,
                Some(self.ours),
                self.sent,
                "coord: presence pushed",
            )?;
        }
        Ok(())
    }
}

/// On a remote where every presence push adds a commit for good: whether `ours` holds a
/// heartbeat that the remote lacks or has older by at least a quarter of its `stale_after`, so
/// that the history grows by at most four commits per agent per `stale_after` from the
/// heartbeats every command gives (`sync` and `agent heartbeat` push whatever this says).
fn worth_a_commit(repo: &Repo, ours: Oid, staged: Option<Oid>) -> Result<bool> {
    let theirs = heartbeats(repo, staged)?;
    Ok(heartbeats(repo, Some(ours))?
        .values()
        .any(|(oid, beat)| match theirs.get(&beat.agent) {
            None => true,
            Some((their_oid, _)) if their_oid == oid => false,
            Some((_, seen)) => {
                let quarter = (beat.stale_after.max(1) as i64) * 1000 / 4;
                match (beat.at_millis(), seen.at_millis()) {
                    (Some(now), Some(then)) => now - then >= quarter || beat.clone != seen.clone,
                    _ => true,
                }
            }
        }))
}

fn done(action: &str, arrived: BTreeMap<String, Heartbeat>) -> Exchanged {
    Exchanged {
        action: action.into(),
        arrived: arrived.into_values().collect(),
    }
}
