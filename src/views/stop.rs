//! The stop hook of agent CLIs (Claude Code's Stop contract; Codex and Gemini CLI's AfterAgent
//! read the same output): keep a worker going while it holds a claimed task, has unread
//! messages, or ready work exists for its role; let it stop when the team (or the agent itself)
//! is paused or cancelled (saying why on stdout, in the client's contract), when nothing is left,
//! after an idle time with no progress by the agent itself (its commits, its coordination writes;
//! a teammate's do not count), or after a bounded number of blocks in a row without progress.
//! Malformed input never keeps an agent forever: it lets it stop.

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
    /// Let it stop because the team is paused or cancelled: `reason` goes to the client on
    /// stdout (`{"continue":false,"stopReason":...}`), and on stderr.
    Halt { reason: String },
}

fn allow(why: impl Into<String>) -> Decision {
    Decision::Allow { why: why.into() }
}

/// Who the hook decides for when its input does not say: the command line's `-C` (else the
/// directory it runs in) and `--agent`.
#[derive(Debug, Clone, Copy)]
pub struct Asked<'a> {
    pub dir: &'a Path,
    pub agent: Option<&'a str>,
}

/// Decides from the hook's JSON input: for the agent `asked` names (else the one acting in the
/// input's `cwd`), in that `cwd` (else `asked.dir`).
pub fn decide(input: &str, asked: Asked<'_>) -> Decision {
    if let Some(agent) = asked.agent
        && let Err(e) = crate::model::name::validate("agent name", agent)
    {
        return allow(format!("{e}; letting the agent stop"));
    }
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
        Some(Value::String(dir)) => asked.dir.join(dir),
        None => asked.dir.to_path_buf(),
        Some(_) => return allow("cwd in the hook input is not a string; letting the agent stop"),
    };
    // The count of blocks is per agent and session. `stop_hook_active` is not used: Gemini CLI
    // sends false after every retry turn that made tool calls, so it cannot start a new count.
    let session = match value.get("session_id") {
        Some(Value::String(id)) => session_key(id),
        _ => NO_SESSION.to_string(),
    };
    match decide_in(&cwd, &session, asked.agent, true) {
        Ok(d) => d,
        Err(e) => allow(format!(
            "git-coord could not decide ({e}); letting the agent stop"
        )),
    }
}

/// How often an idle stop hook fetches from the remote while it waits for work.
const IDLE_POLL: std::time::Duration = std::time::Duration::from_secs(2);

/// Stands for a client that sends no session id: all its stops are one session.
const NO_SESSION: &str = "-";

/// A session id as one word of the progress file: whitespace and control characters become `_`,
/// at most 128 characters.
pub(crate) fn session_key(id: &str) -> String {
    let key: String = id
        .chars()
        .take(128)
        .map(|c| {
            if c.is_whitespace() || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    if key.is_empty() {
        NO_SESSION.to_string()
    } else {
        key
    }
}

fn decide_in(
    cwd: &Path,
    session: &str,
    agent: Option<&str>,
    may_wait: bool,
) -> crate::error::Result<Decision> {
    let coord = match Coord::open(cwd, agent.map(str::to_string)) {
        Ok(c) => c,
        Err(_) => return Ok(allow("")), // not a repository: nothing to coordinate
    };
    if coord.repo.ref_tip(TASKS_REF)?.is_none() {
        return Ok(allow("")); // git-coord is not used here
    }
    let team = crate::ops::team::get(&coord)?;
    if team.state != TeamState::Running {
        let resume = match team.state {
            TeamState::Paused => "; stop here until `git coord resume`",
            _ => "; stop here, the team's work is called off",
        };
        return Ok(Decision::Halt {
            reason: format!(
                "the team is {}{}{resume}",
                team.state.as_str(),
                team.reason.map(|r| format!(": {r}")).unwrap_or_default()
            ),
        });
    }
    let agent = coord.actor()?.agent;
    let agents = Agents::new(&coord)?;
    let registered = agents.get(&agent)?;
    if let Some(pause) = registered.as_ref().and_then(|a| a.paused.as_ref()) {
        return Ok(Decision::Halt {
            reason: format!(
                "agent {agent} is paused: {}; stop here until `git coord agent resume {agent}`",
                pause.reason
            ),
        });
    }
    let role = registered.map(|a| a.role);
    let tasks = Tasks::new(&coord);
    // The tasks it holds and the ready ones: none of them done.
    let index = tasks.load_ready_index()?;
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
        let idle_wait = agents.config().idle_wait;
        if !may_wait || idle_wait.is_zero() {
            return Ok(allow(""));
        }
        // Nothing to do now: stay available for `idle_wait`, as `wait` would (an unread
        // message, or ready work for its role), and decide again as soon as something arrives.
        let what = crate::ops::wait::WaitFor {
            inbox: true,
            task: None,
            ready: is_worker,
            timeout: Some(idle_wait),
            interval: IDLE_POLL,
        };
        return match crate::ops::wait::wait(&coord, &what) {
            Ok(_) => decide_in(cwd, session, Some(&agent), false),
            Err(crate::error::Error::WaitTimedOut { .. }) => Ok(allow(format!(
                "nothing arrived for {agent} within idle_wait ({}); letting it stop",
                duration_text(idle_wait.as_secs())
            ))),
            Err(e) => Ok(allow(format!(
                "waiting for work failed ({e}); letting the agent stop"
            ))),
        };
    }
    // Still something to do: but an agent that makes no progress of its own for the idle
    // time, or is kept going too many times in a row without any, may stop.
    let config = agents.config();
    let now = now_seconds();
    let seen = Seen::now(&coord)?;
    let mut clock = match Progress::load(&coord, &agent) {
        Some(last) if !made_progress(&coord, &agent, &last.seen, &seen)? => last,
        _ => Progress {
            since: now,
            blocks: 0,
            session: session.to_string(),
            seen: seen.clone(),
        },
    };
    if clock.session != session {
        // A new session of the agent starts a new count; the idle clock goes on.
        clock.blocks = 0;
        clock.session = session.to_string();
    }
    // The next stop looks only at what is new since this one.
    clock.seen = seen;
    let stalled_for = now.saturating_sub(clock.since);
    if stalled_for >= config.stop_idle.as_secs() {
        clock.save(&coord, &agent);
        return Ok(allow(format!(
            "no progress by {agent} for {} (stop_idle {} in .coord.yaml); letting it stop",
            duration_text(stalled_for),
            duration_text(config.stop_idle.as_secs())
        )));
    }
    if clock.blocks >= config.stop_max_blocks {
        clock.save(&coord, &agent);
        return Ok(allow(format!(
            "{agent} was kept going {} time(s) in a row with no progress (no commit, no coordination write) for {} (stop_max_blocks in .coord.yaml); letting it stop",
            clock.blocks,
            duration_text(stalled_for)
        )));
    }
    clock.blocks += 1;
    clock.save(&coord, &agent);
    Ok(Decision::Block {
        reason: lines.join("\n"),
    })
}

/// `45s` under a minute, else `12m` (or `1h 5m`): never `0m`.
pub fn duration_text(seconds: u64) -> String {
    match seconds {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s => format!("{}h {}m", s / 3600, (s % 3600) / 60),
    }
}

/// The stop hook's memory of one agent: since when it has made no progress of its own, how many
/// times in a row it was kept going meanwhile in its current session, and what it saw then. A
/// local file, never shared: `SINCE BLOCKS SESSION HEAD TIP...` on one line.
struct Progress {
    since: u64,
    blocks: u32,
    session: String,
    seen: Seen,
}

/// The commit checked out where the agent works and the tip of each audited ref (`-`: none).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    head: String,
    tips: Vec<String>,
}

impl Seen {
    fn now(coord: &Coord) -> crate::error::Result<Seen> {
        let text = |oid: Option<crate::git::Oid>| oid.map_or_else(|| "-".into(), |o| o.to_string());
        let mut tips = Vec::with_capacity(crate::store::COORD_REFS.len());
        for refname in crate::store::COORD_REFS {
            tips.push(text(coord.repo.ref_tip(refname)?));
        }
        Ok(Seen {
            head: text(coord.repo.head_commit()?),
            tips,
        })
    }
}

impl Progress {
    fn load(coord: &Coord, agent: &str) -> Option<Progress> {
        let text = std::fs::read_to_string(progress_file(coord, agent)).ok()?;
        let mut fields = text.split_whitespace();
        let since = fields.next()?.parse().ok()?;
        let blocks = fields.next()?.parse().ok()?;
        let session = fields.next()?.to_string();
        let head = fields.next()?.to_string();
        let tips: Vec<String> = fields.map(str::to_string).collect();
        (tips.len() == crate::store::COORD_REFS.len()).then_some(Progress {
            since,
            blocks,
            session,
            seen: Seen { head, tips },
        })
    }

    fn save(&self, coord: &Coord, agent: &str) {
        let file = progress_file(coord, agent);
        if let Some(dir) = file.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = std::fs::write(
            &file,
            format!(
                "{} {} {} {} {}\n",
                self.since,
                self.blocks,
                self.session,
                self.seen.head,
                self.seen.tips.join(" ")
            ),
        );
    }
}

fn now_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Whether the agent itself made progress between two stops: the commit checked out where it
/// works moved (its branch), or one of the commits added to an audited ref since is its own (a
/// commit it authored). A teammate's commits and writes do not count; nor do heartbeats (not in
/// these refs). Only the new commits are read, so a stop where nothing moved reads none.
fn made_progress(
    coord: &Coord,
    agent: &str,
    before: &Seen,
    now: &Seen,
) -> crate::error::Result<bool> {
    if before.head != now.head {
        return Ok(true);
    }
    for (old, new) in before.tips.iter().zip(&now.tips) {
        if old == new {
            continue;
        }
        let Ok(tip) = crate::git::Oid::from_hex(new.as_bytes()) else {
            continue; // the ref is gone: nothing of the agent's is new there
        };
        let old = crate::git::Oid::from_hex(old.as_bytes()).ok();
        let mut looked = 0;
        let mut own = false;
        coord.repo.walk_history(tip, |c| {
            if Some(c.oid) == old {
                return false;
            }
            looked += 1;
            own = c.author == agent;
            !own && looked < OWN_WRITE_DEPTH
        })?;
        if own {
            return Ok(true);
        }
    }
    Ok(false)
}

/// How many of the commits added to a ref since the last stop are searched for the agent's own.
const OWN_WRITE_DEPTH: usize = 500;

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
