//! Writes confirmed at the remote, seen from the wire: a `git daemon` on loopback that logs every
//! connection. An uncontended online claim is one push; a claim that lost fetches and pushes
//! again; clones racing through the daemon are slowed down, never turned away.

mod common;

use std::collections::BTreeMap;
use std::process::Output;

use common::cluster::Cluster;
use common::{array, json, stderr, stdout};

fn id(out: &str) -> String {
    json(out)["id"].as_str().expect("an id").to_string()
}

#[test]
fn an_uncontended_online_claim_is_one_push_and_a_lost_one_fetches_once() {
    let cluster = Cluster::new(2);
    let tasks: Vec<String> = (0..3)
        .map(|n| id(&cluster.ok(0, &["task", "new", &format!("work {n}"), "--json"])))
        .collect();
    cluster.ok(0, &["agent", "register", "ann", "--role", "dev"]);
    let daemon = cluster.through_git_daemon();
    // A first sync leaves the remote's tip staged here.
    cluster.ok(0, &["sync"]);
    cluster.ok(1, &["sync"]);

    let before = daemon.requests().len();
    cluster.ok(0, &["--agent", "ann", "task", "claim", &tasks[0]]);
    assert_eq!(
        daemon.requests()[before..],
        ["receive-pack"],
        "one connection: the push"
    );
    let before = daemon.requests().len();
    cluster.ok(0, &["--agent", "ann", "lease", "acquire", "src/**"]);
    assert_eq!(daemon.requests()[before..], ["receive-pack"]);

    // A heartbeat the remote has not seen goes along in the same push.
    cluster.ok(0, &["--offline", "agent", "heartbeat"]);
    let beat = cluster.git(0, &["rev-parse", "refs/coord/presence"]);
    let before = daemon.requests().len();
    cluster.ok(0, &["lease", "acquire", "docs/**"]);
    assert_eq!(daemon.requests()[before..], ["receive-pack"]);
    let at_remote = cluster.git(0, &["ls-remote", "origin", "refs/coord/presence"]);
    assert!(at_remote.starts_with(&beat), "{at_remote} is not {beat}");

    // A task only the remote knows of is not taken for missing on what this clone last fetched:
    // it is asked again of the remote.
    let elsewhere = id(&cluster.ok(1, &["task", "new", "made elsewhere", "--json"]));
    cluster.ok(1, &["sync"]);
    let before = daemon.requests().len();
    cluster.ok(0, &["--agent", "ann", "task", "claim", &elsewhere]);
    assert_eq!(daemon.requests()[before..], ["upload-pack", "receive-pack"]);

    // Another clone moves the remote: this clone's push is refused, it fetches and pushes again.
    cluster.ok(1, &["--agent", "bob", "task", "claim", &tasks[1]]);
    let before = daemon.requests().len();
    cluster.ok(0, &["--agent", "ann", "task", "claim", &tasks[2]]);
    assert_eq!(
        daemon.requests()[before..],
        ["receive-pack", "upload-pack", "receive-pack"]
    );
    // Right after a refusal the remote is busy: the next write fetches first, and a task the
    // other clone already holds is refused on what the remote holds.
    let before = daemon.requests().len();
    let out = cluster.run(0, &["--agent", "ann", "task", "claim", &tasks[1]]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("claimed by bob"), "{}", stderr(&out));
    assert_eq!(daemon.requests()[before..], ["upload-pack"]);

    cluster.ok(1, &["sync"]);
    let shown = |task: &str| cluster.json(1, &["task", "show", task])["assignee"].clone();
    assert_eq!(shown(&tasks[0]), "ann");
    assert_eq!(shown(&tasks[1]), "bob");
    assert_eq!(shown(&tasks[2]), "ann");
}

#[test]
fn four_clones_of_two_claimers_racing_through_a_daemon_never_give_up() {
    const TASKS: usize = 32;
    let cluster = Cluster::new(4);
    for n in 0..TASKS {
        cluster.ok(0, &["task", "new", &format!("race {n}")]);
    }
    let _daemon = cluster.through_git_daemon();
    for clone in 0..4 {
        cluster.ok(clone, &["sync"]);
    }

    // Each claimer takes tasks until none is ready.
    let claimers: Vec<_> = (0..8)
        .map(|n| {
            let (clone, agent) = (n / 2, format!("c{}-{}", n / 2, n % 2));
            let dir = cluster.dir(clone).to_path_buf();
            let origin = &cluster.origin;
            move || {
                let mut got = Vec::new();
                loop {
                    let out: Output = origin
                        .command(common::BIN, &dir)
                        .args(["--agent", &agent, "task", "claim", "--next", "--json"])
                        .output()
                        .expect("a claim runs");
                    match out.status.code() {
                        Some(0) => got.push(id(&stdout(&out))),
                        Some(3) if stderr(&out).contains("no ready task") => return (agent, got),
                        code => panic!("{agent}: a claim ended {code:?}: {}", stderr(&out)),
                    }
                }
            }
        })
        .collect();
    let results: Vec<(String, Vec<String>)> = std::thread::scope(|s| {
        let running: Vec<_> = claimers.into_iter().map(|c| s.spawn(c)).collect();
        running
            .into_iter()
            .map(|r| r.join().expect("a claimer ends"))
            .collect()
    });

    let mut holder = BTreeMap::new();
    for (agent, got) in &results {
        for task in got {
            if let Some(other) = holder.insert(task.clone(), agent.clone()) {
                panic!("{task} was given to {other} and to {agent}");
            }
        }
    }
    assert_eq!(holder.len(), TASKS, "every task claimed: {results:?}");
    cluster.ok(3, &["sync"]);
    for task in array(cluster.json(3, &["task", "list"])) {
        let task_id = task["id"].as_str().expect("id");
        assert_eq!(task["state"], "claimed", "{task}");
        assert_eq!(
            task["assignee"].as_str(),
            holder.get(task_id).map(String::as_str),
            "the remote holds the claim each claimer was told of"
        );
    }
}

#[test]
fn a_remote_whose_policy_refuses_presence_still_takes_the_claim() {
    use std::os::unix::fs::PermissionsExt;
    let cluster = Cluster::new(2);
    let task = id(&cluster.ok(0, &["task", "new", "guarded", "--json"]));
    cluster.ok(0, &["agent", "register", "ann", "--role", "dev"]);
    cluster.ok(0, &["sync"]);
    // A pre-receive hook refuses any push that touches presence, the write's ref with it.
    let hook = cluster.remote.join("hooks/pre-receive");
    std::fs::write(
        &hook,
        "#!/bin/sh\nif grep -q refs/coord/presence; then echo 'policy: no presence' >&2; exit 1; fi\n",
    )
    .expect("the hook");
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    cluster.ok(0, &["--offline", "agent", "heartbeat"]);

    cluster.ok(0, &["task", "claim", &task]);
    cluster.ok(1, &["sync"]);
    assert_eq!(
        cluster.json(1, &["task", "show", &task])["assignee"],
        "ann",
        "the claim is at the remote"
    );
}

#[test]
fn an_online_claim_fails_at_once_when_the_daemon_is_gone() {
    let cluster = Cluster::new(1);
    let task = id(&cluster.ok(0, &["task", "new", "unreachable", "--json"]));
    let daemon = cluster.through_git_daemon();
    cluster.ok(0, &["sync"]);
    drop(daemon);

    let started = std::time::Instant::now();
    let out = cluster.run(0, &["--agent", "ann", "task", "claim", &task]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cannot push to origin"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("gave up"), "{}", stderr(&out));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "an unreachable remote is no contention: {:?}",
        started.elapsed()
    );
    assert_eq!(cluster.json(0, &["task", "show", &task])["state"], "open");
}

/// A sync fetches every coordination ref the remote has, presence included, in one connection,
/// whichever of them it lacks; the presence exchange after it does not fetch again.
#[test]
fn a_sync_is_one_fetch_whichever_refs_the_remote_has() {
    let cluster = Cluster::new(2);
    cluster.ok(0, &["task", "new", "a task"]);
    let daemon = cluster.through_git_daemon();
    // The remote has only some coordination refs yet, and no presence.
    let before = daemon.requests().len();
    cluster.ok(0, &["sync"]);
    let first = daemon.requests()[before..].to_vec();
    assert_eq!(
        first.iter().filter(|r| *r == "upload-pack").count(),
        1,
        "one fetch: {first:?}"
    );
    cluster.ok(1, &["sync"]);
    // Nothing new anywhere: one fetch, nothing else.
    let before = daemon.requests().len();
    cluster.ok(1, &["sync"]);
    assert_eq!(daemon.requests()[before..], ["upload-pack"]);
    // With a heartbeat: presence arrives in that fetch and goes in one push.
    cluster.ok(0, &["agent", "register", "ann", "--role", "dev"]);
    cluster.ok(0, &["--offline", "--agent", "ann", "agent", "heartbeat"]);
    let before = daemon.requests().len();
    cluster.ok(0, &["sync"]);
    let seen = daemon.requests()[before..].to_vec();
    assert_eq!(
        seen.iter().filter(|r| *r == "upload-pack").count(),
        1,
        "one fetch: {seen:?}"
    );
    let before = daemon.requests().len();
    let out = cluster.ok(1, &["sync"]);
    assert_eq!(daemon.requests()[before..], ["upload-pack"], "{out}");
    assert!(
        cluster.ok(1, &["agent", "list"]).contains("ann"),
        "ann's registration and heartbeat came in that one fetch"
    );
}
