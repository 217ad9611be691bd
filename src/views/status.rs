//! The team at a glance, gathered once for `status`, the dashboard and whoever else shows it: task
//! counts, each agent with what it holds, leases, unread mail, workflows, the last checkpoint.

use std::collections::BTreeMap;

use crate::error::Result;
use crate::model::checkpoint::Checkpoint;
use crate::model::task::State;
use crate::ops::agents::{AgentView, Agents};
use crate::ops::checkpoints::Checkpoints;
use crate::ops::context::Coord;
use crate::ops::leases::Leases;
use crate::ops::messages::{InboxFilter, Messages};
use crate::ops::tasks::{Tasks, ready_tasks};
use crate::ops::team::{Team, get as team_state};
use crate::ops::workflows::{self, WorkflowStatus};
use crate::store::index::TaskIndex;

/// An agent and the tasks it holds (id, title).
pub struct AgentRow {
    pub view: AgentView,
    pub claimed: Vec<(String, String)>,
}

impl AgentRow {
    /// `busy` (live, holds a claim), `idle` (live, holds none), `stale` or `retired`.
    pub fn presence(&self) -> &'static str {
        presence_word(&self.view, !self.claimed.is_empty())
    }
}

/// The word for an agent's presence: `busy` (live, holds a claim), `idle` (live, holds none),
/// `stale` (silent past `stale_after`), or `retired`.
pub fn presence_word(view: &AgentView, holds_claim: bool) -> &'static str {
    match (view.agent.status, view.stale, holds_claim) {
        (crate::model::agent::AgentStatus::Retired, _, _) => "retired",
        (_, true, _) => "stale",
        (_, false, true) => "busy",
        (_, false, false) => "idle",
    }
}

/// Every registered agent (retired ones too with `all`) with what it holds; and the documents
/// that could not be read.
pub fn agents_with_claims(coord: &Coord, all: bool) -> Result<(Vec<AgentRow>, Vec<String>)> {
    let index = Tasks::new(coord).load_index()?;
    let (views, problems) = Agents::new(coord)?.list(all)?;
    Ok((agent_rows(&index, views), problems))
}

pub struct TeamStatus {
    /// Who asked.
    pub me: String,
    pub team: Team,
    pub counts: BTreeMap<State, usize>,
    pub ready: usize,
    pub agents: Vec<AgentRow>,
    pub active_leases: usize,
    pub unread: usize,
    pub workflows: Vec<WorkflowStatus>,
    pub last_checkpoint: Option<Checkpoint>,
}

impl TeamStatus {
    pub fn gather(coord: &Coord) -> Result<TeamStatus> {
        let me = coord.actor()?.agent;
        let index = Tasks::new(coord).load_index()?;
        let mut counts: BTreeMap<State, usize> = BTreeMap::new();
        for t in index.tasks() {
            *counts.entry(t.state()).or_default() += 1;
        }
        let (views, _) = Agents::new(coord)?.list(false)?;
        let unread = Messages::new(coord)
            .inbox(
                &me,
                &InboxFilter {
                    limit: Some(0),
                    ..InboxFilter::default()
                },
            )?
            .unread;
        Ok(TeamStatus {
            team: team_state(coord)?,
            ready: ready_tasks(&index, None).len(),
            agents: agent_rows(&index, views),
            active_leases: Leases::new(coord).list(false)?.0.len(),
            unread,
            workflows: workflows::status(coord, None)?,
            last_checkpoint: Checkpoints::new(coord).list()?.0.pop(),
            counts,
            me,
        })
    }

    pub fn count(&self, state: State) -> usize {
        self.counts.get(&state).copied().unwrap_or(0)
    }
}

/// Each agent with the tasks it holds claimed.
pub fn agent_rows(index: &TaskIndex, views: Vec<AgentView>) -> Vec<AgentRow> {
    let mut held: BTreeMap<&str, Vec<(String, String)>> = BTreeMap::new();
    for t in index.tasks().filter(|t| t.state() == State::Claimed) {
        if let Some(who) = t.assignee() {
            held.entry(who)
                .or_default()
                .push((t.id().to_string(), t.title().to_string()));
        }
    }
    views
        .into_iter()
        .map(|view| AgentRow {
            claimed: held.remove(view.agent.name.as_str()).unwrap_or_default(),
            view,
        })
        .collect()
}
