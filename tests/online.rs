//! Writes confirmed at the remote, seen from the wire: a `git daemon` on loopback that logs every
//! connection. An uncontended online claim is one push; a claim that lost fetches and pushes
//! again.

mod common;

use common::cluster::Cluster;
use common::{json, stderr};

fn id(out: &str) -> String {
    json(out)["id"].as_str().expect("an id").to_string()
}

#[test]
fn an_uncontended_online_claim_is_one_push_and_a_lost_one_fetches_once() {
    let cluster = Cluster::new(2);
    let tasks: Vec<String> = (0..3)
        .map(|n| id(&cluster.ok(0, &["task", "new", &format!("work {n}"), "--json"])))
        .collect();
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

    // Another clone moves the remote: this clone's push is refused, it fetches and pushes again.
    cluster.ok(1, &["--agent", "bob", "task", "claim", &tasks[1]]);
    let before = daemon.requests().len();
    cluster.ok(0, &["--agent", "ann", "task", "claim", &tasks[2]]);
    assert_eq!(
        daemon.requests()[before..],
        ["receive-pack", "upload-pack", "receive-pack"]
    );
    // A task the other clone already holds is refused after a look at the remote.
    let out = cluster.run(0, &["--agent", "ann", "task", "claim", &tasks[1]]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("claimed by bob"), "{}", stderr(&out));

    cluster.ok(1, &["sync"]);
    let shown = |task: &str| cluster.json(1, &["task", "show", task])["assignee"].clone();
    assert_eq!(shown(&tasks[0]), "ann");
    assert_eq!(shown(&tasks[1]), "bob");
    assert_eq!(shown(&tasks[2]), "ann");
}
