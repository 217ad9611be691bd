//! Task operations: create, claim, release, finish, dependencies, and the views built on the
//! index (ready, blocked, list). Each write re-checks its preconditions on the snapshot it commits on.

use std::collections::{HashMap, HashSet};

use crate::error::{Error, Result};
use crate::model::task::{Comment, DEFAULT_PRIORITY, Kind, MAX_PRIORITY, State, TASK_FORMAT, Task};
use crate::model::{id, name, time};
use crate::ops::context::Coord;
use crate::store::claimable::{self, Candidate, Claimable};
use crate::store::index::{INEXACT, Need, TaskIndex, TaskRef};
use crate::store::{Actor, Change, Snapshot, Store};

pub use crate::store::TASKS_REF;

/// The writes that end, hand back or hand out a claim, confirmed at the remote when there is
/// one (`assign`: a stage a review sends back is claimed again for whoever did it, right after
/// its reopen reached the remote; a claim from elsewhere in between wins there, and says so).
const CONFIRMED_OPS: [&str; 5] = ["done", "release", "block", "reopen", "assign"];
const MAX_TITLE: usize = 200;

/// What `done` did: the task as it is now; whether this call finished it (false for a `done`
/// again of a task this agent had finished); and, when the remote could not be reached, the
/// error that says the done was kept in this clone, not confirmed.
pub struct Finished {
    pub task: Task,
    pub first: bool,
    pub unconfirmed: Option<Error>,
}

#[derive(Debug, Default, Clone)]
pub struct NewTask {
    pub title: String,
    pub description: String,
    pub priority: Option<u8>,
    pub kind: Option<Kind>,
    pub role: Option<String>,
    pub labels: Vec<String>,
    pub deps: Vec<String>,
    pub parent: Option<String>,
}

/// A [`NewTask`] checked and its references parsed, before any snapshot is read.
struct Parsed {
    task: NewTask,
    title: String,
    priority: u8,
    dep_prefixes: Vec<String>,
    foreign_deps: Vec<String>,
    parent_prefix: Option<String>,
}

impl Parsed {
    fn of(new: &NewTask) -> Result<Parsed> {
        let (title, priority) = check_new(new)?;
        let mut dep_prefixes = Vec::new();
        let mut foreign_deps = Vec::new();
        for d in &new.deps {
            match id::split_foreign(d) {
                Some(_) => foreign_deps.push(resolved_foreign(d)?),
                None => dep_prefixes.push(id::parse_prefix(d)?),
            }
        }
        Ok(Parsed {
            task: new.clone(),
            title,
            priority,
            dep_prefixes,
            foreign_deps,
            parent_prefix: new.parent.as_deref().map(id::parse_prefix).transpose()?,
        })
    }
}

#[derive(Debug, Default, Clone)]
pub struct TaskEdit {
    pub title: Option<String>,
    pub description: Option<String>,
    pub priority: Option<u8>,
    pub kind: Option<Kind>,
    /// `Some(None)` clears the role.
    pub role: Option<Option<String>>,
    pub add_labels: Vec<String>,
    pub remove_labels: Vec<String>,
    /// `Some(None)` clears the parent.
    pub parent: Option<Option<String>>,
}

#[derive(Debug, Default, Clone)]
pub struct ListFilter {
    pub state: Option<State>,
    pub assignee: Option<String>,
    pub role: Option<String>,
    pub label: Option<String>,
}

/// A task that waits, and what it waits on.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Waiting<'i> {
    #[serde(flatten)]
    pub task: TaskRef<'i>,
    /// Dependencies not yet done, with their state.
    pub waits_on: Vec<WaitsOn>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct WaitsOn {
    pub id: String,
    pub title: String,
    pub state: String,
    /// For a task of another project: when that project was last fetched here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fetched: Option<String>,
}

/// A node of `task dep tree`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DepNode {
    pub id: String,
    pub title: String,
    pub state: String,
    /// Set when this task was already shown higher up the tree.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub repeated: bool,
    pub deps: Vec<DepNode>,
}

/// One entry of the audit log.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LogEntry {
    pub commit: String,
    pub at: String,
    pub agent: String,
    pub op: String,
    pub task: Option<String>,
    pub subject: String,
}

pub struct Tasks<'c> {
    coord: &'c Coord,
    store: Store<'c>,
    /// No message to a task's creator when it is done or blocked (`--quiet`).
    quiet: bool,
}

impl<'c> Tasks<'c> {
    pub fn new(coord: &'c Coord) -> Self {
        Tasks {
            coord,
            store: Store::new(&coord.repo, TASKS_REF),
            quiet: false,
        }
    }

    /// The same, telling no creator that its task is done or blocked.
    pub fn quiet(mut self, quiet: bool) -> Self {
        self.quiet = quiet;
        self
    }

    pub fn coord(&self) -> &'c Coord {
        self.coord
    }

    /// The directory relative paths on the command line are relative to.
    pub fn start_dir(&self) -> std::path::PathBuf {
        self.coord.start_dir.clone()
    }

    pub fn create(&self, new: NewTask) -> Result<Task> {
        let actor = self.coord.actor()?;
        let new = Parsed::of(&new)?;
        self.store.update(&actor, |snap| {
            let id = self.fresh_id(snap)?;
            let task = self.build(snap, &actor, &id, &new, &[])?;
            // A new task depends on what its dependencies and parent are, nothing else.
            let mut change = write_change(&task, "new", &actor);
            change.reads = Some(read_set(&task, task.parent.iter()));
            Ok((change, task))
        })
    }

    /// Creates every task of `batch` in one commit, all or none, each under the id given: ids
    /// the caller drew with [`id::new_id`], so that the tasks of the batch can name each other
    /// (as dependencies, parent, or in their text). An id already taken refuses the batch.
    pub fn create_all(&self, batch: &[(String, NewTask)]) -> Result<Vec<Task>> {
        let actor = self.coord.actor()?;
        let parsed: Vec<(String, Parsed)> = batch
            .iter()
            .map(|(id, new)| Ok((id.clone(), Parsed::of(new)?)))
            .collect::<Result<_>>()?;
        let ids: Vec<String> = parsed.iter().map(|(id, _)| id.clone()).collect();
        if let Some(bad) = ids.iter().find(|id| !id::is_full_id(id)) {
            return Err(Error::invalid("task id", bad, "not a full task id"));
        }
        self.store.update(&actor, |snap| {
            let mut docs = Vec::with_capacity(parsed.len());
            let mut made = Vec::with_capacity(parsed.len());
            for (id, new) in &parsed {
                if self.store.exists(snap, &Task::path(id))? {
                    return Err(Error::Other(format!(
                        "task id {id} is taken: nothing was created; run it again"
                    )));
                }
                let task = self.build(snap, &actor, id, new, &ids)?;
                docs.push((Task::path(id), Some(task.to_yaml().into_bytes())));
                made.push(task);
            }
            let change = Change {
                reads: None,
                docs,
                subject: format!("new {} tasks by {}", made.len(), actor.agent),
                trailers: std::iter::once(("Coord-Op", "new".to_string()))
                    .chain(made.iter().map(|t| ("Coord-Task", t.id.clone())))
                    .collect(),
            };
            Ok((change, made))
        })
    }

    /// The new task `new` under `id`, its dependencies and parent resolved against `snap`, or
    /// among `known` (tasks written in the same commit).
    fn build(
        &self,
        snap: &Snapshot,
        actor: &Actor,
        id: &str,
        new: &Parsed,
        known: &[String],
    ) -> Result<Task> {
        let resolve = |prefix: &str| match known.iter().find(|k| k.as_str() == prefix) {
            Some(k) => Ok(k.clone()),
            None => self.resolve(snap, prefix),
        };
        let mut deps = Vec::new();
        for prefix in &new.dep_prefixes {
            let dep = resolve(prefix)?;
            if !deps.contains(&dep) {
                deps.push(dep);
            }
        }
        for dep in &new.foreign_deps {
            if !deps.contains(dep) {
                deps.push(dep.clone());
            }
        }
        let parent = new.parent_prefix.as_deref().map(resolve).transpose()?;
        let now = time::now();
        let mut labels: Vec<String> = Vec::with_capacity(new.task.labels.len());
        for label in &new.task.labels {
            if !labels.contains(label) {
                labels.push(label.clone());
            }
        }
        let mut task = Task {
            format: TASK_FORMAT,
            id: id.to_string(),
            title: new.title.clone(),
            kind: new.task.kind.unwrap_or_default(),
            state: State::Open,
            priority: new.priority,
            role: new.task.role.clone(),
            labels,
            deps,
            followers: Vec::new(),
            parent,
            assignee: None,
            claimed_at: None,
            summary: None,
            block_reason: None,
            created: now.clone(),
            created_by: actor.agent.clone(),
            updated: now.clone(),
            description: new.task.description.clone(),
            comments: Vec::new(),
            history: Vec::new(),
            conflicts: Vec::new(),
            origin: None,
            extra: Default::default(),
        };
        task.push_event(&actor.agent, "new", None, &now);
        Ok(task)
    }

    /// Resolves an id or unique id prefix against the current tip.
    pub fn resolve_now(&self, input: &str) -> Result<String> {
        crate::store::task_ids::resolve_now(&self.coord.repo, input)
    }

    pub fn show(&self, input: &str) -> Result<Task> {
        let snap = self.store.snapshot()?;
        let id = self.resolve(&snap, &id::parse_prefix(input)?)?;
        self.load(&snap, &id)
    }

    pub fn claim(&self, input: &str, force: bool) -> Result<Task> {
        let actor = self.coord.actor()?;
        let prefix = id::parse_prefix(input)?;
        let mut index = self.coord.take_task_index();
        let mut stale_agents = None;
        let mut stale = || -> Result<HashSet<String>> {
            if stale_agents.is_none() {
                stale_agents =
                    Some(crate::ops::agents::Agents::new(self.coord)?.stale_for_takeover()?);
            }
            Ok(stale_agents.clone().unwrap_or_default())
        };
        crate::ops::team::check_claims_allowed(self.coord, &actor.agent)?;
        let mut took_from = None;
        let task = crate::ops::online::update(self.coord, &self.store, &actor, |snap| {
            let id = self.resolve(snap, &prefix)?;
            let mut task = self.load(snap, &id)?;
            if task.state == State::Claimed
                && task.assignee.as_deref() == Some(actor.agent.as_str())
            {
                return Ok((Change::default(), task)); // already ours: nothing to write
            }
            let takeover = match (task.state, task.assignee.clone()) {
                (State::Claimed, Some(holder))
                    if stale()?.contains(&holder) && !self.claim_is_fresh(&task)? =>
                {
                    Some(holder)
                }
                _ => {
                    check_claimable(&task)?;
                    None
                }
            };
            if !force && !task.deps.is_empty() {
                index.refresh(&self.coord.repo, TASKS_REF, snap, Need::All)?;
                let waiting = undone_deps(task.deps.iter().map(String::as_str), &index);
                if !waiting.is_empty() {
                    let list = waiting
                        .iter()
                        .map(|w| format!("{} ({})", w.id, w.state))
                        .collect::<Vec<_>>();
                    return Err(Error::WrongState {
                        id,
                        state: "not ready".into(),
                        why: format!(
                            "it waits on {}; use --force to claim it anyway",
                            list.join(", ")
                        ),
                    });
                }
            }
            took_from.clone_from(&takeover);
            Ok((claim_write(&mut task, &actor, takeover), task))
        });
        self.coord.give_back_task_index(index);
        let task = task?;
        if let Some(holder) = took_from {
            self.after_takeover(&task, &holder);
        }
        Ok(task)
    }

    /// A takeover takes the whole claim: the old holder's leases on the task pass to the new
    /// holder, and the old holder is told. Never fails the claim, which already holds.
    fn after_takeover(&self, task: &Task, holder: &str) {
        let passed = crate::ops::leases::Leases::new(self.coord).pass_for_task(&task.id, holder);
        let passed = passed.unwrap_or_else(|e| {
            self.coord.warn(format!(
                "{holder}'s leases on task {} stay {holder}'s, not passed to you: {e}",
                task.id
            ));
            Vec::new()
        });
        if crate::ops::presence::tell_taken_over(self.coord, task, holder, &passed) {
            crate::ops::online::push_inbox(self.coord); // with a remote, it is there at once
        }
    }

    /// Claims the most urgent ready task (optionally of one role), atomically.
    ///
    /// Racing claimers on one clone all pick the same most urgent task, and all but one lose it;
    /// each keeps the candidates that came after its pick, and under the ref's lock takes the
    /// first of them that no write since changed (see [`Store::update_or_repick`]): strict
    /// urgency order, and no second try. Claims confirmed at a remote race there instead, so
    /// once a race shows they spread over the equally urgent tasks at the top.
    pub fn claim_next(&self, role: Option<&str>) -> Result<Task> {
        let actor = self.coord.actor()?;
        if let Some(role) = role {
            name::validate("role", role)?;
        }
        let online = self.coord.confirm_remote()?.is_some();
        // Where the ref stood when this claim began: a claim confirmed at a remote that finds it
        // moved by its first try knows it races.
        let began = match online {
            true => self.store.snapshot()?.tip,
            false => None,
        };
        let stale = crate::ops::agents::Agents::new(self.coord)?.stale_for_takeover()?;
        crate::ops::team::check_claims_allowed(self.coord, &actor.agent)?;
        // The claim cache gives the index's answer only where nothing outside this ref's changes
        // decides (store/claimable.rs).
        let cacheable = !online
            && stale.is_empty()
            && self
                .coord
                .repo
                .refs_under(crate::store::foreign::PROJECTS_NS)?
                .is_empty();
        let mut index = None;
        let mut tries = 0u32;
        // The candidates after the one the last try took, for the second chance under the lock.
        let next = std::cell::RefCell::new(Vec::<String>::new());
        let took_from = std::cell::RefCell::new(None);
        let to_save = std::cell::RefCell::new(None);
        let op = |snap: &Snapshot| {
            tries += 1;
            let cached = match cacheable {
                true => claimable::load(&self.coord.repo, role, snap)?,
                false => None,
            };
            let mut list = match cached {
                Some(list) => list,
                None => {
                    self.claimable_from_index(&mut index, snap, role, &stale, claimable::KEEP)?
                }
            };
            // Racing claimers all want the most urgent task. Once there is a sign of a race (a
            // lost try, or the ref moved since this claim began), each starts its search at its
            // own place among the equally urgent tasks at the top, so that they spread.
            if online && (tries > 1 || snap.tip != began) {
                spread(&mut list.list, &actor.agent, tries);
            }
            let mut found = self.first_loadable(snap, &list.list, &stale)?;
            if found.is_none() && !list.complete {
                // Every one of the most urgent is damaged: all of them, then.
                list = self.claimable_from_index(&mut index, snap, role, &stale, usize::MAX)?;
                found = self.first_loadable(snap, &list.list, &stale)?;
            }
            let Some((mut task, at)) = found else {
                return Err(Error::NothingReady {
                    role: role.map(str::to_string),
                });
            };
            *next.borrow_mut() = list.list[at + 1..]
                .iter()
                .take(LOOKAHEAD)
                .map(|c| c.id.clone())
                .collect();
            if cacheable {
                to_save.replace(Some(list));
            }
            let takeover = task
                .assignee
                .clone()
                .filter(|_| task.state == State::Claimed);
            took_from.replace(takeover.clone());
            Ok((claim_write(&mut task, &actor, takeover), task))
        };
        // Under the lock: the first later candidate that no write since `base` touched is as
        // claimable on `now` as it was on `base`.
        let repick = |base: &Snapshot, now: &Snapshot| -> Result<Option<(Change, Task)>> {
            let mut next = next.borrow_mut();
            while !next.is_empty() {
                let id = next.remove(0);
                if !self.store.same_in(base, now, &Task::path(&id))? {
                    continue;
                }
                let mut task = match self.load(now, &id) {
                    Ok(task) if takeable(&task, &stale) && !self.claim_is_fresh(&task)? => task,
                    Ok(_) => continue,
                    Err(Error::Malformed { .. } | Error::NewerFormat { .. }) => continue,
                    Err(e) => return Err(e),
                };
                let mut deps_same = true;
                for path in read_set(&task, None.iter()) {
                    deps_same &= self.store.same_in(base, now, &path)?;
                }
                if !deps_same {
                    continue;
                }
                let takeover = task
                    .assignee
                    .clone()
                    .filter(|_| task.state == State::Claimed);
                took_from.replace(takeover.clone());
                return Ok(Some((claim_write(&mut task, &actor, takeover), task)));
            }
            Ok(None)
        };
        let task =
            crate::ops::online::update_or_repick(self.coord, &self.store, &actor, op, repick)?;
        if let Some(list) = to_save.take() {
            claimable::save(&self.coord.repo, role, &list);
        }
        if let Some(holder) = took_from.take() {
            self.after_takeover(&task, &holder);
        }
        Ok(task)
    }

    /// Whether `task` is claimed so recently that its holder, however stale it looks here, was
    /// alive when it claimed: such a claim is not taken over (agents.rs, `claim_proves_alive`).
    fn claim_is_fresh(&self, task: &Task) -> Result<bool> {
        match (task.state, task.assignee.as_deref()) {
            (State::Claimed, Some(holder)) => crate::ops::agents::Agents::new(self.coord)?
                .claim_proves_alive(holder, task.claimed_at.as_deref()),
            _ => Ok(false),
        }
    }

    /// The first of `candidates` that loads whole, and its place. A document the index could
    /// summarise may still fail to load (damage in a part listings do not read): it is skipped
    /// rather than let it block every claim.
    fn first_loadable(
        &self,
        snap: &Snapshot,
        candidates: &[Candidate],
        stale: &HashSet<String>,
    ) -> Result<Option<(Task, usize)>> {
        for (at, candidate) in candidates.iter().enumerate() {
            match self.load(snap, &candidate.id) {
                Ok(task) if takeable(&task, stale) && !self.claim_is_fresh(&task)? => {
                    return Ok(Some((task, at)));
                }
                // The list said it could be taken and the document says not: the document wins.
                Ok(task) => {
                    tracing::debug!("task {} is {}: not taken", task.id, task.state.as_str())
                }
                Err(e @ (Error::Malformed { .. } | Error::NewerFormat { .. })) => {
                    self.coord
                        .warn(format!("skipping task {}: {e}", candidate.id));
                }
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    /// The `keep` most urgent tasks `claim --next` may take on `snap`, from the task index
    /// (loaded on first use, refreshed after).
    fn claimable_from_index(
        &self,
        index: &mut Option<TaskIndex>,
        snap: &Snapshot,
        role: Option<&str>,
        stale: &HashSet<String>,
        keep: usize,
    ) -> Result<Claimable> {
        let index = match index {
            Some(index) => {
                index.refresh(&self.coord.repo, TASKS_REF, snap, Need::Undone)?;
                index
            }
            None => index.insert(self.index_for(snap, Need::Undone)?),
        };
        let mut top = claimable_unsorted(index, role, stale);
        let all = top.len();
        most_urgent_first(&mut top, keep);
        Ok(Claimable {
            tree: snap.tree,
            complete: top.len() == all,
            list: top
                .iter()
                .map(|t| Candidate {
                    priority: t.priority(),
                    created: t.created().to_string(),
                    id: t.id().to_string(),
                })
                .collect(),
        })
    }

    /// Hands an open task to `agent` (as if it had claimed it), on the organiser's behalf: a
    /// checkpoint gives a conflict to the agent whose branch it is in.
    pub fn assign(&self, input: &str, agent: &str) -> Result<Task> {
        name::validate("agent name", agent)?;
        self.mutate(input, "assign", |task, _| {
            check_claimable(task)?;
            task.state = State::Claimed;
            task.assignee = Some(agent.to_string());
            task.claimed_at = Some(time::now());
            Ok(Some(format!("to {agent}")))
        })
    }

    /// Adds an event to a task's history without changing its state (a workflow's review
    /// rounds and send-backs are recorded this way).
    pub fn record(&self, input: &str, op: &str, note: String) -> Result<Task> {
        self.mutate(input, op, |_, _| Ok(Some(note.clone())))
    }

    pub fn release(&self, input: &str, force: bool) -> Result<Task> {
        self.mutate(input, "release", |task, actor| {
            if task.state != State::Claimed {
                return Err(wrong_state(task, "only a claimed task can be released"));
            }
            check_holder(task, actor, force)?;
            task.state = State::Open;
            task.assignee = None;
            task.claimed_at = None;
            Ok(None)
        })
    }

    /// Marks a task done, then releases the leases taken for it and tells its creator and
    /// followers. The release is a second write, on refs/coord/leases, that only tidies up: a
    /// lease follows its task and ends with it (leases.rs, `bound_by_task`), so a kill in between
    /// or a failed release (a warning) leaves no lease in anyone's way. What a workflow does next
    /// is [`crate::ops::work::done`]'s, which users' commands go through.
    ///
    /// `done` again of a done kept in this clone confirms it: see [`Tasks::done_again`].
    pub fn mark_done(&self, input: &str, summary: Option<String>, force: bool) -> Result<Finished> {
        if let Some(task) = self.done_again(input)? {
            return Ok(Finished {
                task,
                first: false,
                unconfirmed: None,
            });
        }
        let kept = self.finish(input, summary, force)?;
        let unconfirmed = kept.unconfirmed(|t| format!("task {} done", t.id));
        let task = kept.value;
        if let Err(e) = crate::ops::leases::Leases::new(self.coord).release_for_task(&task.id) {
            self.coord.warn(format!(
                "task {} is done, but its leases were not released ({e}); they run to their expiry, or `git coord lease release ID` frees them",
                task.id
            ));
        }
        self.tell_creator(&task, "done", task.summary.as_deref());
        Ok(Finished {
            task,
            first: true,
            unconfirmed,
        })
    }

    /// `done` again of a task this agent finished in this clone while the remote could not be
    /// reached: the kept done goes out now, merged with whatever the remote holds, and is
    /// confirmed when it is still this agent's there, else refused (another agent took the task
    /// over meanwhile and finished it). None when the task is not such a kept done: then `done`
    /// goes on as usual, and a task done already is refused (`already done`), so that one done
    /// of a task exits 0, once.
    fn done_again(&self, input: &str) -> Result<Option<Task>> {
        let actor = self.coord.actor()?;
        let here = self.show(input)?;
        let mine = |t: &Task| t.state == State::Done && t.assignee.as_ref() == Some(&actor.agent);
        if !mine(&here) {
            return Ok(None);
        }
        let Some(remote) = self.coord.confirm_remote()? else {
            return Ok(None);
        };
        let path = Task::path(&here.id);
        let staged = self.store.snapshot_of(&remote.staged(TASKS_REF))?;
        if let Some(bytes) = self.store.read(&staged, &path)?
            && Task::from_yaml(&bytes, TASKS_REF, &path)?.state == State::Done
        {
            return Ok(None);
        }
        let kept = crate::ops::online::update_or_keep(self.coord, &self.store, &actor, |_| {
            Ok((Change::default(), ()))
        })?;
        if let Some(e) = kept.unconfirmed(|_| format!("task {} done", here.id)) {
            return Err(e);
        }
        let now = self.show(&here.id)?;
        match mine(&now) {
            true => Ok(Some(now)),
            false => Err(wrong_state(
                &now,
                &format!(
                    "{} took it over while your done was kept in this clone, and theirs holds",
                    now.assignee.as_deref().unwrap_or("another agent")
                ),
            )),
        }
    }

    fn finish(
        &self,
        input: &str,
        summary: Option<String>,
        force: bool,
    ) -> Result<crate::ops::online::Kept<Task>> {
        self.mutate_kept(input, "done", |task, actor, _, _| {
            if task.state == State::Done {
                return Err(wrong_state(task, "it is already done"));
            }
            check_holder(task, actor, force)?;
            task.state = State::Done;
            task.assignee = Some(task.assignee.clone().unwrap_or_else(|| actor.agent.clone()));
            task.block_reason = None;
            task.summary = summary.clone().filter(|s| !s.trim().is_empty());
            Ok(task.summary.clone())
        })
    }

    /// Reopens without routing the task anywhere: [`crate::ops::work::reopen`] routes a workflow
    /// stage back to whoever did it.
    pub fn reopen_only(&self, input: &str, reason: Option<String>, force: bool) -> Result<Task> {
        self.mutate(input, "reopen", |task, actor| {
            if task.state == State::Open {
                return Err(wrong_state(task, "it is already open"));
            }
            check_holder(task, actor, force)?;
            task.state = State::Open;
            task.assignee = None;
            task.claimed_at = None;
            task.block_reason = None;
            task.summary = None;
            Ok(reason.clone())
        })
    }

    pub fn block(&self, input: &str, reason: &str) -> Result<Task> {
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(Error::invalid(
                "reason",
                reason,
                "say what the task waits for",
            ));
        }
        let task = self.mutate(input, "block", |task, _| {
            if task.state == State::Done {
                return Err(wrong_state(
                    task,
                    "a done task cannot be blocked; reopen it first",
                ));
            }
            task.state = State::Blocked;
            task.block_reason = Some(reason.to_string());
            Ok(Some(reason.to_string()))
        })?;
        self.tell_creator(&task, "blocked", Some(reason));
        Ok(task)
    }

    /// Tells the agent that created `task`, and the agents that follow it, that it is now done
    /// or blocked, with the summary or the reason: a message in each inbox, pushed at once with
    /// a remote. Never the agent that did it. The creator is not told of a workflow's stages
    /// (the workflow tells the organiser), of another project's filing (its dependants there
    /// are told by their sync), or with `notify_creator: false`; nobody is with `quiet`.
    fn tell_creator(&self, task: &Task, what: &str, note: Option<&str>) {
        let Ok(actor) = self.coord.actor() else {
            return;
        };
        if self.quiet {
            return;
        }
        let creator = task.created_by.as_str();
        let tell_creator = !creator.is_empty()
            && task.origin.is_none()
            && !task
                .labels
                .iter()
                .any(|l| l == crate::model::task::STAGE_LABEL)
            && self.coord.config().map_or(true, |c| c.notify_creator);
        let mut to: Vec<&str> = Vec::new();
        for who in tell_creator
            .then_some(creator)
            .into_iter()
            .chain(task.followers.iter().map(String::as_str))
        {
            if who != actor.agent && !to.contains(&who) {
                to.push(who);
            }
        }
        if to.is_empty() {
            return;
        }
        let at = task.updated.clone();
        let note = note.map(|n| format!(": {n}")).unwrap_or_default();
        let subject = format!("Task {} is {what}: {}", task.id, task.title);
        let body = format!(
            "{} marked task {} ({}) {what} at {at}{note}. `git coord task show {}` shows it whole.",
            actor.agent, task.id, task.title, task.id
        );
        let mut told = false;
        for who in to {
            let key = match who == creator {
                true => format!("{what}:{}:{at}", task.id),
                false => format!("{what}:{}:{at}:{who}", task.id),
            };
            let about = crate::ops::notices::NoticeAbout::Task(&task.id);
            match crate::ops::notices::deliver(self.coord, &key, who, &subject, &body, about, &at) {
                Ok(()) => told = true,
                Err(e) => self.coord.warn(format!(
                    "{who}, who follows task {}, was not told: {e}",
                    task.id
                )),
            }
        }
        if told {
            crate::ops::online::push_inbox(self.coord);
        }
    }

    /// Changes the tasks of `ids` that `apply` changes, in one commit, all or none: confirmed at
    /// the remote when it can be reached, as `release` and `block` are. See
    /// [`Tasks::edit_change`]. Returns the tasks it changed.
    pub fn edit_all(
        &self,
        ids: &[String],
        op: &str,
        mut apply: impl FnMut(&mut Task, &str, &str) -> Result<bool>,
    ) -> Result<Vec<Task>> {
        let actor = self.coord.actor()?;
        crate::ops::online::update_or_keep(self.coord, &self.store, &actor, |snap| {
            self.edit_change(snap, ids, op, &actor, &mut apply)
        })
        .map(|kept| {
            kept.warned(self.coord, |changed| {
                format!("{op} of {} tasks", changed.len())
            })
        })
    }

    /// The change of refs/coord/tasks that edits the tasks of `ids` in `snap` with `apply`,
    /// for a write of its own ([`Tasks::edit_all`]) or one with other refs. `apply` is given
    /// the acting agent and the time, records its own events, and says whether it changed the
    /// task. `op` names the commit (`Coord-Op`).
    pub fn edit_change(
        &self,
        snap: &Snapshot,
        ids: &[String],
        op: &str,
        actor: &Actor,
        apply: &mut dyn FnMut(&mut Task, &str, &str) -> Result<bool>,
    ) -> Result<(Change, Vec<Task>)> {
        let now = time::now();
        let mut docs = Vec::new();
        let mut changed = Vec::new();
        for id in ids {
            let mut task = self.load(snap, id)?;
            if apply(&mut task, &actor.agent, &now)? {
                docs.push((Task::path(id), Some(task.to_yaml().into_bytes())));
                changed.push(task);
            }
        }
        let change = Change {
            reads: None,
            docs,
            subject: format!("{op} {} tasks by {}", changed.len(), actor.agent),
            trailers: std::iter::once(("Coord-Op", op.to_string()))
                .chain(changed.iter().map(|t| ("Coord-Task", t.id.clone())))
                .collect(),
        };
        Ok((change, changed))
    }

    /// Tells the creator and followers of `task` that it is now blocked (`block` does it): for
    /// a flow that blocked tasks through [`Tasks::edit_all`].
    pub fn tell_blocked(&self, task: &Task, reason: &str) {
        self.tell_creator(task, "blocked", Some(reason));
    }

    /// Adds `agent` to the followers of task `input` (`on`), or takes it off: a follower is told
    /// when the task is done or blocked, as its creator is.
    pub fn follow(&self, input: &str, agent: &str, on: bool) -> Result<Task> {
        name::validate("agent name", agent)?;
        let op = if on { "follow" } else { "unfollow" };
        self.mutate(input, op, |task, _| {
            let has = task.followers.iter().any(|f| f == agent);
            match (on, has) {
                (true, false) => task.followers.push(agent.to_string()),
                (false, true) => task.followers.retain(|f| f != agent),
                _ => {}
            }
            Ok(Some(agent.to_string()))
        })
    }

    pub fn comment(&self, input: &str, text: &str) -> Result<Task> {
        if text.trim().is_empty() {
            return Err(Error::invalid("comment", text, "it is empty"));
        }
        self.mutate(input, "comment", |task, actor| {
            task.comments.push(Comment {
                id: id::new_id(),
                author: actor.agent.clone(),
                at: time::now(),
                text: text.to_string(),
                project: None,
                human: None,
            });
            Ok(None)
        })
    }

    pub fn edit(&self, input: &str, edit: TaskEdit) -> Result<Task> {
        let title = edit.title.as_deref().map(check_title).transpose()?;
        if let Some(p) = edit.priority {
            check_priority(p)?;
        }
        if let Some(Some(role)) = &edit.role {
            name::validate("role", role)?;
        }
        for label in &edit.add_labels {
            name::validate("label", label)?;
        }
        let parent_prefix = match &edit.parent {
            Some(Some(p)) => Some(Some(id::parse_prefix(p)?)),
            Some(None) => Some(None),
            None => None,
        };
        let actor = self.coord.actor()?;
        let prefix = id::parse_prefix(input)?;
        let mut index = self.coord.take_task_index();
        let edited = self.store.update(&actor, |snap| {
            let id = self.resolve(snap, &prefix)?;
            let mut task = self.load(snap, &id)?;
            let mut changed = Vec::new();
            if let Some(title) = &title {
                task.title = title.clone();
                changed.push("title");
            }
            if let Some(d) = &edit.description {
                task.description = d.clone();
                changed.push("description");
            }
            if let Some(p) = edit.priority {
                task.priority = p;
                changed.push("priority");
            }
            if let Some(k) = edit.kind {
                task.kind = k;
                changed.push("type");
            }
            if let Some(role) = &edit.role {
                task.role = role.clone();
                changed.push("role");
            }
            for label in &edit.add_labels {
                if !task.labels.contains(label) {
                    task.labels.push(label.clone());
                }
            }
            task.labels.retain(|l| !edit.remove_labels.contains(l));
            if !edit.add_labels.is_empty() || !edit.remove_labels.is_empty() {
                changed.push("labels");
            }
            match &parent_prefix {
                Some(Some(p)) => {
                    let parent = self.resolve(snap, p)?;
                    index.refresh(&self.coord.repo, TASKS_REF, snap, Need::All)?;
                    check_parent_chain(&index, &id, &parent)?;
                    task.parent = Some(parent);
                    changed.push("parent");
                }
                Some(None) => {
                    task.parent = None;
                    changed.push("parent");
                }
                None => {}
            }
            if changed.is_empty() {
                return Err(Error::invalid(
                    "edit",
                    input,
                    "nothing to change; see `git coord task edit --help`",
                ));
            }
            task.push_event(&actor.agent, "edit", Some(changed.join(", ")), &time::now());
            Ok((write_change(&task, "edit", &actor), task))
        });
        self.coord.give_back_task_index(index);
        edited
    }

    pub fn dep_add(&self, input: &str, dep_input: &str) -> Result<Task> {
        // A task of another project, resolved against a fresh fetch of it (no cycle check), or a
        // prefix of a task here, resolved on each snapshot.
        enum Dep {
            Foreign(String),
            Here(String),
        }
        let wanted = match id::split_foreign(dep_input) {
            Some(_) => Dep::Foreign(resolved_foreign(dep_input)?),
            None => Dep::Here(id::parse_prefix(dep_input)?),
        };
        let actor = self.coord.actor()?;
        let prefix = id::parse_prefix(input)?;
        let mut index = self.coord.take_task_index();
        let added = self.store.update(&actor, |snap| {
            let id = self.resolve(snap, &prefix)?;
            let dep = match &wanted {
                Dep::Foreign(dep) => dep.clone(),
                Dep::Here(dep_prefix) => self.resolve(snap, dep_prefix)?,
            };
            if id == dep {
                return Err(Error::Cycle(vec![id.clone(), id]));
            }
            let mut task = self.load(snap, &id)?;
            if task.deps.contains(&dep) {
                return Ok((Change::default(), task)); // already there: nothing to write
            }
            if let Dep::Here(_) = wanted {
                index.refresh(&self.coord.repo, TASKS_REF, snap, Need::All)?;
                if let Some(path) = dep_path(&index, &dep, &id) {
                    let mut cycle = vec![id.clone()];
                    cycle.extend(path);
                    return Err(Error::Cycle(cycle));
                }
            }
            task.deps.push(dep.clone());
            task.push_event(&actor.agent, "dep-add", Some(dep), &time::now());
            Ok((write_change(&task, "dep-add", &actor), task))
        });
        self.coord.give_back_task_index(index);
        added
    }

    pub fn dep_rm(&self, input: &str, dep_input: &str) -> Result<Task> {
        if let Some((project, prefix)) = id::split_foreign(dep_input) {
            let wanted = format!("{project}:{}", id::parse_prefix(prefix)?);
            return self.mutate(input, "dep-rm", |task, _| {
                let Some(dep) = task.deps.iter().find(|d| d.starts_with(&wanted)).cloned() else {
                    return Err(not_a_dep(task, dep_input));
                };
                task.deps.retain(|d| d != &dep);
                Ok(Some(dep))
            });
        }
        let dep_prefix = id::parse_prefix(dep_input)?;
        self.mutate_with(input, "dep-rm", |task, _, this, snap| {
            let dep = this.resolve(snap, &dep_prefix).or_else(|_| {
                task.deps
                    .iter()
                    .find(|d| d.starts_with(&dep_prefix))
                    .cloned()
                    .ok_or_else(|| Error::NoSuchTask(dep_prefix.clone()))
            })?;
            if !task.deps.contains(&dep) {
                return Err(not_a_dep(task, dep_input));
            }
            task.deps.retain(|d| d != &dep);
            Ok(Some(dep))
        })
    }

    pub fn dep_tree(&self, input: &str) -> Result<DepNode> {
        let snap = self.store.snapshot()?;
        let id = self.resolve(&snap, &id::parse_prefix(input)?)?;
        let index = self.index(&snap)?;
        Ok(dep_node(&id, &index, &mut HashSet::new()))
    }

    pub fn index(&self, snap: &Snapshot) -> Result<TaskIndex> {
        self.index_for(snap, Need::All)
    }

    /// The index for `snap`, ready for what `need` reads.
    pub fn index_for(&self, snap: &Snapshot, need: Need) -> Result<TaskIndex> {
        let mut index = self.coord.take_task_index();
        index.refresh(&self.coord.repo, TASKS_REF, snap, need)?;
        self.coord.keep_task_index(&index);
        Ok(index)
    }

    /// The index of the current tip, for the listings below.
    pub fn load_index(&self) -> Result<TaskIndex> {
        self.index(&self.store.snapshot()?)
    }

    /// The index of the current tip for what reads no done task: [`ready_tasks`], the tasks
    /// an agent holds ([`Need::Undone`]).
    pub fn load_ready_index(&self) -> Result<TaskIndex> {
        self.index_for(&self.store.snapshot()?, Need::Undone)
    }

    /// The audit trail: the history of refs/coord/tasks, newest first.
    pub fn log(&self, task: Option<&str>, limit: Option<usize>) -> Result<Vec<LogEntry>> {
        let Some(tip) = self.store.snapshot()?.tip else {
            return Ok(Vec::new());
        };
        let wanted = task.map(|t| self.resolve_now(t)).transpose()?;
        let mut out = Vec::new();
        self.coord.repo.walk_history(tip, |commit| {
            let trailer = |key: &str| {
                commit
                    .message
                    .lines()
                    .find_map(|l| l.strip_prefix(key).map(|v| v.trim().to_string()))
            };
            let entry = LogEntry {
                commit: commit.oid.to_string(),
                at: time::from_seconds(commit.seconds),
                agent: trailer("Coord-Agent:").unwrap_or(commit.author.clone()),
                op: trailer("Coord-Op:").unwrap_or_default(),
                task: trailer("Coord-Task:"),
                subject: commit
                    .message
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_string(),
            };
            if limit.is_some_and(|n| out.len() >= n) {
                return false;
            }
            // A commit that writes several tasks names each in a trailer of its own.
            let names = |id: &String| {
                commit
                    .message
                    .lines()
                    .filter_map(|l| l.strip_prefix("Coord-Task:"))
                    .any(|v| v.trim() == id)
            };
            match &wanted {
                None => out.push(entry),
                Some(id) if names(id) => out.push(LogEntry {
                    task: Some(id.clone()),
                    ..entry
                }),
                Some(_) => {}
            }
            limit.is_none_or(|n| out.len() < n)
        })?;
        Ok(out)
    }

    /// Loads one task, changes it with `apply`, records the event and writes it.
    fn mutate(
        &self,
        input: &str,
        op: &str,
        mut apply: impl FnMut(&mut Task, &Actor) -> Result<Option<String>>,
    ) -> Result<Task> {
        self.mutate_with(input, op, |task, actor, _, _| apply(task, actor))
    }

    fn mutate_with(
        &self,
        input: &str,
        op: &str,
        apply: impl FnMut(&mut Task, &Actor, &Self, &Snapshot) -> Result<Option<String>>,
    ) -> Result<Task> {
        Ok(self
            .mutate_kept(input, op, apply)?
            .warned(self.coord, |t| format!("task {} {op}", t.id)))
    }

    /// As [`Tasks::mutate_with`], saying when an operation that ends or hands back a claim was
    /// kept here because the remote could not be reached.
    fn mutate_kept(
        &self,
        input: &str,
        op: &str,
        mut apply: impl FnMut(&mut Task, &Actor, &Self, &Snapshot) -> Result<Option<String>>,
    ) -> Result<crate::ops::online::Kept<Task>> {
        let actor = self.coord.actor()?;
        let prefix = id::parse_prefix(input)?;
        let write = |snap: &Snapshot| {
            let id = self.resolve(snap, &prefix)?;
            let mut task = self.load(snap, &id)?;
            let note = apply(&mut task, &actor, self, snap)?;
            task.push_event(&actor.agent, op, note, &time::now());
            Ok((write_change(&task, op, &actor), task))
        };
        // What ends or hands back a claim is confirmed at the remote, as a claim is: a takeover
        // racing the holder's own late write then has exactly one winner there.
        match CONFIRMED_OPS.contains(&op) {
            true => crate::ops::online::update_or_keep(self.coord, &self.store, &actor, write),
            false => Ok(crate::ops::online::Kept {
                value: self.store.update(&actor, write)?,
                unreached: None,
            }),
        }
    }

    fn load(&self, snap: &Snapshot, id: &str) -> Result<Task> {
        let path = Task::path(id);
        let bytes = self
            .store
            .read(snap, &path)?
            .ok_or_else(|| Error::NoSuchTask(id.to_string()))?;
        Task::from_yaml(&bytes, TASKS_REF, &path)
    }

    /// Finds the one task whose id starts with `prefix`, looking only in its shard.
    fn resolve(&self, snap: &Snapshot, prefix: &str) -> Result<String> {
        crate::store::task_ids::resolve(&self.coord.repo, snap, prefix)
    }

    fn fresh_id(&self, snap: &Snapshot) -> Result<String> {
        loop {
            let id = id::new_id();
            if !self.store.exists(snap, &Task::path(&id))? {
                return Ok(id);
            }
        }
    }
}

/// A dependency on another project's task as [`crate::ops::projects::Projects::resolve_dep`]
/// gives it (`NAME:<full id>`, checked against a fresh fetch of the project), which the flows
/// that take one from a user ([`crate::ops::work`]) do first.
fn resolved_foreign(dep: &str) -> Result<String> {
    match id::split_foreign(dep) {
        Some((_, full)) if id::is_full_id(full) => Ok(dep.to_string()),
        _ => Err(Error::invalid(
            "dependency",
            dep,
            "another project's task must be resolved against that project first",
        )),
    }
}

/// Tasks matching `filter`, most urgent first.
pub fn list<'i>(index: &'i TaskIndex, filter: &ListFilter) -> Vec<TaskRef<'i>> {
    let mut out: Vec<TaskRef> = Vec::with_capacity(index.len());
    out.extend(
        index
            .tasks()
            .filter(|t| filter.state.is_none_or(|s| t.state() == s))
            .filter(|t| {
                filter
                    .assignee
                    .as_deref()
                    .is_none_or(|a| t.assignee() == Some(a))
            })
            .filter(|t| filter.role.as_deref().is_none_or(|r| t.role() == Some(r)))
            .filter(|t| {
                filter
                    .label
                    .as_deref()
                    .is_none_or(|l| t.labels().any(|x| x == l))
            }),
    );
    sort_by_urgency(&mut out);
    out
}

/// Sorts tasks most urgent first ([`TaskRef::urgency_key`]). At 100,000 tasks comparing the
/// keys is most of a listing's work, so each is packed into two integers when the task is indexed
/// ([`TaskRef::packed_urgency`]) and sorted with its task's place only; keys are compared whole
/// only where those tie.
fn sort_by_urgency(tasks: &mut Vec<TaskRef<'_>>) {
    let mut keys: Vec<(u64, u64, u32)> = tasks
        .iter()
        .enumerate()
        .map(|(at, t)| {
            let (high, low) = t.packed_urgency();
            (high, low, at as u32)
        })
        .collect();
    let whole = |a: &(u64, u64, u32), b: &(u64, u64, u32)| {
        let (ta, tb) = (tasks[a.2 as usize], tasks[b.2 as usize]);
        ta.urgency_key().cmp(&tb.urgency_key())
    };
    if keys.iter().all(|k| k.0 & INEXACT == 0) {
        // As plain integers (the fastest sort there is for them), then the few runs of equal
        // packed keys (ids alike in their first 8 bytes) again by the whole key.
        keys.sort_unstable();
        for run in keys.chunk_by_mut(|a, b| (a.0, a.1) == (b.0, b.1)) {
            if run.len() > 1 {
                run.sort_unstable_by(whole);
            }
        }
    } else {
        keys.sort_unstable_by(|a, b| {
            if (a.0 | b.0) & INEXACT == 0 && (a.0, a.1) != (b.0, b.1) {
                return (a.0, a.1).cmp(&(b.0, b.1));
            }
            whole(a, b)
        });
    }
    *tasks = keys
        .into_iter()
        .map(|(_, _, at)| tasks[at as usize])
        .collect();
}

/// Open, unclaimed, non-epic tasks whose dependencies are all done, most urgent first.
pub fn ready_tasks<'i>(index: &'i TaskIndex, role: Option<&str>) -> Vec<TaskRef<'i>> {
    claimable_tasks(index, role, &HashSet::new())
}

/// What `claim --next` may take: the ready tasks, and the tasks held by a stale agent whose
/// dependencies are done, most urgent first.
pub fn claimable_tasks<'i>(
    index: &'i TaskIndex,
    role: Option<&str>,
    stale: &HashSet<String>,
) -> Vec<TaskRef<'i>> {
    let mut ready = claimable_unsorted(index, role, stale);
    sort_by_urgency(&mut ready);
    ready
}

/// Keeps the `n` most urgent of `tasks`, most urgent first, without sorting the others.
fn most_urgent_first(tasks: &mut Vec<TaskRef<'_>>, n: usize) {
    if tasks.len() > n {
        tasks.select_nth_unstable_by_key(n, |t| t.urgency_key());
        tasks.truncate(n);
    }
    sort_by_urgency(tasks);
}

/// Whether a loaded task may be taken by `claim --next`: open and unassigned, or held by a stale
/// agent, and not an epic (its dependencies aside).
fn takeable(task: &Task, stale: &HashSet<String>) -> bool {
    crate::model::task::takeable(task.kind, task.state, || task.assignee.as_deref(), stale)
}

/// What `claim --next` may take, unsorted. (store/claimable.rs applies the same test to the
/// documents that changed since its list was made.)
fn claimable_unsorted<'i>(
    index: &'i TaskIndex,
    role: Option<&str>,
    stale: &HashSet<String>,
) -> Vec<TaskRef<'i>> {
    index
        .tasks()
        .filter(|t| crate::model::task::takeable(t.kind(), t.state(), || t.assignee(), stale))
        .filter(|t| crate::model::task::role_fits(t.role(), role))
        .filter(|t| !t.has_deps() || t.deps().all(|d| index.dep_done(d)))
        .collect()
}

/// How many candidates after its pick `claim --next` keeps for a second chance under the lock.
const LOOKAHEAD: usize = 32;

/// How many of the equally urgent tasks at the top racing claimers spread over.
const SPREAD: usize = 8;

/// Rotates the first candidates of the best priority so that `agent`'s search starts at its own
/// place among them (chosen by its name and the try, the same on every run), then goes on in
/// order. A higher priority is never passed over for a lower one.
fn spread(candidates: &mut [Candidate], agent: &str, tries: u32) {
    let Some(best) = candidates.first().map(|t| t.priority) else {
        return;
    };
    let same = candidates
        .iter()
        .take(SPREAD)
        .take_while(|t| t.priority == best)
        .count();
    if same < 2 {
        return;
    }
    // FNV-1a: a stable hash, so that the same agent starts at the same place on every machine.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in agent.bytes().chain(tries.to_le_bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    candidates[..same].rotate_left((h % same as u64) as usize);
}

/// Open or blocked tasks that wait, with what they wait on, most urgent first.
pub fn blocked(index: &TaskIndex) -> Vec<Waiting<'_>> {
    let mut out: Vec<Waiting> = index
        .tasks()
        .filter(|t| matches!(t.state(), State::Open | State::Blocked))
        .filter_map(|t| {
            let waits_on = undone_deps(t.deps(), index);
            (t.state() == State::Blocked || !waits_on.is_empty())
                .then_some(Waiting { task: t, waits_on })
        })
        .collect();
    out.sort_by_cached_key(|w| w.task.urgency_key());
    out
}

fn undone_deps<'d>(deps: impl Iterator<Item = &'d str>, index: &TaskIndex) -> Vec<WaitsOn> {
    deps.filter_map(|d| match (index.get(d), index.foreign(d)) {
        (Some(t), _) if t.state() == State::Done => None,
        (Some(t), _) => Some(WaitsOn {
            id: d.into(),
            title: t.title().into(),
            state: t.state().as_str().into(),
            fetched: None,
        }),
        (None, Some(f)) if f.done => None,
        (None, Some(f)) => Some(WaitsOn {
            id: d.into(),
            title: f.title.clone(),
            state: f.state.clone(),
            fetched: f.fetched.clone(),
        }),
        (None, None) => Some(WaitsOn {
            id: d.into(),
            title: String::new(),
            state: if d.contains(':') {
                "not fetched"
            } else {
                "missing"
            }
            .into(),
            fetched: None,
        }),
    })
    .collect()
}

/// A path of dependencies from `from` to `to`, if there is one (`from` first, `to` last).
fn dep_path(index: &TaskIndex, from: &str, to: &str) -> Option<Vec<String>> {
    let mut came_from: HashMap<&str, &str> = HashMap::new();
    let mut stack = vec![from];
    let mut seen = HashSet::from([from]);
    while let Some(current) = stack.pop() {
        if current == to {
            let mut path = vec![to.to_string()];
            let mut at = to;
            while let Some(prev) = came_from.get(at) {
                path.push(prev.to_string());
                at = prev;
            }
            path.reverse();
            return Some(path);
        }
        for dep in index.get(current).into_iter().flat_map(|t| t.deps()) {
            if seen.insert(dep) {
                came_from.insert(dep, current);
                stack.push(dep);
            }
        }
    }
    None
}

fn check_parent_chain(index: &TaskIndex, id: &str, parent: &str) -> Result<()> {
    if parent == id {
        return Err(Error::Cycle(vec![id.to_string(), id.to_string()]));
    }
    let mut chain = vec![id.to_string(), parent.to_string()];
    let mut seen = HashSet::from([parent]);
    let mut at = parent;
    while let Some(next) = index.get(at).and_then(|t| t.parent()) {
        chain.push(next.to_string());
        if next == id || !seen.insert(next) {
            return Err(Error::Cycle(chain));
        }
        at = next;
    }
    Ok(())
}

fn dep_node<'a>(id: &'a str, index: &'a TaskIndex, seen: &mut HashSet<&'a str>) -> DepNode {
    let task = index.get(id);
    let repeated = !seen.insert(id);
    let deps = match task {
        Some(t) if !repeated => t.deps().map(|d| dep_node(d, index, seen)).collect(),
        _ => Vec::new(),
    };
    let foreign = index.foreign(id);
    DepNode {
        id: id.to_string(),
        title: task
            .map(|t| t.title().to_string())
            .or_else(|| foreign.map(|f| f.title.clone()))
            .unwrap_or_default(),
        state: task
            .map(|t| t.state().as_str())
            .or_else(|| foreign.map(|f| f.state.as_str()))
            .unwrap_or("missing")
            .to_string(),
        repeated,
        deps,
    }
}

/// The documents of this ref a decision about `task` read: its dependencies here (those of
/// other projects live in other refs) and `more`.
fn read_set<'a>(task: &'a Task, more: impl Iterator<Item = &'a String>) -> Vec<String> {
    task.deps
        .iter()
        .chain(more)
        .filter(|d| id::is_full_id(d))
        .map(|d| Task::path(d))
        .collect()
}

/// Claims `task` for `actor` (taking it over from a stale holder if one is named) and returns
/// the write. Whether a task is claimable depends on it and its dependencies only.
fn claim_write(task: &mut Task, actor: &Actor, takeover_from: Option<String>) -> Change {
    set_claimed(task, actor, takeover_from);
    let mut change = write_change(task, "claim", actor);
    change.reads = Some(read_set(task, None.iter()));
    change
}

fn write_change(task: &Task, op: &str, actor: &Actor) -> Change {
    Change {
        reads: None,
        docs: vec![(Task::path(&task.id), Some(task.to_yaml().into_bytes()))],
        subject: format!("{op} {} by {}", task.id, actor.agent),
        trailers: vec![
            ("Coord-Op", op.to_string()),
            ("Coord-Task", task.id.clone()),
        ],
    }
}

fn set_claimed(task: &mut Task, actor: &Actor, takeover_from: Option<String>) {
    let now = time::now();
    task.state = State::Claimed;
    task.assignee = Some(actor.agent.clone());
    task.claimed_at = Some(now.clone());
    let note = takeover_from.map(|holder| format!("taken over from {holder}, who is stale"));
    task.push_event(&actor.agent, "claim", note, &now);
}

fn check_claimable(task: &Task) -> Result<()> {
    match task.state {
        State::Open => Ok(()),
        State::Claimed => Err(Error::ClaimedByOther {
            id: task.id.clone(),
            holder: task.assignee.clone().unwrap_or_else(|| "someone".into()),
        }),
        State::Done => Err(wrong_state(
            task,
            "reopen it first (`git coord task reopen`)",
        )),
        State::Blocked => Err(wrong_state(
            task,
            &format!(
                "{}; reopen it when that is resolved",
                task.block_reason.as_deref().unwrap_or("no reason given")
            ),
        )),
    }
}

fn check_holder(task: &Task, actor: &Actor, force: bool) -> Result<()> {
    match &task.assignee {
        Some(holder) if task.state == State::Claimed && holder != &actor.agent && !force => {
            Err(Error::ClaimedByOther {
                id: task.id.clone(),
                holder: holder.clone(),
            })
        }
        _ => Ok(()),
    }
}

fn wrong_state(task: &Task, why: &str) -> Error {
    Error::WrongState {
        id: task.id.clone(),
        state: task.state.as_str().into(),
        why: why.into(),
    }
}

/// `dep_rm` asked to remove a dependency `task` does not have.
fn not_a_dep(task: &Task, dep_input: &str) -> Error {
    Error::invalid(
        "dependency",
        dep_input,
        format!("task {} does not depend on it", task.id),
    )
}

/// What `create` checks of a new task before it reads anything: its title (returned trimmed),
/// priority (returned with the default filled in), role and labels.
pub(crate) fn check_new(new: &NewTask) -> Result<(String, u8)> {
    let title = check_title(&new.title)?;
    let priority = check_priority(new.priority.unwrap_or(DEFAULT_PRIORITY))?;
    if let Some(role) = &new.role {
        name::validate("role", role)?;
    }
    for label in &new.labels {
        name::validate("label", label)?;
    }
    Ok((title, priority))
}

pub(crate) fn check_title(title: &str) -> Result<String> {
    let t = title.trim();
    if t.is_empty() {
        return Err(Error::invalid("title", title, "it is empty"));
    }
    if t.contains('\n') || t.chars().count() > MAX_TITLE {
        return Err(Error::invalid(
            "title",
            title,
            format!("a title is one line of at most {MAX_TITLE} characters; put the rest in -d"),
        ));
    }
    Ok(t.to_string())
}

pub(crate) fn check_priority(p: u8) -> Result<u8> {
    if p > MAX_PRIORITY {
        return Err(Error::invalid(
            "priority",
            p.to_string(),
            format!("use 0 (most urgent) to {MAX_PRIORITY}"),
        ));
    }
    Ok(p)
}
