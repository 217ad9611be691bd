//! Across machines: clones of one bare remote (and a git daemon on loopback) syncing
//! refs/coord/*, online claims confirmed at the remote, semantic merges that converge whatever
//! the order, remotes that fail, and mail between projects.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value;

use common::cluster::Cluster;
use common::{BIN, GitDaemon, Jitter, array, fails, free_port, json, ok, stderr, stdout};

/// What only these tests ask of a cluster.
trait ClusterState {
    fn state(&self, clone: usize, agents: &[&str]) -> BTreeMap<String, Value>;
}

impl ClusterState for Cluster {
    /// Everything a clone shows: tasks whole (with their threads), every lease, each agent's
    /// inbox.
    fn state(&self, clone: usize, agents: &[&str]) -> BTreeMap<String, Value> {
        let mut state = BTreeMap::new();
        for t in array(self.json(clone, &["task", "list"])) {
            let id = t["id"].as_str().expect("id").to_string();
            state.insert(
                format!("task {id}"),
                self.json(clone, &["task", "show", &id, "--history"]),
            );
        }
        state.insert(
            "leases".into(),
            self.json(clone, &["lease", "list", "--all"]),
        );
        for agent in agents {
            let mut inbox = self.json(clone, &["--agent", agent, "inbox", "--all", "-n", "0"]);
            // Only what the documents say: the order of equal timestamps is not state.
            if let Some(items) = inbox["messages"].as_array_mut() {
                items.sort_by_key(|m| m["id"].as_str().unwrap_or_default().to_string());
            }
            state.insert(format!("inbox {agent}"), inbox);
        }
        state
    }
}

fn id(v: &Value) -> String {
    v["id"].as_str().expect("an id").to_string()
}

#[test]
fn random_offline_histories_converge_whatever_the_order_of_syncs() {
    let agents = ["ann", "ben", "cat"];
    let patterns = ["src/**", "src/a.rs", "docs/", "docs/guide.md", "tests/*.rs"];
    for history in 0..6u64 {
        let cluster = Cluster::new(3);
        for agent in agents {
            cluster.ok(0, &["agent", "spawn", agent, "--role", "dev"]);
        }
        for clone in 0..3 {
            cluster.ok(clone, &["sync"]);
        }
        let mut rng = Jitter::new();
        let mut tasks: Vec<String> = Vec::new();
        let mut messages: Vec<String> = Vec::new();
        for _ in 0..18 {
            let clone = rng.below(3) as usize;
            let agent = agents[clone];
            let pick = |rng: &mut Jitter, from: &[String]| {
                from[rng.below(from.len() as u64) as usize].clone()
            };
            match rng.below(10) {
                0 | 1 => {
                    let t = cluster.json(
                        clone,
                        &[
                            "--agent",
                            agent,
                            "task",
                            "new",
                            &format!("task from {agent}"),
                        ],
                    );
                    tasks.push(id(&t));
                }
                2 | 3 if !tasks.is_empty() => {
                    let t = pick(&mut rng, &tasks);
                    let _ = cluster.run(
                        clone,
                        &[
                            "--offline",
                            "--agent",
                            agent,
                            "task",
                            "claim",
                            &t,
                            "--force",
                        ],
                    );
                }
                4 if !tasks.is_empty() => {
                    let t = pick(&mut rng, &tasks);
                    let _ = cluster.run(
                        clone,
                        &[
                            "--agent",
                            agent,
                            "task",
                            "done",
                            &t,
                            "--force",
                            "--summary",
                            "ok",
                        ],
                    );
                }
                5 if !tasks.is_empty() => {
                    let t = pick(&mut rng, &tasks);
                    let title = format!("renamed by {agent}");
                    // The task may not have reached this clone yet: then these are refused.
                    let _ = cluster.run(
                        clone,
                        &["--agent", agent, "task", "edit", &t, "--title", &title],
                    );
                    let _ = cluster.run(
                        clone,
                        &["--agent", agent, "task", "comment", &t, "a comment"],
                    );
                }
                6 => {
                    let to = agents[rng.below(3) as usize];
                    let m = cluster.json(clone, &["--agent", agent, "send", "--to", to, "hello"]);
                    messages.push(id(&m));
                }
                7 => {
                    let p = patterns[rng.below(patterns.len() as u64) as usize];
                    let _ = cluster.run(
                        clone,
                        &["--offline", "--agent", agent, "lease", "acquire", p],
                    );
                }
                8 => {
                    let _ = cluster.run(clone, &["--agent", agent, "lease", "release", "--all"]);
                }
                _ => {
                    let _ = cluster.run(clone, &["sync"]);
                }
            }
        }
        // Syncs in a random order, then rounds until every clone has seen everything.
        for _ in 0..3 {
            let clone = rng.below(3) as usize;
            cluster.ok(clone, &["sync"]);
        }
        for _ in 0..2 {
            for clone in 0..3 {
                cluster.ok(clone, &["sync"]);
            }
        }
        let first = cluster.state(0, &agents);
        for clone in 1..3 {
            assert_eq!(
                cluster.state(clone, &agents),
                first,
                "history {history}: clone {clone} differs"
            );
        }
        // Every message exactly once, in the store and in each box.
        for agent in agents {
            let inbox = &first[&format!("inbox {agent}")];
            let ids: Vec<String> = array(inbox["messages"].clone()).iter().map(id).collect();
            let unique: BTreeSet<&String> = ids.iter().collect();
            assert_eq!(
                ids.len(),
                unique.len(),
                "history {history}: a message twice in {agent}'s box"
            );
        }
        let _ = messages;
        // No two active exclusive leases of different agents overlap.
        let leases = array(first["leases"].clone());
        let active: Vec<&Value> = leases.iter().filter(|l| l["status"] == "active").collect();
        // The patterns used above that cover a common path.
        let overlaps = |a: &str, b: &str| {
            let pair = |x: &str, y: &str| (a, b) == (x, y) || (a, b) == (y, x);
            a == b || pair("src/**", "src/a.rs") || pair("docs/", "docs/guide.md")
        };
        for (i, a) in active.iter().enumerate() {
            for b in &active[i + 1..] {
                if a["agent"] == b["agent"] {
                    continue;
                }
                let (pa, pb) = (
                    a["patterns"][0].as_str().expect("p"),
                    b["patterns"][0].as_str().expect("p"),
                );
                assert!(
                    !overlaps(pa, pb),
                    "history {history}: {pa} of {} and {pb} of {} are both held",
                    a["agent"],
                    b["agent"]
                );
            }
        }
        cluster.origin.assert_fsck_clean();
    }
}

#[test]
fn two_clones_racing_for_one_task_online_exactly_one_wins_each_time() {
    let cluster = Cluster::new(2);
    for round in 0..8 {
        let task = id(&cluster.json(0, &["task", "new", &format!("contested {round}")]));
        cluster.ok(0, &["sync"]);
        cluster.ok(1, &["sync"]);
        let a = cluster.spawn(0, &["--agent", "alice", "task", "claim", &task]);
        let b = cluster.spawn(1, &["--agent", "bob", "task", "claim", &task]);
        let (a, b) = (
            a.wait_with_output().expect("a"),
            b.wait_with_output().expect("b"),
        );
        let codes = (a.status.code(), b.status.code());
        assert!(
            codes == (Some(0), Some(3)) || codes == (Some(3), Some(0)),
            "round {round}: {codes:?}\nalice: {}\nbob: {}",
            stderr(&a),
            stderr(&b)
        );
        let winner = if a.status.success() { "alice" } else { "bob" };
        cluster.ok(0, &["sync"]);
        cluster.ok(1, &["sync"]);
        for clone in 0..2 {
            let shown = cluster.json(clone, &["task", "show", &task]);
            assert_eq!(shown["assignee"], winner, "round {round}, clone {clone}");
        }
    }
}

#[test]
fn a_claim_race_settled_by_sync_tells_the_loser_and_records_field_conflicts() {
    let cluster = Cluster::new(2);
    let task = id(&cluster.json(0, &["task", "new", "shared work"]));
    cluster.ok(0, &["sync"]);
    cluster.ok(1, &["sync"]);
    cluster.ok(1, &["--offline", "--agent", "bob", "task", "claim", &task]);
    cluster.ok(
        0,
        &["--offline", "--agent", "alice", "task", "claim", &task],
    );
    cluster.ok(0, &["task", "edit", &task, "--title", "title from a"]);
    cluster.ok(1, &["task", "edit", &task, "--title", "title from b"]);
    cluster.ok(0, &["sync"]);
    let report = cluster.json(1, &["sync"]);
    assert_eq!(report["notices"], 1);
    cluster.ok(0, &["sync"]);
    for clone in 0..2 {
        let shown = cluster.json(clone, &["task", "show", &task]);
        assert_eq!(shown["assignee"], "bob", "the earlier claim holds");
        assert_eq!(shown["title"], "title from b", "the later edit holds");
        let conflicts = array(shown["conflicts"].clone());
        assert_eq!(conflicts[0]["field"], "title");
        assert_eq!(conflicts[0]["dropped"], "\"title from a\"");
    }
    let inbox = cluster.json(0, &["--agent", "alice", "inbox"]);
    let lost = &array(inbox["messages"].clone())[0];
    assert_eq!(lost["from"], "git-coord");
    assert!(
        lost["subject"]
            .as_str()
            .expect("subject")
            .contains("lost the claim")
    );
    let text = cluster.ok(1, &["task", "show", &task]);
    assert!(text.contains("conflicts settled by sync"), "{text}");
}

#[test]
fn init_leaves_what_plain_fetch_and_push_do_alone() {
    let cluster = Cluster::new(1);
    let before = cluster
        .origin
        .git_ok(&["config", "--get-all", "remote.origin.fetch"]);
    cluster.ok(0, &["init"]);
    assert_eq!(
        cluster
            .origin
            .git_ok(&["config", "--get-all", "remote.origin.fetch"]),
        before
    );
    assert!(
        cluster
            .origin
            .git(&["config", "--get-all", "remote.origin.push"])
            .stdout
            .is_empty()
    );
    // Nothing under refs/coord/ is ever overwritten by a fetch: staging lives elsewhere.
    let refs = cluster
        .origin
        .git_ok(&["for-each-ref", "--format=%(refname)", "refs/coord-sync/"]);
    assert!(
        refs.lines()
            .all(|r| r.starts_with("refs/coord-sync/origin/")),
        "{refs}"
    );
}

#[test]
fn the_pre_push_hook_shares_coordination_state_with_the_branch_push() {
    let cluster = Cluster::new(2);
    cluster.ok(0, &["hooks", "install"]);
    let task = id(&cluster.json(0, &["task", "new", "made before a plain push"]));
    cluster.origin.write_file("f.txt", "f\n");
    ok(cluster.origin.git(&["add", "f.txt"]), "add");
    ok(cluster.origin.git(&["commit", "-q", "-m", "f"]), "commit");
    let out = ok(
        cluster.origin.git(&["push", "-q", "origin", "main"]),
        "a plain git push",
    );
    assert!(stderr(&out).contains("synced"), "{}", stderr(&out));
    let remote_tasks = cluster
        .origin
        .command("git", cluster.origin.tmp())
        .args([
            "--git-dir",
            cluster.remote.to_str().expect("utf-8"),
            "ls-tree",
            "-r",
            "--name-only",
            "refs/coord/tasks",
        ])
        .output()
        .expect("git");
    assert!(
        stdout(&remote_tasks).contains(&task),
        "the remote has the task"
    );
    cluster.ok(1, &["fetch"]);
    assert_eq!(
        cluster.json(1, &["task", "show", &task])["title"],
        "made before a plain push"
    );
}

#[test]
fn failing_remotes_give_clear_errors_change_nothing_and_a_later_sync_recovers() {
    let cluster = Cluster::new(2);
    let task = id(&cluster.json(0, &["task", "new", "kept through failures"]));
    let hooks = cluster.remote.join("hooks");
    std::fs::create_dir_all(&hooks).expect("hooks dir");
    let hook = hooks.join("pre-receive");
    std::fs::write(
        &hook,
        "#!/bin/sh\necho 'pushes are closed today' >&2\nexit 1\n",
    )
    .expect("hook");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let tip = cluster.origin.ref_tip(common::TASKS_REF);
    let err = fails(&cluster.run(0, &["sync"]), 1);
    assert!(err.contains("cannot push to"), "{err}");
    assert!(err.contains("hint:"), "{err}");
    assert_eq!(
        cluster.origin.ref_tip(common::TASKS_REF),
        tip,
        "local state untouched"
    );
    // An online claim is refused too, and claims nothing.
    let err = fails(
        &cluster.run(0, &["--agent", "alice", "task", "claim", &task]),
        1,
    );
    assert!(
        err.contains("--offline") || err.contains("offline"),
        "{err}"
    );
    assert_eq!(cluster.json(0, &["task", "show", &task])["state"], "open");
    std::fs::remove_file(&hook).expect("reopen pushes");
    cluster.ok(0, &["sync"]);

    // The remote disappears.
    let moved = cluster.origin.tmp().join("moved.git");
    std::fs::rename(&cluster.remote, &moved).expect("move the remote away");
    let err = fails(&cluster.run(1, &["sync"]), 1);
    assert!(err.contains("cannot fetch from origin"), "{err}");
    std::fs::rename(&moved, &cluster.remote).expect("bring it back");
    cluster.ok(1, &["sync"]);
    assert_eq!(
        cluster.json(1, &["task", "show", &task])["title"],
        "kept through failures"
    );

    // The remote holds a malformed document: it is named, and the rest still loads.
    let bad = cluster.origin.put_document_in(
        common::TASKS_REF,
        "tasks/ee/eeeeeeeeeeee.yaml",
        b"format: [\n",
    );
    ok(
        cluster
            .origin
            .git(&["push", "-q", "origin", &format!("{bad}:refs/coord/tasks")]),
        "push a bad document",
    );
    let out = ok(cluster.run(1, &["sync"]), "sync with a malformed document");
    let _ = out;
    let listed = ok(cluster.run(1, &["task", "list", "--json"]), "list");
    assert!(
        stderr(&listed).contains("tasks/ee/eeeeeeeeeeee.yaml"),
        "{}",
        stderr(&listed)
    );
    assert_eq!(array(json(&stdout(&listed))).len(), 1);

    // A .coord.yaml that does not parse is refused before anything is fetched or pushed.
    cluster.ok(1, &["task", "new", "not pushed yet"]);
    let config = cluster.dir(1).join(".coord.yaml");
    std::fs::write(&config, "stale_after: soon\n").expect("a bad config");
    let remote_tip = cluster.git(1, &["ls-remote", "origin", "refs/coord/tasks"]);
    let err = fails(&cluster.run(1, &["sync"]), 1);
    assert!(err.contains(".coord.yaml"), "{err}");
    assert_eq!(
        cluster.git(1, &["ls-remote", "origin", "refs/coord/tasks"]),
        remote_tip,
        "nothing was pushed"
    );
    std::fs::remove_file(&config).expect("config removed");
    cluster.ok(1, &["sync"]);
}

#[test]
fn sync_through_a_git_daemon_on_loopback() {
    let cluster = Cluster::new(1);
    let port = free_port();
    let base = cluster.origin.tmp().to_path_buf();
    let _daemon = GitDaemon::start(&cluster.origin, &base, port);
    let url = format!("git://127.0.0.1:{port}/remote.git");
    let task = id(&cluster.json(0, &["task", "new", "over the wire"]));
    let second = cluster.origin.tmp().join("second");
    ok(
        cluster
            .origin
            .command("git", cluster.origin.tmp())
            .args(["clone", "-q", &url])
            .arg(&second)
            .output()
            .expect("git"),
        "clone over git://",
    );
    ok(
        cluster
            .origin
            .git_in(&second, &["config", "user.name", "Second"]),
        "config",
    );
    cluster.ok(0, &["sync", &url]);
    let got = cluster
        .origin
        .command(BIN, &second)
        .args(["sync"])
        .output()
        .expect("sync");
    ok(got, "sync over git://");
    let claim = cluster
        .origin
        .command(BIN, &second)
        .args(["--agent", "zed", "task", "claim", &task])
        .output()
        .expect("claim");
    ok(claim, "an online claim over git://");
    cluster.ok(0, &["sync", &url]);
    assert_eq!(cluster.json(0, &["task", "show", &task])["assignee"], "zed");
}

#[test]
fn messages_cross_projects_and_replies_come_back() {
    let a = Cluster::new(1);
    let b = Cluster::new(1);
    b.ok(0, &["agent", "spawn", "bob", "--role", "dev"]);
    b.ok(0, &["sync"]);
    a.ok(0, &["agent", "spawn", "alice", "--role", "dev"]);
    a.ok(0, &["sync"]);
    let b_url = b.remote.to_str().expect("utf-8").to_string();
    let a_url = a.remote.to_str().expect("utf-8").to_string();
    a.ok(0, &["project", "add", "lib", &b_url]);
    a.origin.write_file("repro.txt", "steps\n");
    let sent = a.json(
        0,
        &[
            "--agent",
            "alice",
            "send",
            "--to",
            "lib:bob",
            "--subject",
            "bug in parse",
            "parse() crashes",
            "--attach",
            "repro.txt",
        ],
    );
    assert_eq!(sent["to"], serde_json::json!(["bob"]));
    // A bare project name reaches its shared box, which every agent there reads.
    let everyone = a.json(
        0,
        &[
            "--agent",
            "alice",
            "send",
            "--to",
            "lib",
            "release on friday",
        ],
    );
    assert_eq!(everyone["to"], serde_json::json!([]));
    assert_eq!(everyone["target"], "@project");
    assert!(everyone["from_project"].is_string(), "{everyone}");
    let err = fails(
        &a.run(0, &["--agent", "alice", "send", "--to", "lib:nobody", "hi"]),
        1,
    );
    assert!(err.contains("no such active agent"), "{err}");
    let err = fails(
        &a.run(0, &["--agent", "alice", "send", "--to", "nolib:bob", "hi"]),
        1,
    );
    assert!(err.contains("project add"), "{err}");

    b.ok(0, &["sync"]);
    let inbox = b.json(0, &["--agent", "bob", "inbox", "--grep", "parse"]);
    let got = &array(inbox["messages"].clone())[0];
    assert_eq!(got["subject"], "bug in parse");
    let read = b.json(0, &["--agent", "bob", "read", &id(got)]);
    assert_eq!(read["from"], "alice");
    assert!(
        read["from_project"]
            .as_str()
            .expect("a project")
            .contains("remote"),
        "{read}"
    );
    assert!(read["human"].as_str().expect("human").contains("Ada"));
    assert_eq!(read["attachments"][0]["name"], "repro.txt");

    // bob replies: refused until his project knows where alice's project is, then delivered.
    let err = fails(
        &b.run(0, &["--agent", "bob", "reply", &id(got), "looking"]),
        1,
    );
    assert!(err.contains("project add"), "{err}");
    b.ok(0, &["project", "add", "app", &a_url]);
    b.ok(0, &["--agent", "bob", "reply", &id(got), "fixed in 1.2"]);
    a.ok(0, &["sync"]);
    let back = a.json(0, &["--agent", "alice", "inbox"]);
    let reply = &array(back["messages"].clone())[0];
    assert_eq!(reply["subject"], "Re: bug in parse");
    assert_eq!(reply["thread"], sent["thread"]);
    let _ = Path::new(&a_url);
}
