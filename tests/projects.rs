//! Across projects: an agent of project A files a task into project B through B's remote (even
//! when B never ran git-coord), B's agents see it as ordinary work, A's dependent task unblocks
//! when B's task is done, and A's agent is told; the conversation lives on B's task. Two bare
//! remotes and three clones (two of A, one of B), with the real binary and the real `git`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use common::*;
use serde_json::Value;

/// Two projects: A (two clones, `a1` and `a2`) and B (one clone, `b1`, never initialised for
/// git-coord), each with a bare remote. A's committed .coord.yaml knows B as `beads`.
struct World {
    a1: TestRepo,
    a2: PathBuf,
    b1: TestRepo,
    a_remote: PathBuf,
    b_remote: PathBuf,
}

impl World {
    /// B is reached at `b_url` (None: its bare remote's path).
    fn new(b_url: impl FnOnce(&Path) -> Option<String>) -> World {
        let a1 = TestRepo::new();
        let b1 = TestRepo::new();
        let a_remote = a1.tmp().join("a.git");
        let b_remote = a1.tmp().join("b.git");
        for remote in [&a_remote, &b_remote] {
            ok(
                a1.command("git", a1.tmp())
                    .args(["init", "-q", "--bare"])
                    .arg(remote)
                    .output()
                    .expect("git"),
                "a bare remote",
            );
        }
        let b_path = b_remote.to_str().expect("utf-8").to_string();
        let url = b_url(a1.tmp()).unwrap_or_else(|| b_path.clone());
        b1.git_ok(&["remote", "add", "origin", &b_path]);
        b1.git_ok(&["push", "-q", "origin", "main"]);

        a1.git_ok(&["remote", "add", "origin", a_remote.to_str().expect("utf-8")]);
        a1.write_file(".coord.yaml", &format!("projects:\n  beads: {url}\n"));
        a1.git_ok(&["add", ".coord.yaml"]);
        a1.git_ok(&["commit", "-q", "-m", "know beads"]);
        a1.git_ok(&["push", "-q", "origin", "main"]);
        a1.coord_ok(&["init"]);
        a1.coord_ok(&["sync"]);
        let a2 = a1.tmp().join("a2");
        ok(
            a1.command("git", a1.tmp())
                .args(["clone", "-q", "-b", "main"])
                .arg(&a_remote)
                .arg(&a2)
                .output()
                .expect("git"),
            "clone a2",
        );
        ok(
            a1.git_in(&a2, &["config", "user.name", "Grace Hopper"]),
            "config",
        );
        ok(
            a1.git_in(&a2, &["config", "user.email", "grace@example.com"]),
            "config",
        );
        let world = World {
            a1,
            a2,
            b1,
            a_remote,
            b_remote,
        };
        world.a2_ok(&["sync"]);
        world
    }

    fn a2(&self, args: &[&str]) -> Output {
        self.a1.coord_in(&self.a2, args)
    }

    fn a2_ok(&self, args: &[&str]) -> String {
        stdout(&ok(
            self.a2(args),
            &format!("a2: git coord {}", args.join(" ")),
        ))
    }

    /// The refs of B's bare remote.
    fn b_remote_refs(&self) -> String {
        stdout(&ok(
            self.a1
                .command("git", self.a1.tmp())
                .args(["ls-remote"])
                .arg(&self.b_remote)
                .output()
                .expect("git"),
            "ls-remote",
        ))
    }
}

fn json_of(out: &str) -> Value {
    json(out)
}

/// Files a task titled `title` into beads as alice, from A; returns its full id there.
fn file_into_beads(a1: &TestRepo, title: &str) -> String {
    let filed = a1.coord_as_ok("alice", &["task", "new", "--project", "beads", title]);
    let id = filed
        .trim()
        .strip_prefix("beads:")
        .expect("NAME:ID")
        .to_string();
    assert!(is_full_id(&id), "{filed}");
    id
}

/// Subjects of an agent's inbox (all messages).
fn subjects(inbox: &Value) -> Vec<String> {
    array(inbox["messages"].clone())
        .iter()
        .map(|m| m["subject"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// The handoff, start to finish, with B reached at whatever URL `world` was given.
fn handoff(world: &World) {
    let (a1, b1) = (&world.a1, &world.b1);
    // A finds the bug while working on its own task, and files it into B with a repro.
    let mine = a1.new_task("upgrade the parser", &["--agent", "alice"]);
    let repro: Vec<u8> = b"#!/bin/sh\nprintf '' | parse\n\x00\xff binary tail".to_vec();
    std::fs::write(a1.path.join("repro.sh"), &repro).expect("repro");
    a1.write_file("report.md", "parse('') panics\n\nSteps in repro.sh.\n");
    let filed = a1.coord_as_ok(
        "alice",
        &[
            "task",
            "new",
            "--project",
            "beads",
            "empty input panics",
            "-F",
            "report.md",
            "--attach",
            "repro.sh",
            "--from",
            &mine,
        ],
    );
    let filed = filed.trim();
    let b_task = filed.strip_prefix("beads:").expect("NAME:ID").to_string();
    assert!(is_full_id(&b_task), "{filed}");
    assert!(
        world.b_remote_refs().contains("refs/coord/tasks"),
        "B's coordination refs were created"
    );

    // A's dependent task waits on B's, naming its state and when B was last fetched.
    let dependent = a1.coord_as_ok(
        "alice",
        &[
            "task",
            "new",
            "ship the upgrade",
            "--dep",
            &format!("beads:{}", &b_task[..6]),
        ],
    );
    let dependent = dependent.trim().to_string();
    assert_eq!(
        a1.show(&dependent)["deps"][0],
        format!("beads:{b_task}"),
        "the dependency is recorded with B's full id"
    );
    let ready = ids(&array(a1.coord_json(&["ready"])));
    assert!(!ready.contains(&dependent), "{ready:?}");
    assert!(ready.contains(&mine));
    let blocked = a1.coord_ok(&["blocked"]);
    assert!(
        blocked.contains(&format!(
            "waits on beads:{b_task} (open) empty input panics [fetched "
        )),
        "{blocked}"
    );
    a1.coord_ok(&["sync"]);

    // B initialises now: its first init and sync agree with the refs A created.
    b1.coord_ok(&["init"]);
    let synced = b1.coord_ok(&["sync"]);
    assert!(!synced.contains("merged"), "{synced}");
    let roots = b1.git_ok(&["rev-list", "--max-parents=0", "refs/coord/tasks"]);
    assert_eq!(roots.lines().count(), 1, "one root: {roots}");
    b1.coord_ok(&["agent", "spawn", "bob", "--role", "dev"]);

    // In B it is ordinary work, offered to a dev although it has no role.
    let ready = ids(&array(
        b1.coord_json(&["--agent", "bob", "ready", "--role", "dev"]),
    ));
    assert_eq!(ready, vec![b_task.clone()]);
    let brief = b1.coord_as_ok("bob", &["brief"]);
    assert!(brief.contains(&b_task), "{brief}");
    let shown = b1.show(&b_task);
    assert_eq!(shown["origin"]["agent"], "alice");
    assert_eq!(shown["origin"]["task"], mine.as_str());
    assert!(
        shown["origin"]["human"]
            .as_str()
            .unwrap_or_default()
            .contains("Ada Lovelace"),
        "{shown}"
    );
    let a_id = shown["origin"]["project"]
        .as_str()
        .expect("origin")
        .to_string();
    assert!(
        a_id.ends_with("/a"),
        "A's identity is its normalized URL: {a_id}"
    );
    let text = b1.coord_ok(&["task", "show", &b_task]);
    assert!(
        text.contains(&format!(
            "origin:   a:alice (Ada Lovelace <ada@example.com>), project {a_id}, for its task {mine}"
        )),
        "{text}"
    );
    let first = &shown["messages"][0];
    assert_eq!(first["body"], "parse('') panics\n\nSteps in repro.sh.");
    assert_eq!(first["attachments"][0]["name"], "repro.sh");
    let saved = b1.tmp().join("saved");
    let first_id = first["id"].as_str().expect("id").to_string();
    b1.coord_as_ok(
        "bob",
        &[
            "read",
            &first_id,
            "--save-attachments",
            saved.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(std::fs::read(saved.join("repro.sh")).expect("saved"), repro);

    // bob asks on the thread and claims the task.
    b1.coord_as_ok(
        "bob",
        &["send", "--to", &format!("#{b_task}"), "Which version?"],
    );
    b1.coord_as_ok("bob", &["task", "claim", &b_task]);
    b1.coord_ok(&["sync"]);

    // A's sync follows B's task: alice is told, and sees the conversation from A.
    a1.coord_ok(&["sync"]);
    let inbox = a1.coord_json(&["--agent", "alice", "inbox"]);
    let short = &b_task[..4];
    let got = subjects(&inbox);
    assert!(
        got.contains(&format!("beads:{short} claimed by bob: empty input panics")),
        "{got:?}"
    );
    assert!(
        got.contains(&format!("beads:{short} message from bob: Which version?")),
        "{got:?}"
    );
    let thread = a1.coord_ok(&["thread", &format!("beads:{b_task}")]);
    assert!(thread.contains("Which version?"), "{thread}");
    assert!(thread.contains("parse('') panics"), "{thread}");

    // alice answers on B's task, through B's URL; B never needed A's address.
    a1.coord_as_ok(
        "alice",
        &["task", "comment", &format!("beads:{short}"), "1.4.2"],
    );
    a1.coord_as_ok(
        "alice",
        &["send", "--to", &format!("#beads:{short}"), "Also on 1.5."],
    );
    b1.coord_ok(&["sync"]);
    let shown = b1.show(&b_task);
    assert_eq!(shown["comments"][0]["text"], "1.4.2");
    assert_eq!(shown["comments"][0]["project"], a_id.as_str());
    let bob = b1.coord_json(&["--agent", "bob", "inbox"]);
    assert!(
        subjects(&bob).contains(&"Also on 1.5.".to_string()),
        "{bob}"
    );
    // a reply to A's message lands on the task's thread here, without A's address.
    let also = array(bob["messages"].clone())
        .into_iter()
        .find(|m| m["subject"] == "Also on 1.5.")
        .expect("alice's message");
    b1.coord_as_ok(
        "bob",
        &["reply", also["id"].as_str().expect("id"), "Fixed in 1.5.1."],
    );

    // bob finishes; A's dependent task is absent from ready until A syncs, present after.
    b1.coord_as_ok(
        "bob",
        &[
            "task",
            "done",
            &b_task,
            "--summary",
            "empty input now parses",
        ],
    );
    b1.coord_ok(&["sync"]);
    assert!(!ids(&array(a1.coord_json(&["ready"]))).contains(&dependent));
    world.a2_ok(&["sync"]);
    let ready_a2 = ids(&array(json_of(&world.a2_ok(&["ready", "--json"]))));
    assert!(ready_a2.contains(&dependent), "{ready_a2:?}");
    a1.coord_ok(&["sync"]);
    assert!(ids(&array(a1.coord_json(&["ready"]))).contains(&dependent));
    world.a2_ok(&["sync"]);
    a1.coord_ok(&["sync"]);
    let got = subjects(&a1.coord_json(&["--agent", "alice", "inbox", "--all"]));
    let done: Vec<&String> = got
        .iter()
        .filter(|s| *s == &format!("beads:{short} done: empty input now parses"))
        .collect();
    assert_eq!(
        done.len(),
        1,
        "one notice, whichever clone saw it first: {got:?}"
    );
    assert!(
        got.contains(&format!("beads:{short} message from bob: Re: Also on 1.5.")),
        "{got:?}"
    );
    let listed = a1.coord_ok(&["project", "list"]);
    assert!(
        listed.contains("beads") && listed.contains("fetched 20"),
        "{listed}"
    );
    a1.assert_fsck_clean();
    b1.assert_fsck_clean();
}

#[test]
fn a_task_filed_into_another_project_is_worked_there_and_followed_home() {
    let world = World::new(|_| None);
    handoff(&world);
    let _ = &world.a_remote;
}

#[test]
fn the_handoff_through_a_git_daemon_on_loopback() {
    let port = free_port();
    let mut daemon_base = None;
    let world = World::new(|tmp| {
        daemon_base = Some(tmp.to_path_buf());
        Some(format!("git://127.0.0.1:{port}/b.git"))
    });
    let base = daemon_base.expect("the daemon's base");
    let _daemon = GitDaemon::start(&world.a1, &base, port);
    handoff(&world);
}

#[test]
fn the_first_filing_into_a_project_that_never_ran_git_coord_opens_two_connections() {
    let port = free_port();
    let mut daemon_base = None;
    let world = World::new(|tmp| {
        daemon_base = Some(tmp.to_path_buf());
        Some(format!("git://127.0.0.1:{port}/b.git"))
    });
    let base = daemon_base.expect("the daemon's base");
    let daemon = GitDaemon::start_logged(&world.a1, &base, port, &base.join("b-daemon.log"));
    assert!(!world.b_remote_refs().contains("refs/coord/"), "B is new");
    let b_task = file_into_beads(&world.a1, "a first bug");
    assert_eq!(
        daemon.requests(),
        ["upload-pack", "receive-pack"],
        "one fetch of every coordination ref, one push"
    );
    // It is there, with the roots `init` makes.
    let refs = world.b_remote_refs();
    for kind in ["tasks", "inbox", "leases", "agents", "checkpoints"] {
        assert!(refs.contains(&format!("refs/coord/{kind}")), "{refs}");
    }
    world.b1.coord_ok(&["sync"]);
    assert_eq!(world.b1.show(&b_task)["title"], "a first bug");
}

#[test]
fn mail_to_a_project_with_nobody_in_it_waits_in_its_shared_box() {
    let world = World::new(|_| None);
    let (a1, b1) = (&world.a1, &world.b1);
    // B has never run git-coord, and has no agents.
    let sent = a1.coord_json(&[
        "--agent",
        "alice",
        "send",
        "--to",
        "beads",
        "We depend on you.",
    ]);
    assert_eq!(sent["to"], serde_json::json!([]));
    assert_eq!(sent["target"], "@project");
    b1.coord_ok(&["init"]);
    b1.coord_ok(&["sync"]);
    for agent in ["bob", "carol"] {
        let inbox = b1.coord_json(&["--agent", agent, "inbox"]);
        assert_eq!(inbox["unread"], 1, "{agent}: {inbox}");
        assert_eq!(subjects(&inbox), ["We depend on you."]);
        let from = inbox["messages"][0]["from"].as_str().unwrap_or_default();
        assert!(
            from.ends_with("/a:alice"),
            "project:agent in listings: {from}"
        );
        let brief = b1.coord_as_ok(agent, &["brief"]);
        assert!(brief.contains("Unread messages (1)"), "{brief}");
    }
    let read = b1.coord_json(&["--agent", "bob", "read", sent["id"].as_str().expect("id")]);
    assert!(
        read["from_project"]
            .as_str()
            .expect("a project")
            .ends_with("/a")
    );
    let shown = b1.coord_as_ok("bob", &["read", sent["id"].as_str().expect("id")]);
    assert!(
        shown.contains(":alice (Ada Lovelace <ada@example.com>)"),
        "{shown}"
    );
    // Read is not handled: carol still sees it until someone acknowledges it.
    assert_eq!(b1.coord_json(&["--agent", "carol", "inbox"])["unread"], 1);
    b1.coord_as_ok("bob", &["ack", sent["id"].as_str().expect("id")]);
    assert_eq!(b1.coord_json(&["--agent", "carol", "inbox"])["unread"], 0);
}

#[test]
fn a_task_with_no_role_is_offered_to_every_role() {
    let repo = TestRepo::init();
    let spawned = repo.coord_json(&["agent", "spawn", "dana", "--role", "tester"]);
    let home = PathBuf::from(spawned["worktree"].as_str().expect("a worktree"));
    let anyone = repo.new_task("anyone's task", &[]);
    let devs = repo.new_task("a dev task", &["--role", "dev"]);
    let ready = ids(&array(repo.coord_json(&["ready", "--role", "tester"])));
    assert_eq!(ready, vec![anyone.clone()]);
    assert!(ids(&array(repo.coord_json(&["ready", "--role", "dev"]))).contains(&devs));
    let brief = repo.coord_as_ok("dana", &["brief"]);
    assert!(brief.contains(&anyone), "{brief}");
    // The stop hook keeps dana going: there is work for a tester.
    let mut child = repo
        .command(BIN, repo.tmp())
        .args(["hook", "stop"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the hook runs");
    let input = serde_json::json!({ "cwd": home.display().to_string(), "stop_hook_active": false });
    std::io::Write::write_all(
        &mut child.stdin.take().expect("stdin"),
        input.to_string().as_bytes(),
    )
    .expect("input written");
    let decision = json(&stdout(
        &child.wait_with_output().expect("the hook finishes"),
    ));
    assert_eq!(decision["decision"], "block", "{decision}");
    assert!(
        decision["reason"]
            .as_str()
            .unwrap_or_default()
            .contains(&anyone),
        "{decision}"
    );
    let claimed = repo.coord_json(&[
        "--agent", "dana", "task", "claim", "--next", "--role", "tester",
    ]);
    assert_eq!(claimed["id"], anyone.as_str());
}

#[test]
fn a_project_that_is_not_configured_is_named_with_what_to_do() {
    let world = World::new(|_| None);
    let a1 = &world.a1;
    let before = a1.coord_refs();
    for args in [
        vec!["task", "new", "--project", "nope", "a bug"],
        vec!["task", "show", "nope:abcd"],
        vec!["task", "new", "waits", "--dep", "nope:abcd"],
        vec!["send", "--to", "#nope:abcd", "hello"],
    ] {
        let err = fails(&a1.coord(&args), 1);
        assert!(
            err.contains("nope") && err.contains("project add"),
            "{args:?}: {err}"
        );
    }
    assert_eq!(a1.coord_refs(), before, "nothing was written");
}

#[test]
fn mail_and_comments_to_an_unreachable_project_wait_in_the_outbox_and_go_out_once() {
    let world = World::new(|_| None);
    let (a1, b1) = (&world.a1, &world.b1);
    b1.coord_ok(&["agent", "spawn", "bob", "--role", "dev"]);
    let b_task = b1.new_task("empty input panics", &[]);
    b1.coord_ok(&["sync"]);
    // A writes to B once while it is reachable, which leaves A a copy of B: what queued mail
    // is checked against.
    a1.coord_as_ok("alice", &["send", "--to", "beads:bob", "Hello."]);

    // B's remote goes away.
    let away = world.b_remote.with_extension("away");
    std::fs::rename(&world.b_remote, &away).expect("move B's remote away");
    let queued = |args: &[&str]| {
        let said = stderr(&ok(a1.coord_as("alice", args), "queued while unreachable"));
        assert!(
            said.contains("queued: beads is unreachable"),
            "{args:?}: {said}"
        );
    };
    queued(&["send", "--to", "beads:bob", "Are you there?"]);
    queued(&["send", "--to", &format!("#beads:{b_task}"), "On the task."]);
    queued(&["task", "comment", &format!("beads:{b_task}"), "1.4.2 too"]);
    let status = a1.coord_json(&["status"]);
    let kinds: Vec<String> = array(status["outbox"].clone())
        .iter()
        .map(|q| q["kind"].as_str().expect("kind").to_string())
        .collect();
    assert_eq!(kinds, ["message", "message", "comment"], "{status}");
    let text = a1.coord_ok(&["status"]);
    assert!(text.contains("outbox: 3 wait"), "{text}");
    // An agent there that the copy does not know is refused at once, not queued.
    let err = fails(
        &a1.coord_as("alice", &["send", "--to", "beads:nobody", "hi"]),
        1,
    );
    assert!(err.contains("no such active agent"), "{err}");
    // While it stays unreachable, a sync keeps them.
    a1.coord(&["sync"]);
    assert_eq!(array(a1.coord_json(&["status"])["outbox"].clone()).len(), 3);

    // B is back: the next sync writes each there once, and a second sync writes nothing more.
    std::fs::rename(&away, &world.b_remote).expect("bring B's remote back");
    let synced = a1.coord_ok(&["sync"]);
    assert!(synced.contains("3 queued"), "{synced}");
    a1.coord_ok(&["sync"]);
    b1.coord_ok(&["sync"]);
    let shown = b1.show(&b_task);
    let comments = array(shown["comments"].clone());
    assert_eq!(comments.len(), 1, "{shown}");
    assert_eq!(comments[0]["text"], "1.4.2 too");
    let bob = b1.coord_json(&["--agent", "bob", "inbox"]);
    let got = subjects(&bob);
    let once = got.iter().filter(|s| *s == "Are you there?").count();
    assert_eq!(once, 1, "{got:?}");
    let thread = b1.coord_ok(&["thread", &b_task]);
    let copies = thread
        .lines()
        .filter(|l| l.trim() == "On the task.")
        .count();
    assert_eq!(copies, 1, "{thread}");
    assert_eq!(a1.coord_json(&["status"])["outbox"], serde_json::json!([]));
    assert_eq!(a1.git_ok(&["for-each-ref", "refs/coord-outbox/"]), "");
}

#[test]
fn a_filing_into_an_unreachable_project_waits_in_the_outbox_and_goes_out_once() {
    let world = World::new(|tmp| Some(tmp.join("nowhere.git").display().to_string()));
    let a1 = &world.a1;
    let before = a1.coord_refs();
    let out = a1.coord(&["task", "new", "--project", "beads", "a bug", "--json"]);
    let said = stderr(&ok(out.clone(), "a filing into an unreachable project"));
    assert!(said.contains("queued: beads is unreachable"), "{said}");
    assert!(said.contains("nowhere.git"), "{said}");
    let filed = json(&stdout(&out));
    let id = filed["task"]["id"]
        .as_str()
        .or_else(|| filed["id"].as_str())
        .unwrap_or_else(|| panic!("an id in {filed}"))
        .to_string();
    assert_eq!(a1.coord_refs(), before, "nothing of A's own moved");
    let staged = a1.git_ok(&["for-each-ref", "refs/coord-projects/"]);
    assert_eq!(staged, "", "no copy claims anything was filed");
    let status = a1.coord_json(&["status"]);
    assert_eq!(status["outbox"][0]["task"], id.as_str(), "{status}");
    // Its documents are kept reachable while it waits (git gc prunes loose objects after two
    // weeks), outside refs/coord/, so nothing pushes them.
    let kept = a1.git_ok(&["for-each-ref", "--format=%(refname)", "refs/coord-outbox/"]);
    assert_eq!(kept, format!("refs/coord-outbox/beads/{id}"));
    assert_eq!(status["outbox"][0]["project"], "beads", "{status}");
    // While it stays unreachable, a sync warns and keeps it.
    a1.coord(&["sync"]);
    assert_eq!(a1.coord_json(&["status"])["outbox"][0]["task"], id.as_str());

    // The project comes to be: the next sync delivers the filing, once.
    let nowhere = a1.tmp().join("nowhere.git");
    ok(
        a1.command("git", a1.tmp())
            .args(["init", "-q", "--bare"])
            .arg(&nowhere)
            .output()
            .expect("git"),
        "the remote is created",
    );
    a1.coord_ok(&["sync"]);
    a1.coord_ok(&["sync"]);
    let landed = stdout(&ok(
        a1.git_in(
            &nowhere,
            &["ls-tree", "-r", "--name-only", "refs/coord/tasks"],
        ),
        "ls-tree",
    ));
    let copies = landed.lines().filter(|l| l.contains(&id)).count();
    assert_eq!(copies, 1, "{landed}");
    let thread = stdout(&ok(
        a1.git_in(
            &nowhere,
            &["ls-tree", "-r", "--name-only", "refs/coord/inbox"],
        ),
        "ls-tree",
    ));
    assert!(
        thread.lines().any(|l| l.starts_with("messages/")),
        "{thread}"
    );
    assert_eq!(
        a1.coord_json(&["status"])["outbox"],
        serde_json::json!([]),
        "the outbox is empty"
    );
    assert_eq!(
        a1.git_ok(&["for-each-ref", "refs/coord-outbox/"]),
        "",
        "its documents are let go"
    );
}

#[test]
fn a_dependency_on_an_unreachable_project_fails_clearly() {
    let world = World::new(|tmp| Some(tmp.join("nowhere.git").display().to_string()));
    let a1 = &world.a1;
    // sync goes on, warning about the project A depends on.
    let err = fails(
        &a1.coord(&["task", "new", "waits", "--dep", "beads:abcd"]),
        1,
    );
    assert!(err.contains("nowhere.git"), "{err}");
    assert!(a1.list().is_empty(), "the dependent task was not created");
}

#[test]
fn a_project_that_refuses_the_push_leaves_nothing_half_written() {
    let world = World::new(|_| None);
    let hook = world.b_remote.join("hooks/pre-receive");
    std::fs::write(&hook, "#!/bin/sh\necho 'read-only mirror' >&2\nexit 1\n").expect("hook");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let a1 = &world.a1;
    let err = fails(
        &a1.coord(&["task", "new", "--project", "beads", "a bug"]),
        1,
    );
    assert!(
        err.contains("project beads") && err.contains("b.git"),
        "{err}"
    );
    assert!(err.contains("nothing was written"), "{err}");
    assert!(
        !world.b_remote_refs().contains("refs/coord/"),
        "B is untouched"
    );
    let staged = a1.git_ok(&["for-each-ref", "refs/coord-projects/"]);
    assert_eq!(staged, "", "no copy claims anything was filed");
}

#[test]
fn malformed_coordination_refs_in_the_other_project_are_refused() {
    let world = World::new(|_| None);
    // Someone pushed a code commit where B's tasks should be.
    world
        .b1
        .git_ok(&["push", "-q", "origin", "main:refs/coord/tasks"]);
    let before = world.b_remote_refs();
    let err = fails(
        &world
            .a1
            .coord(&["task", "new", "--project", "beads", "a bug"]),
        1,
    );
    assert!(
        err.contains("project beads") && err.contains("refs/coord/tasks is malformed"),
        "{err}"
    );
    assert!(err.contains("nothing was written"), "{err}");
    assert_eq!(world.b_remote_refs(), before, "B is untouched");
}

#[test]
fn a_missing_or_ambiguous_id_in_the_other_project_is_refused() {
    let world = World::new(|_| None);
    let b1 = &world.b1;
    b1.coord_ok(&["init"]);
    let real = b1.new_task("real", &[]);
    let doc = b1.git_ok(&["show", &format!("refs/coord/tasks:{}", task_path(&real))]);
    for twin in ["aaaa00000001", "aaaa00000002"] {
        b1.put_document(&task_path(twin), doc.replace(&real, twin).as_bytes());
    }
    b1.coord_ok(&["sync"]);
    let a1 = &world.a1;
    let err = fails(&a1.coord(&["task", "show", "beads:aaaa"]), 1);
    assert!(
        err.contains("ambiguous") && err.contains("aaaa00000001") && err.contains("aaaa00000002"),
        "{err}"
    );
    let err = fails(&a1.coord(&["task", "show", "beads:bbbb", "--fetch"]), 1);
    assert!(
        err.contains("project beads") && err.contains("no task matches 'bbbb'"),
        "{err}"
    );
    let err = fails(&a1.coord(&["task", "comment", "beads:bbbb", "hi"]), 1);
    assert!(err.contains("no task matches 'bbbb'"), "{err}");
    let err = fails(
        &a1.coord(&["task", "new", "waits", "--dep", "beads:aaaa"]),
        1,
    );
    assert!(err.contains("ambiguous"), "{err}");
    assert!(a1.list().is_empty());
    // The full id works, for show and for a dependency added later (and removed by prefix).
    let shown = a1.coord_json(&["task", "show", "beads:aaaa00000001"]);
    assert_eq!(shown["project"], "beads");
    let waits = a1.new_task("waits", &[]);
    a1.coord_ok(&["task", "dep", "add", &waits, "beads:aaaa00000001"]);
    assert_eq!(a1.show(&waits)["deps"][0], "beads:aaaa00000001");
    // Added again: nothing is written.
    let tip = a1.ref_tip(common::TASKS_REF);
    a1.coord_ok(&["task", "dep", "add", &waits, "beads:aaaa00000001"]);
    assert_eq!(a1.ref_tip(common::TASKS_REF), tip);
    assert!(ids(&array(a1.coord_json(&["ready"]))).is_empty());
    let tree = a1.coord_ok(&["task", "dep", "tree", &waits]);
    assert!(tree.contains("beads:aaaa00000001 [open] real"), "{tree}");
    a1.coord_ok(&["task", "dep", "rm", &waits, "beads:aaaa"]);
    assert_eq!(ids(&array(a1.coord_json(&["ready"]))), vec![waits]);
}

#[test]
fn two_clones_filing_at_once_while_the_other_project_writes_lose_nothing() {
    let world = World::new(|_| None);
    world.b1.coord_ok(&["init"]);
    world.b1.coord_ok(&["sync"]);
    std::thread::scope(|s| {
        s.spawn(|| {
            for n in 0..3 {
                world.a1.coord_ok(&[
                    "task",
                    "new",
                    "--project",
                    "beads",
                    &format!("from a1 #{n}"),
                ]);
            }
        });
        s.spawn(|| {
            for n in 0..3 {
                world.a2_ok(&[
                    "task",
                    "new",
                    "--project",
                    "beads",
                    &format!("from a2 #{n}"),
                ]);
            }
        });
        s.spawn(|| {
            for n in 0..3 {
                world
                    .b1
                    .coord_ok(&["task", "new", &format!("b's own #{n}")]);
                world.b1.coord_ok(&["sync"]);
            }
        });
    });
    world.b1.coord_ok(&["sync"]);
    let mut titles: Vec<String> = world
        .b1
        .list()
        .iter()
        .map(|t| t["title"].as_str().unwrap_or_default().to_string())
        .collect();
    titles.sort();
    assert_eq!(titles.len(), 9, "{titles:?}");
    for n in 0..3 {
        for who in ["from a1", "from a2", "b's own"] {
            assert!(titles.contains(&format!("{who} #{n}")), "{titles:?}");
        }
    }
}

#[test]
fn a_change_seen_first_by_task_show_fetch_is_still_told_on_the_next_sync() {
    let world = World::new(|_| None);
    let (a1, b1) = (&world.a1, &world.b1);
    let b_task = file_into_beads(a1, "a bug");
    a1.coord_ok(&["sync"]);
    b1.coord_ok(&["init"]);
    b1.coord_ok(&["sync"]);
    b1.coord_as_ok("bob", &["task", "claim", &b_task]);
    b1.coord_as_ok("bob", &["task", "done", &b_task, "--summary", "fixed"]);
    b1.coord_ok(&["sync"]);
    // A looks at it first, which moves A's fetched copy of B past the change...
    let shown = a1.coord_ok(&["task", "show", &format!("beads:{b_task}"), "--fetch"]);
    assert!(shown.contains("done"), "{shown}");
    // ...and alice, who filed it, is still told on the next sync.
    a1.coord_ok(&["sync"]);
    let inbox = a1.coord_json(&["--agent", "alice", "inbox", "--all"]);
    let told = subjects(&inbox);
    assert!(
        told.iter().any(|s| s.contains("done")),
        "no notice of the task being done: {told:?}"
    );
}

/// A password in a project's or a remote's URL: `.coord.yaml`, `project add`, `sync URL`, and
/// URLs that reach nothing. It is shown redacted as git redacts it, and never stored.
#[test]
fn a_password_in_a_url_is_never_shown_nor_stored() {
    const SECRET: &str = "s3cr3t-Pa55";
    let world = World::new(|tmp| {
        Some(format!(
            "file://beads-user:{SECRET}@{}",
            tmp.join("b.git").display()
        ))
    });
    let (a1, b1) = (&world.a1, &world.b1);
    let mut said = String::new();
    let mut run = |args: &[&str], code: i32| -> String {
        let out = a1.coord_as("alice", args);
        assert_eq!(
            out.status.code(),
            Some(code),
            "{args:?}\nstdout: {}\nstderr: {}",
            stdout(&out),
            stderr(&out)
        );
        said.push_str(&stdout(&out));
        said.push_str(&stderr(&out));
        format!("{}{}", stdout(&out), stderr(&out))
    };
    let b_path = world.b_remote.display().to_string();
    let lib_url = format!("file://lib-user:{SECRET}@{b_path}");
    let added = run(&["project", "add", "lib", &lib_url], 0);
    assert!(
        added.contains(&format!("file://lib-user:<redacted>@{b_path}")),
        "{added}"
    );
    run(
        &[
            "project",
            "add",
            "gone",
            &format!("http://gone-user:{SECRET}@127.0.0.1:1/gone.git"),
        ],
        0,
    );
    let listed = run(&["project", "list"], 0);
    assert!(listed.contains("beads-user:<redacted>@"), "{listed}");
    let listed = json(&run(&["project", "list", "--json"], 0));
    let urls: Vec<String> = array(listed.clone())
        .iter()
        .map(|p| p["url"].as_str().unwrap_or_default().to_string())
        .map(|u| u[..u.find('@').unwrap_or(0)].to_string())
        .collect();
    assert_eq!(
        urls,
        [
            "file://beads-user:<redacted>",
            "http://gone-user:<redacted>",
            "file://lib-user:<redacted>"
        ],
        "{listed}"
    );
    // The URLs work: a filing through each, a sync that follows them, a show.
    let filed = run(&["task", "new", "--project", "lib", "a bug"], 0);
    let b_task = filed
        .trim()
        .strip_prefix("lib:")
        .expect("NAME:ID")
        .to_string();
    run(&["task", "comment", &format!("beads:{b_task}"), "more"], 0);
    run(&["sync", "--json"], 0);
    run(&["task", "show", &format!("lib:{b_task}"), "--fetch"], 0);
    // sync with a URL that carries a password, on diverged state so that it merges.
    world.a2_ok(&["task", "new", "from a2"]);
    world.a2_ok(&["sync"]);
    a1.new_task("from a1", &[]);
    let a_url = format!("file://a-user:{SECRET}@{}", world.a_remote.display());
    let synced = run(&["sync", &a_url], 0);
    assert!(synced.contains("a-user:<redacted>@"), "{synced}");
    run(&["sync", &a_url, "--json"], 0);
    // Errors that name the project or the remote.
    // A filing into it waits in the outbox (exit 0), saying why, redacted.
    let err = run(&["task", "new", "--project", "gone", "a bug"], 0);
    assert!(
        err.contains("project gone (http://gone-user:<redacted>@127.0.0.1:1/gone.git)"),
        "{err}"
    );
    run(&["task", "show", "gone:abcd"], 1);
    run(&["send", "--to", "gone", "hello"], 1);
    let err = run(
        &["sync", &format!("http://x:{SECRET}@127.0.0.1:1/a.git")],
        1,
    );
    assert!(err.contains("http://x:<redacted>@127.0.0.1:1"), "{err}");
    run(
        &["fetch", &format!("ssh://x:{SECRET}@127.0.0.1:1/a.git")],
        1,
    );
    let _ = world.a2(&["sync"]);
    assert!(!said.contains(SECRET), "a password was printed:\n{said}");
    // Nothing stored carries it: not the history of refs/coord/*, not any object, in A or in B
    // (but the .coord.yaml A's user committed, on its own branch).
    b1.coord_ok(&["init"]);
    b1.coord_ok(&["sync"]);
    for repo in [&a1.path, &b1.path, &world.b_remote] {
        let log = a1.git_in(repo, &["log", "-p", "--glob=refs/coord/*"]);
        assert!(log.status.success(), "{}", stderr(&log));
        assert!(!stdout(&log).is_empty());
        assert!(
            !stdout(&log).contains(SECRET),
            "{}: {}",
            repo.display(),
            stdout(&log)
        );
        let committed = stdout(&a1.git_in(repo, &["show", "main:.coord.yaml"]));
        let objects = a1.git_in(repo, &["cat-file", "--batch-all-objects", "--batch"]);
        assert!(
            !String::from_utf8_lossy(&objects.stdout)
                .replace(&committed, "")
                .contains(SECRET),
            "an object of {} holds the password",
            repo.display()
        );
    }
}

/// A question asked on B's task reaches A as a notice; `reply` to it answers on B's task, through
/// B's URL, and a reply to a message from B goes back to its sender in B. What `send` and
/// `reply` say is where the message went.
#[test]
fn a_reply_to_a_notice_travels_home_to_the_other_project() {
    let world = World::new(|_| None);
    let (a1, b1) = (&world.a1, &world.b1);
    let b_task = file_into_beads(a1, "a bug");
    a1.coord_ok(&["sync"]);
    b1.coord_ok(&["init"]);
    b1.coord_ok(&["sync"]);
    b1.coord_ok(&["agent", "spawn", "bob", "--role", "dev"]);
    b1.coord_as_ok("bob", &["task", "claim", &b_task]);
    b1.coord_as_ok(
        "bob",
        &["send", "--to", &format!("#{b_task}"), "Which version?"],
    );
    b1.coord_ok(&["sync"]);
    a1.coord_ok(&["sync"]);
    let inbox = a1.coord_json(&["--agent", "alice", "inbox"]);
    let notice = array(inbox["messages"].clone())
        .into_iter()
        .find(|m| {
            m["subject"]
                .as_str()
                .unwrap_or_default()
                .ends_with("message from bob: Which version?")
        })
        .unwrap_or_else(|| panic!("no notice of bob's question: {inbox}"));
    let notice = notice["id"].as_str().expect("id").to_string();
    let read = a1.coord_json(&["--agent", "alice", "read", &notice]);
    assert_eq!(read["about"]["task"], b_task.as_str(), "{read}");

    let replied = a1.coord_as_ok("alice", &["reply", &notice, "1.4.2, on Linux"]);
    assert!(
        replied.contains("to bob in project beads") && !replied.contains("git-coord"),
        "{replied}"
    );
    b1.coord_ok(&["sync"]);
    let thread = b1.coord_ok(&["thread", &b_task]);
    assert!(thread.contains("1.4.2, on Linux"), "{thread}");
    let bob = b1.coord_json(&["--agent", "bob", "inbox"]);
    assert!(
        array(bob["messages"].clone())
            .iter()
            .any(|m| m["first_line"] == "1.4.2, on Linux"),
        "{bob}"
    );
    // A's own answer does not come back to alice as a notice.
    a1.coord_ok(&["sync"]);
    let told = subjects(&a1.coord_json(&["--agent", "alice", "inbox", "--all"]));
    assert!(
        !told.iter().any(|s| s.contains("message from alice")),
        "{told:?}"
    );

    // Mail from B to alice: the reply goes back to bob in B.
    let a_path = world.a_remote.display().to_string();
    b1.coord_ok(&["project", "add", "app", &a_path]);
    b1.coord_as_ok("bob", &["send", "--to", "app", "Can you test 1.5?"]);
    a1.coord_ok(&["sync"]);
    let inbox = a1.coord_json(&["--agent", "alice", "inbox"]);
    let ask = array(inbox["messages"].clone())
        .into_iter()
        .find(|m| m["subject"] == "Can you test 1.5?")
        .unwrap_or_else(|| panic!("bob's mail: {inbox}"));
    // Shown by the name A gave B, with B's identity where asked.
    assert!(
        ask["from"].as_str().unwrap_or_default().ends_with("/b:bob"),
        "{ask}"
    );
    let listed = a1.coord_as_ok("alice", &["inbox"]);
    assert!(listed.contains("beads:bob"), "{listed}");
    let read = a1.coord_as_ok("alice", &["read", ask["id"].as_str().expect("id")]);
    assert!(
        read.contains("from:     beads:bob (Ada Lovelace <ada@example.com>), project file:"),
        "{read}"
    );
    let shown = b1.coord_ok(&["task", "show", &b_task]);
    assert!(
        shown.contains("origin:   app:alice (Ada Lovelace <ada@example.com>), project file:"),
        "{shown}"
    );
    let replied = a1.coord_as_ok(
        "alice",
        &["reply", ask["id"].as_str().expect("id"), "Yes, tomorrow."],
    );
    assert!(replied.contains("to bob in project beads"), "{replied}");
    b1.coord_ok(&["sync"]);
    let got = subjects(&b1.coord_json(&["--agent", "bob", "inbox"]));
    assert!(
        got.contains(&"Re: Can you test 1.5?".to_string()),
        "{got:?}"
    );

    // `send --to NAME` says it reached the project's shared box.
    let sent = a1.coord_as_ok("alice", &["send", "--to", "beads", "Thanks!"]);
    assert!(
        sent.contains("to project beads's shared box") && !sent.contains("thread only"),
        "{sent}"
    );
    let sent = a1.coord_as_ok("alice", &["send", "--to", "beads:bob", "And you."]);
    assert!(sent.contains("to bob in project beads"), "{sent}");
}

/// What cannot be read in B's tasks (a malformed task, a gitlink where a task belongs, a
/// malformed message on a followed thread) is named as B's, in the copy A fetched: never as A's
/// own refs/coord/tasks, never "no task matches" without the project; a sync warns of each.
#[test]
fn damaged_entries_of_the_other_project_are_named_as_its_own() {
    let world = World::new(|_| None);
    let (a1, b1) = (&world.a1, &world.b1);
    let b_task = file_into_beads(a1, "a bug");
    let other = file_into_beads(a1, "another");
    let waits = a1.new_task("waits", &["--dep", &format!("beads:{b_task}")]);
    a1.coord_ok(&["sync"]);
    b1.coord_ok(&["init"]);
    b1.coord_ok(&["sync"]);
    b1.put_document(&task_path(&b_task), b"format: 1\ntitle: [unclosed\n");
    let commit = b1.git_ok(&["rev-parse", "main"]);
    b1.put_entry_in(
        common::TASKS_REF,
        "160000",
        commit.trim(),
        &task_path("ab0123456789"),
    );
    let thread = format!("threads/{}/{other}/0123456789ab.yaml", &other[..2]);
    b1.put_document_in("refs/coord/inbox", &thread, b"format: 1\nid: [\n");
    b1.git_ok(&[
        "push",
        "-q",
        "origin",
        "refs/coord/tasks",
        "refs/coord/inbox",
    ]);

    let err = fails(
        &a1.coord(&["task", "show", &format!("beads:{b_task}"), "--fetch"]),
        1,
    );
    let copy = format!("refs/coord-projects/beads/tasks:{}", task_path(&b_task));
    assert!(
        err.contains("project beads") && err.contains("cannot be read") && err.contains(&copy),
        "{err}"
    );
    assert!(
        !err.contains("refs/coord/tasks:"),
        "named as A's own: {err}"
    );
    let err = fails(&a1.coord(&["task", "show", "beads:ab01"]), 1);
    assert!(
        err.contains("project beads") && err.contains("gitlink") && err.contains("ab0123456789"),
        "{err}"
    );
    let err = fails(
        &a1.coord(&["task", "new", "never", "--dep", "beads:ab01"]),
        1,
    );
    assert!(
        err.contains("project beads") && err.contains("gitlink"),
        "{err}"
    );
    assert!(!a1.list().iter().any(|t| t["title"] == "never"));

    // A sync warns of what it skipped there, by the copy's ref and path, and goes on.
    let synced = ok(a1.coord(&["sync"]), "sync");
    let warned = stderr(&synced);
    assert!(
        warned.contains(&format!("warning: skipped {copy} of project beads")),
        "{warned}"
    );
    assert!(
        warned.contains(&format!("refs/coord-projects/beads/inbox:{thread}")),
        "{warned}"
    );
    let report = a1.coord_json(&["sync"]);
    let skipped = array(report["projects"][0]["skipped"].clone());
    assert_eq!(skipped.len(), 2, "{report}");
    // The dependent task waits, saying why.
    let blocked = a1.coord_ok(&["blocked"]);
    assert!(
        blocked.contains(&format!("waits on beads:{b_task} (unreadable)")),
        "{blocked}"
    );
    assert!(!ids(&array(a1.coord_json(&["ready"]))).contains(&waits));
}

/// A related project's state is tied to the URL it was fetched from. An uncommitted .coord.yaml
/// in one agent's worktree that points the project at another repository (here: a copy of B
/// where A's dependency is done) does not repoint the clone's copy: nothing is fetched from it,
/// nobody is told of its state, the dependent task still waits, and the user is told how to
/// confirm. Confirmed, the new source is used, from a fresh start that tells no one.
#[test]
fn a_switched_url_is_a_new_source_that_must_be_confirmed() {
    let world = World::new(|_| None);
    let (a1, b1) = (&world.a1, &world.b1);
    b1.coord_ok(&["init"]);
    let b_task = b1.new_task("empty input panics", &[]);
    b1.coord_ok(&["sync"]);
    let waits = a1.coord_as_ok(
        "alice",
        &[
            "task",
            "new",
            "ship it",
            "--dep",
            &format!("beads:{b_task}"),
        ],
    );
    let waits = waits.trim().to_string();
    a1.coord_ok(&["sync"]);

    // Another repository with B's refs, where the task is done.
    let evil = a1.tmp().join("evil.git");
    let evil_url = evil.display().to_string();
    ok(
        a1.git_in(a1.tmp(), &["init", "-q", "--bare", &evil_url]),
        "a bare repository",
    );
    b1.coord_as_ok("bob", &["task", "claim", &b_task, "--offline"]);
    // Offline, as the claim: a done is confirmed at B's own remote otherwise.
    b1.coord_as_ok(
        "bob",
        &[
            "task",
            "done",
            &b_task,
            "--summary",
            "fixed upstream",
            "--offline",
        ],
    );
    b1.git_ok(&["push", "-q", &evil_url, "refs/coord/*:refs/coord/*"]);
    let evil_refs = || {
        stdout(&ok(
            a1.git_in(a1.tmp(), &["ls-remote", &evil_url]),
            "ls-remote",
        ))
    };
    let evil_before = evil_refs();

    // An agent's worktree with an uncommitted switch.
    let wt = spawn(a1, "mallory", "dev");
    std::fs::write(
        wt.join(".coord.yaml"),
        format!("projects:\n  beads: {evil_url}\n"),
    )
    .expect("edit");
    let synced = ok(a1.coord_in(&wt, &["sync"]), "sync in the switched worktree");
    let warned = stderr(&synced);
    let b_url = world.b_remote.display().to_string();
    assert!(
        warned.contains("warning")
            && warned.contains(&format!("changed from {b_url} to {evil_url}"))
            && warned.contains(&format!("git coord project add beads {evil_url} --replace")),
        "{warned}"
    );
    let listed = at(a1, &wt, &["project", "list"]);
    assert!(listed.contains(&format!("came from {b_url}")), "{listed}");
    // Nothing of the other repository's state reached anyone.
    for dir in [&a1.path, &wt] {
        a1.coord_in(dir, &["sync"]);
        let ready = ids(&array(at_json(a1, dir, &["ready"])));
        assert!(!ready.contains(&waits), "{ready:?}");
    }
    let inbox = a1.coord_json(&["--agent", "alice", "inbox", "--all"]);
    assert!(
        !subjects(&inbox).iter().any(|s| s.contains("done")),
        "a notice claims the switch's state: {:?}",
        subjects(&inbox)
    );
    let shown = a1.coord_json(&["task", "show", &format!("beads:{b_task}")]);
    assert_eq!(shown["state"], "open", "the copy is still B's");
    // In the switched worktree, the copy is not shown under the new URL, nor written through it.
    for args in [
        vec!["task", "show", &format!("beads:{b_task}")],
        vec!["task", "new", "--project", "beads", "a bug"],
    ] {
        let err = fails(&a1.coord_in(&wt, &args), 1);
        assert!(err.contains("--replace"), "{args:?}: {err}");
    }
    assert_eq!(evil_refs(), evil_before, "nothing was written there");
    // A URL with a password is shown redacted, and is never reached before it is confirmed.
    std::fs::write(
        wt.join(".coord.yaml"),
        "projects:\n  beads: https://u:s3cret@127.0.0.1:1/evil.git\n",
    )
    .expect("edit");
    let synced = ok(a1.coord_in(&wt, &["sync"]), "sync");
    let warned = stderr(&synced);
    assert!(
        warned.contains("https://u:<redacted>@127.0.0.1:1/evil.git") && !warned.contains("s3cret"),
        "{warned}"
    );
    std::fs::write(
        wt.join(".coord.yaml"),
        format!("projects:\n  beads: {evil_url}\n"),
    )
    .expect("edit");

    // `project add` to another URL is refused without --replace, and changes nothing.
    let err = fails(&a1.coord(&["project", "add", "beads", &evil_url]), 1);
    assert!(err.contains("--replace") && err.contains(&b_url), "{err}");
    assert_eq!(
        a1.git(&["config", "--local", "coord.project.beads.url"])
            .status
            .code(),
        Some(1),
        "nothing recorded"
    );
    // Confirmed: the new source is used, and its first fetch tells no one.
    at(
        a1,
        &wt,
        &["project", "add", "beads", &evil_url, "--replace"],
    );
    let synced = ok(a1.coord(&["sync"]), "sync after confirming");
    assert!(!stderr(&synced).contains("warning"), "{}", stderr(&synced));
    let shown = a1.coord_json(&["task", "show", &format!("beads:{b_task}")]);
    assert_eq!(shown["state"], "done", "the copy is the new source's");
    let ready = ids(&array(a1.coord_json(&["ready"])));
    assert!(ready.contains(&waits), "{ready:?}");
    let inbox = a1.coord_json(&["--agent", "alice", "inbox", "--all"]);
    assert!(
        !subjects(&inbox).iter().any(|s| s.contains("done")),
        "the switch was told as a change: {:?}",
        subjects(&inbox)
    );
    assert!(!at(a1, &wt, &["project", "list"]).contains("came from"));
}

/// Filings killed at random instants (git-coord and the git processes under it: the push and,
/// B's remote being a path, its receive-pack), many rounds. Whatever a kill cut short, after
/// the next sync every filing is in B whole or not at all (B has no thread without its task),
/// none landed twice, and A's record of what it filed is exactly what landed.
#[test]
fn filings_killed_at_any_instant_land_whole_or_not_at_all_and_are_recorded() {
    let rounds: u64 = std::env::var("FILING_KILL_ROUNDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(40);
    let world = World::new(|_| None);
    let a1 = &world.a1;
    world.b1.coord_ok(&["init"]);
    world.b1.coord_ok(&["sync"]);
    let started = std::time::Instant::now();
    a1.coord_ok(&["task", "new", "--project", "beads", "measured"]);
    let span = started.elapsed().as_micros() as u64;
    let mut jitter = Jitter::new();
    let mut lock_named = false;
    let mut locked = 0;
    for round in 0..rounds {
        let child = a1
            .coord_cmd(&[
                "task",
                "new",
                "--project",
                "beads",
                &format!("round {round}"),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("git-coord starts");
        kill_tree_after(
            child,
            std::time::Duration::from_micros(jitter.below(span * 5 / 4)),
        );
        // A receive-pack the kill missed (started after the walk) still runs for a moment: its
        // lock goes with it. A killed one's stays.
        if ref_locks(&world.b_remote).is_empty() {
            continue;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
        let locks = ref_locks(&world.b_remote);
        if locks.is_empty() {
            continue;
        }
        locked += 1;
        // A lock a killed receive-pack left in B: a write there names it (once: it takes the
        // stale-lock age), and B's maintainer removes it, as the error says.
        if !lock_named {
            let title = format!("while locked {round}");
            let out = a1.coord(&["task", "new", "--project", "beads", &title]);
            // (Unless a process the kill missed was still at work, and its lock went with it.)
            if ref_locks(&world.b_remote) == locks {
                let err = fails(&out, 1);
                assert!(
                    locks.iter().any(|l| err.contains(&l.display().to_string())),
                    "the lock is not named ({locks:?}): {err}"
                );
                lock_named = true;
            }
        }
        for lock in ref_locks(&world.b_remote) {
            let _ = std::fs::remove_file(lock);
        }
    }
    // B: its tasks and threads, read with plain git.
    let b_git = |args: &[&str]| {
        let mut all = vec!["--git-dir", world.b_remote.to_str().expect("utf-8")];
        all.extend_from_slice(args);
        stdout(&ok(a1.git_in(a1.tmp(), &all), &args.join(" ")))
    };
    let threads_without_task = || {
        let tasks = b_git(&["ls-tree", "-r", "--name-only", "refs/coord/tasks"]);
        b_git(&["ls-tree", "-r", "--name-only", "refs/coord/inbox"])
            .lines()
            .filter_map(|path| path.strip_prefix("threads/"))
            .filter_map(|rest| rest.split('/').nth(1).map(str::to_string))
            .filter(|task| !tasks.contains(&format!("/{task}.yaml")))
            .collect::<std::collections::BTreeSet<_>>()
    };
    // A receive-pack the kills missed may still be landing a filing in B: the sync judges what B
    // holds, so it waits for them to end.
    let receiving = || {
        std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
            .any(|cmd| {
                let cmd = String::from_utf8_lossy(&cmd);
                cmd.contains("receive-pack") && cmd.contains("b.git")
            })
    };
    let waited = std::time::Instant::now();
    while receiving() && waited.elapsed() < std::time::Duration::from_secs(30) {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let halves = threads_without_task().len();
    let synced = a1.coord_json(&["sync"]);
    assert!(
        synced["projects"][0]["error"].is_null() && synced["projects"][0]["warnings"].is_null(),
        "{synced}"
    );
    let halves_left = threads_without_task();
    assert!(
        halves_left.is_empty(),
        "threads without their task: {halves_left:?}"
    );
    let mut titles: Vec<(String, String)> = Vec::new();
    for path in b_git(&["ls-tree", "-r", "--name-only", "refs/coord/tasks"]).lines() {
        let Some(id) = path
            .strip_prefix("tasks/")
            .and_then(|p| p.rsplit_once('/'))
            .and_then(|(_, f)| f.strip_suffix(".yaml"))
        else {
            continue;
        };
        let doc = b_git(&["show", &format!("refs/coord/tasks:{path}")]);
        let title = doc
            .lines()
            .find_map(|l| l.strip_prefix("title: "))
            .expect("a title")
            .trim_matches('\'')
            .to_string();
        titles.push((id.to_string(), title));
    }
    let ids_in_b: Vec<&str> = titles.iter().map(|(id, _)| id.as_str()).collect();
    let mut seen = std::collections::BTreeSet::new();
    for (_, title) in &titles {
        assert!(seen.insert(title), "{title} landed twice: {titles:?}");
    }
    assert!(seen.iter().any(|t| *t == "measured"), "{titles:?}");
    // A's record: every filing that landed, and nothing else.
    let state = a1.path.join(".git/coord/projects/beads");
    let recorded: std::collections::BTreeSet<String> = std::fs::read_to_string(state.join("filed"))
        .expect("the record of filings")
        .lines()
        .map(str::to_string)
        .collect();
    let landed: std::collections::BTreeSet<String> =
        ids_in_b.iter().map(|id| id.to_string()).collect();
    assert_eq!(recorded, landed, "A's record differs from what landed in B");
    let unsettled = std::fs::read_dir(state.join("filing"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(unsettled, 0, "filings left unsettled");
    eprintln!(
        "{} of {rounds} killed filings landed; {locked} left a lock in B, {halves} half a filing; {} recovered by the sync",
        titles.len() - 1,
        synced["projects"][0]["recovered"]
    );
}

/// The ref lock files in a bare repository (a killed receive-pack's).
fn ref_locks(repo: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![repo.join("refs")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "lock") {
                out.push(path);
            }
        }
    }
    let packed = repo.join("packed-refs.lock");
    if packed.exists() {
        out.push(packed);
    }
    out
}

/// The two ways a kill cuts a filing short, made on purpose: B's remote accepted it but the
/// filing command died before recording it (killed while B's post-receive hook ran), and B kept
/// only half of it (its refs/coord/tasks put back, as a receive-pack killed between its two
/// ref renames leaves it). The next sync records the first and completes the second, once.
#[test]
fn a_filing_cut_short_at_the_remote_is_settled_by_the_next_sync() {
    let world = World::new(|_| None);
    let a1 = &world.a1;
    world.b1.coord_ok(&["init"]);
    world.b1.coord_ok(&["sync"]);
    let marker = a1.tmp().join("received");
    let hook = world.b_remote.join("hooks/post-receive");
    std::fs::write(
        &hook,
        format!("#!/bin/sh\ntouch '{}'\nsleep 60\n", marker.display()),
    )
    .expect("hook");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let b_git = |args: &[&str]| {
        let mut all = vec!["--git-dir", world.b_remote.to_str().expect("utf-8")];
        all.extend_from_slice(args);
        stdout(&ok(a1.git_in(a1.tmp(), &all), &args.join(" ")))
    };
    let filed = a1.path.join(".git/coord/projects/beads/filed");
    let record = || std::fs::read_to_string(&filed).unwrap_or_default();
    let tasks_in_b = || {
        b_git(&["ls-tree", "-r", "--name-only", "refs/coord/tasks"])
            .lines()
            .filter(|p| p.starts_with("tasks/"))
            .count()
    };
    // Kills `task new --project` once B's remote has accepted it.
    let file_and_die = |title: &str| {
        let _ = std::fs::remove_file(&marker);
        let child = a1
            .coord_cmd(&["task", "new", "--project", "beads", title])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("git-coord starts");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !marker.exists() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(marker.exists(), "B never received the filing");
        kill_tree_after(child, std::time::Duration::ZERO);
    };

    // Landed whole, unrecorded: the next sync finds it and records it.
    file_and_die("landed whole");
    assert_eq!(tasks_in_b(), 1);
    assert_eq!(record(), "", "the killed command recorded nothing");
    std::fs::write(&hook, "#!/bin/sh\nexit 0\n").expect("hook");
    let synced = a1.coord_json(&["sync"]);
    assert_eq!(synced["projects"][0]["recovered"], 1, "{synced}");
    assert_eq!(record().lines().count(), 1);

    // Half landed: the message on its thread, not the task.
    std::fs::write(
        &hook,
        format!("#!/bin/sh\ntouch '{}'\nsleep 60\n", marker.display()),
    )
    .expect("hook");
    let before = b_git(&["rev-parse", "refs/coord/tasks"]);
    file_and_die("landed in half");
    b_git(&["update-ref", "refs/coord/tasks", before.trim()]);
    assert_eq!(tasks_in_b(), 1, "B lacks the second task");
    std::fs::write(&hook, "#!/bin/sh\nexit 0\n").expect("hook");
    let synced = ok(a1.coord(&["sync"]), "sync");
    assert!(
        stdout(&synced).contains("1 interrupted filing found there and recorded"),
        "{}",
        stdout(&synced)
    );
    assert_eq!(tasks_in_b(), 2, "the filing was completed in B");
    assert_eq!(record().lines().count(), 2);
    let log = b_git(&["log", "-1", "--format=%s", "refs/coord/tasks"]);
    assert!(log.contains("complete the filing of"), "{log}");
    // Settled: another sync changes nothing there.
    let tip = b_git(&["rev-parse", "refs/coord/tasks", "refs/coord/inbox"]);
    a1.coord_ok(&["sync"]);
    assert_eq!(
        b_git(&["rev-parse", "refs/coord/tasks", "refs/coord/inbox"]),
        tip
    );
    assert_eq!(record().lines().count(), 2);
    // B reads it as one task with its thread.
    world.b1.coord_ok(&["sync"]);
    let titles: Vec<String> = world
        .b1
        .list()
        .iter()
        .map(|t| t["title"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(titles.len(), 2, "{titles:?}");
    let half = world
        .b1
        .list()
        .into_iter()
        .find(|t| t["title"] == "landed in half")
        .expect("the completed filing");
    let shown = world.b1.show(half["id"].as_str().expect("an id"));
    assert_eq!(array(shown["messages"].clone()).len(), 1, "{shown}");
}

/// Calls tools of `git coord mcp` started in `dir`, in order, and returns each answer: the
/// result's text parsed, or `{"error": TEXT}`.
fn mcp_calls(repo: &TestRepo, dir: &Path, calls: &[(&str, Value)]) -> Vec<Value> {
    use std::io::Write;
    let mut lines = vec![
        serde_json::json!({ "jsonrpc": "2.0", "id": 0, "method": "initialize", "params": { "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": { "name": "test", "version": "1" } } }),
        serde_json::json!({ "jsonrpc": "2.0", "method": "notifications/initialized" }),
    ];
    for (n, (tool, arguments)) in calls.iter().enumerate() {
        lines.push(serde_json::json!({ "jsonrpc": "2.0", "id": n + 1, "method": "tools/call", "params": { "name": tool, "arguments": arguments } }));
    }
    let mut child = repo
        .command(common::BIN, dir)
        .arg("mcp")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the server starts");
    let mut stdin = child.stdin.take().expect("stdin");
    for line in &lines {
        writeln!(stdin, "{line}").expect("a request");
    }
    drop(stdin);
    let out = child.wait_with_output().expect("the server ends");
    let replies: Vec<Value> = stdout(&out).lines().map(json).collect();
    (1..=calls.len())
        .map(|id| {
            let reply = replies
                .iter()
                .find(|r| r["id"] == id)
                .unwrap_or_else(|| panic!("no answer to call {id}: {replies:?}"));
            let text = reply["result"]["content"][0]["text"]
                .as_str()
                .unwrap_or_default();
            if reply["result"]["isError"] == true || reply.get("error").is_some() {
                serde_json::json!({ "error": format!("{text}{}", reply["error"]) })
            } else {
                json(text)
            }
        })
        .collect()
}

/// The MCP tools that take a task id take `NAME:ID` as the command line does, and say which
/// project a task came from: the other project's name on its task, the filing project (and who
/// filed it) on a task filed from there.
#[test]
fn mcp_tools_reach_another_projects_task_and_say_where_a_task_came_from() {
    let world = World::new(|_| None);
    let (a1, b1) = (&world.a1, &world.b1);
    let b_task = file_into_beads(a1, "a bug");
    let foreign = format!("beads:{b_task}");
    let answers = mcp_calls(
        a1,
        &a1.path,
        &[
            ("task_show", serde_json::json!({ "id": foreign })),
            (
                "task_comment",
                serde_json::json!({ "id": foreign, "text": "a repro" }),
            ),
        ],
    );
    assert_eq!(answers[0]["project"], "beads", "{}", answers[0]);
    assert_eq!(answers[0]["id"], b_task.as_str(), "{}", answers[0]);
    assert_eq!(answers[0]["title"], "a bug", "{}", answers[0]);
    assert_eq!(answers[1]["project"], "beads", "{}", answers[1]);
    assert_eq!(answers[1]["id"], b_task.as_str(), "{}", answers[1]);
    // In B the task says it was filed from A, by alice.
    b1.coord_ok(&["init"]);
    b1.coord_ok(&["sync"]);
    let answers = mcp_calls(
        b1,
        &b1.path,
        &[("task_show", serde_json::json!({ "id": b_task }))],
    );
    assert_eq!(answers[0]["origin"]["agent"], "alice", "{}", answers[0]);
    assert!(
        answers[0]["origin"]["project"].is_string(),
        "{}",
        answers[0]
    );
    assert!(answers[0]["comments"].to_string().contains("a repro"));
}

#[test]
fn agent_list_of_another_project_shows_its_agents_busy_or_idle_from_its_presence() {
    let world = World::new(|_| None);
    let (a1, b1) = (&world.a1, &world.b1);
    b1.coord_ok(&["init"]);
    b1.coord_ok(&["agent", "register", "bob", "--role", "dev"]);
    let task = b1.new_task("fix the lexer", &[]);
    b1.coord_ok(&["task", "claim", &task]);
    b1.coord_ok(&["agent", "heartbeat"]);
    b1.coord_ok(&["sync"]);

    let found = a1.coord_json(&["agent", "list", "--project", "beads", "--fetch"]);
    assert_eq!(found["project"], "beads", "{found}");
    assert!(found["fetched"].is_string(), "{found}");
    let bob = array(found["agents"].clone())
        .into_iter()
        .find(|a| a["name"] == "bob")
        .unwrap_or_else(|| panic!("bob is not listed: {found}"));
    assert_eq!(bob["presence"], "busy", "{bob}");
    assert_eq!(bob["claimed"][0], task.as_str(), "{bob}");
    assert!(bob["last_seen"].is_string(), "{bob}");
    let text = a1.coord_ok(&["agent", "list", "--project", "beads"]);
    assert!(text.contains("bob") && text.contains("busy"), "{text}");
    // status shows them too, from the same fetched copy.
    let status = a1.coord_json(&["status"]);
    assert_eq!(status["projects"][0]["project"], "beads", "{status}");
    assert_eq!(
        status["projects"][0]["agents"][0]["presence"], "busy",
        "{status}"
    );
    let text = a1.coord_ok(&["status"]);
    assert!(text.contains("project beads (fetched "), "{text}");
    assert!(text.contains("bob busy"), "{text}");

    // bob finishes: fetched again, it shows idle.
    b1.coord_ok(&["task", "done", &task]);
    b1.coord_ok(&["sync"]);
    let found = a1.coord_json(&["agent", "list", "--project", "beads", "--fetch"]);
    assert_eq!(found["agents"][0]["presence"], "idle", "{found}");
}
