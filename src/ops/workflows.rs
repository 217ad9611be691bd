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
use crate::model::agent::Agent;
use crate::model::message::Importance;
use crate::model::task::CHECKPOINT_LABEL;
use crate::model::task::{Kind, State, Task};
use crate::model::{name, parse_yaml};
use crate::ops::agents::Agents;
use crate::ops::context::Coord;
use crate::ops::leases::Leases;
use crate::ops::messages::{Messages, Outgoing};
use crate::ops::tasks::{NewTask, Tasks};

/// Labels that mark what a workflow created.
pub const WORKFLOW_LABEL: &str = "workflow";
/// Put on a workflow's epic by `cancel --workflow`.
pub const CANCELLED_LABEL: &str = "cancelled";
pub use crate::model::task::{NO_CODE_LABEL, STAGE_LABEL};
/// Marks a stage that reads artifacts of a kind from earlier stages: `needs-<kind>`.
pub const NEEDS_PREFIX: &str = "needs-";
/// History events of a reviewing stage: it sent an earlier stage back; that stage came back.
pub const SEND_BACK_OP: &str = "send-back";
pub const ROUND_OP: &str = "review-round";

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
    /// False for a stage that produces no code, so its checkpoint passes with nothing to merge.
    #[serde(default = "produces_code")]
    pub code: bool,
}

fn produces_code() -> bool {
    true
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
    /// How many times this stage was sent back (reopened).
    pub sent_back: usize,
    /// A reviewing stage's rounds, when it sent work back at least once.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rounds: Vec<Round>,
}

/// One review round of a stage that sent work back.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Round {
    pub round: usize,
    pub at: String,
    /// `sent back <task>: <reason>`, `approved`, or `in review`.
    pub result: String,
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
/// waiting on the one before, all in one commit. Returns the epic and the tasks in order. Every
/// task is laid out and checked before any is written: a title too long once filled in, a
/// priority out of range or a label that is no name refuses the workflow with nothing created.
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
    let into = agents.integration_branch()?;
    let layout = Layout {
        template: &t,
        agents: &agents,
        into: &into,
        title,
        vars,
    };
    layout.make(&mut |new| {
        crate::ops::tasks::check_new(&new)?;
        Ok(PLACEHOLDER_ID.to_string())
    })?;
    // Laid out again under the ids the tasks get, and written in one commit: all or none.
    let mut batch = Vec::new();
    layout.make(&mut |new| {
        let id = crate::model::id::new_id();
        batch.push((id.clone(), new));
        Ok(id)
    })?;
    let mut made = Tasks::new(coord).create_all(&batch)?;
    let epic = made.remove(0);
    tell_missing_roles(coord, &agents, &t, &epic);
    Ok((epic, made))
}

/// A workflow whose stages name roles no active agent has would wait for ever: the one who
/// started it hears it at once (a warning) and so does the organiser (a message), naming the
/// stages and the command that spawns an agent for each role.
fn tell_missing_roles(coord: &Coord, agents: &Agents, t: &Template, epic: &Task) {
    let Ok((active, _)) = agents.list(false) else {
        return;
    };
    let mut missing: Vec<(&str, Vec<&str>)> = Vec::new();
    for stage in &t.stages {
        if active.iter().any(|a| a.agent.role == stage.role) {
            continue;
        }
        match missing.iter_mut().find(|(role, _)| *role == stage.role) {
            Some((_, stages)) => stages.push(&stage.name),
            None => missing.push((&stage.role, vec![&stage.name])),
        }
    }
    if missing.is_empty() {
        return;
    }
    let what: Vec<String> = missing
        .iter()
        .map(|(role, stages)| {
            format!(
                "role {role} (stage {}): `git coord agent spawn NAME --role {role}`",
                stages.join(", ")
            )
        })
        .collect();
    let text = format!(
        "workflow {} ({}) has stages for roles no active agent has; they wait until one is spawned: {}",
        epic.id,
        epic.title,
        what.join("; ")
    );
    let _ = Messages::new(coord).send_here(Outgoing {
        target: "@organiser".into(),
        subject: Some(message_subject(&format!(
            "No agent for some stages of {}",
            epic.title
        ))),
        task: Some(epic.id.clone()),
        importance: Importance::High,
        body: text.clone(),
        ..Outgoing::default()
    });
    coord.warn(text);
}

/// Stands in for a task's id while a workflow is checked before anything is created.
const PLACEHOLDER_ID: &str = "000000000000";

/// What a workflow creates, from its template, title and variables.
struct Layout<'a> {
    template: &'a Template,
    agents: &'a Agents<'a>,
    into: &'a str,
    title: &'a str,
    vars: &'a [(String, String)],
}

impl Layout<'_> {
    /// Hands `each` the epic, then each stage's task and checkpoint in order; `each` returns the
    /// id the task got, which the tasks after it wait on.
    fn make(&self, each: &mut dyn FnMut(NewTask) -> Result<String>) -> Result<()> {
        let (t, agents, into, title) = (self.template, self.agents, self.into, self.title);
        let mut values: BTreeMap<String, String> = self.vars.iter().cloned().collect();
        values.insert("title".into(), title.to_string());
        let template_label = format!("workflow-{}", t.name);
        let epic = each(NewTask {
            title: title.to_string(),
            description: fill(&t.description, &values),
            kind: Some(Kind::Epic),
            labels: vec![WORKFLOW_LABEL.into(), template_label.clone()],
            ..NewTask::default()
        })?;
        let mut previous: Option<String> = None;
        // (stage, task, what its role produces) of the stages created so far.
        let mut produced: Vec<(String, String, Vec<String>)> = Vec::new();
        for s in &t.stages {
            let role = agents.config().role(&s.role)?.clone();
            let mut description = fill(&s.description, &values);
            let mut labels = vec![
                STAGE_LABEL.into(),
                format!("stage-{}", s.name),
                template_label.clone(),
            ];
            if !s.code {
                labels.push(NO_CODE_LABEL.into());
            }
            let inputs = stage_inputs(&role.inputs, &produced);
            if !inputs.is_empty() {
                description.push_str(
                    "\nInputs (artifacts of earlier stages; `git coord brief` shows their summaries):\n",
                );
                for (kind, stage, task) in &inputs {
                    description.push_str(&format!(
                        "- {kind} from stage {stage}: `git coord artifact list --task {task}`\n"
                    ));
                }
                for kind in role.inputs.iter() {
                    labels.push(format!("{NEEDS_PREFIX}{kind}"));
                }
            }
            let task = each(NewTask {
                title: fill(&s.title, &values),
                description,
                priority: s.priority,
                role: Some(s.role.clone()),
                labels,
                deps: previous.iter().cloned().collect(),
                parent: Some(epic.clone()),
                ..NewTask::default()
            })?;
            previous = Some(task.clone());
            produced.push((s.name.clone(), task.clone(), role.outputs.clone()));
            if s.checkpoint {
                let stage_task = task;
                let checkpoint = each(NewTask {
                    title: format!("Checkpoint after {}: merge into {into}", s.name),
                    description: format!(
                        "The {} stage of '{title}' ends with a checkpoint.\n\nSteps:\n- run `git coord checkpoint --tasks {stage_task}` (gates from .coord.yaml, or --gate CMD)\n\nA checkpoint that moves {into} marks this task done; the next stage waits on it.\n\nAcceptance criteria:\n- {into} holds the stage's work and every gate passed\n",
                        s.name
                    ),
                    kind: Some(Kind::Chore),
                    role: Some("organiser".to_string()).filter(|r| agents.config().role(r).is_ok()),
                    labels: vec![CHECKPOINT_LABEL.into(), template_label.clone()],
                    deps: vec![stage_task],
                    parent: Some(epic.clone()),
                    ..NewTask::default()
                })?;
                previous = Some(checkpoint);
            }
        }
        Ok(())
    }
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
            .map(|t| {
                let full = if t.labels().any(|l| l == STAGE_LABEL) {
                    tasks.show(t.id()).ok()
                } else {
                    None
                };
                let (sent_back, rounds) = full.as_ref().map(rounds_of).unwrap_or_default();
                (t, sent_back, rounds)
            })
            .map(|(t, sent_back, rounds)| StageStatus {
                sent_back,
                rounds,
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
    if !is_stage(task) {
        return Ok(None);
    }
    let tasks = Tasks::new(coord);
    let routed = tasks.assign(&task.id, agent)?;
    let actor = coord.actor()?.agent;
    // The reviewer's own stage remembers what it sent back, so the revised work returns to it.
    if let Some(review) = reviewing_stage(coord, task, &actor)? {
        tasks.record(
            &review,
            SEND_BACK_OP,
            format!("{}: {}", task.id, reason.unwrap_or("no reason given")),
        )?;
    }
    crate::ops::breaker::check_stage(coord, &task.id)?;
    if actor != agent {
        Messages::new(coord).send_here(Outgoing {
            target: format!("#{}", task.id),
            subject: Some(message_subject(&format!("Sent back to you: {}", task.title))),
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
        let finished = tasks.mark_done(
            epic,
            Some(format!(
                "workflow finished: its {} tasks are done",
                members.len()
            )),
            true,
        )?;
        if let Some(e) = finished.unconfirmed {
            coord.warn(e.to_string());
        }
        finish_epic(coord, &finished.task); // an epic inside another
        Ok(())
    };
    if let Err(e) = finish() {
        coord.warn(format!("could not finish the workflow epic {epic}: {e}"));
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
                let sent = Messages::new(coord).send_here(Outgoing {
                    target,
                    subject: Some(message_subject(&format!(
                        "Checkpoint requested: {}",
                        stage.title
                    ))),
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
        coord.warn(format!(
            "could not request the checkpoint after {}: {e}",
            stage.id
        ));
    }
}

/// Cancels one workflow: its claims and their leases are released, its unfinished tasks blocked,
/// and every agent told. Returns how many claims were released.
pub fn cancel(coord: &Coord, epic: &str, reason: Option<&str>) -> Result<usize> {
    coord.check_config()?; // read to tell everyone, after the tasks are blocked
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
    let note = format!("workflow cancelled: {why}");
    let ids: Vec<String> = members.iter().map(|(id, _)| id.clone()).collect();
    let mut cancel = |task: &mut Task, agent: &str, now: &str| {
        let mut changed = false;
        if task.state == State::Claimed {
            task.state = State::Open;
            task.assignee = None;
            task.claimed_at = None;
            task.push_event(agent, "release", None, now);
            changed = true;
        }
        if task.id == epic {
            if !task.labels.iter().any(|l| l == CANCELLED_LABEL) {
                task.labels.push(CANCELLED_LABEL.into());
                task.push_event(agent, "edit", Some(format!("+{CANCELLED_LABEL}")), now);
                changed = true;
            }
        } else if task.state != State::Done && task.block_reason.as_deref() != Some(&note) {
            task.state = State::Blocked;
            task.block_reason = Some(note.clone());
            task.push_event(agent, "block", Some(note.clone()), now);
            changed = true;
        }
        Ok(changed)
    };
    let changed = edit_tasks_releasing_leases(
        coord,
        &ids,
        "cancel",
        &mut cancel,
        Some(&ids),
        |e| {
            format!(
                "workflow {epic} is cancelled, but its leases were not released ({e}); `git coord cancel --workflow {epic}` again releases them"
            )
        },
    )?;
    for task in changed.iter().filter(|t| t.state == State::Blocked) {
        tasks.tell_blocked(task, &note);
    }
    // Counted from the tasks the commit changed (the operation may have run more than once).
    let released = changed
        .iter()
        .filter(|t| {
            members
                .iter()
                .any(|(id, s)| *id == t.id && *s == State::Claimed)
        })
        .count();
    tell_everyone(
        coord,
        &format!("Workflow {epic} was cancelled"),
        &format!(
            "Workflow {epic} was cancelled ({why}). Its claims and leases are released; stop work on it."
        ),
    )?;
    Ok(released)
}

/// Edits the tasks of `ids` with `apply` ([`Tasks::edit_change`]) and releases the leases taken
/// for `lease_tasks` (`None`: every lease). Without a coordination remote, both in one ref
/// transaction. With one, the tasks' commit is confirmed there alone and the leases follow, a
/// failure of theirs a warning (`unreleased` words it). Returns the tasks it changed.
fn edit_tasks_releasing_leases(
    coord: &Coord,
    ids: &[String],
    op: &str,
    apply: &mut dyn FnMut(&mut Task, &str, &str) -> Result<bool>,
    lease_tasks: Option<&[String]>,
    unreleased: impl FnOnce(Error) -> String,
) -> Result<Vec<Task>> {
    let tasks = Tasks::new(coord);
    let leases = Leases::new(coord);
    if coord.confirm_remote()?.is_none() {
        let actor = coord.actor()?;
        let stores = [
            &crate::store::Store::new(&coord.repo, crate::store::TASKS_REF),
            &crate::store::Store::new(&coord.repo, crate::store::LEASES_REF),
        ];
        return crate::store::Store::update_many(&stores, &actor, |snaps| {
            let (tasks_change, changed) = tasks.edit_change(&snaps[0], ids, op, &actor, apply)?;
            let (leases_change, _) = leases.release_change(&snaps[1], &actor, lease_tasks)?;
            Ok((vec![tasks_change, leases_change], changed))
        });
    }
    let changed = tasks.edit_all(ids, op, apply)?;
    if let Err(e) = leases.release_for_tasks(lease_tasks) {
        coord.warn(unreleased(e));
    }
    Ok(changed)
}

/// What `cancel` did: the claims it released and the launched agents it stopped.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Cancelled {
    pub released: usize,
    pub stopped: Vec<String>,
}

/// Cancels the whole team: no new claims, every launched agent on this machine stopped, every
/// claim and lease released, every agent told.
pub fn cancel_all(coord: &Coord, reason: Option<&str>) -> Result<Cancelled> {
    coord.check_config()?; // read to tell everyone, after the work is called off
    crate::ops::team::set(
        coord,
        crate::ops::team::TeamState::Cancelled,
        reason.map(str::to_string),
    )?;
    // Stopped before their claims go, so that none finishes or takes work meanwhile.
    let mut stopped = Vec::new();
    for view in Agents::new(coord)?.list(true)?.0 {
        let name = view.agent.name;
        if crate::ops::launch::running(coord, &name).is_some()
            && crate::ops::launch::stop(coord, &name).is_ok()
        {
            stopped.push(name);
        }
    }
    let tasks = Tasks::new(coord);
    let index = tasks.load_index()?;
    let claimed: Vec<String> = index
        .tasks()
        .filter(|t| t.state() == State::Claimed)
        .map(|t| t.id().to_string())
        .collect();
    let mut release = |task: &mut Task, agent: &str, now: &str| {
        if task.state != State::Claimed {
            return Ok(false);
        }
        task.state = State::Open;
        task.assignee = None;
        task.claimed_at = None;
        task.push_event(agent, "release", None, now);
        Ok(true)
    };
    let claimed = edit_tasks_releasing_leases(
        coord,
        &claimed,
        "release",
        &mut release,
        None,
        |e| {
            format!(
                "the work is cancelled, but the leases were not released ({e}); `git coord cancel` again releases them"
            )
        },
    )?;
    let why = reason.unwrap_or("no reason given");
    tell_everyone(
        coord,
        "The team's work was cancelled",
        &format!(
            "All work was cancelled ({why}). Every claim and lease is released; stop now. `git coord resume` reopens claims."
        ),
    )?;
    Ok(Cancelled {
        released: claimed.len(),
        stopped,
    })
}

fn tell_everyone(coord: &Coord, subject: &str, body: &str) -> Result<()> {
    let (agents, _) = Agents::new(coord)?.list(false)?;
    let me = coord.actor()?.agent;
    if agents.iter().all(|a| a.agent.name == me) {
        return Ok(()); // nobody else to tell
    }
    Messages::new(coord).send_here(Outgoing {
        target: "@all".into(),
        subject: Some(subject.to_string()),
        importance: Importance::High,
        body: body.to_string(),
        ..Outgoing::default()
    })?;
    Ok(())
}

/// The kinds a role reads, each with the earlier stage (and its task) that produces it.
fn stage_inputs(
    inputs: &[String],
    produced: &[(String, String, Vec<String>)],
) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for kind in inputs {
        for (stage, task, outputs) in produced {
            if outputs.contains(kind) {
                out.push((kind.clone(), stage.clone(), task.clone()));
            }
        }
    }
    out
}

/// The stage of the same workflow, after `sent_back`, that `reviewer` holds or finished: the
/// review that sent it back.
fn reviewing_stage(coord: &Coord, sent_back: &Task, reviewer: &str) -> Result<Option<String>> {
    let Some(epic) = &sent_back.parent else {
        return Ok(None);
    };
    let Some(workflow) = status(coord, Some(epic)).ok().and_then(|mut w| w.pop()) else {
        return Ok(None);
    };
    let Some(at) = workflow.stages.iter().position(|s| s.id == sent_back.id) else {
        return Ok(None);
    };
    Ok(workflow.stages[at + 1..]
        .iter()
        .find(|s| {
            !s.checkpoint
                && s.assignee.as_deref() == Some(reviewer)
                && (s.state == "claimed" || s.state == "done")
        })
        .map(|s| s.id.clone()))
}

/// How many times a stage was sent back, and its review rounds (when it sent work back).
fn rounds_of(task: &Task) -> (usize, Vec<Round>) {
    let sent_back = task.history.iter().filter(|e| e.op == "reopen").count();
    if !task.history.iter().any(|e| e.op == SEND_BACK_OP) {
        return (sent_back, Vec::new());
    }
    let start = task
        .history
        .iter()
        .find(|e| e.op == "claim" || e.op == "assign")
        .map(|e| e.at.clone())
        .unwrap_or_else(|| task.created.clone());
    let mut rounds = vec![Round {
        round: 1,
        at: start,
        result: "in review".into(),
    }];
    for e in &task.history {
        match e.op.as_str() {
            SEND_BACK_OP => {
                if let Some(last) = rounds.last_mut() {
                    last.result = format!("sent back {}", e.note.as_deref().unwrap_or_default());
                }
            }
            ROUND_OP => rounds.push(Round {
                round: rounds.len() + 1,
                at: e.at.clone(),
                result: "in review".into(),
            }),
            _ => {}
        }
    }
    if task.state == State::Done
        && let Some(last) = rounds.last_mut()
        && last.result == "in review"
    {
        last.result = "approved".into();
    }
    (sent_back, rounds)
}

/// After a stage is done: a review that sent it back gets it again, as a new round (reopened
/// for its reviewer if that review was finished). Best effort: a finished task never fails for
/// this.
pub fn next_review_round(coord: &Coord, done: &Task) {
    if !done.labels.iter().any(|l| l == STAGE_LABEL) {
        return;
    }
    let route = || -> Result<()> {
        let Some(epic) = &done.parent else {
            return Ok(());
        };
        let tasks = Tasks::new(coord);
        let index = tasks.load_index()?;
        let siblings: Vec<String> = index
            .tasks()
            .filter(|t| t.parent() == Some(epic.as_str()) && t.id() != done.id)
            .filter(|t| t.labels().any(|l| l == STAGE_LABEL))
            .map(|t| t.id().to_string())
            .collect();
        for id in siblings {
            let review = tasks.show(&id)?;
            let names = |e: &&crate::model::task::Event| {
                e.note.as_deref().is_some_and(|n| n.starts_with(&done.id))
            };
            let last_sent = review
                .history
                .iter()
                .rposition(|e| e.op == SEND_BACK_OP && names(&e));
            let last_round = review
                .history
                .iter()
                .rposition(|e| e.op == ROUND_OP && names(&e));
            let pending = match (last_sent, last_round) {
                (Some(sent), Some(round)) => sent > round,
                (Some(_), None) => true,
                _ => false,
            };
            if !pending {
                continue;
            }
            let round = 2 + review.history.iter().filter(|e| e.op == ROUND_OP).count();
            let Some(reviewer) = review.assignee.clone() else {
                tasks.record(&id, ROUND_OP, format!("{}: round {round}", done.id))?;
                continue;
            };
            if review.state == State::Done {
                tasks.reopen_only(&id, Some(format!("round {round}")), true)?;
                tasks.assign(&id, &reviewer)?;
            }
            tasks.record(&id, ROUND_OP, format!("{}: round {round}", done.id))?;
            Messages::new(coord).send_here(Outgoing {
                target: format!("#{id}"),
                subject: Some(message_subject(&format!("Review round {round}: {}", review.title))),
                importance: Importance::High,
                body: format!(
                    "Task {} ({}) that you sent back is done again: {}\nReview it again as round {round} of task {id}; it is yours. Approve with `git coord task done {id}`, or send it back once more with `git coord task reopen {} --reason \"...\"`.",
                    done.id,
                    done.title,
                    done.summary.as_deref().unwrap_or("no summary"),
                    done.id
                ),
                ..Outgoing::default()
            })?;
        }
        Ok(())
    };
    if let Err(e) = route() {
        coord.warn(format!(
            "could not route {} back to its review: {e}",
            done.id
        ));
    }
}

/// Whether the stage `stage` produced code: a commit on its agent's branch (merges aside, since
/// the agent's spawn) that names the stage in a `Coord-Task` trailer, or, for a commit without
/// such trailers, one made after the agent first took the stage.
pub fn stage_produced_code(
    coord: &Coord,
    stage: &str,
    agent: &crate::model::agent::Agent,
    tip: crate::git::Oid,
) -> Result<bool> {
    let task = Tasks::new(coord).show(stage)?;
    let taken = task
        .history
        .iter()
        .find(|e| (e.op == "claim" || e.op == "assign") && task.assignee.is_some())
        .map(|e| e.at.clone())
        .or(task.claimed_at.clone())
        .unwrap_or(task.created.clone());
    let taken = crate::model::time::parse(&taken)
        .map(|t| t.as_second())
        .unwrap_or(0);
    let tip = tip.to_string();
    let mut args = vec![
        "log",
        "--no-merges",
        "-n",
        "1000",
        "--format=%ct%x1f%B%x1e",
        tip.as_str(),
    ];
    let base = agent
        .base
        .as_deref()
        .filter(|b| b.len() == 40 && b.bytes().all(|c| c.is_ascii_hexdigit()))
        .filter(|b| {
            crate::git::Oid::from_hex(b.as_bytes())
                .ok()
                .is_some_and(|oid| coord.repo.has_commit(oid).unwrap_or(false))
        });
    let not_base = base.map(|b| format!("^{b}"));
    if let Some(b) = &not_base {
        args.push(b);
    }
    args.push("--");
    let out = coord.repo.git_ok(&args)?;
    for record in out.split('\x1e') {
        let Some((seconds, message)) = record.trim_start().split_once('\x1f') else {
            continue;
        };
        let named = crate::git::trailer_values(message, "Coord-Task");
        if named.contains(&stage) {
            return Ok(true);
        }
        let seconds: i64 = seconds.trim().parse().unwrap_or(0);
        if named.is_empty() && seconds >= taken {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Tells the organiser that a stage's checkpoint stays open because the stage has no code to
/// merge. Returns what it said.
pub fn no_code_to_merge(
    coord: &Coord,
    checkpoint: &crate::model::checkpoint::Checkpoint,
    checkpoint_task: &str,
    stage: &str,
    agent: &str,
) -> String {
    let what = format!(
        "stage task {stage} (by {agent}) should produce code, but {} has no commit of it: its checkpoint task {checkpoint_task} stays open",
        Agent::branch_for(agent)
    );
    let body = format!(
        "Checkpoint {} found nothing of stage task {stage} to merge: {agent} made no commits for it. The checkpoint task {checkpoint_task} stays open.\nSend the stage back (`git coord task reopen {stage} --reason \"...\"`), or, if it truly needs no code, finish the checkpoint task by hand (`git coord task done {checkpoint_task} --force`) and mark such stages `code: false` in the template.",
        checkpoint.seq
    );
    if let Err(e) = crate::ops::messages::tell_organiser(
        coord,
        stage,
        &format!("Nothing to merge for stage task {stage}"),
        &body,
        Some(checkpoint_task),
    ) {
        coord.warn(format!("could not tell the organiser about {stage}: {e}"));
    }
    what
}

/// After a checkpoint: a gate failure counts against the workflow stages it covered, and may
/// trip the breaker. Returns why the team was paused, if it was.
pub fn after_checkpoint(
    coord: &Coord,
    checkpoint: &crate::model::checkpoint::Checkpoint,
) -> Result<Option<String>> {
    if checkpoint.outcome != crate::model::checkpoint::Outcome::GatesFailed {
        return Ok(None);
    }
    for task in &checkpoint.tasks {
        if let Some(why) = crate::ops::breaker::check_stage(coord, task)? {
            return Ok(Some(why));
        }
    }
    Ok(None)
}

/// Whether reopening `task` (as it is before the reopen) routes it back to whoever did it: a
/// workflow stage that has an assignee ([`route_back`]).
pub fn routed_back(task: &Task) -> bool {
    task.assignee.is_some() && is_stage(task)
}

fn is_stage(task: &Task) -> bool {
    task.labels.iter().any(|l| l == STAGE_LABEL)
}

/// A message subject made from a task's title: a title near its 200 characters does not fit
/// behind a prefix, so the subject is cut, as a subject may be at most 200 characters.
fn message_subject(text: &str) -> String {
    crate::model::message::clip(text, crate::model::message::MAX_SUBJECT)
}
