//! `git coord demo`: a throwaway repository, simulated agents, every capability shown working.

use std::cell::Cell;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::git::run_git;
use crate::model::id::new_id;
use crate::ops::agents::{Agents, Spawn};
use crate::ops::context::Coord;
use crate::ops::tasks::{NewTask, Tasks};

thread_local! {
    /// `--full`: every command the demo runs, with its whole output; else one screen.
    static FULL: Cell<bool> = const { Cell::new(false) };
    /// Steps shown so far, for their numbers on the one screen.
    static STEPS: Cell<u32> = const { Cell::new(0) };
    /// What the state refused on the way: claims, a cycle, a commit.
    static REFUSALS: Cell<u32> = const { Cell::new(0) };
}

/// A line of the whole transcript, printed with `--full` only.
macro_rules! say {
    ($($arg:tt)*) => {
        if FULL.with(Cell::get) {
            println!($($arg)*);
        }
    };
}

/// A line of the one screen, under its step, printed without `--full` only.
macro_rules! key {
    ($($arg:tt)*) => {
        if !FULL.with(Cell::get) {
            println!("     {}", format!($($arg)*));
        }
    };
}

pub fn run(keep: bool, full: bool) -> Result<()> {
    FULL.with(|f| f.set(full));
    let dir = std::env::temp_dir().join(format!("git-coord-demo-{}", new_id()));
    let project = dir.join("project");
    std::fs::create_dir_all(&project)?;
    if !full {
        println!(
            "git coord demo: a team of agents on a throwaway repository, in one screen (`git coord demo --full` shows every command and its output)"
        );
    }
    let result = walk_through(&project).and_then(|()| summary(&project));
    if keep || result.is_err() {
        println!(
            "\nThe demo repository is kept at {} (agents' worktrees beside it)",
            project.display()
        );
    } else {
        let _ = std::fs::remove_dir_all(&dir);
        println!(
            "\n(The throwaway repository was removed; run `git coord demo --keep` to explore it.)"
        );
    }
    result
}

fn step(title: &str) {
    let n = STEPS.with(|s| {
        s.set(s.get() + 1);
        s.get()
    });
    match FULL.with(Cell::get) {
        true => println!("\n== {title}"),
        false => println!("{n:>2}. {title}"),
    }
}

fn refused(command: &str, outcome: Result<impl Sized>, what: &str) -> Result<()> {
    match outcome {
        Err(e) => {
            say!("$ {command}\n  error: {e} (exit {})", e.exit_code());
            key!("refused: {e} (exit {})", e.exit_code());
            REFUSALS.with(|r| r.set(r.get() + 1));
            Ok(())
        }
        Ok(_) => Err(Error::Other(format!("the demo expected a refusal: {what}"))),
    }
}

/// Runs `git coord ARGS` in `dir` through the command line itself and prints the command with
/// its real output, indented. Returns the output.
fn shown(dir: &Path, args: &[&str], note: &str) -> Result<String> {
    let mut argv: Vec<std::ffi::OsString> = vec!["git-coord".into(), "-C".into(), dir.into()];
    argv.extend(args.iter().map(Into::into));
    let cli = <super::Cli as clap::Parser>::try_parse_from(argv)
        .map_err(|e| Error::Other(format!("the demo's command line: {e}")))?;
    let mut buf = Vec::new();
    super::run_with(cli, Some(&mut buf), false)?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let words: Vec<String> = args.iter().map(|a| quote(a)).collect();
    say!("$ git coord {}{note}", words.join(" "));
    for line in text.lines() {
        say!("  {line}");
    }
    Ok(text)
}

fn quote(word: &str) -> String {
    if !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@#,".contains(c))
    {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// The last lines, in both modes: what the run left in the repository, counted there.
fn summary(dir: &Path) -> Result<()> {
    let olga = Coord::open(dir, Some("olga".into()))?;
    let index = Tasks::new(&olga).load_index()?;
    let all: Vec<_> = index.tasks().collect();
    let done = all
        .iter()
        .filter(|t| t.state() == crate::model::task::State::Done)
        .count();
    let count = |refname: &str, top: &str| -> Result<usize> {
        Ok(run_git(dir, &["ls-tree", "-r", "--name-only", refname])?
            .lines()
            .filter(|p| p.starts_with(top) && p.ends_with(".yaml"))
            .count())
    };
    let agents = count("refs/coord/agents", "agents/")?;
    let messages = count("refs/coord/inbox", "messages/")?;
    let checkpoints = count("refs/coord/checkpoints", "checkpoints/")?;
    let fsck = run_git(dir, &["fsck", "--no-progress", "--no-dangling"])?;
    println!(
        "\nIn all: {} tasks ({done} done) by {agents} agents, each in its own worktree and branch; {} refusals by the state (claims, a cycle, a commit); {messages} messages; {checkpoints} checkpoints; every bit of it in refs/coord/* as plain git (`git fsck`: {}).",
        all.len(),
        REFUSALS.with(Cell::get),
        if fsck.trim().is_empty() {
            "clean"
        } else {
            "errors"
        }
    );
    Ok(())
}

fn walk_through(dir: &Path) -> Result<()> {
    step("A throwaway repository, prepared for coordination");
    run_git(dir, &["init", "-q", "-b", "main"])?;
    run_git(dir, &["config", "user.name", "Demo Human"])?;
    run_git(dir, &["config", "user.email", "human@example.com"])?;
    std::fs::create_dir_all(dir.join("src"))?;
    std::fs::write(dir.join("src/login.rs"), "pub fn login() {}\n")?;
    std::fs::write(dir.join("README.md"), "# A project\n")?;
    run_git(dir, &["add", "."])?;
    run_git(dir, &["commit", "-q", "-m", "A first commit"])?;
    say!("$ git init {}  (and a first commit)", dir.display());
    let olga = Coord::open(dir, Some("olga".into()))?;
    let init = shown(dir, &["init"], "")?;
    key!(
        "git coord init: {}",
        init.lines().next().unwrap_or_default()
    );
    shown(dir, &["init"], "     # again: init is idempotent")?;

    step("olga, the organiser, spawns two workers, each in its own worktree and branch");
    let agents = Agents::new(&olga)?;
    let mut homes = Vec::new();
    for name in ["alice", "bob"] {
        shown(
            dir,
            &["--agent", "olga", "agent", "spawn", name, "--role", "dev"],
            "",
        )?;
        let agent = agents.show(name)?.agent;
        homes.push(PathBuf::from(agent.worktree.unwrap_or_default()));
    }
    say!("$ git worktree list");
    for line in run_git(dir, &["worktree", "list"])?.lines() {
        say!("  {line}");
    }
    let alice_home = homes[0].clone();
    let bob_home = homes[1].clone();
    let alice = Coord::open(&alice_home, None)?;
    say!(
        "$ cd {}     # alice's worktree: no flag needed",
        alice_home.display()
    );
    shown(&alice_home, &["whoami"], "")?;
    key!(
        "alice on branch agent/alice, bob on agent/bob, in {}/; commands there act as that agent",
        alice_home
            .parent()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    );

    step("olga splits a goal into tasks with dependencies");
    let tasks = Tasks::new(&olga);
    let new = |title: &str, priority: u8, role: &str, deps: Vec<String>| {
        let priority = priority.to_string();
        let mut args = vec![
            "--agent",
            "olga",
            "task",
            "new",
            title,
            "--priority",
            &priority,
            "--role",
            role,
        ];
        for d in &deps {
            args.extend(["--dep", d.as_str()]);
        }
        let id = shown(dir, &args, "")?.trim().to_string();
        Ok::<_, Error>(id)
    };
    let design = new("Design the login API", 1, "dev", vec![])?;
    let crash = new("Fix the crash on empty password", 0, "dev", vec![])?;
    let implement = new("Implement the login API", 2, "dev", vec![design.clone()])?;
    let docs = new("Document the login API", 3, "docs", vec![implement.clone()])?;
    key!("4 tasks; implement waits on design, the docs on implement: 2 are ready");
    show_ready(
        &tasks,
        "open, unclaimed, dependencies done, most urgent first",
    )?;

    step("alice and bob each run `task claim --next` in their worktrees at the same moment");
    let claims: Vec<Result<(String, String)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = homes
            .iter()
            .map(|home| {
                scope.spawn(move || {
                    let coord = Coord::open(home, None)?;
                    let task = Tasks::new(&coord).claim_next(Some("dev"))?;
                    Ok((coord.actor()?.agent, format!("{} {}", task.id, task.title)))
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
        say!("  {agent} claimed {task}");
        key!("{agent} claimed {task}");
    }
    say!(
        "  (one compare-and-swap on refs/coord/tasks decides; the loser re-reads and takes the next task)"
    );

    step("bob tries to take the task alice holds");
    let bob = Coord::open(&bob_home, None)?;
    let holder = Tasks::new(&bob).show(&crash)?.assignee.unwrap_or_default();
    let taken_by_other = if holder == "bob" { &design } else { &crash };
    refused(
        &format!("git coord task claim {taken_by_other}     # in bob's worktree"),
        Tasks::new(&bob).claim(taken_by_other, false),
        "a task held by another agent was claimed twice",
    )?;

    step("A dependency cycle is refused, and names the cycle");
    refused(
        &format!("git coord task dep add {design} {docs}"),
        crate::ops::work::dep_add(&tasks, &design, &docs),
        "a cycle was accepted",
    )?;

    step("alice leases the file she is changing; the pre-commit hook stops bob's commit to it");
    shown(dir, &["--agent", "olga", "hooks", "install"], "")?;
    let alice_task = if holder == "alice" { &crash } else { &design };
    shown(
        &alice_home,
        &[
            "lease",
            "acquire",
            "src/login.rs",
            "--task",
            alice_task,
            "--reason",
            "reworking login",
        ],
        "     # in alice's worktree",
    )?;
    std::fs::write(
        bob_home.join("src/login.rs"),
        "pub fn login() { /* bob */ }\n",
    )?;
    run_git(&bob_home, &["add", "src/login.rs"])?;
    let refused_commit = commit_with_hooks(&bob_home, "bob touches login")?;
    say!("$ git commit -m 'bob touches login'     # in bob's worktree");
    for line in refused_commit.stderr.lines() {
        say!("  {line}");
    }
    if let Some(first) = refused_commit.stderr.lines().next() {
        key!("bob's commit {first}");
    }
    REFUSALS.with(|r| r.set(r.get() + 1));
    if refused_commit.success {
        return Err(Error::Other(
            "the demo expected the pre-commit hook to refuse bob's commit".into(),
        ));
    }

    step("bob finds a bug and tells alice on her task's thread, with the repro attached");
    let repro = bob_home.join("repro.sh");
    std::fs::write(&repro, "#!/bin/sh\nlogin '' # crashes\n")?;
    let sent = crate::ops::mail::send(
        &bob,
        crate::ops::messages::Outgoing {
            target: format!("#{alice_task}"),
            subject: Some("login crashes on an empty password".into()),
            importance: crate::model::message::Importance::High,
            body: "Found while testing my branch. repro.sh reproduces it.".into(),
            attachments: vec![("repro.sh".into(), std::fs::read(&repro)?)],
            ..Default::default()
        },
    )?;
    std::fs::remove_file(&repro)?;
    say!(
        "$ git coord send --to '#{alice_task}' --importance high --attach repro.sh 'Found while testing...'     # bob\n  sent {} to {}",
        sent.id,
        sent.to.join(", ")
    );
    shown(
        &alice_home,
        &["brief", "--max-chars", "1200"],
        "     # in alice's worktree",
    )?;
    let alice_messages = crate::ops::messages::Messages::new(&alice);
    let opened = alice_messages.read(&sent.id)?;
    let saved = alice_messages.save_attachments(&opened.message, &alice_home.join("from-bob"))?;
    say!(
        "$ git coord read {} --save-attachments from-bob\n  {}: {}",
        sent.id,
        opened.message.subject,
        saved
            .written
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    std::fs::remove_dir_all(alice_home.join("from-bob"))?;
    key!(
        "bob -> alice on the task's thread: \"{}\" with repro.sh; she saved it, acked, replied",
        opened.message.subject
    );
    alice_messages.ack(&sent.id)?;
    let reply = crate::ops::mail::reply(
        &alice,
        &sent.id,
        "Thanks, fixing it in this task.".into(),
        Vec::new(),
    )?
    .message;
    say!(
        "$ git coord ack {0} && git coord reply {0} 'Thanks, fixing it in this task.'\n  acknowledged; reply {1} is in bob's inbox, thread {2}",
        sent.id,
        reply.id,
        reply.thread
    );
    let plan =
        crate::ops::artifacts::Artifacts::new(&alice).put(crate::ops::artifacts::NewArtifact {
            task: alice_task.clone(),
            kind: crate::model::artifact::ArtifactKind::parse("report")?,
            summary: "empty password reproduced and fixed; regression test added".into(),
            name: "report.md".into(),
            content: b"# Report\n\nThe crash came from an unchecked empty string.\n".to_vec(),
        })?;
    say!(
        "$ git coord artifact put --task {alice_task} --kind report --summary '...' report.md\n  stored {}",
        plan.id
    );

    step("The workers finish; finished work unblocks what waited on it");
    for id in [&crash, &design] {
        let task = tasks.show(id)?;
        let agent = task.assignee.clone().unwrap_or_default();
        let home = if agent == "alice" {
            &alice_home
        } else {
            &bob_home
        };
        let worker = Coord::open(home, None)?;
        let done = crate::ops::work::done(
            &Tasks::new(&worker),
            id,
            Some(format!("{} finished by {agent}", task.title)),
            false,
        )?;
        say!(
            "$ git coord task done {id} --summary ...     # in {agent}'s worktree\n  done: {}",
            done.title
        );
        key!("{agent} done: {}", done.title);
    }
    say!("  (alice's task is done, so the lease she took for it is released)");
    let retried = commit_with_hooks(&bob_home, "bob touches login")?;
    if !retried.success {
        return Err(Error::Other(format!(
            "bob's commit was refused after the lease ended: {}",
            retried.stderr
        )));
    }
    say!("$ git commit -m 'bob touches login'     # in bob's worktree, again\n  committed");
    key!("the lease ended with alice's task: bob's commit goes in; the implementation is ready");
    show_ready(&tasks, "ready now")?;
    say!("\n$ git coord blocked");
    let index = tasks.load_index()?;
    for waiting in crate::ops::tasks::blocked(&index) {
        let on: Vec<String> = waiting
            .waits_on
            .iter()
            .map(|w| format!("{} ({})", w.title, w.state))
            .collect();
        say!("  {}  waits on {}", waiting.task.title(), on.join(", "));
    }

    step("olga reads the organiser's brief: counts, progress and summaries, never task bodies");
    shown(
        dir,
        &[
            "--agent",
            "olga",
            "brief",
            "--organiser",
            "--max-chars",
            "1500",
        ],
        "",
    )?;
    key!("counts, progress and one-line summaries, within 1,500 characters");

    feature_workflow(dir)?;
    interfaces(dir)?;
    across_machines(dir)?;
    breaker(dir)?;

    step("Everything is plain git: a document, and the audit trail");
    let path = crate::model::task::Task::path(&design);
    say!("$ git show refs/coord/tasks:{path}");
    for line in run_git(dir, &["show", &format!("refs/coord/tasks:{path}")])?.lines() {
        say!("  {line}");
    }
    say!("$ git log --format='%h %s' refs/coord/tasks");
    for line in run_git(dir, &["log", "--format=%h %s", "refs/coord/tasks"])?.lines() {
        say!("  {line}");
    }
    key!(
        "`git show refs/coord/tasks:{path}` prints a task; `git log refs/coord/tasks` is the audit trail"
    );
    let fsck = run_git(dir, &["fsck", "--no-progress", "--no-dangling"])?;
    say!(
        "$ git fsck\n  {}",
        if fsck.is_empty() {
            "clean"
        } else {
            fsck.as_str()
        }
    );
    Ok(())
}

/// A feature workflow from its template, run stage by stage by simulated agents, with the
/// checkpoints that merge their branches behind a gate; the stop hook along the way.
fn feature_workflow(dir: &Path) -> Result<()> {
    step("A feature workflow, stage by stage, with checkpoints merging the agents' branches");
    let olga = Coord::open(dir, Some("olga".into()))?;
    let agents = Agents::new(&olga)?;
    let crew = [
        ("planner", "pia"),
        ("reviewer", "rex"),
        ("docs", "dot"),
        ("tester", "tess"),
        ("dev", "alice"),
    ];
    for (role, name) in crew {
        if agents.get(name)?.is_none() {
            agents.spawn(&Spawn {
                name: name.into(),
                role: role.into(),
                base: None,
                path: None,
            })?;
            say!("$ git coord agent spawn {name} --role {role}");
        }
    }
    let (epic, stages) =
        crate::ops::workflows::start(&olga, "feature", "Remember me on login", &[])?;
    say!(
        "$ git coord workflow start feature 'Remember me on login'  ->  epic {}",
        epic.id
    );
    for t in &stages {
        say!(
            "  {}  {:<10} {}",
            t.id,
            t.role.as_deref().unwrap_or("-"),
            t.title
        );
    }
    let main_log = || run_git(dir, &["log", "--oneline", "--first-parent", "-3", "main"]);
    say!("$ git log --oneline --first-parent -3 main     # before");
    for line in main_log()?.lines() {
        say!("  {line}");
    }
    let home = |name: &str| -> Result<PathBuf> {
        Ok(PathBuf::from(
            agents.show(name)?.agent.worktree.unwrap_or_default(),
        ))
    };
    for task in &stages {
        let role = task.role.clone().unwrap_or_default();
        if task
            .labels
            .iter()
            .any(|l| l == crate::ops::checkpoints::CHECKPOINT_LABEL)
        {
            let report = crate::ops::checkpoints::Checkpoints::new(&olga).run(
                &crate::ops::checkpoints::Request {
                    gates: Some(vec!["test -f src/login.rs".into()]),
                    refresh: true,
                    ..Default::default()
                },
                &mut |_| {},
            )?;
            let c = &report.checkpoint;
            let merged = c
                .merged
                .iter()
                .map(|m| m.branch.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            key!(
                "checkpoint {}: {}, merged {merged} behind the gate",
                c.seq,
                c.outcome.as_str()
            );
            say!(
                "$ git coord checkpoint --gate 'test -f src/login.rs' --refresh     # olga, asked by the stage before\n  checkpoint {}: {}, merged {merged}, gate {}",
                c.seq,
                c.outcome.as_str(),
                if c.gates.iter().all(|g| g.passed) {
                    "passed"
                } else {
                    "FAILED"
                }
            );
            continue;
        }
        let name = crew
            .iter()
            .find(|(r, _)| *r == role)
            .map(|(_, n)| *n)
            .unwrap_or("alice");
        let worker = Coord::open(&home(name)?, None)?;
        if name == "alice" {
            let asked = crate::views::stop::Asked {
                dir: &home(name)?,
                agent: None,
            };
            let reason = match crate::views::stop::decide("{}", asked) {
                crate::views::stop::Decision::Block { reason } => reason,
                crate::views::stop::Decision::Allow { .. }
                | crate::views::stop::Decision::Halt { .. } => String::new(),
            };
            if let Some(first) = reason.lines().next() {
                say!("  (alice's stop hook, before she takes it: {first})");
            }
        }
        let claimed = Tasks::new(&worker).claim(&task.id, false)?;
        if matches!(role.as_str(), "dev" | "tester") {
            let file = format!("{role}-remember-me.txt");
            std::fs::write(
                home(name)?.join(&file),
                format!("{role} work on remember-me\n"),
            )?;
            run_git(&home(name)?, &["add", &file])?;
            commit_with_hooks(&home(name)?, &format!("{role}: remember me"))?;
            if name == "alice" {
                say!(
                    "$ git commit -m 'dev: remember me'; git log -1 --format=%B     # in alice's worktree: the hook adds who and what"
                );
                for line in run_git(&home(name)?, &["log", "-1", "--format=%B"])?.lines() {
                    say!("  {line}");
                }
            }
        }
        crate::ops::work::done(
            &Tasks::new(&worker),
            &claimed.id,
            Some(format!("{role} stage finished")),
            false,
        )?;
        say!(
            "  {name:<5} ({role}) claimed and finished {}",
            claimed.title
        );
    }
    say!("$ git log --oneline --first-parent -3 main     # after");
    for line in main_log()?.lines() {
        say!("  {line}");
    }
    let status = crate::ops::workflows::status(&olga, Some(&epic.id))?;
    if let Some(w) = status.first() {
        key!(
            "the workflow: {}/{} stages done, each by its role's agent",
            w.done,
            w.total
        );
        say!(
            "$ git coord workflow status {}\n  {}/{} done, {}",
            epic.id,
            w.done,
            w.total,
            if w.current.is_none() {
                "finished"
            } else {
                "not finished"
            }
        );
    }
    Ok(())
}

/// A bugfix whose gate keeps failing: the breaker pauses the workflow's agents and tells the
/// organiser; after `agent resume` the fix passes, and main's log says which agent wrote it under which gates.
fn breaker(dir: &Path) -> Result<()> {
    step("A gate that keeps failing trips the breaker; resumed, the fix lands with its trailers");
    let olga = Coord::open(dir, Some("olga".into()))?;
    let agents = Agents::new(&olga)?;
    let home = |name: &str| -> Result<PathBuf> {
        Ok(PathBuf::from(
            agents.show(name)?.agent.worktree.unwrap_or_default(),
        ))
    };
    let (_, stages) = crate::ops::workflows::start(&olga, "bugfix", "Crash on save", &[])?;
    say!("$ git coord workflow start bugfix 'Crash on save'");
    let tess = Coord::open(&home("tess")?, None)?;
    let alice = Coord::open(&home("alice")?, None)?;
    Tasks::new(&tess).claim(&stages[0].id, false)?;
    crate::ops::work::done(
        &Tasks::new(&tess),
        &stages[0].id,
        Some("reproduced".into()),
        false,
    )?;
    let fix = &stages[1];
    crate::ops::mail::send(
        &olga,
        crate::ops::messages::Outgoing {
            target: "alice".into(),
            subject: Some("Saving crashes: please fix it today".into()),
            task: Some(fix.id.clone()),
            body: "tess has the repro on the task.".into(),
            ..Default::default()
        },
    )?;
    Tasks::new(&alice).claim(&fix.id, false)?;
    std::fs::write(
        home("alice")?.join("src/login.rs"),
        "pub fn login() { /* saves */ }\n",
    )?;
    run_git(&home("alice")?, &["add", "src/login.rs"])?;
    commit_with_hooks(&home("alice")?, "fix: save without crashing")?;
    crate::ops::work::done(
        &Tasks::new(&alice),
        &fix.id,
        Some("first try".into()),
        false,
    )?;
    say!(
        "  tess reproduced it; alice committed a fix and finished {}",
        fix.title
    );
    let gate = "test -f src/save_test.rs";
    let checkpoint = || {
        crate::ops::checkpoints::Checkpoints::new(&olga).run(
            &crate::ops::checkpoints::Request {
                tasks: vec![fix.id.clone()],
                gates: Some(vec![gate.into()]),
                ..Default::default()
            },
            &mut |_| {},
        )
    };
    for _ in 0..3 {
        let report = checkpoint()?;
        say!(
            "$ git coord checkpoint --tasks {} --gate '{gate}'\n  checkpoint {}: {}",
            fix.id,
            report.checkpoint.seq,
            report.checkpoint.outcome.as_str()
        );
        if let Some(why) = report.breaker {
            say!("  {why}");
            key!("{}", why.lines().next().unwrap_or_default());
        }
    }
    shown(
        dir,
        &["--agent", "olga", "status"],
        "     # the breaker paused the workflow's agents; the team runs",
    )?;
    let inbox = crate::ops::messages::Messages::new(&olga)
        .inbox("olga", &crate::ops::messages::InboxFilter::default())?;
    if inbox
        .messages
        .iter()
        .any(|m| m.message.subject.starts_with("Breaker tripped"))
    {
        shown(dir, &["--agent", "olga", "inbox", "--limit", "1"], "")?;
    }
    let (agents, _) = crate::ops::agents::Agents::new(&olga)?.list(false)?;
    for view in agents.iter().filter(|v| v.agent.paused.is_some()) {
        shown(
            dir,
            &["--agent", "olga", "agent", "resume", &view.agent.name],
            "",
        )?;
    }
    std::fs::write(
        home("alice")?.join("src/save_test.rs"),
        "// the missing test\n",
    )?;
    run_git(&home("alice")?, &["add", "src/save_test.rs"])?;
    commit_with_hooks(&home("alice")?, "fix: the test the gate wants")?;
    let report = checkpoint()?;
    say!(
        "$ git coord checkpoint --tasks {} --gate '{gate}'\n  checkpoint {}: {}",
        fix.id,
        report.checkpoint.seq,
        report.checkpoint.outcome.as_str()
    );
    key!(
        "resumed, the fix with its test: checkpoint {}: {}, its commit on main names the agent and the gate",
        report.checkpoint.seq,
        report.checkpoint.outcome.as_str()
    );
    say!("$ git log -1 --format=%B main");
    for line in run_git(dir, &["log", "-1", "--format=%B", "main"])?.lines() {
        say!("  {line}");
    }
    crate::ops::workflows::cancel(
        &olga,
        &stages[0].parent.clone().unwrap_or_default(),
        Some("demo over"),
    )?;
    Ok(())
}

/// The same state through the other doors: the terminal overview, the graph for other tools, the
/// dashboard's JSON, and the MCP server an agent CLI would start in its worktree.
fn interfaces(dir: &Path) -> Result<()> {
    use std::io::{BufRead, BufReader, Read, Write};
    step("The same state for people and for agent CLIs: status, graph, dashboard, MCP");
    let olga = Coord::open(dir, Some("olga".into()))?;
    let exe = std::env::current_exe()?;
    let run = |args: &[&str], cwd: &Path| -> Result<String> {
        let out = std::process::Command::new(&exe)
            .args(args)
            .current_dir(cwd)
            .env("GIT_COORD_AGENT", "olga")
            .stdin(std::process::Stdio::null())
            .output()?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    shown(dir, &["--agent", "olga", "status"], "")?;
    let mermaid = run(&["graph", "--format", "mermaid", "--no-done"], dir)?;
    say!(
        "$ git coord graph --format mermaid --no-done\n  {} lines, first: {}",
        mermaid.lines().count(),
        mermaid.lines().nth(1).unwrap_or("").trim()
    );

    // The dashboard, on a free port, asked for its status view.
    let opts = crate::serve::Options {
        dir: dir.to_path_buf(),
        bind: std::net::IpAddr::from([127, 0, 0, 1]),
        port: 0,
        token: None,
        fetch: None,
    };
    let listener = crate::serve::bind(&opts)?;
    let port = listener.local_addr()?.port();
    std::thread::spawn(move || crate::serve::run(listener, opts));
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    write!(
        stream,
        "GET /api/status HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    let status: serde_json::Value = serde_json::from_str(body)?;
    say!(
        "$ git coord serve     # then GET http://127.0.0.1:{port}/api/status\n  tasks {}",
        status["tasks"]
    );

    // The MCP server, as alice's agent CLI would start it in her worktree.
    let alice_home = PathBuf::from(
        crate::ops::agents::Agents::new(&olga)?
            .show("alice")?
            .agent
            .worktree
            .unwrap_or_default(),
    );
    let mut server = std::process::Command::new(&exe)
        .arg("mcp")
        .current_dir(&alice_home)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let mut to = server
        .stdin
        .take()
        .ok_or_else(|| Error::Other("no stdin".into()))?;
    let mut from = BufReader::new(
        server
            .stdout
            .take()
            .ok_or_else(|| Error::Other("no stdout".into()))?,
    );
    // One JSON-RPC message a line; a request's answer is the next line (a notification has none).
    let mut ask = |msg: serde_json::Value| -> Result<serde_json::Value> {
        writeln!(to, "{msg}")?;
        if msg.get("id").is_none() {
            return Ok(serde_json::Value::Null);
        }
        let mut line = String::new();
        from.read_line(&mut line)?;
        Ok(serde_json::from_str(&line)?)
    };
    ask(
        serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "demo", "version": "1"}}}),
    )?;
    ask(serde_json::json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))?;
    let tools = ask(serde_json::json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}))?;
    let who = ask(
        serde_json::json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
        "params": {"name": "whoami", "arguments": {}}}),
    )?;
    drop(to); // the client is done: the server sees end of input and exits
    let _ = server.wait();
    let count = tools["result"]["tools"].as_array().map_or(0, Vec::len);
    let text = who["result"]["content"][0]["text"].as_str().unwrap_or("{}");
    let me: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
    key!(
        "status, the graph for other tools (mermaid, {} lines), the dashboard's JSON on 127.0.0.1, {count} MCP tools (whoami -> {})",
        mermaid.lines().count(),
        me["agent"].as_str().unwrap_or("?")
    );
    say!(
        "$ git coord mcp     # started by an agent CLI in alice's worktree\n  {count} tools; whoami -> {} ({})",
        me["agent"].as_str().unwrap_or("?"),
        me["role"].as_str().unwrap_or("-")
    );
    Ok(())
}

/// A bare remote, a second machine, claims raced online and offline, and a bug handed to another
/// project and followed home.
fn across_machines(dir: &Path) -> Result<()> {
    use crate::remote::resolve_remote;
    let sync = |coord: &Coord, remote: &crate::remote::Remote| {
        crate::remote::sync(
            &coord.repo,
            remote,
            &crate::ops::notices::Notices::new(coord),
        )
    };
    let root = dir.parent().unwrap_or(dir);
    let remote = root.join("remote.git");
    let remote_url = remote.display().to_string();
    step("Across machines: a bare remote is the only server, and the arbiter");
    run_git(root, &["init", "-q", "--bare", &remote_url])?;
    run_git(dir, &["remote", "add", "origin", &remote_url])?;
    // The pre-push hook installed above shares refs/coord/* with the remote the branch goes to.
    let pushed = crate::git::run_git_with_env(
        dir,
        &["push", "-q", "origin", "main"],
        &[("GIT_COORD_AGENT", "erin".into())],
    )?;
    if !pushed.success {
        return Err(Error::Other(format!("git push failed: {}", pushed.stderr)));
    }
    let erin = Coord::open(dir, Some("erin".into()))?;
    let origin = resolve_remote(&erin.repo, None)?;
    say!("$ git remote add origin {remote_url} && git push -q origin main");
    for line in pushed.stderr.lines() {
        say!("  {line}");
    }
    shown(
        dir,
        &["--agent", "erin", "sync"],
        "     # the push already shared refs/coord/* when the hook could",
    )?;
    let laptop = root.join("laptop");
    run_git(
        root,
        &["clone", "-q", &remote_url, &laptop.display().to_string()],
    )?;
    run_git(&laptop, &["config", "user.name", "Dana"])?;
    run_git(&laptop, &["config", "user.email", "dana@example.com"])?;
    let dana = Coord::open(&laptop, Some("dana".into()))?;
    sync(&dana, &resolve_remote(&dana.repo, None)?)?;
    say!("$ git clone {remote_url} laptop && cd laptop && git coord sync     # a second machine");

    let contested = Tasks::new(&erin).create(NewTask {
        title: "Write the release notes".into(),
        ..NewTask::default()
    })?;
    sync(&erin, &origin)?;
    sync(&dana, &resolve_remote(&dana.repo, None)?)?;
    say!(
        "$ git coord task new 'Write the release notes' && git coord sync  ->  {}",
        contested.id
    );
    say!(
        "$ git coord task claim {}     # erin and dana, on two machines, at the same instant",
        contested.id
    );
    let outcomes: Vec<(String, Result<crate::model::task::Task>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = [(dir.to_path_buf(), "erin"), (laptop.clone(), "dana")]
            .into_iter()
            .map(|(home, agent)| {
                let id = contested.id.clone();
                scope.spawn(move || {
                    let outcome = Coord::open(&home, Some(agent.into()))
                        .and_then(|c| Tasks::new(&c).claim(&id, false));
                    (agent.to_string(), outcome)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("the claim thread finishes"))
            .collect()
    });
    for (agent, outcome) in &outcomes {
        match outcome {
            Ok(_) => {
                say!("  {agent}: claimed (the remote accepted it)");
                key!("{agent}: claimed online (the remote accepted it)");
            }
            Err(e) => {
                say!("  {agent}: error: {e} (exit {})", e.exit_code());
                key!("{agent}: refused at the remote: {e}");
                REFUSALS.with(|r| r.set(r.get() + 1));
            }
        }
    }
    if outcomes.iter().filter(|(_, o)| o.is_ok()).count() != 1 {
        return Err(Error::Other(
            "the demo expected exactly one online claim to win".into(),
        ));
    }

    step(
        "Offline, both claim another task; sync settles it: the earlier claim wins, the loser is told",
    );
    let offline_task = Tasks::new(&erin).create(NewTask {
        title: "Update the changelog".into(),
        ..NewTask::default()
    })?;
    sync(&erin, &origin)?;
    sync(&dana, &resolve_remote(&dana.repo, None)?)?;
    let mut dana_offline = Coord::open(&laptop, Some("dana".into()))?;
    dana_offline.offline = true;
    Tasks::new(&dana_offline).claim(&offline_task.id, false)?;
    let mut erin_offline = Coord::open(dir, Some("erin".into()))?;
    erin_offline.offline = true;
    Tasks::new(&erin_offline).claim(&offline_task.id, false)?;
    say!(
        "$ git coord --offline task claim {0}     # dana on the laptop, then erin, neither connected",
        offline_task.id
    );
    sync(&dana, &resolve_remote(&dana.repo, None)?)?;
    let settled = sync(&erin, &origin)?;
    say!(
        "$ git coord sync     # on both machines\n  {} conflict settled; {} holds the task",
        settled.notices,
        Tasks::new(&erin)
            .show(&offline_task.id)?
            .assignee
            .unwrap_or_default()
    );
    let told = crate::ops::messages::Messages::new(&erin).inbox("erin", &Default::default())?;
    key!(
        "both claimed offline; sync kept the earlier claim and told the other ({} notice)",
        settled.notices
    );
    if let Some(notice) = told.messages.first() {
        say!(
            "$ git coord inbox     # erin\n  from {}: {}",
            notice.message.from,
            notice.message.subject
        );
    }

    step("Across projects: a bug handed to a library that never ran git-coord, followed home");
    let lib = root.join("lib");
    let lib_remote = root.join("lib.git");
    let lib_url = lib_remote.display().to_string();
    std::fs::create_dir_all(&lib)?;
    run_git(&lib, &["init", "-q", "-b", "main"])?;
    run_git(&lib, &["config", "user.name", "Lib Maintainer"])?;
    run_git(&lib, &["config", "user.email", "lib@example.com"])?;
    run_git(&lib, &["commit", "-q", "--allow-empty", "-m", "lib"])?;
    run_git(root, &["init", "-q", "--bare", &lib_url])?;
    run_git(&lib, &["remote", "add", "origin", &lib_url])?;
    run_git(&lib, &["push", "-q", "origin", "main"])?;
    let projects = crate::ops::projects::Projects::new(&erin);
    projects.add("lib", &lib_url, false)?;
    say!("$ git coord project add lib {lib_url}     # lib has no refs/coord yet");
    let (_, filed) = projects.file_task(
        "lib",
        crate::ops::projects::FileTask {
            title: "parse() panics on empty input".into(),
            description: "Seen from the app; repro attached.".into(),
            attachments: vec![("repro.txt".into(), b"parse(\"\")\n".to_vec())],
            ..Default::default()
        },
    )?;
    say!(
        "$ git coord task new --project lib 'parse() panics on empty input' -d 'Seen from the app; repro attached.' --attach repro.txt\n  lib:{}",
        filed.id
    );
    let app_tasks = Tasks::new(&erin);
    let waiting = crate::ops::work::create(
        &app_tasks,
        NewTask {
            title: "Accept empty forms".into(),
            deps: vec![format!("lib:{}", &filed.id[..6])],
            ..NewTask::default()
        },
    )?;
    say!(
        "$ git coord task new 'Accept empty forms' --dep lib:{}  ->  {}",
        &filed.id[..6],
        waiting.id
    );
    let index = app_tasks.load_index()?;
    for w in crate::ops::tasks::blocked(&index) {
        if w.task.id() != waiting.id {
            continue;
        }
        for dep in &w.waits_on {
            say!(
                "$ git coord blocked\n  {} {}  waits on {} ({})",
                w.task.id(),
                w.task.title(),
                dep.id,
                dep.state
            );
        }
    }

    let lib_coord = Coord::open(&lib, Some("lena".into()))?;
    lib_coord.init()?;
    let lib_origin = resolve_remote(&lib_coord.repo, None)?;
    sync(&lib_coord, &lib_origin)?;
    crate::ops::agents::Agents::new(&lib_coord)?.spawn(&crate::ops::agents::Spawn {
        name: "lena".into(),
        role: "dev".into(),
        base: None,
        path: None,
    })?;
    let lib_tasks = Tasks::new(&lib_coord);
    let index = lib_tasks.load_index()?;
    for t in crate::ops::tasks::ready_tasks(&index, Some("dev")) {
        say!(
            "$ git coord init && git coord sync && git coord ready --role dev     # in lib, as lena\n  {}  {}",
            t.id(),
            t.title()
        );
    }
    let shown = lib_tasks.show(&filed.id)?;
    if let Some(origin) = &shown.origin {
        let names = crate::ops::projects::Projects::new(&lib_coord).names();
        say!(
            "  origin: {}:{} ({}), project {}",
            names.of(&origin.project),
            origin.agent,
            origin.human,
            origin.project
        );
    }
    let lib_mail = crate::ops::messages::Messages::new(&lib_coord);
    crate::ops::mail::send(
        &lib_coord,
        crate::ops::messages::Outgoing {
            target: format!("#{}", filed.id),
            body: "Which version of lib?".into(),
            ..Default::default()
        },
    )?;
    lib_tasks.claim(&filed.id, false)?;
    sync(&lib_coord, &lib_origin)?;
    say!(
        "$ git coord send --to '#{}' 'Which version of lib?' && git coord task claim {} && git coord sync",
        &filed.id[..6],
        &filed.id[..6]
    );
    sync(&erin, &origin)?;
    projects.follow()?;
    let erin_mail = crate::ops::messages::Messages::new(&erin);
    say!("$ git coord sync && git coord inbox     # back in the app, as erin");
    for m in erin_mail.inbox("erin", &Default::default())?.messages {
        if m.message.subject.starts_with("lib:") {
            say!("  from {}: {}", m.message.from, m.message.subject);
        }
    }
    let (_, commented) =
        projects.comment(&format!("lib:{}", filed.id), "1.4.2, on every platform")?;
    say!(
        "$ git coord task comment lib:{} '1.4.2, on every platform'     # through lib's URL\n  {} comment(s) on lib's task",
        &filed.id[..6],
        commented.comments.len()
    );
    sync(&lib_coord, &lib_origin)?;
    crate::ops::work::done(
        &lib_tasks,
        &filed.id,
        Some("empty input now parses".into()),
        false,
    )?;
    sync(&lib_coord, &lib_origin)?;
    say!(
        "$ git coord task done {} --summary 'empty input now parses' && git coord sync     # lena",
        &filed.id[..6]
    );
    sync(&erin, &origin)?;
    projects.follow()?;
    say!("$ git coord sync && git coord inbox && git coord ready     # erin");
    for m in erin_mail.inbox("erin", &Default::default())?.messages {
        if m.message.subject.contains("done:") {
            say!("  from {}: {}", m.message.from, m.message.subject);
        }
    }
    let index = app_tasks.load_index()?;
    for t in crate::ops::tasks::ready_tasks(&index, None) {
        if t.id() == waiting.id {
            say!("  ready: {}  {}", t.id(), t.title());
            key!(
                "filed into lib (which never ran git-coord), done there, followed home: \"{}\" is ready",
                t.title()
            );
        }
    }

    let sent = crate::ops::mail::send(
        &erin,
        crate::ops::messages::Outgoing {
            target: "lib:lena".into(),
            subject: Some("parse() panics on empty input".into()),
            body: "Thanks, the app ships with it.".into(),
            ..Default::default()
        },
    )?;
    say!(
        "$ git coord send --to lib:lena 'Thanks, the app ships with it.'\n  sent {} into lib's inbox",
        sent.id
    );
    sync(&lib_coord, &lib_origin)?;
    let lena_inbox = lib_mail.inbox("lena", &Default::default())?;
    if let Some(m) = lena_inbox.messages.iter().find(|m| m.message.id == sent.id) {
        say!(
            "$ git coord sync && git coord inbox     # in lib, as lena\n  from {}: {}",
            m.message.from,
            m.message.subject
        );
    }
    Ok(())
}

/// `git commit` with this very binary first on PATH, so the installed hooks run it.
fn commit_with_hooks(dir: &Path, message: &str) -> Result<crate::git::GitOutput> {
    let exe = std::env::current_exe()?;
    let mut dirs: Vec<PathBuf> = exe.parent().map(Path::to_path_buf).into_iter().collect();
    dirs.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    let path = std::env::join_paths(dirs).map_err(|e| Error::Other(e.to_string()))?;
    crate::git::run_git_with_env(dir, &["commit", "-q", "-m", message], &[("PATH", path)])
}

fn show_ready(tasks: &Tasks, title: &str) -> Result<()> {
    say!("\n$ git coord ready      # {title}");
    let index = tasks.load_index()?;
    for t in crate::ops::tasks::ready_tasks(&index, None) {
        say!(
            "  {}  P{}  {}  @{}",
            t.id(),
            t.priority(),
            t.title(),
            t.role().unwrap_or("-")
        );
    }
    Ok(())
}
