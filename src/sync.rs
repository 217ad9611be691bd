//! Across machines: fetch refs/coord/* from a remote into a staging namespace, merge each ref
//! semantically into the local one, push fast-forward only, and try again when someone else moved
//! first. Also the online writes (claims and leases confirmed at the remote) and the notices a
//! merge owes to whoever it decided against.
//!
//! Transport is the user's own `git` binary, so ssh-agent, credential helpers, `insteadOf` and
//! GIT_SSH_COMMAND work as they do for `git push`.

use crate::coord::{COORD_REFS, Coord};
use crate::error::{Error, Result};
use crate::git::{Author, Cas, Oid, Repo};
use crate::merge::merge_trees;
use crate::model::merge::Notice;
use crate::store::{Actor, Change, Snapshot, Store, backoff};

/// Rounds of fetch, merge and push before a sync gives up on a remote that keeps moving.
pub const MAX_TRIES: u32 = 10;
/// Where fetched coordination refs wait: outside refs/coord/, so nothing ever pushes them.
const STAGING: &str = "refs/coord-sync";

/// A remote to sync with: what the user named, and where its refs are staged.
#[derive(Debug, Clone)]
pub struct Remote {
    /// A configured remote's name, or a URL.
    pub name: String,
    /// `refs/coord-sync/<slug>/`: the staging namespace of this remote.
    pub staging: String,
}

impl Remote {
    fn staged(&self, refname: &str) -> String {
        format!("{}{}", self.staging, kind(refname))
    }
}

fn kind(refname: &str) -> &str {
    refname.rsplit('/').next().unwrap_or(refname)
}

/// The coordination remote: `coord.remote` in git's configuration, else `origin` if it exists.
pub fn default_remote(repo: &Repo) -> Option<String> {
    repo.config_string("coord.remote")
        .filter(|r| !r.trim().is_empty())
        .or_else(|| {
            repo.config_string("remote.origin.url")
                .map(|_| "origin".to_string())
        })
}

/// The remote `given` names (or the default one), checked.
pub fn resolve_remote(repo: &Repo, given: Option<&str>) -> Result<Remote> {
    let name = match given {
        Some(g) => g.trim().to_string(),
        None => default_remote(repo).ok_or_else(|| {
            Error::Other(
                "no remote to sync with: add one (`git remote add origin URL`), set `git config coord.remote NAME`, or name it: `git coord sync REMOTE`".into(),
            )
        })?,
    };
    if name.is_empty() || name.starts_with('-') {
        return Err(Error::invalid(
            "remote",
            &name,
            "give a remote's name or URL",
        ));
    }
    let configured = repo.config_string(&format!("remote.{name}.url")).is_some();
    let slug = if configured && crate::model::name::validate("remote", &name).is_ok() {
        name.clone()
    } else {
        let looks_like_url = name.contains(':') || name.contains('/');
        if !looks_like_url {
            return Err(Error::invalid(
                "remote",
                &name,
                "no such remote: `git remote -v` lists them",
            ));
        }
        let oid = repo.write_blob(name.as_bytes())?;
        format!("url-{}", &oid.to_string()[..12])
    };
    Ok(Remote {
        name,
        staging: format!("{STAGING}/{slug}/"),
    })
}

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

/// Fetches every coordination ref of `remote` into its staging namespace. Local refs are not
/// touched.
pub fn fetch(repo: &Repo, remote: &Remote, refs: &[&str]) -> Result<()> {
    let specs: Vec<String> = refs
        .iter()
        .map(|r| format!("+{r}:{}", remote.staged(r)))
        .collect();
    let mut args = vec!["fetch", "--quiet", "--no-tags", "--no-write-fetch-head"];
    if refs.len() > 1 {
        args.push("--prune");
    }
    args.push(&remote.name);
    args.extend(specs.iter().map(String::as_str));
    let out = repo.git(&args)?;
    if !out.success {
        // A ref the remote lacks is not an error: it has no coordination state of that kind.
        if out.stderr.contains("couldn't find remote ref") {
            if refs.len() > 1 {
                for r in refs {
                    fetch(repo, remote, &[r])?;
                }
            } else if repo.ref_tip(&remote.staged(refs[0]))?.is_some() {
                repo.delete_ref(&remote.staged(refs[0]))?;
            }
            return Ok(());
        }
        return Err(remote_error(remote, "fetch from", &out.stderr));
    }
    Ok(())
}

fn remote_error(remote: &Remote, what: &str, stderr: &str) -> Error {
    let why = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    Error::Remote {
        remote: remote.name.clone(),
        what: what.to_string(),
        why,
    }
}

/// The outcome of a push.
#[derive(Debug, PartialEq, Eq)]
pub enum Pushed {
    Accepted,
    /// Someone else moved a ref first: fetch, merge, push again.
    Rejected,
}

/// Pushes `updates` (ref, commit) fast-forward only, all or none. The caller owns the retry.
pub fn push(repo: &Repo, remote: &str, updates: &[(String, Oid)]) -> Result<Pushed> {
    if updates.is_empty() {
        return Ok(Pushed::Accepted);
    }
    let specs: Vec<String> = updates
        .iter()
        .map(|(r, oid)| format!("{oid}:{r}"))
        .collect();
    // --no-verify: the user's pre-push hook guards branches, and ours would recurse.
    let mut args = vec!["push", "--porcelain", "--no-verify"];
    if updates.len() > 1 {
        args.push("--atomic");
    }
    args.push(remote);
    args.extend(specs.iter().map(String::as_str));
    let out = repo.git(&args)?;
    if out.success {
        return Ok(Pushed::Accepted);
    }
    let refused: Vec<&str> = out.stdout.lines().filter(|l| l.starts_with('!')).collect();
    // A remote that refuses on purpose (a hook, permissions) is an error; one that lost a race
    // for its own ref lock is a rejection like any other: fetch, merge, try again.
    let raced = |l: &&&str| {
        [
            "failed to update ref",
            "failed to lock",
            "cannot lock ref",
            "incorrect old value",
        ]
        .iter()
        .any(|why| l.contains(why))
    };
    let hard = refused
        .iter()
        .any(|l| l.contains("[remote rejected]") && !raced(&l));
    if !refused.is_empty() && !hard {
        return Ok(Pushed::Rejected);
    }
    let mut why = refused.join("; ");
    if why.is_empty() {
        why = out.stderr.clone();
    }
    Err(remote_error(
        &Remote {
            name: remote.to_string(),
            staging: String::new(),
        },
        "push to",
        &why,
    ))
}

/// Merges `theirs` into the local `refname`: creates it, fast-forwards it, or writes a merge
/// commit (parents: ours, theirs) whose tree is the semantic merge. Returns what it did, whom to
/// tell, and the documents it could not read.
pub fn merge_into_local(
    repo: &Repo,
    refname: &str,
    theirs: Option<Oid>,
    from: &str,
) -> Result<(&'static str, Vec<Notice>, Vec<String>)> {
    let Some(theirs) = theirs else {
        return Ok(("local-only", Vec::new(), Vec::new()));
    };
    for attempt in 1..=400 {
        let ours = repo.ref_tip(refname)?;
        let Some(ours) = ours else {
            if repo.cas_ref(refname, None, theirs, "coord: fetched")? == Cas::Moved {
                return Ok(("fetched", Vec::new(), Vec::new()));
            }
            backoff(attempt);
            continue;
        };
        if ours == theirs || repo.is_ancestor(theirs, ours)? {
            return Ok(("up-to-date", Vec::new(), Vec::new()));
        }
        if repo.is_ancestor(ours, theirs)? {
            if repo.cas_ref(refname, Some(ours), theirs, "coord: fast-forward")? == Cas::Moved {
                return Ok(("fast-forwarded", Vec::new(), Vec::new()));
            }
            backoff(attempt);
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
        backoff(attempt);
    }
    Err(Error::Contended {
        refname: refname.into(),
        attempts: 400,
    })
}

/// Fetches, merges and pushes every coordination ref, until the remote accepts or
/// [`MAX_TRIES`] rounds are spent.
pub fn sync(coord: &Coord, remote: &Remote) -> Result<SyncReport> {
    let repo = &coord.repo;
    let mut notices = 0;
    let mut malformed = Vec::new();
    for tries in 1..=MAX_TRIES {
        fetch(repo, remote, &COORD_REFS)?;
        let mut refs = Vec::new();
        let mut pending = Vec::new();
        for refname in COORD_REFS {
            let staged = repo.ref_tip(&remote.staged(refname))?;
            let (action, found, bad) = merge_into_local(repo, refname, staged, &remote.name)?;
            notices += tell(coord, &found)?;
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
        match push(repo, &remote.name, &pending)? {
            Pushed::Accepted => {
                for (refname, oid) in &pending {
                    repo.set_ref(&remote.staged(refname), *oid)?;
                }
                malformed.sort();
                malformed.dedup();
                return Ok(SyncReport {
                    remote: remote.name.clone(),
                    tries,
                    refs,
                    notices,
                    malformed,
                });
            }
            Pushed::Rejected => backoff(tries + 3),
        }
    }
    Err(Error::Contended {
        refname: format!("the coordination refs at {}", remote.name),
        attempts: MAX_TRIES,
    })
}

/// Fetches and merges, without pushing.
pub fn fetch_and_merge(coord: &Coord, remote: &Remote) -> Result<Vec<RefReport>> {
    let repo = &coord.repo;
    fetch(repo, remote, &COORD_REFS)?;
    let mut refs = Vec::new();
    for refname in COORD_REFS {
        let staged = repo.ref_tip(&remote.staged(refname))?;
        let (action, found, _) = merge_into_local(repo, refname, staged, &remote.name)?;
        tell(coord, &found)?;
        refs.push(RefReport {
            refname: refname.into(),
            action: action.into(),
        });
    }
    Ok(refs)
}

/// Pushes what is local and not yet at the remote; a rejection is an error that says to sync.
pub fn push_only(coord: &Coord, remote: &Remote) -> Result<Vec<RefReport>> {
    let repo = &coord.repo;
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

/// Writes the messages a merge owes: one per lost claim or revoked lease. Their ids derive from
/// what happened, so replicas that settle the same conflict write the same message once.
fn tell(coord: &Coord, notices: &[Notice]) -> Result<usize> {
    let messages = crate::messages::Messages::new(coord);
    for notice in notices {
        let (key, to, subject, body, task, at) = match notice {
            Notice::LostClaim {
                task,
                title,
                loser,
                loser_claimed_at,
                winner,
                winner_claimed_at,
            } => (
                format!("lost-claim:{task}:{loser}:{loser_claimed_at}"),
                loser.clone(),
                format!("You lost the claim on task {task}"),
                format!(
                    "Task {task} ({title}) was claimed on two machines: by you at {loser_claimed_at} and by {winner} at {winner_claimed_at}. The earlier claim holds, so the task is {winner}'s. Pick another with `git coord task claim --next`."
                ),
                Some(task.clone()),
                loser_claimed_at.clone().max(winner_claimed_at.clone()),
            ),
            Notice::LeaseRevoked {
                lease,
                loser,
                patterns,
                winner,
                winner_lease,
                at,
            } => (
                format!("lease-revoked:{lease}"),
                loser.clone(),
                format!("Your lease {lease} was revoked"),
                format!(
                    "Your lease {lease} on {} overlapped lease {winner_lease} of {winner}, taken earlier on another machine. The earlier lease holds; yours is revoked. `git coord lease check PATH` tells what you may touch.",
                    patterns.join(", ")
                ),
                None,
                at.clone(),
            ),
        };
        messages.deliver_notice(&key, &to, &subject, &body, task.as_deref(), &at)?;
    }
    Ok(notices.len())
}

/// A write confirmed at `remote`: fetch and merge the ref, apply the operation on the result,
/// push the new commit, and only once the remote accepted it, move the local ref. A rejected
/// push means someone else wrote first: start over, re-checking the operation's preconditions.
pub fn confirmed_update<T>(
    coord: &Coord,
    store: &Store,
    remote: &Remote,
    actor: &Actor,
    mut op: impl FnMut(&Snapshot) -> Result<(Change, T)>,
) -> Result<T> {
    let repo = store.repo;
    let refname = store.refname;
    for attempt in 1..=MAX_TRIES * 4 {
        fetch(repo, remote, &[refname])?;
        let staged = repo.ref_tip(&remote.staged(refname))?;
        let (_, found, _) = merge_into_local(repo, refname, staged, &remote.name)?;
        tell(coord, &found)?;
        let mut snap = store.snapshot()?;
        if snap.tip.is_none() {
            store.ensure_root()?;
            snap = store.snapshot()?;
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
                repo.set_ref(&remote.staged(refname), new)?;
                if repo.cas_ref(refname, snap.tip, new, &change.subject)? == Cas::Lost {
                    // Another local writer moved the ref meanwhile: merge ours in.
                    let (_, found, _) = merge_into_local(repo, refname, Some(new), &remote.name)?;
                    tell(coord, &found)?;
                }
                return Ok(value);
            }
            Pushed::Rejected => backoff(attempt),
        }
    }
    Err(Error::Contended {
        refname: format!("{refname} at {}", remote.name),
        attempts: MAX_TRIES * 4,
    })
}
