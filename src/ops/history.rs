//! Who did what: the `Coord-Agent` and `Coord-Task` trailers the prepare-commit-msg hook adds to
//! commits made in an agent's worktree, an agent's log (its code commits and its coordination
//! commits), the team's activity (the audit log of every refs/coord/* ref as one timeline), and
//! what a re-spawned agent did before.

use std::collections::HashSet;
use std::path::Path;

use crate::error::{Error, Result};
use crate::git::CommitInfo;
use crate::model::agent::Agent;
use crate::model::task::State;
use crate::model::{name, time};
use crate::ops::artifacts::Artifacts;
use crate::ops::context::{Coord, IdentitySource};
use crate::ops::tasks::Tasks;

pub use crate::git::trailer_values;

/// The trailers a commit made now by the acting agent should carry: `Coord-Agent` (only for an
/// agent named by its worktree or GIT_COORD_AGENT, never one guessed from git's user) and one
/// `Coord-Task` per task it holds.
pub fn commit_trailers(coord: &Coord) -> Result<Vec<(&'static str, String)>> {
    let (actor, source) = match coord.identity() {
        Ok(found) => found,
        Err(_) => return Ok(Vec::new()),
    };
    if matches!(source, IdentitySource::GitUser) {
        return Ok(Vec::new());
    }
    let mut trailers = vec![("Coord-Agent", actor.agent.clone())];
    if coord.repo.ref_tip(crate::ops::tasks::TASKS_REF)?.is_some() {
        let index = Tasks::new(coord).load_index()?;
        let mut held: Vec<_> = index
            .tasks()
            .filter(|t| t.assignee() == Some(actor.agent.as_str()) && t.state() == State::Claimed)
            .collect();
        held.sort_by_key(|t| t.urgency_key());
        trailers.extend(held.iter().map(|t| ("Coord-Task", t.id().to_string())));
    }
    Ok(trailers)
}

/// The prepare-commit-msg hook: adds the trailers to the message file git hands it. Amending a
/// commit that already names the agent and its tasks adds nothing twice.
pub fn prepare_commit_msg(coord: &Coord, message_file: &Path) -> Result<usize> {
    let trailers = commit_trailers(coord)?;
    if trailers.is_empty() {
        return Ok(0);
    }
    let file = message_file.to_str().ok_or_else(|| {
        Error::Other(format!(
            "the commit message file is not UTF-8: {}",
            message_file.display()
        ))
    })?;
    let texts: Vec<String> = trailers.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    let mut args = vec![
        "interpret-trailers",
        "--in-place",
        "--if-exists",
        "addIfDifferent",
    ];
    for t in &texts {
        args.push("--trailer");
        args.push(t);
    }
    args.push(file);
    coord.repo.git_ok(&args)?;
    Ok(trailers.len())
}

/// One entry of an agent's log or of the team's activity.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Entry {
    /// `code` (a commit on a branch) or `coordination` (a commit on refs/coord/*).
    pub kind: &'static str,
    /// The branch or ref it was found on.
    pub on: String,
    pub commit: String,
    pub at: String,
    pub agent: String,
    pub op: String,
    pub tasks: Vec<String>,
    pub subject: String,
    #[serde(skip)]
    seconds: i64,
}

fn entry(kind: &'static str, on: &str, c: &CommitInfo) -> Entry {
    let agents = trailer_values(&c.message, "Coord-Agent");
    Entry {
        kind,
        on: on.to_string(),
        commit: c.oid.to_string(),
        at: time::from_seconds(c.seconds),
        agent: agents
            .first()
            .map(|a| a.to_string())
            .unwrap_or_else(|| c.author.clone()),
        op: trailer_values(&c.message, "Coord-Op")
            .first()
            .map(|o| o.to_string())
            .unwrap_or_else(|| {
                if kind == "code" {
                    "commit".into()
                } else {
                    String::new()
                }
            }),
        tasks: trailer_values(&c.message, "Coord-Task")
            .into_iter()
            .map(str::to_string)
            .collect(),
        subject: c.message.lines().next().unwrap_or_default().to_string(),
        seconds: c.seconds,
    }
}

/// The coordination commits of every refs/coord/* ref, newest first, at most `limit` of them,
/// those `keep` accepts.
fn coordination(
    coord: &Coord,
    limit: usize,
    keep: &dyn Fn(&Entry, &CommitInfo) -> bool,
) -> Result<Vec<Entry>> {
    let mut out = Vec::new();
    // The coordination refs' histories are the audit log, in a stable order.
    for refname in crate::store::COORD_REFS {
        let Some(tip) = coord.repo.ref_tip(refname)? else {
            continue;
        };
        let mut found = 0;
        coord.repo.walk_history(tip, |c| {
            if c.parents.is_empty() {
                return true; // the root commit every clone shares: no one's act
            }
            let e = entry("coordination", refname, &c);
            if keep(&e, &c) {
                out.push(e);
                found += 1;
            }
            found < limit
        })?;
    }
    Ok(out)
}

fn newest_first(mut entries: Vec<Entry>, limit: usize) -> Vec<Entry> {
    // Stable: commits of one ref within the same second keep their history's order.
    entries.sort_by_key(|e| std::cmp::Reverse(e.seconds));
    entries.truncate(limit);
    entries
}

/// `git coord log --agent NAME`: the commits on any branch that name the agent in a
/// `Coord-Agent` trailer (its code, and checkpoints that merged it), and its coordination
/// commits, newest first.
pub fn agent_log(coord: &Coord, agent: &str, limit: Option<usize>) -> Result<Vec<Entry>> {
    name::validate("agent name", agent)?;
    let limit = limit.unwrap_or(usize::MAX);
    let names_agent = |c: &CommitInfo| trailer_values(&c.message, "Coord-Agent").contains(&agent);
    let mut out = coordination(coord, limit, &|_, c| names_agent(c))?;
    let mut seen = HashSet::new();
    for (branch, tip) in coord.repo.refs_under("refs/heads/")? {
        let mut found = 0;
        coord.repo.walk_history(tip, |c| {
            if !seen.insert(c.oid) {
                return true;
            }
            if names_agent(&c) {
                let short = branch.strip_prefix("refs/heads/").unwrap_or(&branch);
                out.push(entry("code", short, &c));
                found += 1;
            }
            found < limit
        })?;
    }
    Ok(newest_first(out, limit))
}

/// The team's activity: the audit log of refs/coord/* as one timeline, newest first.
pub fn activity(coord: &Coord, limit: usize) -> Result<Vec<Entry>> {
    Ok(newest_first(
        coordination(coord, limit, &|e, _| !e.op.is_empty())?,
        limit,
    ))
}

/// What an agent did before its current registration (a retired name spawned again): tasks it
/// finished, artifacts it produced, checkpoints that merged its branch.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct EarlierWork {
    /// `id title: summary`, newest first.
    pub tasks_done: Vec<String>,
    /// `id kind: summary`, newest first.
    pub artifacts: Vec<String>,
    pub checkpoints: Vec<u64>,
}

impl EarlierWork {
    pub fn is_empty(&self) -> bool {
        self.tasks_done.is_empty() && self.artifacts.is_empty() && self.checkpoints.is_empty()
    }

    /// A few lines: counts, and the latest of each.
    pub fn lines(&self, each: usize) -> Vec<String> {
        let mut out = Vec::new();
        if !self.tasks_done.is_empty() {
            out.push(format!("- {} task(s) done:", self.tasks_done.len()));
            out.extend(
                self.tasks_done
                    .iter()
                    .take(each)
                    .map(|t| format!("    {t}")),
            );
        }
        if !self.artifacts.is_empty() {
            out.push(format!("- {} artifact(s) produced:", self.artifacts.len()));
            out.extend(self.artifacts.iter().take(each).map(|a| format!("    {a}")));
        }
        if !self.checkpoints.is_empty() {
            let seqs: Vec<String> = self.checkpoints.iter().map(u64::to_string).collect();
            out.push(format!("- merged in checkpoint(s) {}", seqs.join(", ")));
        }
        out
    }
}

/// The work of `agent` from before its current registration; empty for an agent spawned once.
pub fn earlier_work(coord: &Coord, agent: &Agent) -> Result<EarlierWork> {
    let since = agent.created.as_str();
    let mut work = EarlierWork::default();
    let tasks = Tasks::new(coord);
    let index = tasks.load_index()?;
    let mut done: Vec<_> = index
        .tasks()
        .filter(|t| t.state() == State::Done && t.assignee() == Some(agent.name.as_str()))
        .filter(|t| t.updated() < since)
        .collect();
    done.sort_by(|a, b| b.updated().cmp(a.updated()));
    work.tasks_done = done
        .iter()
        .map(|t| {
            format!(
                "{} {}: {}",
                t.id(),
                crate::ops::messages::clip(t.title(), 80),
                crate::ops::messages::clip(t.summary().unwrap_or("no summary"), 120)
            )
        })
        .collect();
    let (mut artifacts, _) = Artifacts::new(coord).list(None)?;
    artifacts.retain(|a| a.created_by == agent.name && a.created.as_str() < since);
    artifacts.reverse();
    work.artifacts = artifacts
        .iter()
        .map(|a| {
            format!(
                "{} {}: {}",
                a.id,
                a.kind.as_str(),
                crate::ops::messages::clip(&a.summary, 120)
            )
        })
        .collect();
    let (checkpoints, _) = crate::store::checkpoint_log::list(&coord.repo)?;
    work.checkpoints = checkpoints
        .iter()
        .filter(|c| c.at.as_str() < since && c.merged.iter().any(|m| m.agent == agent.name))
        .map(|c| c.seq)
        .collect();
    Ok(work)
}
