//! Sync: fetch every coordination ref into staging, merge each semantically into the local one,
//! push fast-forward only, and start another round when someone else moved first.

use crate::error::{Error, Result};
use crate::git::{Author, Cas, Oid, Repo};
use crate::model::merge::Notice;
use crate::remote::Courier;
use crate::remote::merge::merge_trees;
use crate::remote::transport::{Pushed, Remote, fetch, push};
use crate::store::{COORD_REFS, Retry};

/// What a sync did to one ref.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RefReport {
    pub refname: String,
    /// up-to-date, fetched, fast-forwarded, merged, pushed, local-only, absent.
    pub action: String,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct SyncReport {
    pub remote: String,
    /// Rounds of fetch, merge and push it took.
    pub tries: u32,
    pub refs: Vec<RefReport>,
    /// Claims lost and leases revoked by the merges, each told to its agent.
    pub notices: usize,
    /// Documents that could not be read and were kept as found.
    pub malformed: Vec<String>,
}

/// Merges `theirs` into the local `refname`: creates it, fast-forwards it, or writes a merge
/// commit (parents: ours, theirs) whose tree is the semantic merge. Returns what it did, whom to
/// tell, and the documents it could not read.
pub fn merge_into_local(
    repo: &Repo,
    refname: &str,
    theirs: Option<Oid>,
    from: &crate::git::RemoteUrl,
) -> Result<(&'static str, Vec<Notice>, Vec<String>)> {
    let Some(theirs) = theirs else {
        return Ok(("local-only", Vec::new(), Vec::new()));
    };
    let mut retry = Retry::new();
    while retry.again() {
        let ours = repo.ref_tip(refname)?;
        let Some(ours) = ours else {
            if repo.cas_ref(refname, None, theirs, "coord: fetched")? == Cas::Moved {
                return Ok(("fetched", Vec::new(), Vec::new()));
            }
            retry.lost(repo.ref_tip(refname)?.is_some());
            continue;
        };
        if ours == theirs || repo.is_ancestor(theirs, ours)? {
            return Ok(("up-to-date", Vec::new(), Vec::new()));
        }
        if repo.is_ancestor(ours, theirs)? {
            if repo.cas_ref(refname, Some(ours), theirs, "coord: fast-forward")? == Cas::Moved {
                return Ok(("fast-forwarded", Vec::new(), Vec::new()));
            }
            retry.lost(repo.ref_tip(refname)? != Some(ours));
            continue;
        }
        let base = match repo.merge_base(ours, theirs)? {
            Some(b) => Some(repo.commit_tree(b)?),
            None => None,
        };
        let merged = merge_trees(
            repo,
            refname,
            base,
            repo.commit_tree(ours)?,
            repo.commit_tree(theirs)?,
        )?;
        let author = Author {
            name: "git-coord".into(),
            email: "git-coord@localhost".into(),
            seconds: crate::model::time::now_seconds(),
        };
        let message = format!("coord: merge {from} into {refname}\n\nCoord-Op: merge\n");
        let commit = repo.write_commit(merged.tree, &[ours, theirs], &author, &message)?;
        if repo.cas_ref(refname, Some(ours), commit, "coord: merge")? == Cas::Moved {
            return Ok(("merged", merged.notices, merged.malformed));
        }
        retry.lost(repo.ref_tip(refname)? != Some(ours));
    }
    Err(Error::Contended {
        refname: refname.into(),
        attempts: retry.attempts,
    })
}

/// Fetches, merges and pushes every coordination ref, until the remote accepts or
/// [`MAX_TRIES`] rounds are spent.
pub fn sync(repo: &Repo, remote: &Remote, courier: &dyn Courier) -> Result<SyncReport> {
    let mut notices = 0;
    let mut malformed = Vec::new();
    // Bounded by time, as a confirmed write is: a team syncing at once (agents coming back
    // from an outage together) keeps losing rounds for a while, and each round is a fetch and
    // a push, so the pause between rounds scales with how long a push takes.
    let started = std::time::Instant::now();
    for tries in 1.. {
        fetch(repo, remote, &COORD_REFS)?;
        let mut refs = Vec::new();
        let mut pending = Vec::new();
        for refname in COORD_REFS {
            let staged = repo.ref_tip(&remote.staged(refname))?;
            let (action, found, bad) = merge_into_local(repo, refname, staged, &remote.name)?;
            notices += courier.deliver(&found)?;
            malformed.extend(bad);
            refs.push(RefReport {
                refname: refname.into(),
                action: action.into(),
            });
        }
        for (refname, report) in COORD_REFS.iter().zip(refs.iter_mut()) {
            let local = repo.ref_tip(refname)?;
            let staged = repo.ref_tip(&remote.staged(refname))?;
            match local {
                Some(local) if Some(local) != staged => {
                    pending.push((refname.to_string(), local));
                    report.action = match report.action.as_str() {
                        "merged" => "merged+pushed".into(),
                        _ => "pushed".into(),
                    };
                }
                None if staged.is_none() => report.action = "absent".into(),
                _ => {}
            }
        }
        let trip = std::time::Instant::now();
        match push(repo, &remote.name, &pending)? {
            Pushed::Accepted => {
                for (refname, oid) in &pending {
                    repo.set_ref(&remote.staged(refname), *oid)?;
                }
                malformed.sort();
                malformed.dedup();
                return Ok(SyncReport {
                    remote: remote.name.to_string(),
                    tries,
                    refs,
                    notices,
                    malformed,
                });
            }
            Pushed::Rejected if started.elapsed() >= crate::remote::transport::CONFIRM_TIME => {
                return Err(crate::remote::transport::gave_up(
                    &remote.name,
                    format!("the coordination refs at {}", remote.name),
                    tries,
                ));
            }
            Pushed::Rejected => crate::remote::transport::pause(trip.elapsed(), tries),
        }
    }
    unreachable!("the rounds end by returning")
}

/// Fetches and merges, without pushing.
pub fn fetch_and_merge(
    repo: &Repo,
    remote: &Remote,
    courier: &dyn Courier,
) -> Result<Vec<RefReport>> {
    fetch(repo, remote, &COORD_REFS)?;
    let mut refs = Vec::new();
    for refname in COORD_REFS {
        let staged = repo.ref_tip(&remote.staged(refname))?;
        let (action, found, _) = merge_into_local(repo, refname, staged, &remote.name)?;
        courier.deliver(&found)?;
        refs.push(RefReport {
            refname: refname.into(),
            action: action.into(),
        });
    }
    Ok(refs)
}

/// Pushes what is local and not yet at the remote; a rejection is an error that says to sync.
pub fn push_only(repo: &Repo, remote: &Remote) -> Result<Vec<RefReport>> {
    let mut pending = Vec::new();
    let mut refs = Vec::new();
    for refname in COORD_REFS {
        let local = repo.ref_tip(refname)?;
        let staged = repo.ref_tip(&remote.staged(refname))?;
        let action = match local {
            Some(l) if Some(l) != staged => {
                pending.push((refname.to_string(), l));
                "pushed"
            }
            Some(_) => "up-to-date",
            None => "absent",
        };
        refs.push(RefReport {
            refname: refname.into(),
            action: action.into(),
        });
    }
    match push(repo, &remote.name, &pending)? {
        Pushed::Accepted => {
            for (refname, oid) in &pending {
                repo.set_ref(&remote.staged(refname), *oid)?;
            }
            Ok(refs)
        }
        Pushed::Rejected => Err(Error::Other(format!(
            "{} has coordination state this clone has not seen: run `git coord sync {}`",
            remote.name, remote.name
        ))),
    }
}
