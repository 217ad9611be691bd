//! An agent: one YAML document at `agents/<name>.yaml` in refs/coord/agents.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::{name, parse_document};

pub const AGENT_FORMAT: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentStatus {
    Active,
    Retired,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Agent {
    pub format: u32,
    pub name: String,
    pub role: String,
    /// The agent's own branch (`agent/<name>`); None for an agent registered without a worktree.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// Absolute path of the agent's worktree on the machine that spawned it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worktree: Option<String>,
    /// The commit the branch started from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
    /// The human behind the agent, `Name <email>`.
    pub human: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<String>,
    pub status: AgentStatus,
    pub created: String,
    pub created_by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired: Option<String>,
    /// Set while the agent is paused (`agent pause`, the breaker, a supervisor giving up on a
    /// crash loop): its claims are refused, its stop hook lets it stop, supervise stops it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<AgentPause>,
    /// Changes made to the registration after its spawn (a role change, a pause), oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<AgentEvent>,
    /// Fields of a newer build of the same format, kept as they are.
    #[serde(flatten)]
    pub extra: std::collections::BTreeMap<String, serde_json::Value>,
}

/// Why and since when an agent is paused, and by whom.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentPause {
    pub at: String,
    pub by: String,
    pub reason: String,
}

/// One change to an agent's registration: when, by whom, what (`role`), and from what to what.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentEvent {
    pub at: String,
    pub by: String,
    pub op: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Agent {
    pub fn path(name: &str) -> String {
        format!("agents/{name}.yaml")
    }

    /// The branch of the agent called `name`: the only one git-coord merges or deletes for it.
    pub fn branch_for(name: &str) -> String {
        format!("agent/{name}")
    }

    pub fn to_yaml(&self) -> String {
        serde_saphyr::to_string(self).expect("an agent always serializes")
    }

    pub fn from_yaml(bytes: &[u8], refname: &str, path: &str) -> Result<Agent> {
        let agent: Agent =
            parse_document(bytes, refname, path, AGENT_FORMAT, |a: &Agent| a.format)?;
        let malformed = |why: String| Error::Malformed {
            refname: refname.into(),
            path: path.into(),
            why,
        };
        if path != Agent::path(&agent.name) {
            return Err(malformed(format!(
                "name '{}' does not match its path",
                agent.name
            )));
        }
        name::validate("agent name", &agent.name).map_err(|e| malformed(e.to_string()))?;
        name::validate("role", &agent.role).map_err(|e| malformed(e.to_string()))?;
        // A document is data: the only branch it may name is the agent's own.
        if let Some(branch) = &agent.branch
            && *branch != Agent::branch_for(&agent.name)
        {
            return Err(malformed(format!(
                "branch '{branch}' is not the agent's own ({})",
                Agent::branch_for(&agent.name)
            )));
        }
        Ok(agent)
    }
}
