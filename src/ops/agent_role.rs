//! `agent edit NAME --role R`: an agent changes role. The registration in refs/coord/agents gets
//! the new role and the role's capabilities, and an event in its history; brief, ready and the
//! stop hook read the role from there, so they follow it from the next call.

use crate::error::{Error, Result};
use crate::model::agent::{Agent, AgentEvent, AgentStatus};
use crate::model::{name, time};
use crate::ops::agents::{AGENTS_REF, Agents};
use crate::ops::context::Coord;
use crate::store::{Change, Store};

/// Gives the active agent `name` the role `role` (one of the project's roles). The same role
/// again writes nothing.
pub fn change_role(coord: &Coord, agent_name: &str, role: &str) -> Result<Agent> {
    name::validate("agent name", agent_name)?;
    let agents = Agents::new(coord)?;
    let role = agents.config().role(role)?.clone();
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
            return Err(Error::invalid(
                "agent",
                agent_name,
                "it is retired; spawn it again with the role it should have",
            ));
        }
        if agent.role == role.name {
            return Ok((
                Change {
                    reads: None,
                    docs: Vec::new(),
                    subject: String::new(),
                    trailers: Vec::new(),
                },
                agent,
            ));
        }
        let note = format!("{} -> {}", agent.role, role.name);
        agent.role = role.name.clone();
        agent.capabilities = role.capabilities.clone();
        agent.history.push(AgentEvent {
            at: time::now(),
            by: actor.agent.clone(),
            op: "role".into(),
            note: Some(note.clone()),
        });
        let change = Change {
            reads: None,
            docs: vec![(path.clone(), Some(agent.to_yaml().into_bytes()))],
            subject: format!("edit agent {agent_name} by {}: role {note}", actor.agent),
            trailers: vec![
                ("Coord-Op", "agent-edit".to_string()),
                ("Coord-Target", agent_name.to_string()),
            ],
        };
        Ok((change, agent))
    })
}

/// The role of the acting agent, as refs/coord/agents has it now.
pub fn acting_role(coord: &Coord) -> Result<String> {
    let me = coord.actor()?.agent;
    match Agents::new(coord)?.get(&me)? {
        Some(agent) if agent.status == AgentStatus::Active => Ok(agent.role),
        _ => Err(Error::invalid(
            "agent",
            &me,
            "it is not a registered agent, so it has no role; use --role R",
        )),
    }
}
