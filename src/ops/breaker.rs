//! The breaker: when one workflow stage's checkpoint gates fail, or the stage is sent back,
//! `breaker` times (`.coord.yaml`, default 3) since the team last changed state, the team is
//! paused and the organiser is told why. `git coord resume` starts the count again.

use crate::error::Result;
use crate::model::checkpoint::Outcome;
use crate::ops::agents::Agents;
use crate::ops::checkpoints::Checkpoints;
use crate::ops::context::Coord;
use crate::ops::tasks::Tasks;
use crate::ops::team::{self, TeamState};
use crate::ops::workflows::STAGE_LABEL;

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
    // Failures since the team last changed state: a resume starts the count again.
    let since = state.at.as_str();
    let (checkpoints, _) = Checkpoints::new(coord).list()?;
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
    team::set(coord, TeamState::Paused, Some(why.clone()))?;
    let body = format!(
        "{why}.\nThe team is paused: no new claims, and stop hooks let agents stop. Find out why, fix what needs fixing (send the stage back, change the plan, fix the gate), then `git coord resume`; the count starts again from there. (`breaker` in .coord.yaml sets the limit, {limit} now; 0 turns it off.)"
    );
    // The pause is what matters; its reason is in team.yaml and `status` whatever happens here.
    if let Err(e) = crate::ops::workflows::tell_organiser(
        coord,
        &task.id,
        &format!("Breaker tripped: workflow paused at stage {stage_name}"),
        &body,
        Some(&task.id),
    ) {
        coord.warn(format!("the breaker could not tell the organiser: {e}"));
    }
    Ok(Some(why))
}
