//! `agent edit NAME --role R`: an agent changes role. The registration in refs/coord/agents gets
//! the new role and the role's capabilities, and an event in its history; brief, ready and the
//! stop hook read the role from there, so they follow it from the next call.

use crate::error::Result;
use crate::model::agent::{Agent, AgentStatus};
use crate::model::name;
use crate::ops::agents::{AGENTS_REF, Agents, RegistrationEdit, edit_registration};
use crate::ops::context::Coord;
use crate::store::Store;

/// Gives the active agent `name` the role `role` (one of the project's roles). The same role
/// again writes nothing.
pub fn change_role(coord: &Coord, agent_name: &str, role: &str) -> Result<Agent> {
    name::validate("agent name", agent_name)?;
    let role = Agents::new(coord)?.config().role(role)?.clone();
    edit_registration(
        coord,
        agent_name,
        "it is retired; spawn it again with the role it should have",
        |agent, by, _| {
            if agent.role == role.name {
                return Ok(None);
            }
            let note = format!("{} -> {}", agent.role, role.name);
            agent.role = role.name.clone();
            agent.capabilities = role.capabilities.clone();
            Ok(Some(RegistrationEdit {
                op: "role".into(),
                subject: format!("edit agent {agent_name} by {by}: role {note}"),
                note: Some(note),
                coord_op: "agent-edit".into(),
            }))
        },
    )
}

/// Which roles' tasks `ready` and `claim --next` offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoleFilter {
    /// The acting agent's own role (tasks with no role are open to every role).
    Own,
    /// This role.
    Named(String),
    /// Every role.
    Any,
}

impl RoleFilter {
    /// `--role R`, `--any-role`, or neither (the acting agent's own role).
    pub fn from_flags(role: Option<String>, any_role: bool) -> RoleFilter {
        match (role, any_role) {
            (Some(role), _) => RoleFilter::Named(role),
            (None, true) => RoleFilter::Any,
            (None, false) => RoleFilter::Own,
        }
    }
}

/// The role `filter` routes work by for the acting agent: its registered role for
/// [`RoleFilter::Own`], or None (every task) when it is not an active registered agent: a human
/// working in the main worktree has no role, so every ready task is open to them.
pub fn routing_role(coord: &Coord, filter: RoleFilter) -> Result<Option<String>> {
    match filter {
        RoleFilter::Named(role) => {
            name::validate("role", &role)?;
            Ok(Some(role))
        }
        RoleFilter::Any => Ok(None),
        RoleFilter::Own => {
            let me = coord.actor()?.agent;
            Ok(active_agent(coord, &me)?.map(|a| a.role))
        }
    }
}

/// `name`'s registration if it is active. Reads the one document, not the configuration.
fn active_agent(coord: &Coord, agent_name: &str) -> Result<Option<Agent>> {
    let store = Store::new(&coord.repo, AGENTS_REF);
    let path = Agent::path(agent_name);
    let Some(bytes) = store.read(&store.snapshot()?, &path)? else {
        return Ok(None);
    };
    let agent = Agent::from_yaml(&bytes, AGENTS_REF, &path)?;
    Ok(Some(agent).filter(|a| a.status == AgentStatus::Active))
}
