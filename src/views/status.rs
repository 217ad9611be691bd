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
    /// Its most recently claimed task it still holds, and when (the task's last change).
    pub last_claimed: Option<LastTask>,
    /// Its most recently finished task, and when (the task's last change).
    pub last_done: Option<LastTask>,
}

/// A task an agent claimed or finished last, and when.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LastTask {
    pub id: String,
    pub title: String,
    pub at: String,
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
    let mut last_claimed: BTreeMap<&str, LastTask> = BTreeMap::new();
    let mut last_done: BTreeMap<&str, LastTask> = BTreeMap::new();
    let latest = |map: &mut BTreeMap<_, LastTask>, who, t: &crate::store::index::TaskRef<'_>| {
        let newer = map
            .get(who)
            .is_none_or(|l: &LastTask| l.at.as_str() < t.updated());
        if newer {
            map.insert(
                who,
                LastTask {
                    id: t.id().to_string(),
                    title: t.title().to_string(),
                    at: t.updated().to_string(),
                },
            );
        }
    };
    for t in index.tasks() {
        let Some(who) = t.assignee() else {
            continue;
        };
        match t.state() {
            State::Claimed => {
                held.entry(who)
                    .or_default()
                    .push((t.id().to_string(), t.title().to_string()));
                latest(&mut last_claimed, who, &t);
            }
            State::Done => latest(&mut last_done, who, &t),
            _ => {}
        }
    }
    views
        .into_iter()
        .map(|view| {
            let name = view.agent.name.as_str();
            AgentRow {
                claimed: held.remove(name).unwrap_or_default(),
                last_claimed: last_claimed.remove(name),
                last_done: last_done.remove(name),
                view,
            }
        })
        .collect()
}
