//! `agent pause NAME` and `agent resume NAME`: one agent stops taking work while the team goes
//! on. The pause is in the agent's registration in refs/coord/agents (`paused`, with an event in
//! its history); claims by a paused agent are refused as a paused team's are, its stop hook lets
//! it stop, and `supervise` stops it and does not launch it again until it is resumed.

use crate::error::{Error, Result};
use crate::model::agent::{Agent, AgentPause};
use crate::ops::agents::{RegistrationEdit, edit_registration};
use crate::ops::context::Coord;

/// Pauses the active agent `agent_name` for `reason`. Pausing a paused agent writes nothing.
pub fn pause(coord: &Coord, agent_name: &str, reason: &str) -> Result<Agent> {
    set(coord, agent_name, Some(reason))
}

/// Lets the agent take work again. Resuming an agent that is not paused writes nothing.
pub fn resume(coord: &Coord, agent_name: &str) -> Result<Agent> {
    set(coord, agent_name, None)
}

fn set(coord: &Coord, agent_name: &str, reason: Option<&str>) -> Result<Agent> {
    edit_registration(coord, agent_name, "it is retired", |agent, by, at| {
        if agent.paused.is_some() == reason.is_some() {
            return Ok(None); // already as asked
        }
        let op = if reason.is_some() { "pause" } else { "resume" };
        agent.paused = reason.map(|reason| AgentPause {
            at: at.to_string(),
            by: by.to_string(),
            reason: reason.to_string(),
        });
        Ok(Some(RegistrationEdit {
            op: op.into(),
            note: reason.map(str::to_string),
            subject: format!("{op} agent {agent_name} by {by}"),
            coord_op: format!("agent-{op}"),
        }))
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
