//! `git coord demo`: a throwaway repository, simulated agents, every capability shown working.

use std::path::{Path, PathBuf};

use crate::coord::Coord;
use crate::error::{Error, Result};
use crate::git::run_git;
use crate::model::id::new_id;
use crate::tasks::{NewTask, Tasks};

pub fn run(keep: bool) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("git-coord-demo-{}", new_id()));
    std::fs::create_dir_all(&dir)?;
    let result = walk_through(&dir);
    if keep || result.is_err() {
        println!("\nThe demo repository is kept at {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
        println!(
            "\n(The throwaway repository was removed; run `git coord demo --keep` to explore it.)"
        );
    }
    result
}

fn step(title: &str) {
    println!("\n== {title}");
}

fn as_agent(dir: &Path, agent: &str) -> Result<Coord> {
    Coord::open(dir, Some(agent.to_string()))
}

fn walk_through(dir: &Path) -> Result<()> {
    step("A throwaway repository, prepared for coordination");
    run_git(dir, &["init", "-q", "-b", "main"])?;
    run_git(dir, &["config", "user.name", "Demo Human"])?;
    run_git(dir, &["config", "user.email", "human@example.com"])?;
    println!("$ git init {}", dir.display());
    let olga = as_agent(dir, "olga")?;
    println!("$ git coord init\n  created {}", olga.init()?.join(", "));
    println!(
        "$ git coord init   (again)\n  created {} refs: init is idempotent",
        olga.init()?.len()
    );

    step("olga, the organiser, splits a goal into tasks with dependencies");
    let tasks = Tasks::new(&olga);
    let new = |title: &str, priority: u8, role: &str, deps: Vec<String>| {
        let task = tasks.create(NewTask {
            title: title.into(),
            priority: Some(priority),
            role: Some(role.into()),
            deps,
            ..NewTask::default()
        })?;
        let deps: String = task.deps.iter().map(|d| format!(" --dep {d}")).collect();
        println!(
            "$ git coord task new {title:?} --priority {priority} --role {role}{deps}  ->  {}",
            task.id
        );
        Ok::<_, Error>(task.id)
    };
    let design = new("Design the login API", 1, "dev", vec![])?;
    let crash = new("Fix the crash on empty password", 0, "dev", vec![])?;
    let implement = new("Implement the login API", 2, "dev", vec![design.clone()])?;
    let docs = new("Document the login API", 3, "docs", vec![implement.clone()])?;
    show_ready(
        &tasks,
        "ready: open, unclaimed, dependencies done, most urgent first",
    )?;

    step("alice and bob, two workers, each run `task claim --next` at the same moment");
    let claims: Vec<Result<(String, String)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = ["alice", "bob"]
            .into_iter()
            .map(|agent| {
                let dir: PathBuf = dir.to_path_buf();
                scope.spawn(move || {
                    let coord = as_agent(&dir, agent)?;
                    let task = Tasks::new(&coord).claim_next(Some("dev"))?;
                    Ok((agent.to_string(), format!("{} {}", task.id, task.title)))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("the claim thread finishes"))
            .collect()
    });
    for claim in claims {
        let (agent, task) = claim?;
        println!("  {agent} claimed {task}");
    }
    println!(
        "  (one compare-and-swap on refs/coord/tasks decides; the loser re-reads and takes the next task)"
    );

    step("bob tries to take the task alice holds");
    let bob = as_agent(dir, "bob")?;
    let holder = Tasks::new(&bob).show(&crash)?.assignee.unwrap_or_default();
    let taken_by_other = if holder == "bob" { &design } else { &crash };
    match Tasks::new(&bob).claim(taken_by_other, false) {
        Err(e) => println!(
            "$ git coord --agent bob task claim {taken_by_other}\n  error: {e} (exit {})",
            e.exit_code()
        ),
        Ok(_) => {
            return Err(Error::Other(
                "a task held by another agent was claimed twice".into(),
            ));
        }
    }

    step("A dependency cycle is refused, and names the cycle");
    match tasks.dep_add(&design, &docs) {
        Err(e) => println!(
            "$ git coord task dep add {design} {docs}\n  error: {e} (exit {})",
            e.exit_code()
        ),
        Ok(_) => return Err(Error::Other("a dependency cycle was accepted".into())),
    }

    step("The workers finish; finished work unblocks what waited on it");
    for id in [&crash, &design] {
        let task = tasks.show(id)?;
        let agent = task.assignee.clone().unwrap_or_else(|| "alice".into());
        let worker = as_agent(dir, &agent)?;
        let done = Tasks::new(&worker).done(
            id,
            Some(format!("{} finished by {agent}", task.title)),
            false,
        )?;
        println!(
            "$ git coord --agent {agent} task done {id} --summary ...\n  done: {}",
            done.title
        );
    }
    show_ready(&tasks, "ready now")?;
    println!("\n$ git coord blocked");
    let index = tasks.load_index()?;
    for waiting in crate::tasks::blocked(&index) {
        let on: Vec<String> = waiting
            .waits_on
            .iter()
            .map(|w| format!("{} ({})", w.title, w.state))
            .collect();
        println!("  {}  waits on {}", waiting.task.title(), on.join(", "));
    }

    step("Everything is plain git: a document, and the audit trail");
    let path = crate::model::task::Task::path(&design);
    println!("$ git show refs/coord/tasks:{path}");
    for line in run_git(dir, &["show", &format!("refs/coord/tasks:{path}")])?.lines() {
        println!("  {line}");
    }
    println!("$ git log --format='%h %s' refs/coord/tasks");
    for line in run_git(dir, &["log", "--format=%h %s", "refs/coord/tasks"])?.lines() {
        println!("  {line}");
    }
    let fsck = run_git(dir, &["fsck", "--no-progress", "--no-dangling"])?;
    println!(
        "$ git fsck\n  {}",
        if fsck.is_empty() {
            "clean"
        } else {
            fsck.as_str()
        }
    );
    Ok(())
}

fn show_ready(tasks: &Tasks, title: &str) -> Result<()> {
    println!("\n$ git coord ready      # {title}");
    let index = tasks.load_index()?;
    for t in crate::tasks::ready_tasks(&index, None) {
        println!(
            "  {}  P{}  {}  @{}",
            t.id(),
            t.priority(),
            t.title(),
            t.role().unwrap_or("-")
        );
    }
    Ok(())
}
