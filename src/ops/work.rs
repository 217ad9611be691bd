//! What a user's change to a task sets off beyond the task itself: a workflow's next step when a
//! stage is done or sent back, and another project's task resolved before a task depends on it.
//! The task operations ([`crate::ops::tasks`]) stay below the workflows and the projects; the
//! commands (CLI, MCP, hooks, demo) come through here.

use crate::error::Result;
use crate::model::id;
use crate::model::task::Task;
use crate::ops::projects::Projects;
use crate::ops::tasks::{NewTask, Tasks};
use crate::ops::workflows;

/// Marks a task done ([`Tasks::mark_done`]: its leases released, its creator and followers
/// told), then what a workflow does next: ask for the checkpoint a stage leads to, start the
/// next review round, finish the epic whose last task it was. What follows the done never fails
/// it: it is said as a warning.
///
/// A done kept in this clone because the remote could not be reached is an error (exit 1) after
/// all of this ran here: the others do not know of it until it goes out, and meanwhile the task
/// may be taken over. `done` again confirms it ([`Tasks::mark_done`]).
pub fn done(tasks: &Tasks, input: &str, summary: Option<String>, force: bool) -> Result<Task> {
    let finished = tasks.mark_done(input, summary, force)?;
    let task = finished.task;
    if finished.first {
        let coord = tasks.coord();
        workflows::request_checkpoint(coord, &task);
        // A review round may add a task to the workflow: only then is it judged finished.
        workflows::next_review_round(coord, &task);
        workflows::finish_epic(coord, &task);
    }
    match finished.unconfirmed {
        Some(e) => Err(e),
        None => Ok(task),
    }
}

/// Returns a task to open. A workflow stage goes back to whoever did it (claimed for them
/// again, and told why): that is how a review sends work back.
pub fn reopen(tasks: &Tasks, input: &str, reason: Option<String>, force: bool) -> Result<Task> {
    let coord = tasks.coord();
    let before = tasks.show(input)?;
    if workflows::routed_back(&before) {
        // Read when the stage is routed back, after the reopen.
        coord.check_config()?;
    }
    let previous = before.assignee;
    let task = tasks.reopen_only(input, reason.clone(), force)?;
    match workflows::route_back(coord, &task, previous.as_deref(), reason.as_deref())? {
        Some(routed) => Ok(routed),
        None => Ok(task),
    }
}

/// Creates a task; a dependency on another project's task (`NAME:PREFIX`) is resolved against a
/// fresh fetch of that project first.
pub fn create(tasks: &Tasks, mut new: NewTask) -> Result<Task> {
    new.deps = resolve_foreign(tasks, &new.deps)?;
    tasks.create(new)
}

/// Adds a dependency, another project's task resolved as for [`create`].
pub fn dep_add(tasks: &Tasks, input: &str, dep: &str) -> Result<Task> {
    let dep = resolve_foreign(tasks, &[dep.to_string()])?.remove(0);
    tasks.dep_add(input, &dep)
}

fn resolve_foreign(tasks: &Tasks, deps: &[String]) -> Result<Vec<String>> {
    let projects = Projects::new(tasks.coord());
    deps.iter()
        .map(|d| match id::split_foreign(d) {
            Some(_) => projects.resolve_dep(d),
            None => Ok(d.clone()),
        })
        .collect()
}
