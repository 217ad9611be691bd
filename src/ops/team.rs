//! The team's state: running, paused or cancelled, in `team.yaml` of refs/coord/agents. Paused
//! and cancelled teams take no new claims, and their stop hooks let workers stop; so does a
//! paused agent (ops/agent_pause.rs), whose pause this module checks with the team's.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::agent::{Agent, AgentStatus};
use crate::model::{parse_document, time};
use crate::ops::context::Coord;
use crate::store::AGENTS_REF;
use crate::store::{Change, Store};

const TEAM_PATH: &str = "team.yaml";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TeamState {
    #[default]
    Running,
    Paused,
    Cancelled,
}

impl TeamState {
    pub fn as_str(self) -> &'static str {
        match self {
            TeamState::Running => "running",
            TeamState::Paused => "paused",
            TeamState::Cancelled => "cancelled",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Team {
    pub format: u32,
    pub state: TeamState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default)]
    pub at: String,
    #[serde(default)]
    pub by: String,
}

/// The team's state now (running when never set, or when the document cannot be read).
pub fn get(coord: &Coord) -> Result<Team> {
    let store = Store::new(&coord.repo, AGENTS_REF);
    read(coord, &store, &store.snapshot()?)
}

/// The team document in `snap`; one that does not load counts as running, and the user is told.
fn read(coord: &Coord, store: &Store, snap: &crate::store::Snapshot) -> Result<Team> {
    let Some(bytes) = store.read(snap, TEAM_PATH)? else {
        return Ok(Team::default());
    };
    match parse_document(&bytes, AGENTS_REF, TEAM_PATH, 1, |t: &Team| t.format) {
        Ok(team) => Ok(team),
        Err(e) => {
            coord.warn(format!(
                "ignoring {AGENTS_REF}:{TEAM_PATH}, so the team counts as running: {e}"
            ));
            Ok(Team::default())
        }
    }
}

/// Sets the team's state; setting the state it has writes nothing.
pub fn set(coord: &Coord, state: TeamState, reason: Option<String>) -> Result<Team> {
    let actor = coord.actor()?;
    let store = Store::new(&coord.repo, AGENTS_REF);
    store.update(&actor, |snap| {
        let current = read(coord, &store, snap)?;
        if current.state == state && (reason.is_none() || current.reason == reason) {
            return Ok((Change::default(), current));
        }
        let team = Team {
            format: 1,
            state,
            reason: reason.clone(),
            at: time::now(),
            by: actor.agent.clone(),
        };
        let yaml = serde_saphyr::to_string(&team).expect("a team state serializes");
        let change = Change {
            reads: None,
            docs: vec![(TEAM_PATH.to_string(), Some(yaml.into_bytes()))],
            subject: format!("team {} by {}", state.as_str(), actor.agent),
            trailers: vec![("Coord-Op", format!("team-{}", state.as_str()))],
        };
        Ok((change, team))
    })
}

/// Refuses new claims while the team is paused or cancelled, or `claimant` is paused (read
/// from the same snapshot of refs/coord/agents).
pub fn check_claims_allowed(coord: &Coord, claimant: &str) -> Result<()> {
    let store = Store::new(&coord.repo, AGENTS_REF);
    let snap = store.snapshot()?;
    let team = read(coord, &store, &snap)?;
    if team.state != TeamState::Running {
        return Err(Error::TeamStopped {
            state: team.state.as_str().to_string(),
            reason: team.reason.unwrap_or_else(|| "no reason given".into()),
        });
    }
    let path = Agent::path(claimant);
    let Some(bytes) = store.read(&snap, &path)? else {
        return Ok(()); // not a registered agent: nothing of its own to pause
    };
    match Agent::from_yaml(&bytes, AGENTS_REF, &path) {
        Ok(Agent {
            paused: Some(pause),
            status: AgentStatus::Active,
            ..
        }) => Err(crate::ops::agent_pause::paused_error(claimant, &pause)),
        _ => Ok(()),
    }
}
