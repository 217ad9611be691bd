//! `agent pause NAME` and `agent resume NAME`: one agent stops taking work while the team goes
//! on. The pause is in the agent's registration in refs/coord/agents (`paused`, with an event in
//! its history); claims by a paused agent are refused as a paused team's are, its stop hook lets
//! it stop, and `supervise` stops it and does not launch it again until it is resumed.

use crate::error::{Error, Result};
use crate::model::agent::{Agent, AgentEvent, AgentPause, AgentStatus};
use crate::model::{name, time};
use crate::ops::agents::AGENTS_REF;
use crate::ops::context::Coord;
use crate::store::{Change, Store};

/// Pauses the active agent `agent_name` for `reason`. Pausing a paused agent writes nothing.
pub fn pause(coord: &Coord, agent_name: &str, reason: &str) -> Result<Agent> {
    set(coord, agent_name, Some(reason))
}

/// Lets the agent take work again. Resuming an agent that is not paused writes nothing.
pub fn resume(coord: &Coord, agent_name: &str) -> Result<Agent> {
    set(coord, agent_name, None)
}

fn set(coord: &Coord, agent_name: &str, reason: Option<&str>) -> Result<Agent> {
    name::validate("agent name", agent_name)?;
    let actor = coord.actor()?;
    let store = Store::new(&coord.repo, AGENTS_REF);
    let path = Agent::path(agent_name);
    store.update(&actor, |snap| {
        let bytes = store.read(snap, &path)?.ok_or_else(|| {
            Error::invalid(
                "agent",
                agent_name,
                "no such agent; `git coord agent list` shows them",
            )
        })?;
        let mut agent = Agent::from_yaml(&bytes, AGENTS_REF, &path)?;
        if agent.status == AgentStatus::Retired {
            return Err(Error::invalid("agent", agent_name, "it is retired"));
        }
        if agent.paused.is_some() == reason.is_some() {
            return Ok((Change::default(), agent)); // already as asked
        }
        let op = if reason.is_some() { "pause" } else { "resume" };
        let at = time::now();
        agent.paused = reason.map(|reason| AgentPause {
            at: at.clone(),
            by: actor.agent.clone(),
            reason: reason.to_string(),
        });
        agent.history.push(AgentEvent {
            at,
            by: actor.agent.clone(),
            op: op.into(),
            note: reason.map(str::to_string),
        });
        let change = Change {
            reads: None,
            docs: vec![(path.clone(), Some(agent.to_yaml().into_bytes()))],
            subject: format!("{op} agent {agent_name} by {}", actor.agent),
            trailers: vec![
                ("Coord-Op", format!("agent-{op}")),
                ("Coord-Target", agent_name.to_string()),
            ],
        };
        Ok((change, agent))
    })
}

/// What a claim by a paused agent says.
pub fn paused_error(agent: &str, pause: &AgentPause) -> Error {
    Error::Refused {
        why: format!(
            "agent {agent} is paused ({}, by {} at {}): no new claims",
            pause.reason, pause.by, pause.at
        ),
        hint: format!("`git coord agent resume {agent}` lets it claim again"),
    }
}
