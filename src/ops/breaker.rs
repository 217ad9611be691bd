//! The breaker: when one workflow stage's checkpoint gates fail, or the stage is sent back,
//! `breaker` times (`.coord.yaml`, default 3) since the count last started again, the agents of
//! that workflow are paused (ops/agent_pause.rs) and the organiser is told why; the rest of the
//! team goes on. The agents of a workflow are those that hold or were assigned any of its tasks,
//! and those whose role is the tripped stage's role (they would take it next). The trip is
//! recorded as a comment on the stage, and only failures after it (and after the team last
//! changed state) count towards the next trip. With no such agent, the team is paused, as before.

use crate::error::Result;
use crate::model::checkpoint::Outcome;
use crate::model::task::STAGE_LABEL;
use crate::ops::agents::Agents;
use crate::ops::context::Coord;
use crate::ops::tasks::Tasks;
use crate::ops::team::{self, TeamState};

/// Counts the failures of one stage and trips the breaker when they reach the limit. Returns
/// why the team was paused, if this call paused it.
pub fn check_stage(coord: &Coord, stage: &str) -> Result<Option<String>> {
    let limit = Agents::new(coord)?.config().breaker;
    if limit == 0 {
        return Ok(None);
    }
    let tasks = Tasks::new(coord);
    let Ok(task) = tasks.show(stage) else {
        return Ok(None);
    };
    if !task.labels.iter().any(|l| l == STAGE_LABEL) {
        return Ok(None);
    }
    let state = team::get(coord)?;
    if state.state != TeamState::Running {
        return Ok(None); // already stopped: nothing to trip
    }
    // Failures since the team last changed state, or since the breaker last tripped here.
    let last_trip = task
        .comments
        .iter()
        .filter(|c| c.text.starts_with(TRIP_MARK))
        .map(|c| c.at.clone())
        .max()
        .unwrap_or_default();
    let since_text = state.at.clone().max(last_trip);
    let since = since_text.as_str();
    let (checkpoints, _) = crate::store::checkpoint_log::list(&coord.repo)?;
    let failed: Vec<_> = checkpoints
        .iter()
        .filter(|c| c.outcome == Outcome::GatesFailed && c.at.as_str() > since)
        .filter(|c| c.tasks.contains(&task.id))
        .collect();
    let sent_back: Vec<_> = task
        .history
        .iter()
        .filter(|e| e.op == "reopen" && e.at.as_str() > since)
        .collect();
    let stage_name = task
        .labels
        .iter()
        .find_map(|l| l.strip_prefix("stage-"))
        .unwrap_or("?")
        .to_string();
    let why = if failed.len() >= limit as usize {
        let last = failed
            .last()
            .and_then(|c| c.gates.iter().find(|g| !g.passed));
        format!(
            "breaker: the checkpoint gates of stage {stage_name} (task {}) failed {} times{}",
            task.id,
            failed.len(),
            last.map(|g| format!(
                "; last: `{}` exited {}{}",
                g.command,
                g.exit_code.map_or("by a signal".into(), |c| c.to_string()),
                g.output_tail
                    .lines()
                    .last()
                    .map(|l| format!(": {}", crate::ops::messages::clip(l, 160)))
                    .unwrap_or_default()
            ))
            .unwrap_or_default()
        )
    } else if sent_back.len() >= limit as usize {
        format!(
            "breaker: stage {stage_name} (task {}) was sent back {} times; last reason: {}",
            task.id,
            sent_back.len(),
            sent_back
                .last()
                .and_then(|e| e.note.as_deref())
                .unwrap_or("none given")
        )
    } else {
        return Ok(None);
    };
    let agents = workflow_agents(coord, &task)?;
    let (whom, resume) = if agents.is_empty() {
        team::set(coord, TeamState::Paused, Some(why.clone()))?;
        (
            "The team is paused".to_string(),
            "`git coord resume`".to_string(),
        )
    } else {
        for name in &agents {
            crate::ops::agent_pause::pause(coord, name, &why)?;
        }
        (
            format!(
                "The workflow's agents are paused ({}); the rest of the team goes on",
                agents.join(", ")
            ),
            format!("`git coord agent resume {}`", agents.join(" ")),
        )
    };
    // The count starts again from here.
    tasks.comment(&task.id, &format!("{TRIP_MARK} {why}"))?;
    let body = format!(
        "{why}.\n{whom}: no new claims for them, and their stop hooks let them stop. Find out why, fix what needs fixing (send the stage back, change the plan, fix the gate), then {resume}; the count starts again from the trip. (`breaker` in .coord.yaml sets the limit, {limit} now; 0 turns it off.)"
    );
    // The pause is what matters; its reason is recorded and in `status` whatever happens here.
    if let Err(e) = crate::ops::messages::tell_organiser(
        coord,
        &task.id,
        &format!("Breaker tripped: workflow paused at stage {stage_name}"),
        &body,
        Some(&task.id),
    ) {
        coord.warn(format!("the breaker could not tell the organiser: {e}"));
    }
    Ok(Some(format!("{why}; {}", whom.to_lowercase())))
}

/// How a trip is marked on the stage's task (a comment), where the next count starts.
const TRIP_MARK: &str = "breaker tripped:";

/// The active agents of the stage's workflow: holders and assignees of its tasks, and the agents
/// of the stage's role; never an organiser, who must be free to sort it out.
fn workflow_agents(coord: &Coord, stage: &crate::model::task::Task) -> Result<Vec<String>> {
    let epic = stage.parent.clone().unwrap_or_else(|| stage.id.clone());
    let index = Tasks::new(coord).load_index()?;
    let mut names: Vec<String> = index
        .tasks()
        .filter(|t| t.parent() == Some(epic.as_str()) || t.id() == epic)
        .filter_map(|t| t.assignee().map(str::to_string))
        .collect();
    let (views, _) = Agents::new(coord)?.list(false)?;
    let role = stage.role.as_deref();
    names.extend(
        views
            .iter()
            .filter(|v| role.is_some() && v.agent.role.as_str() == role.unwrap_or_default())
            .map(|v| v.agent.name.clone()),
    );
    let mut agents: Vec<String> = views
        .iter()
        .filter(|v| v.agent.role != "organiser" && names.contains(&v.agent.name))
        .map(|v| v.agent.name.clone())
        .collect();
    agents.sort();
    agents.dedup();
    Ok(agents)
}
