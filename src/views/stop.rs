//! The stop hook of agent CLIs (Claude Code's Stop contract; Codex and Gemini CLI's AfterAgent
//! read the same output): keep a worker going while it holds a claimed task, has unread
//! messages, or ready work exists for its role; let it stop when the team is paused or
//! cancelled, when nothing is left, or after an idle time with no progress. Malformed input never
//! keeps an agent forever: it lets it stop.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::model::task::State;
use crate::ops::agents::Agents;
use crate::ops::context::Coord;
use crate::ops::messages::{InboxFilter, Messages, clip};
use crate::ops::tasks::{TASKS_REF, Tasks};
use crate::ops::team::TeamState;

/// The most of the hook's input read (a transcript path and a few fields are all it needs).
const MAX_INPUT: usize = 1024 * 1024;

/// What the hook decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Keep the agent working; `reason` is its next instruction.
    Block { reason: String },
    /// Let it stop; `why` is said on stderr (empty: say nothing).
    Allow { why: String },
}

fn allow(why: impl Into<String>) -> Decision {
    Decision::Allow { why: why.into() }
}

/// Decides from the hook's JSON input.
pub fn decide(input: &str) -> Decision {
    if input.len() > MAX_INPUT {
        return allow("the hook input is larger than 1 MiB; letting the agent stop");
    }
    let value: Value = match serde_json::from_str(input) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => return allow("the hook input is not a JSON object; letting the agent stop"),
        Err(e) => {
            return allow(format!(
                "cannot read the hook input ({e}); letting the agent stop"
            ));
        }
    };
    let cwd = match value.get("cwd") {
        Some(Value::String(dir)) => PathBuf::from(dir),
        None => match std::env::current_dir() {
            Ok(dir) => dir,
            Err(e) => return allow(format!("no cwd in the hook input and none here ({e})")),
        },
        Some(_) => return allow("cwd in the hook input is not a string; letting the agent stop"),
    };
    match decide_in(&cwd) {
        Ok(d) => d,
        Err(e) => allow(format!(
            "git-coord could not decide ({e}); letting the agent stop"
        )),
    }
}

fn decide_in(cwd: &Path) -> crate::error::Result<Decision> {
    let coord = match Coord::open(cwd, None) {
        Ok(c) => c,
        Err(_) => return Ok(allow("")), // not a repository: nothing to coordinate
    };
    if coord.repo.ref_tip(TASKS_REF)?.is_none() {
        return Ok(allow("")); // git-coord is not used here
    }
    let team = crate::ops::team::get(&coord)?;
    if team.state != TeamState::Running {
        return Ok(allow(format!(
            "the team is {}{}",
            team.state.as_str(),
            team.reason.map(|r| format!(": {r}")).unwrap_or_default()
        )));
    }
    let agent = coord.actor()?.agent;
    let agents = Agents::new(&coord)?;
    let role = agents.get(&agent)?.map(|a| a.role);
    let tasks = Tasks::new(&coord);
    let index = tasks.load_index()?;
    let mut lines = Vec::new();
    let mut claimed: Vec<_> = index
        .tasks()
        .filter(|t| t.assignee() == Some(agent.as_str()) && t.state() == State::Claimed)
        .collect();
    claimed.sort_by_key(|t| t.urgency_key());
    for t in claimed.iter().take(3) {
        lines.push(format!(
            "You hold task {}: {}. Keep working on it; when it is finished run `git coord task done {} --summary \"<what you did>\"` (or `git coord task release {}` to give it back).",
            t.id(),
            clip(t.title(), 100),
            t.id(),
            t.id()
        ));
    }
    let inbox = Messages::new(&coord).inbox(
        &agent,
        &InboxFilter {
            limit: Some(1),
            ..InboxFilter::default()
        },
    )?;
    if let Some(first) = inbox.messages.first() {
        lines.push(format!(
            "{} unread message(s); first: \"{}\" from {}. Read it: `git coord read {}` (all: `git coord inbox`).",
            inbox.unread,
            clip(&first.message.subject, 80),
            first.message.from,
            first.message.id
        ));
    }
    let is_worker = role.as_deref().is_some_and(|r| r != "organiser");
    if claimed.is_empty() && is_worker {
        let ready = crate::ops::tasks::ready_tasks(&index, role.as_deref());
        if let Some(next) = ready.first() {
            lines.push(format!(
                "Ready work for role {}: {} {}. Claim it: `git coord task claim --next --role {}`, then `git coord brief`.",
                role.as_deref().unwrap_or_default(),
                next.id(),
                clip(next.title(), 100),
                role.as_deref().unwrap_or_default()
            ));
        }
    }
    if lines.is_empty() {
        forget_progress(&coord, &agent);
        return Ok(allow(""));
    }
    // Still something to do: but an agent that makes no progress for the idle time may stop.
    let idle = agents.config().stop_idle;
    let stalled_for = stalled(&coord, &agent)?;
    if stalled_for >= idle.as_secs() {
        return Ok(allow(format!(
            "no progress by {agent} for {}m (stop_idle in .coord.yaml); letting it stop",
            stalled_for / 60
        )));
    }
    Ok(Decision::Block {
        reason: lines.join("\n"),
    })
}

/// Seconds since the coordination state last changed while this agent was being kept going:
/// the tips of refs/coord/tasks and refs/coord/inbox are remembered in a local file, and any
/// change restarts the clock.
fn stalled(coord: &Coord, agent: &str) -> crate::error::Result<u64> {
    let tips = format!(
        "{} {}",
        tip_text(coord, TASKS_REF)?,
        tip_text(coord, crate::ops::messages::INBOX_REF)?
    );
    let file = progress_file(coord, agent);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    if let Ok(text) = std::fs::read_to_string(&file)
        && let Some((since, seen)) = text.trim().split_once(' ')
        && seen == tips
        && let Ok(since) = since.parse::<u64>()
    {
        return Ok(now.saturating_sub(since));
    }
    if let Some(dir) = file.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let _ = std::fs::write(&file, format!("{now} {tips}\n"));
    Ok(0)
}

fn forget_progress(coord: &Coord, agent: &str) {
    let _ = std::fs::remove_file(progress_file(coord, agent));
}

fn progress_file(coord: &Coord, agent: &str) -> PathBuf {
    coord
        .repo
        .common_dir()
        .join("coord")
        .join("stop")
        .join(agent)
}

fn tip_text(coord: &Coord, refname: &str) -> crate::error::Result<String> {
    Ok(coord
        .repo
        .ref_tip(refname)?
        .map(|o| o.to_string())
        .unwrap_or_else(|| "-".into()))
}
