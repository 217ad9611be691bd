//! Running the team: workflows from templates driven to the end by simulated agents with
//! checkpoints at stage boundaries, the stop hook, pause, resume and cancel, and launching agents.

mod common;

use std::path::{Path, PathBuf};

use serde_json::Value;

use common::{
    TestRepo, array, at, at_json, fails, json, ok, spawn, stop_hook, stop_hook_with, strings,
};

fn stop_input(dir: &Path) -> String {
    serde_json::json!({
        "session_id": "s1",
        "transcript_path": "/tmp/t.jsonl",
        "cwd": dir.display().to_string(),
        "hook_event_name": "Stop",
        "stop_hook_active": false
    })
    .to_string()
}

#[test]
fn a_feature_workflow_runs_stage_by_stage_to_the_end_with_its_checkpoints() {
    let repo = TestRepo::init();
    let olga = spawn(&repo, "olga", "organiser");
    let homes: Vec<(&str, PathBuf)> = [
        ("planner", "pia"),
        ("reviewer", "rex"),
        ("dev", "dev1"),
        ("docs", "dot"),
        ("tester", "tess"),
    ]
    .into_iter()
    .map(|(role, name)| (role, spawn(&repo, name, role)))
    .collect();
    let started = at_json(
        &repo,
        &olga,
        &[
            "workflow",
            "start",
            "feature",
            "Add login",
            "--var",
            "area=auth",
        ],
    );
    let epic = started["id"].as_str().expect("an epic").to_string();
    let tasks = array(started["tasks"].clone());
    assert_eq!(tasks.len(), 8, "six stages and two checkpoints");
    let status = &array(at_json(&repo, &olga, &["workflow", "status", &epic]))[0];
    let stages: Vec<String> = array(status["stages"].clone())
        .iter()
        .map(|s| s["stage"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        stages,
        [
            "plan",
            "plan-review",
            "implement",
            "checkpoint",
            "code-review",
            "document",
            "test",
            "checkpoint"
        ]
    );
    // Nothing but the first stage is ready.
    let ready = array(repo.coord_json(&["ready"]));
    assert_eq!(ready.len(), 1);
    assert_eq!(ready[0]["role"], "planner");

    let mut checkpoints = 0;
    let mut sent_back = false;
    for _ in 0..20 {
        let status = &array(at_json(&repo, &olga, &["workflow", "status", &epic]))[0];
        if status["current"].is_null() {
            break;
        }
        let next = array(status["stages"].clone())
            .into_iter()
            .find(|s| s["state"] != "done")
            .expect("a stage not done");
        if next["checkpoint"] == true {
            // The stage before asked for it; the organiser runs it.
            let inbox = at_json(&repo, &olga, &["inbox"]);
            assert!(
                array(inbox["messages"].clone()).iter().any(|m| m["subject"]
                    .as_str()
                    .unwrap_or_default()
                    .starts_with("Checkpoint requested")),
                "{inbox}"
            );
            let before = repo.git_ok(&["rev-parse", "main"]);
            let report = at_json(&repo, &olga, &["checkpoint", "--gate", "true"]);
            assert_eq!(report["checkpoint"]["outcome"], "moved", "{report}");
            assert_ne!(repo.git_ok(&["rev-parse", "main"]), before);
            assert_eq!(repo.show(next["id"].as_str().expect("id"))["state"], "done");
            checkpoints += 1;
            continue;
        }
        let role = next["role"].as_str().expect("a role");
        let home = &homes
            .iter()
            .find(|(r, _)| *r == role)
            .expect("an agent of the role")
            .1;
        let claimed = at_json(&repo, home, &["task", "claim", "--next", "--role", role]);
        assert_eq!(claimed["id"], next["id"]);
        if matches!(role, "dev" | "tester") {
            let file = format!("{role}.txt");
            std::fs::write(home.join(&file), format!("work of {role}\n")).expect("written");
            ok(repo.git_in(home, &["add", &file]), "add");
            ok(
                repo.git_in(home, &["commit", "-q", "-m", &format!("{role} work")]),
                "commit",
            );
        }
        if role == "reviewer" && !sent_back {
            // The plan review sends the plan back once: it returns to its planner.
            let plan = array(status["stages"].clone())[0]["id"]
                .as_str()
                .expect("plan")
                .to_string();
            at(
                &repo,
                home,
                &["task", "reopen", &plan, "--reason", "say which tests"],
            );
            let back = repo.show(&plan);
            assert_eq!(
                (back["state"].clone(), back["assignee"].clone()),
                ("claimed".into(), "pia".into())
            );
            let planner = &homes[0].1;
            let inbox = at_json(&repo, planner, &["inbox"]);
            assert!(array(inbox["messages"].clone()).iter().any(|m| {
                m["subject"]
                    .as_str()
                    .unwrap_or_default()
                    .starts_with("Sent back")
            }));
            at(
                &repo,
                planner,
                &["task", "done", &plan, "--summary", "plan with tests"],
            );
            sent_back = true;
        }
        at(
            &repo,
            home,
            &[
                "task",
                "done",
                next["id"].as_str().expect("id"),
                "--summary",
                &format!("{role} finished"),
            ],
        );
    }
    assert!(sent_back);
    assert_eq!(checkpoints, 2);
    let status = &array(at_json(&repo, &olga, &["workflow", "status", &epic]))[0];
    assert_eq!(status["state"], "done", "{status}");
    assert_eq!(status["done"], status["total"]);
    // Its epic is done with it, by itself.
    let epic_task = repo.show(&epic);
    assert_eq!(epic_task["state"], "done", "{epic_task}");
    assert!(
        epic_task["summary"]
            .as_str()
            .unwrap_or_default()
            .starts_with("workflow finished"),
        "{epic_task}"
    );
    let overview = repo.coord_ok(&["status"]);
    assert!(
        overview.contains(&format!("workflow {epic} Add login: done,")),
        "{overview}"
    );
    for file in ["dev.txt", "tester.txt"] {
        assert!(repo.path.join(file).exists(), "{file} reached main");
    }
    assert_eq!(array(repo.coord_json(&["checkpoint", "list"])).len(), 2);
}

#[test]
fn bad_workflow_requests_are_refused() {
    let repo = TestRepo::init();
    let err = fails(&repo.coord(&["workflow", "start", "nosuch", "X"]), 1);
    assert!(err.contains("feature and bugfix"), "{err}");
    let err = fails(
        &repo.coord(&["workflow", "start", "feature", "X", "--var", "novalue"]),
        2,
    );
    assert!(err.contains("write it as K=V"), "{err}");
    repo.write_file(".coord/workflows/broken.yaml", "name: broken\nstages: [\n");
    let err = fails(&repo.coord(&["workflow", "start", "broken", "X"]), 1);
    assert!(err.contains("broken.yaml"), "{err}");
    assert!(repo.list().is_empty(), "nothing was created");
    // A title that fits alone but not in a stage's title ("Review the plan: ...") is refused
    // before the epic is created.
    let long = "x".repeat(195);
    let err = fails(&repo.coord(&["workflow", "start", "feature", &long]), 1);
    assert!(err.contains("title"), "{err}");
    assert!(repo.list().is_empty(), "nothing was created");
    let started = repo.coord_json(&["workflow", "start", "bugfix", "Crash on save"]);
    assert_eq!(array(started["tasks"].clone()).len(), 5);
}

#[test]
fn the_stop_hook_keeps_a_worker_going_and_lets_it_stop_when_it_should() {
    let repo = TestRepo::init();
    let home = spawn(&repo, "wendy", "dev");
    let task = repo.new_task("Wire the parser", &["--role", "dev"]);

    // Ready work for its role: blocked, with the command to claim it.
    let (out, _) = stop_hook(&repo, &stop_input(&home));
    let decision = json(&out);
    assert_eq!(decision["decision"], "block");
    assert!(
        decision["reason"]
            .as_str()
            .expect("reason")
            .contains("git coord task claim --next"),
        "{decision}"
    );

    // A claimed task: blocked, naming the task and how to finish it.
    at(&repo, &home, &["task", "claim", &task]);
    let (out, _) = stop_hook(&repo, &stop_input(&home));
    let reason = json(&out)["reason"].as_str().expect("reason").to_string();
    assert!(
        reason.contains(&task) && reason.contains("git coord task done"),
        "{reason}"
    );

    // Paused: it may stop, and is told why, on stdout in the client's contract.
    repo.coord_ok(&["pause", "--reason", "lunch"]);
    let (out, err) = stop_hook(&repo, &stop_input(&home));
    let halt = json(&out);
    assert_eq!(halt["continue"], false, "{halt}");
    let why = halt["stopReason"].as_str().expect("stopReason");
    assert!(why.contains("paused") && why.contains("lunch"), "{halt}");
    assert!(err.contains("paused") && err.contains("lunch"), "{err}");
    let refused = fails(&repo.coord_as("x", &["task", "claim", "--next"]), 3);
    assert!(refused.contains("paused"), "{refused}");
    repo.coord_ok(&["resume"]);

    // Idle past the limit with no progress: it may stop. (Before the limit it is blocked, as
    // above with the default of 10 minutes; the clock starts at the first block after a change.)
    std::fs::write(home.join(".coord.yaml"), "stop_idle: 1s\n").expect("config");
    at(&repo, &home, &["task", "comment", &task, "progress"]);
    stop_hook(&repo, &stop_input(&home));
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let (out, err) = stop_hook(&repo, &stop_input(&home));
    assert!(out.is_empty(), "{out}");
    assert!(err.contains("no progress"), "{err}");

    // Nothing left: it may stop, silently.
    std::fs::remove_file(home.join(".coord.yaml")).expect("config removed");
    at(&repo, &home, &["task", "done", &task]);
    let (out, err) = stop_hook(&repo, &stop_input(&home));
    assert!(out.is_empty() && err.is_empty(), "{out} {err}");

    // Malformed input never blocks.
    for input in ["", "not json", "[1,2]", "{\"cwd\": 7}"] {
        let (out, err) = stop_hook(&repo, input);
        assert!(out.is_empty(), "{input}: {out}");
        assert!(err.contains("letting the agent stop"), "{input}: {err}");
    }
    // Outside any repository: nothing to say.
    let (out, _) = stop_hook(&repo, &stop_input(repo.tmp()));
    assert!(out.is_empty());
}

#[test]
fn the_stop_hook_decides_for_the_agent_and_folder_its_command_line_names() {
    let repo = TestRepo::init();
    let task = repo.new_task("Wire the parser", &[]);
    repo.coord_as_ok("mia", &["task", "claim", &task]);
    let path = repo.path.display().to_string();

    // Run from elsewhere with no cwd in the input: `-C` says where, `--agent` for whom.
    let (out, _) = stop_hook_with(&repo, &["-C", &path, "--agent", "mia"], "{}");
    let reason = json(&out)["reason"].as_str().expect("reason").to_string();
    assert!(reason.contains(&task), "mia's task: {reason}");
    let (out, _) = stop_hook_with(&repo, &["-C", &path, "--agent", "ned"], "{}");
    assert!(!out.contains(&task), "ned holds nothing: {out}");
    // A cwd in the input is relative to `-C`.
    let (out, _) = stop_hook_with(&repo, &["-C", &path, "--agent", "mia"], r#"{"cwd": "."}"#);
    assert!(out.contains(&task), "{out}");

    // A bad name is said, and the agent may stop (the hook never fails its client).
    let (out, err) = stop_hook_with(&repo, &["-C", &path, "--agent", "no good"], "{}");
    assert!(out.is_empty(), "{out}");
    assert!(err.contains("agent name"), "{err}");
}

#[test]
fn hooks_install_claude_merges_the_stop_hook_into_settings() {
    let repo = TestRepo::init();
    let settings = repo.path.join(".claude/settings.json");
    std::fs::create_dir_all(settings.parent().expect("dir")).expect("dir");
    std::fs::write(&settings, r#"{"permissions": {"allow": ["Bash(ls)"]}, "hooks": {"Stop": [{"hooks": [{"type": "command", "command": "echo mine"}]}], "PreToolUse": []}}"#).expect("settings");
    repo.coord_ok(&["hooks", "install", "--claude"]);
    repo.coord_ok(&["hooks", "install", "--claude"]);
    let merged: Value =
        serde_json::from_str(&std::fs::read_to_string(&settings).expect("read")).expect("json");
    assert_eq!(merged["permissions"]["allow"][0], "Bash(ls)");
    assert!(merged["hooks"]["PreToolUse"].is_array());
    let stop = array(merged["hooks"]["Stop"].clone());
    assert_eq!(stop.len(), 2, "ours added once, theirs kept: {stop:?}");
    assert_eq!(stop[0]["hooks"][0]["command"], "echo mine");
    assert_eq!(stop[1]["hooks"][0]["command"], "git coord hook stop");
    repo.coord_ok(&["hooks", "uninstall", "--claude"]);
    let after: Value =
        serde_json::from_str(&std::fs::read_to_string(&settings).expect("read")).expect("json");
    assert_eq!(array(after["hooks"]["Stop"].clone()).len(), 1);
    // A settings file that is not JSON is never overwritten.
    std::fs::write(&settings, "{ not json").expect("settings");
    let err = fails(&repo.coord(&["hooks", "install", "--claude"]), 1);
    assert!(err.contains("not valid JSON"), "{err}");
    assert_eq!(
        std::fs::read_to_string(&settings).expect("read"),
        "{ not json"
    );
}

#[test]
fn cancel_releases_every_claim_and_lease_and_tells_every_agent() {
    let repo = TestRepo::init();
    let a = spawn(&repo, "ann", "dev");
    let b = spawn(&repo, "bo", "dev");
    let started = repo.coord_json(&["workflow", "start", "bugfix", "Crash"]);
    let first = strings(started["tasks"].clone())[0].clone();
    repo.coord_ok(&["task", "edit", &first, "--role", "dev"]);
    at(&repo, &a, &["task", "claim", &first]);
    at(&repo, &a, &["lease", "acquire", "src/**", "--task", &first]);
    let other = repo.new_task("Unrelated", &[]);
    at(&repo, &b, &["task", "claim", &other]);
    repo.coord_ok(&[
        "cancel",
        "--workflow",
        started["id"].as_str().expect("epic"),
        "--reason",
        "wrong bug",
    ]);
    assert_eq!(repo.show(&first)["state"], "blocked");
    assert_eq!(
        repo.show(&other)["state"],
        "claimed",
        "outside the workflow: untouched"
    );
    // The workflow shows as cancelled, never as running.
    let epic = started["id"].as_str().expect("epic").to_string();
    let listed = &array(repo.coord_json(&["workflow", "status", &epic]))[0];
    assert_eq!(listed["state"], "cancelled", "{listed}");
    let status = repo.coord_ok(&["status"]);
    let line = status
        .lines()
        .find(|l| l.starts_with(&format!("workflow {epic}")))
        .expect("the workflow is in the status");
    assert!(line.contains(": cancelled, 0/"), "{line}");
    assert!(
        !line.contains("running") && !line.contains(", at "),
        "{line}"
    );
    let st = repo.coord_json(&["status"]);
    assert_eq!(st["workflows"][0]["state"], "cancelled", "{st}");
    assert!(repo.leases(false).is_empty());
    let inbox = at_json(&repo, &b, &["inbox"]);
    assert!(
        array(inbox["messages"].clone())[0]["subject"]
            .as_str()
            .expect("s")
            .contains("cancelled")
    );

    repo.coord_ok(&["cancel", "--reason", "stop everything"]);
    assert_eq!(repo.show(&other)["state"], "open");
    let err = fails(&repo.coord_in(&b, &["task", "claim", &other]), 3);
    assert!(err.contains("cancelled"), "{err}");
    repo.coord_ok(&["resume"]);
    at(&repo, &b, &["task", "claim", &other]);
}

#[test]
fn a_launched_agent_runs_its_role_command_in_its_worktree_until_stopped() {
    let repo = TestRepo::init();
    repo.write_file(
        ".coord.yaml",
        "roles:\n  - name: dev\n    command: \"echo started as $GIT_COORD_AGENT in $(pwd); exec sleep 60\"\n  - name: docs\n",
    );
    let err = fails(
        &repo.coord(&["agent", "spawn", "nocmd", "--role", "docs", "--launch"]),
        1,
    );
    assert!(err.contains("no command"), "{err}");
    assert!(
        repo.coord_json(&["agent", "list"])
            .as_array()
            .expect("list")
            .is_empty(),
        "nothing was spawned"
    );
    let spawned = repo.coord_json(&["agent", "spawn", "runner", "--role", "dev", "--launch"]);
    let log = PathBuf::from(spawned["launched"]["log"].as_str().expect("a log"));
    let pid = spawned["launched"]["pid"].as_u64().expect("a pid");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("started")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the command never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let text = std::fs::read_to_string(&log).expect("log");
    assert!(text.contains("started as runner in"), "{text}");
    assert!(text.contains("runner"), "{text}");
    fails(&repo.coord(&["agent", "launch", "runner"]), 1);
    let gone = |pid: u64| {
        !Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .unwrap_or_default()
                .contains(" Z ")
    };
    repo.coord_ok(&["agent", "stop", "runner"]);
    assert!(gone(pid), "the process is gone");
    fails(&repo.coord(&["agent", "stop", "runner"]), 1);

    // Launched again, then retired: the retire stops it first, as its worktree goes.
    let again = repo.coord_json(&["agent", "launch", "runner"]);
    let pid = again["pid"].as_u64().expect("a pid");
    repo.coord_ok(&["agent", "retire", "runner", "--force"]);
    assert!(gone(pid), "the process is gone");
    fails(&repo.coord(&["agent", "stop", "runner"]), 1);

    // A pid file naming a live process that is not the agent's (its pid reused since, so its
    // start time differs; or an older build's file with no start time) is not taken for the
    // agent: the launch goes ahead, and that process is left alone by `agent stop`.
    let mut live = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .expect("sleep starts");
    let run = repo.path.join(".git/coord/run");
    std::fs::create_dir_all(&run).expect("run dir");
    for record in [
        format!("pid: {}\nstart: 1\ncommand: x\nstarted: x\n", live.id()),
        live.id().to_string(),
    ] {
        std::fs::write(run.join("ghost.pid"), record).expect("pid file");
        fails(&repo.coord(&["agent", "stop", "ghost"]), 1);
        assert!(
            !gone(live.id().into()),
            "a process that is not the agent's is left alone"
        );
    }
    let spawned = repo.coord_json(&["agent", "spawn", "ghost", "--role", "dev", "--launch"]);
    let pid = spawned["launched"]["pid"].as_u64().expect("a pid");
    assert_ne!(pid, u64::from(live.id()));
    repo.coord_ok(&["agent", "stop", "ghost"]);
    assert!(gone(pid), "the process is gone");
    assert!(!gone(live.id().into()), "the other process still runs");
    let _ = live.kill();
    let _ = live.wait();
}

#[test]
fn spawn_launch_with_the_default_roles_takes_a_command_or_says_how() {
    let repo = TestRepo::init();
    // The default roles have no command: refused before anything is spawned, saying what to do.
    let err = fails(
        &repo.coord(&["agent", "spawn", "amy", "--role", "dev", "--launch"]),
        1,
    );
    assert!(err.contains("--command"), "{err}");
    assert!(err.contains(".coord.yaml"), "{err}");
    assert!(
        repo.coord_json(&["agent", "list"])
            .as_array()
            .expect("list")
            .is_empty(),
        "nothing was spawned"
    );
    // --command runs in the new worktree as the new agent.
    let spawned = repo.coord_json(&[
        "agent",
        "spawn",
        "amy",
        "--role",
        "dev",
        "--launch",
        "--command",
        "git coord whoami > whoami.txt; exec sleep 60",
    ]);
    let worktree = PathBuf::from(spawned["worktree"].as_str().expect("a worktree"));
    assert_eq!(
        spawned["launched"]["command"],
        "git coord whoami > whoami.txt; exec sleep 60"
    );
    let file = worktree.join("whoami.txt");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !std::fs::read_to_string(&file)
        .unwrap_or_default()
        .contains("amy")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the command never ran"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    repo.coord_ok(&["agent", "stop", "amy"]);
    // --command without --launch is a usage error.
    fails(
        &repo.coord(&["agent", "spawn", "bo", "--role", "dev", "--command", "true"]),
        2,
    );
}

#[test]
fn a_paused_agent_claims_nothing_and_may_stop_while_the_team_goes_on() {
    let repo = TestRepo::init();
    let mia = spawn(&repo, "mia", "dev");
    let bo = spawn(&repo, "bo", "dev");
    let first = repo.new_task("First", &["--role", "dev"]);
    let second = repo.new_task("Second", &["--role", "dev"]);
    at(&repo, &mia, &["task", "claim", &first]);

    repo.coord_ok(&["agent", "pause", "mia", "--reason", "too eager"]);
    let err = fails(&repo.coord_in(&mia, &["task", "claim", &second]), 3);
    assert!(
        err.contains("mia is paused") && err.contains("too eager"),
        "{err}"
    );
    assert!(err.contains("git coord agent resume mia"), "{err}");
    fails(&repo.coord_in(&mia, &["task", "claim", "--next"]), 3);
    // What it holds stays its own; the rest of the team claims as before.
    assert_eq!(repo.show(&first)["assignee"], "mia");
    at(&repo, &bo, &["task", "claim", &second]);
    let (out, _) = stop_hook(&repo, &stop_input(&mia));
    let halt = json(&out);
    assert_eq!(halt["continue"], false, "{halt}");
    assert!(
        halt["stopReason"]
            .as_str()
            .expect("why")
            .contains("agent resume mia"),
        "{halt}"
    );
    let shown = repo.coord_json(&["agent", "show", "mia"]);
    assert_eq!(shown["paused"]["reason"], "too eager", "{shown}");
    // Pausing again writes nothing; the history has one pause.
    let tip = repo.ref_tip("refs/coord/agents");
    repo.coord_ok(&["agent", "pause", "mia"]);
    assert_eq!(repo.ref_tip("refs/coord/agents"), tip);

    repo.coord_ok(&["agent", "resume", "mia"]);
    at(&repo, &mia, &["task", "release", &first]);
    at(&repo, &mia, &["task", "claim", &first]);
    let shown = repo.coord_json(&["agent", "show", "mia"]);
    assert!(shown.get("paused").is_none(), "{shown}");
    let ops: Vec<String> = array(shown["history"].clone())
        .iter()
        .map(|e| e["op"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(ops, ["pause", "resume"]);
    fails(&repo.coord(&["agent", "pause", "nobody"]), 1);
}

#[test]
fn cancel_stops_launched_agents_even_without_a_supervisor() {
    let repo = TestRepo::init();
    repo.write_file(
        ".coord.yaml",
        "roles:\n  - name: dev\n    command: \"exec sleep 60\"\n",
    );
    let spawned = repo.coord_json(&["agent", "spawn", "lou", "--role", "dev", "--launch"]);
    let pid = spawned["launched"]["pid"].as_u64().expect("a pid");
    let started = std::time::Instant::now();
    let out = repo.coord_ok(&["cancel", "--reason", "enough"]);
    assert!(out.contains("stopped: lou"), "{out}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    assert!(stat.is_empty() || stat.contains(" Z "), "{stat}");
    fails(&repo.coord(&["agent", "stop", "lou"]), 1);
}

#[test]
fn a_workflow_with_stages_no_agent_can_take_says_so_when_it_starts() {
    let repo = TestRepo::init();
    for (name, role) in [("pam", "planner"), ("rita", "reviewer"), ("dev1", "dev")] {
        repo.coord_ok(&["agent", "spawn", name, "--role", role]);
    }
    let out = repo.coord(&["workflow", "start", "feature", "Add search"]);
    let said = common::stderr(&ok(out, "workflow start"));
    assert!(said.contains("no active agent"), "{said}");
    assert!(
        said.contains("role docs") && said.contains("role tester"),
        "{said}"
    );
    assert!(!said.contains("role dev "), "{said}");
    assert!(said.contains("agent spawn NAME --role docs"), "{said}");
}

#[test]
fn agent_list_and_show_give_the_last_claimed_and_finished_task() {
    let repo = TestRepo::init();
    repo.coord_ok(&["agent", "spawn", "w", "--role", "dev"]);
    let first = repo.new_task("first", &[]);
    let second = repo.new_task("second", &[]);
    repo.coord_as_ok("w", &["task", "claim", &first]);
    repo.coord_as_ok("w", &["task", "done", &first]);
    repo.coord_as_ok("w", &["task", "claim", &second]);
    let shown = repo.coord_json(&["agent", "show", "w"]);
    assert_eq!(shown["last_done"]["id"], first.as_str(), "{shown}");
    assert_eq!(shown["last_claimed"]["id"], second.as_str(), "{shown}");
    assert!(shown["last_done"]["at"].is_string(), "{shown}");
    let text = repo.coord_ok(&["agent", "list"]);
    assert!(text.contains(&format!("last done {first}")), "{text}");
}
