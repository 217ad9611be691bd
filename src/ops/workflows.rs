//! Workflows: a template of ordered stages (each done by a role, some ending in a checkpoint)
//! turned into an epic and its stage tasks, chained by dependencies; their status; sending work
//! back to an earlier stage; cancelling a workflow or the whole team.
//!
//! A stage that ends in a checkpoint is followed by a checkpoint task for the organiser role
//! (label `checkpoint`): the next stage waits on it, and a successful `git coord checkpoint`
//! finishes it. Templates come only from committed files or from this build, never from refs.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::model::message::Importance;
use crate::model::task::{Kind, State, Task};
use crate::model::{name, parse_yaml};
use crate::ops::agents::Agents;
use crate::ops::checkpoints::CHECKPOINT_LABEL;
use crate::ops::context::Coord;
use crate::ops::leases::Leases;
use crate::ops::messages::{Messages, Outgoing};
use crate::ops::tasks::{NewTask, Tasks};

/// Labels that mark what a workflow created.
pub const WORKFLOW_LABEL: &str = "workflow";
/// Put on a workflow's epic by `cancel --workflow`.
pub const CANCELLED_LABEL: &str = "cancelled";
pub const STAGE_LABEL: &str = "workflow-stage";

const BUILT_IN: [(&str, &str); 2] = [
    (
        "feature",
        include_str!("../../templates/workflows/feature.yaml"),
    ),
    (
        "bugfix",
        include_str!("../../templates/workflows/bugfix.yaml"),
    ),
];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Template {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub stages: Vec<Stage>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    pub name: String,
    pub role: String,
    pub title: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub checkpoint: bool,
    #[serde(default)]
    pub priority: Option<u8>,
}

/// One stage of a started workflow, as `workflow status` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StageStatus {
    pub stage: String,
    pub id: String,
    pub title: String,
    pub role: Option<String>,
    pub state: String,
    pub assignee: Option<String>,
    /// A checkpoint task between stages.
    pub checkpoint: bool,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct WorkflowStatus {
    pub id: String,
    pub title: String,
    pub template: String,
    pub state: String,
    pub done: usize,
    pub total: usize,
    /// The first stage not done.
    pub current: Option<String>,
    pub stages: Vec<StageStatus>,
}

/// Finds a template: `.coord/workflows/NAME.yaml` or `templates/workflows/NAME.yaml` in the
/// worktree, else one built in.
pub fn template(coord: &Coord, template: &str) -> Result<Template> {
    name::validate("template", template)?;
    let mut text = None;
    if let Some(top) = coord.repo.workdir() {
        for dir in [".coord/workflows", "templates/workflows"] {
            let path: PathBuf = top.join(dir).join(format!("{template}.yaml"));
            if path.exists() {
                let body = std::fs::read_to_string(&path)?;
                text = Some((body, path.display().to_string()));
                break;
            }
        }
    }
    let (body, source) = match text {
        Some(found) => found,
        None => BUILT_IN
            .iter()
            .find(|(n, _)| *n == template)
            .map(|(n, body)| (body.to_string(), format!("built-in {n}")))
            .ok_or_else(|| {
                Error::invalid(
                    "workflow template",
                    template,
                    "no such template: the built-in ones are feature and bugfix; add yours as .coord/workflows/NAME.yaml",
                )
            })?,
    };
    let t: Template = parse_yaml(&body).map_err(|why| Error::Other(format!("{source}: {why}")))?;
    if t.stages.is_empty() {
        return Err(Error::Other(format!(
            "{source}: a workflow needs at least one stage"
        )));
    }
    for s in &t.stages {
        name::validate("stage name", &s.name)
            .map_err(|e| Error::Other(format!("{source}: {e}")))?;
        name::validate("role", &s.role).map_err(|e| Error::Other(format!("{source}: {e}")))?;
    }
    Ok(t)
}

fn fill(text: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = text.to_string();
    for (k, v) in vars {
        out = out.replace(&format!("{{{k}}}"), v);
    }
    out
}

/// Starts a workflow: an epic titled `title`, and one task per stage (and per checkpoint), each
/// waiting on the one before. Returns the epic and the tasks in order.
pub fn start(
    coord: &Coord,
    template_name: &str,
    title: &str,
    vars: &[(String, String)],
) -> Result<(Task, Vec<Task>)> {
    let t = template(coord, template_name)?;
    let agents = Agents::new(coord)?;
    for s in &t.stages {
        agents.config().role(&s.role)?;
    }
    let mut values: BTreeMap<String, String> = vars.iter().cloned().collect();
    values.insert("title".into(), title.to_string());
    let tasks = Tasks::new(coord);
    let template_label = format!("workflow-{}", t.name);
    let epic = tasks.create(NewTask {
        title: title.to_string(),
        description: fill(&t.description, &values),
        kind: Some(Kind::Epic),
        labels: vec![WORKFLOW_LABEL.into(), template_label.clone()],
        ..NewTask::default()
    })?;
    let into = agents.integration_branch()?;
    let mut created = Vec::new();
    let mut previous: Option<String> = None;
    for s in &t.stages {
        let task = tasks.create(NewTask {
            title: fill(&s.title, &values),
            description: fill(&s.description, &values),
            priority: s.priority,
            role: Some(s.role.clone()),
            labels: vec![
                STAGE_LABEL.into(),
                format!("stage-{}", s.name),
                template_label.clone(),
            ],
            deps: previous.iter().cloned().collect(),
            parent: Some(epic.id.clone()),
            ..NewTask::default()
        })?;
        previous = Some(task.id.clone());
        let needs_checkpoint = s.checkpoint;
        created.push(task);
        if needs_checkpoint {
            let stage_task = created.last().map(|t| t.id.clone()).unwrap_or_default();
            let checkpoint = tasks.create(NewTask {
                title: format!("Checkpoint after {}: merge into {into}", s.name),
                description: format!(
                    "The {} stage of '{title}' ends with a checkpoint.\n\nSteps:\n- run `git coord checkpoint --tasks {stage_task}` (gates from .coord.yaml, or --gate CMD)\n\nA checkpoint that moves {into} marks this task done; the next stage waits on it.\n\nAcceptance criteria:\n- {into} holds the stage's work and every gate passed\n",
                    s.name
                ),
                kind: Some(Kind::Chore),
                role: Some("organiser".to_string()).filter(|r| agents.config().role(r).is_ok()),
                labels: vec![CHECKPOINT_LABEL.into(), template_label.clone()],
                deps: vec![stage_task],
                parent: Some(epic.id.clone()),
                ..NewTask::default()
            })?;
            previous = Some(checkpoint.id.clone());
            created.push(checkpoint);
        }
    }
    Ok((epic, created))
}

/// Every workflow (epics labelled `workflow`), or one.
pub fn status(coord: &Coord, id: Option<&str>) -> Result<Vec<WorkflowStatus>> {
    let tasks = Tasks::new(coord);
    let index = tasks.load_index()?;
    let wanted = id.map(|i| tasks.resolve_now(i)).transpose()?;
    let mut out = Vec::new();
    let mut epics: Vec<_> = index
        .tasks()
        .filter(|t| t.kind() == Kind::Epic && t.labels().any(|l| l == WORKFLOW_LABEL))
        .filter(|t| wanted.as_deref().is_none_or(|w| w == t.id()))
        .collect();
    epics.sort_by(|a, b| a.created().cmp(b.created()));
    if let Some(w) = &wanted
        && epics.is_empty()
    {
        return Err(Error::invalid(
            "workflow",
            w,
            "that task is not a workflow's epic",
        ));
    }
    for epic in epics {
        let mut children: Vec<_> = index
            .tasks()
            .filter(|t| t.parent() == Some(epic.id()))
            .collect();
        // Stages in order: each waits on the one before.
        let mut ordered = Vec::new();
        let mut prev: Option<String> = None;
        while let Some(pos) = children.iter().position(|c| {
            let deps: Vec<&str> = c.deps().collect();
            match &prev {
                None => deps
                    .iter()
                    .all(|d| index.get(d).is_none_or(|t| t.parent() != Some(epic.id()))),
                Some(p) => deps.contains(&p.as_str()),
            }
        }) {
            let c = children.remove(pos);
            prev = Some(c.id().to_string());
            ordered.push(c);
        }
        ordered.extend(children);
        let stages: Vec<StageStatus> = ordered
            .iter()
            .map(|t| StageStatus {
                stage: t
                    .labels()
                    .find_map(|l| l.strip_prefix("stage-"))
                    .map(str::to_string)
                    .unwrap_or_else(|| "checkpoint".into()),
                id: t.id().to_string(),
                title: t.title().to_string(),
                role: t.role().map(str::to_string),
                state: t.state().as_str().to_string(),
                assignee: t.assignee().map(str::to_string),
                checkpoint: t.labels().any(|l| l == CHECKPOINT_LABEL),
            })
            .collect();
        let done = stages.iter().filter(|s| s.state == "done").count();
        out.push(WorkflowStatus {
            id: epic.id().to_string(),
            title: epic.title().to_string(),
            template: epic
                .labels()
                .find_map(|l| l.strip_prefix("workflow-"))
                .unwrap_or("-")
                .to_string(),
            state: if epic.labels().any(|l| l == CANCELLED_LABEL) {
                "cancelled".into()
            } else if epic.state() == State::Done || (!stages.is_empty() && done == stages.len()) {
                "done".into()
            } else {
                "running".into()
            },
            done,
            total: stages.len(),
            current: stages
                .iter()
                .find(|s| s.state != "done")
                .map(|s| s.stage.clone()),
            stages,
        });
    }
    Ok(out)
}

/// After a workflow stage is reopened: it goes back to whoever did it, who is told why.
pub fn route_back(
    coord: &Coord,
    task: &Task,
    previous: Option<&str>,
    reason: Option<&str>,
) -> Result<Option<Task>> {
    let Some(agent) = previous else {
        return Ok(None);
    };
    if !task.labels.iter().any(|l| l == STAGE_LABEL) {
        return Ok(None);
    }
    let tasks = Tasks::new(coord);
    let routed = tasks.assign(&task.id, agent)?;
    let actor = coord.actor()?.agent;
    if actor != agent {
        Messages::new(coord).send(Outgoing {
            target: format!("#{}", task.id),
            subject: Some(format!("Sent back to you: {}", task.title)),
            importance: Importance::High,
            body: format!(
                "{actor} reopened task {} and sent it back to you: {}\nIt is claimed for you again; when it is fixed, `git coord task done {}`.",
                task.id,
                reason.unwrap_or("no reason given"),
                task.id
            ),
            ..Outgoing::default()
        })?;
    }
    Ok(Some(routed))
}

/// After a workflow's task is done: when every task of the workflow is done, its epic is done
/// too. Best effort: a finished task never fails for this.
pub fn finish_epic(coord: &Coord, task: &Task) {
    let Some(epic) = task.parent.as_deref() else {
        return;
    };
    let finish = || -> Result<()> {
        let tasks = Tasks::new(coord);
        let index = tasks.load_index()?;
        let Some(e) = index.get(epic) else {
            return Ok(());
        };
        if e.kind() != Kind::Epic
            || !e.labels().any(|l| l == WORKFLOW_LABEL)
            || e.state() == State::Done
        {
            return Ok(());
        }
        let members: Vec<_> = index.tasks().filter(|t| t.parent() == Some(epic)).collect();
        if members.is_empty() || members.iter().any(|t| t.state() != State::Done) {
            return Ok(());
        }
        tasks.done(
            epic,
            Some(format!(
                "workflow finished: its {} tasks are done",
                members.len()
            )),
            true,
        )?;
        Ok(())
    };
    if let Err(e) = finish() {
        tracing::warn!("could not finish the workflow epic {epic}: {e}");
    }
}

/// After a stage is done: if a checkpoint waits on it, ask for it (a message to the organisers,
/// else to whoever started the workflow). Best effort: a finished task never fails for this.
pub fn request_checkpoint(coord: &Coord, stage: &Task) {
    if !stage.labels.iter().any(|l| l == STAGE_LABEL) {
        return;
    }
    let ask = || -> Result<()> {
        let tasks = Tasks::new(coord);
        let index = tasks.load_index()?;
        let waiting: Vec<String> = index
            .tasks()
            .filter(|t| t.labels().any(|l| l == CHECKPOINT_LABEL))
            .filter(|t| t.deps().any(|d| d == stage.id))
            .map(|t| t.id().to_string())
            .collect();
        for checkpoint in waiting {
            let body = format!(
                "Stage task {} ({}) is done, and its stage ends with a checkpoint: run `git coord checkpoint --tasks {}`. The next stage waits on task {checkpoint}.",
                stage.id, stage.title, stage.id
            );
            let creator = stage
                .parent
                .as_deref()
                .and_then(|p| tasks.show(p).ok())
                .map(|e| e.created_by);
            let mut targets = vec!["@organiser".to_string()];
            targets.extend(creator);
            for target in targets {
                let sent = Messages::new(coord).send(Outgoing {
                    target,
                    subject: Some(format!("Checkpoint requested: {}", stage.title)),
                    task: Some(checkpoint.clone()),
                    importance: Importance::High,
                    body: body.clone(),
                    ..Outgoing::default()
                });
                if sent.is_ok() {
                    break;
                }
            }
        }
        Ok(())
    };
    if let Err(e) = ask() {
        tracing::warn!("could not request the checkpoint after {}: {e}", stage.id);
    }
}

/// Cancels one workflow: its claims and their leases are released, its unfinished tasks blocked,
/// and every agent told. Returns how many claims were released.
pub fn cancel(coord: &Coord, epic: &str, reason: Option<&str>) -> Result<usize> {
    let tasks = Tasks::new(coord);
    let epic = tasks.resolve_now(epic)?;
    let index = tasks.load_index()?;
    let members: Vec<(String, State)> = index
        .tasks()
        .filter(|t| t.parent() == Some(epic.as_str()) || t.id() == epic)
        .map(|t| (t.id().to_string(), t.state()))
        .collect();
    if members.len() <= 1 {
        return Err(Error::invalid(
            "workflow",
            &epic,
            "that task is not a workflow's epic",
        ));
    }
    let why = reason.unwrap_or("cancelled").to_string();
    let mut released = 0;
    for (id, state) in members {
        if state == State::Claimed {
            tasks.release(&id, true)?;
            released += 1;
        }
        Leases::new(coord).release_for_task(&id)?;
        if state != State::Done && id != epic {
            tasks.block(&id, &format!("workflow cancelled: {why}"))?;
        }
    }
    // The epic says so: `workflow status` and `status` show the workflow cancelled.
    tasks.edit(
        &epic,
        crate::ops::tasks::TaskEdit {
            add_labels: vec![CANCELLED_LABEL.into()],
            ..Default::default()
        },
    )?;
    tell_everyone(
        coord,
        &format!("Workflow {epic} was cancelled"),
        &format!(
            "Workflow {epic} was cancelled ({why}). Its claims and leases are released; stop work on it."
        ),
    )?;
    Ok(released)
}

/// Cancels the whole team: no new claims, every claim and lease released, every agent told.
pub fn cancel_all(coord: &Coord, reason: Option<&str>) -> Result<usize> {
    crate::ops::team::set(
        coord,
        crate::ops::team::TeamState::Cancelled,
        reason.map(str::to_string),
    )?;
    let tasks = Tasks::new(coord);
    let index = tasks.load_index()?;
    let claimed: Vec<String> = index
        .tasks()
        .filter(|t| t.state() == State::Claimed)
        .map(|t| t.id().to_string())
        .collect();
    for id in &claimed {
        tasks.release(id, true)?;
    }
    let leases = Leases::new(coord);
    for view in leases.list(false)?.0 {
        leases.release(&view.lease.id, true)?;
    }
    let why = reason.unwrap_or("no reason given");
    tell_everyone(
        coord,
        "The team's work was cancelled",
        &format!(
            "All work was cancelled ({why}). Every claim and lease is released; stop now. `git coord resume` reopens claims."
        ),
    )?;
    Ok(claimed.len())
}

fn tell_everyone(coord: &Coord, subject: &str, body: &str) -> Result<()> {
    let (agents, _) = Agents::new(coord)?.list(false)?;
    let me = coord.actor()?.agent;
    if agents.iter().all(|a| a.agent.name == me) {
        return Ok(()); // nobody else to tell
    }
    Messages::new(coord).send(Outgoing {
        target: "@all".into(),
        subject: Some(subject.to_string()),
        importance: Importance::High,
        body: body.to_string(),
        ..Outgoing::default()
    })?;
    Ok(())
}
