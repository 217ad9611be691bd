//! Many agents writing refs/coord/tasks at once: every claim lands exactly once.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Barrier};

use common::{TestRepo, fails, field, json, ok, stderr, stdout};

const TASKS: usize = 50;
const AGENTS: usize = 16;

/// What one agent's loop of `task claim --next` saw.
#[derive(Debug, Default)]
struct AgentRun {
    /// Ids its successful claims printed, in order.
    claimed: Vec<String>,
    /// Writes that gave up on a contended ref (exit 3, "gave up"); retried, not counted.
    contended: usize,
}

#[test]
fn sixteen_agents_claiming_at_once_claim_every_task_exactly_once() {
    let repo = Arc::new(TestRepo::init());
    let mut created = BTreeSet::new();
    for n in 0..TASKS {
        created.insert(repo.new_task(&format!("task {n}"), &[]));
    }
    assert_eq!(created.len(), TASKS, "task new printed a repeated id");

    let start = Arc::new(Barrier::new(AGENTS));
    let workers: Vec<_> = (0..AGENTS)
        .map(|n| {
            let (repo, start) = (Arc::clone(&repo), Arc::clone(&start));
            std::thread::spawn(move || {
                let agent = format!("w{n}");
                let mut run = AgentRun::default();
                start.wait();
                loop {
                    let out = repo.coord(&["--agent", &agent, "task", "claim", "--next", "--json"]);
                    match out.status.code() {
                        Some(0) => {
                            let task = json(&stdout(&out));
                            assert_eq!(field(&task, "state"), Some("claimed"), "{task}");
                            assert_eq!(field(&task, "assignee"), Some(agent.as_str()), "{task}");
                            run.claimed
                                .push(field(&task, "id").expect("an id").to_string());
                        }
                        Some(3) if stderr(&out).contains("no ready task") => {
                            let error = json(&stdout(&out));
                            assert_eq!(error["exit_code"], 3, "{error}");
                            break;
                        }
                        Some(3) if stderr(&out).contains("gave up") => run.contended += 1,
                        _ => panic!(
                            "{agent}: claim --next exited {:?}\nstdout: {}\nstderr: {}",
                            out.status.code(),
                            stdout(&out),
                            stderr(&out)
                        ),
                    }
                }
                (agent, run)
            })
        })
        .collect();
    let runs: Vec<(String, AgentRun)> = workers
        .into_iter()
        .map(|w| w.join().expect("agent thread"))
        .collect();

    // Who each successful claim says holds what; no id may be reported twice.
    let mut reported: BTreeMap<String, String> = BTreeMap::new();
    for (agent, run) in &runs {
        for id in &run.claimed {
            if let Some(other) = reported.insert(id.clone(), agent.clone()) {
                panic!("task {id} was reported claimed by both {other} and {agent}");
            }
        }
    }
    let claims: usize = runs.iter().map(|(_, r)| r.claimed.len()).sum();
    assert_eq!(claims, TASKS, "successful claims: {runs:?}");

    // The state agrees with what every process reported.
    let tasks = repo.list();
    assert_eq!(tasks.len(), TASKS);
    for task in &tasks {
        let id = field(task, "id").expect("an id");
        assert!(created.contains(id), "unknown task {id} appeared");
        assert_eq!(field(task, "state"), Some("claimed"), "{task}");
        assert_eq!(
            field(task, "assignee"),
            reported.get(id).map(String::as_str),
            "task {id} is not held by the agent whose claim reported it"
        );
    }

    // The audit trail records exactly one claim commit per task.
    let log = repo.git_ok(&["log", "--format=%x00%B", common::TASKS_REF]);
    let trailer = |message: &str, key: &str| {
        message
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .map(str::to_string)
    };
    let claim_commits: Vec<String> = log
        .split('\0')
        .filter(|m| trailer(m, "Coord-Op: ").as_deref() == Some("claim"))
        .map(|m| trailer(m, "Coord-Task: ").expect("a claim commit names its task"))
        .collect();
    assert_eq!(claim_commits.len(), TASKS, "claim commits in the history");
    let distinct: BTreeSet<&String> = claim_commits.iter().collect();
    assert_eq!(distinct.len(), TASKS, "a task was claimed by two commits");
    for task in &tasks {
        let id = field(task, "id").expect("an id");
        let history = repo.show(id)["history"].clone();
        let claims: Vec<_> = history
            .as_array()
            .expect("a history")
            .iter()
            .filter(|e| field(e, "op") == Some("claim"))
            .collect();
        assert_eq!(claims.len(), 1, "task {id} history: {history}");
        assert_eq!(field(claims[0], "agent"), field(task, "assignee"));
    }

    // Nothing is left to claim, and nobody can take a task from its holder.
    let out = repo.coord_as("late", &["task", "claim", "--next"]);
    assert!(fails(&out, 3).contains("no ready task"));
    let (id, holder) = reported.iter().next().expect("a claim");
    let out = repo.coord_as("late", &["task", "claim", id]);
    assert!(fails(&out, 3).contains(&format!("claimed by {holder}")));

    repo.assert_fsck_clean();
    repo.assert_no_temporary_files();
}

#[test]
fn concurrent_creators_lose_no_task() {
    const WRITERS: usize = 8;
    const EACH: usize = 4;
    let repo = Arc::new(TestRepo::init());
    let start = Arc::new(Barrier::new(WRITERS));
    let workers: Vec<_> = (0..WRITERS)
        .map(|n| {
            let (repo, start) = (Arc::clone(&repo), Arc::clone(&start));
            std::thread::spawn(move || {
                start.wait();
                (0..EACH)
                    .map(|k| repo.new_task(&format!("from {n} #{k}"), &["--label", "burst"]))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let printed: BTreeSet<String> = workers
        .into_iter()
        .flat_map(|w| w.join().expect("creator thread"))
        .collect();
    assert_eq!(printed.len(), WRITERS * EACH);

    let listed: BTreeSet<String> = common::ids(&repo.list()).into_iter().collect();
    assert_eq!(listed, printed);
    repo.assert_fsck_clean();
}

/// Runs `git coord --agent AGENT ARGS` for every (agent, args) at once and returns the outputs in
/// the same order.
fn all_at_once(
    repo: &Arc<TestRepo>,
    runs: Vec<(String, Vec<String>)>,
) -> Vec<std::process::Output> {
    let start = Arc::new(Barrier::new(runs.len()));
    let threads: Vec<_> = runs
        .into_iter()
        .map(|(agent, args)| {
            let (repo, start) = (Arc::clone(repo), Arc::clone(&start));
            std::thread::spawn(move || {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                start.wait();
                repo.coord_as(&agent, &args)
            })
        })
        .collect();
    threads
        .into_iter()
        .map(|t| t.join().expect("writer thread"))
        .collect()
}

#[test]
fn agents_racing_for_one_task_leave_exactly_one_holder() {
    let repo = Arc::new(TestRepo::init());
    let id = repo.new_task("contested", &[]);
    let runs = (0..8)
        .map(|n| {
            (
                format!("r{n}"),
                vec!["task".into(), "claim".into(), id.clone()],
            )
        })
        .collect();
    let outs = all_at_once(&repo, runs);
    let holder = field(&repo.show(&id), "assignee")
        .expect("someone holds it")
        .to_string();
    let winners: Vec<usize> = (0..outs.len())
        .filter(|&n| outs[n].status.success())
        .collect();
    assert_eq!(winners.len(), 1, "claims that succeeded: {winners:?}");
    assert_eq!(holder, format!("r{}", winners[0]));
    for (n, out) in outs.iter().enumerate() {
        if n != winners[0] {
            let err = fails(out, 3);
            assert!(err.contains(&format!("claimed by {holder}")), "r{n}: {err}");
        }
    }
    repo.assert_fsck_clean();
}

/// Racing `claim --next` on one clone keeps strict urgency order: eight claimers at once take
/// exactly the eight most urgent tasks, one each, and leave every less urgent one open.
#[test]
fn racing_claimers_take_exactly_the_most_urgent_tasks() {
    let repo = Arc::new(TestRepo::init());
    let mut urgent = BTreeSet::new();
    let mut rest = BTreeSet::new();
    for n in 0..20 {
        // Eight of priority 0 and 1, twelve of 3; created interleaved so creation order alone
        // would not give the answer.
        let priority = if n % 5 < 2 { n % 5 } else { 3 };
        let id = repo.new_task(&format!("task {n}"), &["--priority", &priority.to_string()]);
        if priority < 3 {
            urgent.insert(id);
        } else {
            rest.insert(id);
        }
    }
    assert_eq!(urgent.len(), 8);
    let runs = (0..8)
        .map(|n| {
            let args = ["task", "claim", "--next", "--json"];
            (
                format!("r{n}"),
                args.iter().map(|a| a.to_string()).collect(),
            )
        })
        .collect();
    let mut claimed = BTreeSet::new();
    for (n, out) in all_at_once(&repo, runs).into_iter().enumerate() {
        let task = json(&stdout(&ok(out, "claim --next")));
        assert_eq!(field(&task, "assignee"), Some(format!("r{n}").as_str()));
        claimed.insert(field(&task, "id").expect("an id").to_string());
    }
    assert_eq!(
        claimed, urgent,
        "the claims were not the eight most urgent tasks"
    );
    for id in &rest {
        assert_eq!(field(&repo.show(id), "state"), Some("open"), "task {id}");
    }
    repo.assert_fsck_clean();
}

#[test]
fn racing_dependency_edits_never_make_a_cycle() {
    let repo = Arc::new(TestRepo::init());
    for _ in 0..6 {
        let a = repo.new_task("a", &[]);
        let b = repo.new_task("b", &[]);
        let dep_add = |x: &str, y: &str| {
            vec![
                "task".into(),
                "dep".into(),
                "add".into(),
                x.into(),
                y.to_string(),
            ]
        };
        let outs = all_at_once(
            &repo,
            vec![
                ("one".into(), dep_add(&a, &b)),
                ("two".into(), dep_add(&b, &a)),
            ],
        );
        let ok: Vec<bool> = outs.iter().map(|o| o.status.success()).collect();
        assert_eq!(ok.iter().filter(|&&s| s).count(), 1, "{outs:?}");
        let loser = outs.iter().find(|o| !o.status.success()).expect("a loser");
        assert!(fails(loser, 3).contains("dependency cycle"));
        let (deps_a, deps_b) = (repo.show(&a)["deps"].clone(), repo.show(&b)["deps"].clone());
        if ok[0] {
            assert_eq!(
                (deps_a, deps_b),
                (serde_json::json!([b]), serde_json::json!([]))
            );
        } else {
            assert_eq!(
                (deps_a, deps_b),
                (serde_json::json!([]), serde_json::json!([a]))
            );
        }
    }
}

#[test]
fn mixed_writers_and_a_sync_loop_with_git_gc_running_never_fail_spuriously() {
    use std::time::{Duration, Instant};
    let net = common::cluster::Cluster::new(1);
    // `git gc --auto` in the foreground after every few fetches: packs come and go, loose
    // objects are packed and their directories removed, while the writers run.
    net.git(0, &["config", "gc.auto", "20"]);
    net.git(0, &["config", "gc.autoDetach", "false"]);
    for n in 0..120 {
        net.ok(0, &["task", "new", &format!("work {n}")]);
    }
    net.ok(0, &["sync"]);
    let until = Instant::now() + Duration::from_secs(20);
    let dir = net.dir(0).to_path_buf();
    let failures = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while Instant::now() < until {
                let out = net.run(0, &["sync"]);
                if out.status.code() == Some(1) {
                    failures
                        .lock()
                        .expect("lock")
                        .push(format!("sync: {}", stderr(&out)));
                }
            }
        });
        for w in 0..16 {
            let (net, dir, failures) = (&net, &dir, &failures);
            scope.spawn(move || {
                let agent = format!("w{w}");
                let mut n = 0u32;
                while Instant::now() < until {
                    n += 1;
                    let path = format!("src/{agent}/f{n}");
                    let args: Vec<&str> = match n % 3 {
                        0 => vec!["--agent", &agent, "task", "claim", "--next"],
                        1 => vec!["--agent", &agent, "task", "new", "more"],
                        _ => vec!["--agent", &agent, "lease", "acquire", &path, "--ttl", "1m"],
                    };
                    let out = net
                        .origin
                        .command(common::BIN, dir)
                        .args(&args)
                        .output()
                        .expect("git-coord runs");
                    if out.status.code() == Some(1) {
                        failures.lock().expect("lock").push(format!(
                            "{}: {}",
                            args.join(" "),
                            stderr(&out)
                        ));
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().expect("lock");
    assert!(
        failures.is_empty(),
        "{} spurious failures: {failures:#?}",
        failures.len()
    );
}
