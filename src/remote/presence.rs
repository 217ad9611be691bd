//! Presence across clones: fetch refs/coord/presence into staging, merge it heartbeat by
//! heartbeat (of two heartbeats of one agent the later stays), and push the result as a commit
//! without parent that replaces the remote's, leased on the commit fetched. Nothing here touches
//! the audited refs, so a heartbeat never races with a task write.

use std::collections::BTreeMap;

use crate::error::Result;
use crate::git::{Author, Cas, Oid, PathEdit, Repo};
use crate::model::presence::{Heartbeat, later};
use crate::remote::transport::{MAX_TRIES, Pushed, Remote, fetch, push_replacing};
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
    let author = Author {
        name: "git-coord".into(),
        email: "git-coord@localhost".into(),
        seconds: crate::model::time::now_seconds(),
    };
    let message = format!(
        "coord: presence of {} agent(s)\n\nCoord-Op: presence-merge\n",
        beats.len()
    );
    repo.write_commit(tree, &[], &author, &message)
}

/// Fetches the remote's presence, merges it into the local one and pushes the result, until the
/// remote accepts or [`MAX_TRIES`] rounds are spent.
pub fn exchange(repo: &Repo, remote: &Remote) -> Result<Exchanged> {
    exchange_with(repo, remote, true)
}

/// Fetches the remote's presence and merges it into the local one, pushing the result when
/// `push` (else the local ref may hold heartbeats the remote lacks, sent on the next exchange).
pub fn exchange_with(repo: &Repo, remote: &Remote, push: bool) -> Result<Exchanged> {
    let staged_name = remote.staged(PRESENCE_REF);
    let mut arrived: BTreeMap<String, Heartbeat> = BTreeMap::new();
    for attempt in 1..=MAX_TRIES {
        fetch(repo, remote, &[PRESENCE_REF])?;
        let theirs = repo.ref_tip(&staged_name)?;
        let ours = repo.ref_tip(PRESENCE_REF)?;
        if ours == theirs {
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
        let same_as_theirs = theirs.is_some()
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
        // Nothing taken from the remote: the local commit goes as it is, no new one is written.
        let new = match ours.filter(|_| !took_any) {
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
        match push_replacing(repo, &remote.name, PRESENCE_REF, new, theirs)? {
            Pushed::Accepted => {
                repo.set_ref(&staged_name, new)?;
                let action = if took_any { "merged+pushed" } else { "pushed" };
                return Ok(done(action, arrived));
            }
            Pushed::Rejected => backoff(attempt + 3),
        }
    }
    Err(crate::error::Error::Contended {
        refname: format!("{PRESENCE_REF} at {}", remote.name),
        attempts: MAX_TRIES,
    })
}

/// Pushes local presence the remote has not seen, leased on the last commit fetched from it,
/// without fetching first; a rejection (someone else's heartbeat got there first) falls back to
/// a full [`exchange`]. Returns None when there was nothing to push.
pub fn push_pending(repo: &Repo, remote: &Remote) -> Result<Option<Exchanged>> {
    let staged_name = remote.staged(PRESENCE_REF);
    let Some(ours) = repo.ref_tip(PRESENCE_REF)? else {
        return Ok(None);
    };
    let staged = repo.ref_tip(&staged_name)?;
    if staged == Some(ours) {
        return Ok(None);
    }
    match push_replacing(repo, &remote.name, PRESENCE_REF, ours, staged)? {
        Pushed::Accepted => {
            repo.set_ref(&staged_name, ours)?;
            Ok(Some(done("pushed", BTreeMap::new())))
        }
        Pushed::Rejected => exchange(repo, remote).map(Some),
    }
}

fn done(action: &str, arrived: BTreeMap<String, Heartbeat>) -> Exchanged {
    Exchanged {
        action: action.into(),
        arrived: arrived.into_values().collect(),
    }
}
