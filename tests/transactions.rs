//! One operation, one transaction: an operation that changes several refs, killed at any
//! instant, leaves all of them as they were or all as the operation leaves them.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{Jitter, LEASES_REF, TASKS_REF, TestRepo, fails, ok, stdout};

const CHECKPOINTS_REF: &str = "refs/coord/checkpoints";
const AGENTS_REF: &str = "refs/coord/agents";

/// How long a command takes when left alone: the median of `runs` runs, `prepare(n)` giving the
/// arguments of run `n`.
fn time_of(
    repo: &TestRepo,
    runs: usize,
    mut prepare: impl FnMut(usize) -> Vec<String>,
) -> Duration {
    let mut times = Vec::new();
    for n in 0..runs {
        let args = prepare(n);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let started = Instant::now();
        ok(repo.coord(&args), &args.join(" "));
        times.push(started.elapsed());
    }
    times.sort();
    times[times.len() / 2]
}

/// Runs `args` and sends it SIGKILL at a random instant within 1.5 times `took` (or lets it
/// finish). Returns whether it was killed. Git processes it started are not killed with it: the
/// instant is waited out until none of their ref locks is left, as the next command would.
fn kill_at_random(
    repo: &TestRepo,
    jitter: &mut Jitter,
    took: Duration,
    args: &[&str],
    locks: &[&str],
) -> bool {
    let window = (took.as_micros() as u64 * 3 / 2).max(1);
    let mut child = repo
        .coord_cmd(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("git-coord starts");
    std::thread::sleep(Duration::from_micros(jitter.below(window)));
    let _ = child.kill();
    let status = child.wait().expect("reaped");
    let git_dir = repo.path.join(".git");
    let started = Instant::now();
    while locks
        .iter()
        .any(|r| git_dir.join(format!("{r}.lock")).exists())
        && started.elapsed() < Duration::from_secs(3)
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    // A child git may still be writing the worktree's files: let it end.
    std::thread::sleep(Duration::from_millis(30));
    status.code().is_none()
}

fn commit_in(repo: &TestRepo, dir: &Path, path: &str) {
    std::fs::write(dir.join(path), format!("{path}\n")).expect("written");
    ok(repo.git_in(dir, &["add", path]), "add");
    ok(
        repo.git_in(dir, &["commit", "-q", "-m", &format!("add {path}")]),
        "commit",
    );
}

/// The number of checkpoint records, and the `before` and `after` of the newest.
fn records(repo: &TestRepo) -> (usize, String, String) {
    let names = repo.git_ok(&[
        "ls-tree",
        "--name-only",
        &format!("{CHECKPOINTS_REF}:checkpoints"),
    ]);
    let mut names: Vec<&str> = names.lines().filter(|n| n.ends_with(".yaml")).collect();
    names.sort(); // zero-padded: the newest last
    let Some(last) = names.last() else {
        return (0, String::new(), String::new());
    };
    let doc = repo.git_ok(&["show", &format!("{CHECKPOINTS_REF}:checkpoints/{last}")]);
    let field = |key: &str| {
        doc.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}: ")))
            .unwrap_or_default()
            .trim_matches(|c| c == '\'' || c == '"')
            .to_string()
    };
    (names.len(), field("before"), field("after"))
}

/// Checkpoints and rollbacks killed at random instants: each leaves the integration branch and
/// refs/coord/checkpoints both as they were, or the branch moved and the record of that move
/// written; never one without the other.
#[test]
fn a_killed_checkpoint_or_rollback_moves_the_branch_and_its_record_together() {
    const ROUNDS: usize = 40;
    let repo = TestRepo::init();
    let a = common::spawn(&repo, "a", "dev");
    let mut jitter = Jitter::new();
    let mut n = 0;
    let checkpoint_time = time_of(&repo, 3, |_| {
        n += 1;
        commit_in(&repo, &a, &format!("warm{n}.txt"));
        vec!["checkpoint".to_string()]
    });
    // The first recorded move is the state every rollback goes back to.
    let rollback = ["checkpoint", "rollback", "1", "--force"];
    let rollback_time = time_of(&repo, 1, |_| rollback.map(String::from).to_vec());
    let (mut killed, mut before_kept, mut after_kept, mut dirty) = (0, 0, 0, 0);
    for round in 0..ROUNDS {
        let is_rollback = round % 3 == 2;
        if !is_rollback {
            commit_in(&repo, &a, &format!("r{round}.txt"));
        }
        let main = repo.ref_tip("refs/heads/main");
        let (count, _, _) = records(&repo);
        let (args, took): (&[&str], _) = match is_rollback {
            true => (&rollback, rollback_time),
            false => (&["checkpoint"], checkpoint_time),
        };
        killed += usize::from(kill_at_random(
            &repo,
            &mut jitter,
            took,
            args,
            &["refs/heads/main", CHECKPOINTS_REF],
        ));
        let now = repo.ref_tip("refs/heads/main");
        let (now_count, before, after) = records(&repo);
        let status = repo.git_ok(&["status", "--porcelain", "--untracked-files=no"]);
        if now == main {
            assert_eq!(now_count, count, "round {round}: a record without the move");
            before_kept += 1;
            if !status.is_empty() {
                // Killed after the checked-out files were brought forward, before the refs
                // moved, as a killed `git merge --ff-only` leaves them.
                dirty += 1;
                repo.git_ok(&["reset", "-q", "--hard"]);
            }
        } else {
            assert_eq!(
                now_count,
                count + 1,
                "round {round}: a move without a record"
            );
            assert_eq!(
                (before, after),
                (main.clone(), now.clone()),
                "round {round}"
            );
            assert!(status.is_empty(), "round {round}: {status}");
            after_kept += 1;
        }
    }
    println!(
        "{ROUNDS} rounds: {killed} killed, {before_kept} left all before, {after_kept} all after, {dirty} with the checkout brought forward alone"
    );
    assert!(killed > 0, "no round was killed");
    repo.assert_fsck_clean();
}

/// `task done` killed at random instants: the task is done and its leases bind nobody, or it is
/// still claimed and its leases still bind, never a done task whose lease keeps another agent
/// out. (The release of the leases is a second write that only tidies up: a lease taken for a
/// task ends with it.)
#[test]
fn a_killed_task_done_leaves_the_task_and_its_leases_before_or_after() {
    const ROUNDS: usize = 40;
    let repo = TestRepo::init();
    let mut jitter = Jitter::new();
    let claimed = |n: usize| {
        let id = stdout(&ok(
            repo.coord_as("a", &["task", "new", &format!("t{n}")]),
            "task new",
        ))
        .trim()
        .to_string();
        ok(repo.coord_as("a", &["task", "claim", &id]), "claim");
        let path = format!("p{n}.txt");
        ok(
            repo.coord_as("a", &["lease", "acquire", &path, "--task", &id]),
            "lease acquire",
        );
        (id, path)
    };
    let took = time_of(&repo, 3, |n| {
        let (id, _) = claimed(100 + n);
        ["--agent", "a", "task", "done", &id]
            .map(String::from)
            .to_vec()
    });
    let (mut killed, mut before_kept, mut after_kept) = (0, 0, 0);
    for round in 0..ROUNDS {
        let (id, path) = claimed(round);
        killed += usize::from(kill_at_random(
            &repo,
            &mut jitter,
            took,
            &["--agent", "a", "task", "done", &id],
            &[TASKS_REF, LEASES_REF],
        ));
        let task = repo.show(&id);
        let check = repo.coord_as("b", &["lease", "check", &path]);
        match task["state"].as_str() {
            Some("claimed") => {
                fails(&check, 3);
                before_kept += 1;
            }
            Some("done") => {
                ok(check, "lease check after done");
                after_kept += 1;
            }
            other => panic!("round {round}: task {id} is {other:?}"),
        }
    }
    println!(
        "{ROUNDS} rounds: {killed} killed, {before_kept} left all before, {after_kept} all after"
    );
    assert!(killed > 0, "no round was killed");
    repo.assert_fsck_clean();
}

/// `agent spawn` killed at random instants: the agent's branch exists exactly when its
/// registration does, and a second spawn of the name clears whatever worktree the kill left.
#[test]
fn a_killed_spawn_leaves_its_branch_and_registration_both_or_neither() {
    const ROUNDS: usize = 30;
    let repo = TestRepo::init();
    let mut jitter = Jitter::new();
    let spawn_args = |name: &str| ["agent", "spawn", name, "--role", "dev"].map(String::from);
    let took = time_of(&repo, 3, |n| spawn_args(&format!("warm{n}")).to_vec());
    let (mut killed, mut before_kept, mut after_kept) = (0, 0, 0);
    for round in 0..ROUNDS {
        let name = format!("s{round}");
        let branch = format!("refs/heads/agent/{name}");
        let args = spawn_args(&name);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        killed += usize::from(kill_at_random(
            &repo,
            &mut jitter,
            took,
            &args,
            &[&branch, AGENTS_REF],
        ));
        let has_branch = !repo.ref_tip(&branch).is_empty();
        let registered = repo
            .git(&[
                "cat-file",
                "-e",
                &format!("{AGENTS_REF}:agents/{name}.yaml"),
            ])
            .status
            .success();
        assert_eq!(has_branch, registered, "round {round}: agent {name}");
        if has_branch {
            after_kept += 1;
        } else {
            before_kept += 1;
            let mut again = repo.coord(&args);
            let dir = repo.tmp().join("repo.agents").join(&name);
            if !again.status.success()
                && std::fs::read_dir(&dir).is_ok_and(|mut d| d.next().is_none())
            {
                // Killed between making the directory and `git worktree add`: an empty
                // directory counts as left by a killed spawn once it is as old as a stale lock.
                std::thread::sleep(Duration::from_millis(5500));
                again = repo.coord(&args);
            }
            ok(again, &format!("round {round}: spawning {name} again"));
        }
    }
    println!(
        "{ROUNDS} rounds: {killed} killed, {before_kept} left all before, {after_kept} all after"
    );
    assert!(killed > 0, "no round was killed");
    repo.assert_fsck_clean();
}

/// `workflow start` killed at random instants: the epic and every task of the workflow, or
/// none of them.
#[test]
fn a_killed_workflow_start_creates_all_of_its_tasks_or_none() {
    const ROUNDS: usize = 30;
    let repo = TestRepo::init();
    let mut jitter = Jitter::new();
    let start = |n: usize| {
        ["workflow", "start", "bugfix", &format!("w{n}")]
            .map(String::from)
            .to_vec()
    };
    let took = time_of(&repo, 3, |n| start(1000 + n));
    let size = repo.list().len() / 3; // the epic and its tasks
    assert!(size > 2, "a workflow of {size} tasks");
    let (mut killed, mut before_kept, mut after_kept) = (0, 0, 0);
    for round in 0..ROUNDS {
        let count = repo.list().len();
        let args = start(round);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        killed += usize::from(kill_at_random(
            &repo,
            &mut jitter,
            took,
            &args,
            &[TASKS_REF],
        ));
        match repo.list().len() - count {
            0 => before_kept += 1,
            n if n == size => after_kept += 1,
            n => panic!("round {round}: {n} of the workflow's {size} tasks were created"),
        }
    }
    println!(
        "{ROUNDS} rounds: {killed} killed, {before_kept} left all before, {after_kept} all after"
    );
    assert!(killed > 0, "no round was killed");
    repo.assert_fsck_clean();
}

/// `cancel --workflow` killed at random instants: every task of the workflow is cancelled (its
/// claims released, its stages blocked, its epic labelled) and its leases released, or nothing
/// of it is.
#[test]
fn a_killed_workflow_cancel_changes_all_of_its_tasks_and_leases_or_none() {
    const ROUNDS: usize = 20;
    let repo = TestRepo::init();
    let mut jitter = Jitter::new();
    let start = |n: usize| {
        let started = repo.coord_json(&["workflow", "start", "bugfix", &format!("w{n}")]);
        let epic = started["id"].as_str().expect("an epic").to_string();
        let first = started["tasks"][0].as_str().expect("a task").to_string();
        ok(
            repo.coord_as("a", &["task", "claim", &first, "--force"]),
            "claim",
        );
        let path = format!("w{n}.txt");
        ok(
            repo.coord_as("a", &["lease", "acquire", &path, "--task", &first]),
            "lease acquire",
        );
        epic
    };
    let cancel = |epic: &str| {
        ["cancel", "--workflow", epic, "--reason", "r"]
            .map(String::from)
            .to_vec()
    };
    let took = time_of(&repo, 3, |n| cancel(&start(1000 + n)));
    // Cancelled: every task but the epic blocked, none claimed, the epic labelled.
    let cancelled = |epic: &str| -> Vec<bool> {
        repo.list()
            .iter()
            .filter(|t| t["id"] == epic || t["parent"] == epic)
            .map(|t| match t["id"] == epic {
                true => t["labels"]
                    .as_array()
                    .is_some_and(|l| l.iter().any(|l| l == "cancelled")),
                false => t["state"] == "blocked",
            })
            .collect()
    };
    let (mut killed, mut before_kept, mut after_kept) = (0, 0, 0);
    for round in 0..ROUNDS {
        let epic = start(round);
        let args = cancel(&epic);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        killed += usize::from(kill_at_random(
            &repo,
            &mut jitter,
            took,
            &args,
            &[TASKS_REF],
        ));
        let states = cancelled(&epic);
        assert!(states.len() > 2, "round {round}: {states:?}");
        let check = repo.coord_as("b", &["lease", "check", &format!("w{round}.txt")]);
        if states.iter().all(|c| *c) {
            ok(
                check,
                &format!("round {round}: the lease of a cancelled workflow"),
            );
            after_kept += 1;
        } else {
            fails(&check, 3);
            assert!(
                states.iter().all(|c| !*c),
                "round {round}: part of workflow {epic} is cancelled: {states:?}"
            );
            before_kept += 1;
        }
    }
    println!(
        "{ROUNDS} rounds: {killed} killed, {before_kept} left all before, {after_kept} all after"
    );
    assert!(killed > 0, "no round was killed");
}

/// `agent retire --delete-branch` killed at random instants: the branch is deleted exactly when
/// the retirement is written, and a second retire finishes what a kill left.
#[test]
fn a_killed_retire_deletes_the_branch_with_the_retirement_or_neither() {
    const ROUNDS: usize = 20;
    let repo = TestRepo::init();
    let mut jitter = Jitter::new();
    let retire = |name: &str| {
        ["agent", "retire", name, "--delete-branch"]
            .map(String::from)
            .to_vec()
    };
    let took = time_of(&repo, 3, |n| {
        let name = format!("warm{n}");
        common::spawn(&repo, &name, "dev");
        retire(&name)
    });
    let active = |name: &str| {
        let doc = repo.git_ok(&["show", &format!("{AGENTS_REF}:agents/{name}.yaml")]);
        doc.lines().any(|l| l.trim() == "status: active")
    };
    let (mut killed, mut before_kept, mut after_kept) = (0, 0, 0);
    for round in 0..ROUNDS {
        let name = format!("r{round}");
        common::spawn(&repo, &name, "dev");
        let branch = format!("refs/heads/agent/{name}");
        let args = retire(&name);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        killed += usize::from(kill_at_random(
            &repo,
            &mut jitter,
            took,
            &args,
            &[&branch, AGENTS_REF],
        ));
        let has_branch = !repo.ref_tip(&branch).is_empty();
        assert_eq!(has_branch, active(&name), "round {round}: agent {name}");
        if has_branch {
            before_kept += 1;
            ok(
                repo.coord(&args),
                &format!("round {round}: retiring {name} again"),
            );
            assert!(repo.ref_tip(&branch).is_empty() && !active(&name));
        } else {
            after_kept += 1;
        }
    }
    println!(
        "{ROUNDS} rounds: {killed} killed, {before_kept} left all before, {after_kept} all after"
    );
    assert!(killed > 0, "no round was killed");
    repo.assert_fsck_clean();
}
