//! The organiser's workflow, complete: trailers that say which agent wrote which commit, merge
//! commits that name what a checkpoint merged, `log --agent`, stages that must produce code,
//! review rounds, the breaker, artifact inputs in briefs, role changes, and agents that remember.

mod common;

use std::path::Path;

use serde_json::Value;

use common::{TASKS_REF, TestRepo, array, at, at_json, fails, ok, spawn, stdout, strings};

fn commit(repo: &TestRepo, dir: &Path, file: &str, message: &str) {
    std::fs::write(dir.join(file), format!("{message}\n")).expect("written");
    ok(repo.git_in(dir, &["add", file]), "add");
    ok(repo.git_in(dir, &["commit", "-q", "-m", message]), "commit");
}

fn message_of(repo: &TestRepo, dir: &Path, rev: &str) -> String {
    stdout(&ok(
        repo.git_in(dir, &["log", "-1", "--format=%B", rev]),
        "log",
    ))
}

fn subjects(inbox: &Value) -> Vec<String> {
    array(inbox["messages"].clone())
        .iter()
        .map(|m| m["subject"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Commits `.coord.yaml` (and templates) on main, so agents spawned after share them.
fn commit_on_main(repo: &TestRepo, files: &[(&str, &str)]) {
    for (path, text) in files {
        repo.write_file(path, text);
        repo.git_ok(&["add", path]);
    }
    repo.git_ok(&["commit", "-q", "-m", "configure the team"]);
}

const TWO_STAGES: &str = "name: two
stages:
  - name: notes
    role: docs
    title: \"Notes: {title}\"
    checkpoint: true
    code: false
  - name: implement
    role: dev
    title: \"Implement: {title}\"
    checkpoint: true
";

#[test]
fn commits_in_an_agents_worktree_carry_trailers_and_log_agent_shows_its_work() {
    let repo = TestRepo::init();
    // A prepare-commit-msg hook already there keeps running, after ours.
    repo.write_file(
        ".git/hooks/prepare-commit-msg",
        "#!/bin/sh\necho \"Signed-off-by: old hook\" >> \"$1\"\n",
    );
    ok(
        repo.command("chmod", &repo.path)
            .args(["+x", ".git/hooks/prepare-commit-msg"])
            .output()
            .expect("chmod"),
        "chmod",
    );
    let installed = repo.coord_json(&["hooks", "install"]);
    let actions: Vec<(String, String)> = array(installed)
        .iter()
        .map(|c| {
            (
                c["hook"].as_str().unwrap_or_default().to_string(),
                c["action"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert!(
        actions.contains(&("prepare-commit-msg".into(), "chained".into())),
        "{actions:?}"
    );
    let home = spawn(&repo, "dev1", "dev");
    let task = repo.new_task("Write the parser", &["--role", "dev"]);
    at(&repo, &home, &["task", "claim", &task]);
    commit(&repo, &home, "parser.rs", "parser");
    let msg = message_of(&repo, &home, "HEAD");
    assert!(msg.contains("Coord-Agent: dev1"), "{msg}");
    assert!(msg.contains(&format!("Coord-Task: {task}")), "{msg}");
    assert!(msg.contains("Signed-off-by: old hook"), "{msg}");
    // Amending adds nothing twice.
    ok(
        repo.git_in(&home, &["commit", "-q", "--amend", "--no-edit"]),
        "amend",
    );
    let amended = message_of(&repo, &home, "HEAD");
    assert_eq!(amended.matches("Coord-Agent: dev1").count(), 1, "{amended}");
    // A human committing in the main worktree is not an agent: no trailer.
    repo.write_file("README", "hello\n");
    repo.git_ok(&["add", "README"]);
    repo.git_ok(&["commit", "-q", "-m", "readme"]);
    let human = message_of(&repo, &repo.path, "HEAD");
    assert!(!human.contains("Coord-Agent"), "{human}");

    // The checkpoint's merge commit names the agent, its task and the gate results.
    at(
        &repo,
        &home,
        &["task", "done", &task, "--summary", "parser written"],
    );
    repo.coord_ok(&["checkpoint", "--tasks", &task, "--gate", "true"]);
    let merge = message_of(&repo, &repo.path, "main");
    assert!(
        merge.starts_with("checkpoint: merge agent/dev1 into main"),
        "{merge}"
    );
    for want in [
        "Coord-Agent: dev1".to_string(),
        format!("Coord-Task: {task}"),
        "Coord-Gate: passed true".to_string(),
        "Write the parser".to_string(),
    ] {
        assert!(merge.contains(&want), "{want} in {merge}");
    }
    let on_main = repo.git_ok(&["log", "main", "--format=%B"]);
    assert!(on_main.contains("Coord-Agent: dev1"), "{on_main}");

    // log --agent: its code (on its branch, and the merge on main) and its coordination.
    let log = array(repo.coord_json(&["log", "--agent", "dev1"]));
    let has = |kind: &str, subject: &str| {
        log.iter()
            .any(|e| e["kind"] == kind && e["subject"].as_str().unwrap_or("").starts_with(subject))
    };
    assert!(has("code", "parser"), "{log:?}");
    assert!(has("code", "checkpoint: merge agent/dev1"), "{log:?}");
    assert!(has("coordination", &format!("claim {task}")), "{log:?}");
    assert!(has("coordination", &format!("done {task}")), "{log:?}");
    assert!(!has("code", "readme"), "{log:?}");
    let text = repo.coord_ok(&["log", "--agent", "dev1", "-n", "2"]);
    assert_eq!(text.lines().count(), 2, "{text}");
    let nobody = repo.coord_ok(&["log", "--agent", "ghost"]);
    assert!(nobody.contains("nothing by ghost"), "{nobody}");
}

#[test]
fn a_stage_that_should_produce_code_stays_open_when_it_has_nothing_to_merge() {
    let repo = TestRepo::init();
    let olga = spawn(&repo, "olga", "organiser");
    let dot = spawn(&repo, "dot", "docs");
    let dev = spawn(&repo, "dev1", "dev");
    repo.write_file(".coord/workflows/two.yaml", TWO_STAGES);
    let started = repo.coord_json(&["workflow", "start", "two", "Login"]);
    let tasks = strings(started["tasks"].clone());
    let (notes, notes_cp, implement, implement_cp) = (&tasks[0], &tasks[1], &tasks[2], &tasks[3]);
    assert!(repo.show(notes)["labels"].to_string().contains("no-code"));

    // A stage marked `code: false` passes its checkpoint with nothing to merge.
    at(&repo, &dot, &["task", "claim", notes]);
    at(&repo, &dot, &["task", "done", notes]);
    let report = at_json(&repo, &olga, &["checkpoint", "--tasks", notes]);
    assert_eq!(report["checkpoint"]["outcome"], "nothing-to-merge");
    assert_eq!(repo.show(notes_cp)["state"], "done");

    // The implement stage done without a commit: its checkpoint stays open, the organiser is told.
    at(&repo, &dev, &["task", "claim", implement]);
    at(&repo, &dev, &["task", "done", implement]);
    let out = at(&repo, &olga, &["checkpoint", "--tasks", implement]);
    assert!(out.contains("waiting:") && out.contains(implement), "{out}");
    assert_eq!(repo.show(implement_cp)["state"], "open");
    let inbox = at_json(&repo, &olga, &["inbox"]);
    assert!(
        subjects(&inbox)
            .iter()
            .any(|s| s.starts_with("Nothing to merge")),
        "{inbox}"
    );
    // Once the code is there, the checkpoint merges it and passes.
    commit(&repo, &dev, "login.rs", "login");
    let report = at_json(&repo, &olga, &["checkpoint", "--tasks", implement]);
    assert_eq!(report["checkpoint"]["outcome"], "moved", "{report}");
    assert_eq!(repo.show(implement_cp)["state"], "done");
    assert!(report["waiting"].as_array().expect("list").is_empty());
}

const REVIEWED: &str = "name: reviewed
stages:
  - name: plan
    role: planner
    title: \"Plan: {title}\"
  - name: plan-review
    role: reviewer
    title: \"Review the plan: {title}\"
";

#[test]
fn review_loops_route_revised_work_back_to_the_reviewer_round_after_round() {
    let repo = TestRepo::init();
    let pia = spawn(&repo, "pia", "planner");
    let rex = spawn(&repo, "rex", "reviewer");
    repo.write_file(".coord/workflows/reviewed.yaml", REVIEWED);
    let started = repo.coord_json(&["workflow", "start", "reviewed", "Search"]);
    let epic = started["id"].as_str().expect("epic").to_string();
    let ids = strings(started["tasks"].clone());
    let (plan, review) = (&ids[0], &ids[1]);
    at(&repo, &pia, &["task", "claim", plan]);
    at(&repo, &pia, &["task", "done", plan, "--summary", "v1"]);

    // Round 1: the reviewer, holding the review, sends the plan back.
    at(&repo, &rex, &["task", "claim", review]);
    at(
        &repo,
        &rex,
        &["task", "reopen", plan, "--reason", "name the tests"],
    );
    at(&repo, &pia, &["task", "done", plan, "--summary", "v2"]);
    let inbox = at_json(&repo, &rex, &["inbox"]);
    assert!(
        subjects(&inbox)
            .iter()
            .any(|s| s.starts_with("Review round 2")),
        "{inbox}"
    );
    assert_eq!(repo.show(review)["assignee"], "rex");

    // Round 2: approved first, then sent back again after all: the revised plan reopens the
    // review for its reviewer as round 3.
    at(&repo, &rex, &["task", "done", review]);
    at(
        &repo,
        &rex,
        &["task", "reopen", plan, "--reason", "one more thing"],
    );
    at(&repo, &pia, &["task", "done", plan, "--summary", "v3"]);
    let back = repo.show(review);
    assert_eq!(
        (back["state"].clone(), back["assignee"].clone()),
        ("claimed".into(), "rex".into()),
        "{back}"
    );
    at(&repo, &rex, &["task", "done", review]);

    let status = &array(repo.coord_json(&["workflow", "status", &epic]))[0];
    let stages = array(status["stages"].clone());
    assert_eq!(stages[0]["sent_back"], 2, "{status}");
    let rounds: Vec<String> = array(stages[1]["rounds"].clone())
        .iter()
        .map(|r| format!("{} {}", r["round"], r["result"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(rounds.len(), 3, "{rounds:?}");
    assert!(rounds[0].starts_with("1 sent back") && rounds[0].contains("name the tests"));
    assert!(rounds[1].starts_with("2 sent back") && rounds[1].contains("one more thing"));
    assert_eq!(rounds[2], "3 approved");
    let text = repo.coord_ok(&["workflow", "status", &epic]);
    assert!(text.contains("round 3: approved"), "{text}");
    assert_eq!(status["state"], "done");
}

#[test]
fn the_breaker_pauses_the_workflows_agents_after_repeated_send_backs_and_counts_again() {
    let repo = TestRepo::init();
    commit_on_main(&repo, &[(".coord.yaml", "breaker: 2\n")]);
    let olga = spawn(&repo, "olga", "organiser");
    let pia = spawn(&repo, "pia", "planner");
    let rex = spawn(&repo, "rex", "reviewer");
    repo.write_file(".coord/workflows/reviewed.yaml", REVIEWED);
    let started = repo.coord_json(&["workflow", "start", "reviewed", "Search"]);
    let ids = strings(started["tasks"].clone());
    let (plan, review) = (&ids[0], &ids[1]);
    at(&repo, &pia, &["task", "claim", plan]);
    at(&repo, &pia, &["task", "done", plan]);
    at(&repo, &rex, &["task", "claim", review]);
    at(&repo, &rex, &["task", "reopen", plan, "--reason", "vague"]);
    assert_eq!(repo.coord_json(&["status"])["team"], "running");
    at(&repo, &pia, &["task", "done", plan]);
    at(
        &repo,
        &rex,
        &["task", "reopen", plan, "--reason", "still vague"],
    );
    // The workflow's agents are paused, not the team: the organiser is free to sort it out.
    assert_eq!(repo.coord_json(&["status"])["team"], "running");
    for name in ["pia", "rex"] {
        let agent = repo.coord_json(&["agent", "show", name]);
        let why = agent["paused"]["reason"].as_str().unwrap_or("").to_string();
        assert!(why.contains("sent back 2 times"), "{agent}");
    }
    assert!(
        repo.coord_json(&["agent", "show", "olga"])
            .get("paused")
            .is_none()
    );
    let inbox = at_json(&repo, &olga, &["inbox"]);
    assert!(
        subjects(&inbox)
            .iter()
            .any(|s| s.starts_with("Breaker tripped")),
        "{inbox}"
    );
    // Paused: no claims for them; others still claim.
    let other = repo.new_task("Something else", &["--role", "planner"]);
    fails(&repo.coord_in(&pia, &["task", "claim", &other]), 3);
    at(&repo, &olga, &["task", "claim", &other]);
    // The count starts again from the trip: one more send-back does not trip it.
    repo.coord_ok(&["agent", "resume", "pia", "rex"]);
    at(&repo, &pia, &["task", "done", plan]);
    at(&repo, &rex, &["task", "reopen", plan, "--reason", "typo"]);
    assert_eq!(repo.coord_json(&["status"])["team"], "running");
    assert!(
        repo.coord_json(&["agent", "show", "pia"])
            .get("paused")
            .is_none()
    );
}

const ROLES_WITH_IO: &str = "roles:
  - name: organiser
    inputs: [report]
  - name: planner
    outputs: [plan]
  - name: reviewer
    inputs: [plan]
    outputs: [review]
";

#[test]
fn roles_name_artifact_kinds_and_briefs_show_the_artifacts_a_stage_needs() {
    let repo = TestRepo::init();
    repo.write_file(
        ".coord.yaml",
        "roles:\n  - name: dev\n    inputs: [../code]\n",
    );
    let err = fails(&repo.coord(&["roles"]), 1);
    assert!(
        err.contains("invalid artifact kind '../code': role dev:")
            && err.contains("letters, digits"),
        "{err}"
    );
    commit_on_main(&repo, &[(".coord.yaml", ROLES_WITH_IO)]);
    let roles = array(repo.coord_json(&["roles"]));
    assert!(
        roles
            .iter()
            .any(|r| r["name"] == "reviewer" && r["inputs"][0] == "plan")
    );
    let pia = spawn(&repo, "pia", "planner");
    let rex = spawn(&repo, "rex", "reviewer");
    repo.write_file(".coord/workflows/reviewed.yaml", REVIEWED);
    let started = repo.coord_json(&["workflow", "start", "reviewed", "Search"]);
    let ids = strings(started["tasks"].clone());
    let (plan, review) = (&ids[0], &ids[1]);
    let described = repo.show(review)["description"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(
        described.contains("plan from stage plan") && described.contains(plan.as_str()),
        "{described}"
    );
    at(&repo, &pia, &["task", "claim", plan]);
    std::fs::write(pia.join("plan.md"), "1. index\n2. query\n").expect("written");
    at(
        &repo,
        &pia,
        &[
            "artifact",
            "put",
            "--task",
            plan,
            "--kind",
            "plan",
            "--summary",
            "index then query",
            "plan.md",
        ],
    );
    at(&repo, &pia, &["task", "done", plan]);
    at(&repo, &rex, &["task", "claim", review]);
    let brief = at(&repo, &rex, &["brief"]);
    assert!(brief.contains("Inputs for your tasks (1):"), "{brief}");
    assert!(brief.contains("index then query"), "{brief}");
    assert!(brief.contains("git coord artifact show"), "{brief}");

    // The organiser's brief summarises artifacts within its budget, at 60 of them.
    for n in 0..59 {
        repo.coord_as_ok(
            "pia",
            &[
                "artifact",
                "put",
                "--task",
                plan,
                "--kind",
                "review",
                "--summary",
                &format!("note number {n}"),
                "-",
            ],
        );
    }
    let organiser = repo.coord_json(&["brief", "--organiser", "--max-chars", "1500"]);
    let text = organiser["text"].as_str().expect("text");
    assert!(text.chars().count() <= 1500, "{text}");
    assert!(text.contains("Artifacts (60):"), "{text}");
    assert!(text.contains("by kind: plan 1, review 59"), "{text}");
    assert!(text.contains("by stage: plan 60"), "{text}");
    assert!(
        text.contains("note number 58"),
        "the latest is shown: {text}"
    );
    assert!(
        !text.contains("index then query"),
        "the oldest is summarised: {text}"
    );
    assert!(text.contains("git coord artifact list"), "{text}");
    let roomy = repo.coord_json(&["brief", "--organiser"]);
    assert!(
        roomy["text"]
            .as_str()
            .expect("text")
            .contains("note number 40")
    );
}

#[test]
fn an_agent_changes_role_and_its_brief_ready_and_stop_hook_follow() {
    let repo = TestRepo::init();
    let home = spawn(&repo, "sam", "dev");
    let coding = repo.new_task("Code it", &["--role", "dev"]);
    let reviewing = repo.new_task("Review it", &["--role", "reviewer"]);
    assert!(at(&repo, &home, &["brief"]).contains(&coding));
    let err = fails(&repo.coord(&["agent", "edit", "sam", "--role", "pilot"]), 1);
    assert!(err.contains("known roles"), "{err}");
    assert_eq!(repo.coord_json(&["agent", "show", "sam"])["role"], "dev");

    let edited = at_json(
        &repo,
        &home,
        &["agent", "edit", "sam", "--role", "reviewer"],
    );
    assert_eq!(edited["role"], "reviewer");
    assert_eq!(edited["capabilities"], serde_json::json!(["review"]));
    let shown = repo.coord_json(&["agent", "show", "sam"]);
    assert_eq!(shown["history"][0]["note"], "dev -> reviewer", "{shown}");
    let text = repo.coord_ok(&["agent", "show", "sam"]);
    assert!(text.contains("role by sam: dev -> reviewer"), "{text}");
    let log = repo.git_ok(&["log", "-1", "--format=%s", "refs/coord/agents"]);
    assert!(log.contains("edit agent sam"), "{log}");

    let brief = at(&repo, &home, &["brief"]);
    assert!(
        brief.contains("role reviewer") && brief.contains(&reviewing),
        "{brief}"
    );
    assert!(!brief.contains(&coding), "{brief}");
    let ready = array(at_json(&repo, &home, &["ready", "--mine"]));
    assert_eq!(ready.len(), 1);
    assert_eq!(ready[0]["id"], reviewing.as_str());
    let mut hook = repo
        .command(common::BIN, repo.tmp())
        .args(["hook", "stop"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("the hook runs");
    use std::io::Write;
    hook.stdin
        .take()
        .expect("stdin")
        .write_all(
            serde_json::json!({ "cwd": home.display().to_string() })
                .to_string()
                .as_bytes(),
        )
        .expect("input");
    let out = stdout(&hook.wait_with_output().expect("done"));
    assert!(
        out.contains("role reviewer") && out.contains(&reviewing),
        "{out}"
    );
    // The same role again writes nothing.
    let before = repo.ref_tip("refs/coord/agents");
    repo.coord_ok(&["agent", "edit", "sam", "--role", "reviewer"]);
    assert_eq!(repo.ref_tip("refs/coord/agents"), before);
}

#[test]
fn a_respawned_agent_is_told_what_it_did_before() {
    let repo = TestRepo::init();
    let home = spawn(&repo, "pia", "planner");
    let task = repo.new_task("Plan search", &["--role", "planner"]);
    at(&repo, &home, &["task", "claim", &task]);
    std::fs::write(home.join("plan.md"), "the plan\n").expect("written");
    at(
        &repo,
        &home,
        &[
            "artifact",
            "put",
            "--task",
            &task,
            "--kind",
            "plan",
            "--summary",
            "search plan",
            "plan.md",
        ],
    );
    commit(&repo, &home, "plan.md", "plan");
    at(
        &repo,
        &home,
        &["task", "done", &task, "--summary", "planned"],
    );
    repo.coord_ok(&["checkpoint", "--gate", "true"]);
    assert!(!at(&repo, &home, &["brief"]).contains("Before this spawn"));
    repo.coord_ok(&["agent", "retire", "pia", "--delete-branch"]);
    let home = spawn(&repo, "pia", "planner");
    let brief = at(&repo, &home, &["brief"]);
    assert!(brief.contains("Before this spawn you did:"), "{brief}");
    assert!(
        brief.contains(&task) && brief.contains("planned"),
        "{brief}"
    );
    assert!(brief.contains("search plan"), "{brief}");
    assert!(brief.contains("merged in checkpoint(s) 1"), "{brief}");
    let shown = repo.coord_json(&["agent", "show", "pia"]);
    let earlier = &shown["earlier_work"];
    assert_eq!(earlier["checkpoints"], serde_json::json!([1]), "{shown}");
    assert_eq!(array(earlier["tasks_done"].clone()).len(), 1);
    assert_eq!(array(earlier["artifacts"].clone()).len(), 1);
    assert!(
        repo.coord_ok(&["agent", "show", "pia"])
            .contains("before this spawn")
    );
}

/// The end to end run: the implement stage's gate fails three times and the breaker
/// pauses the team; resumed, the fix passes the gate and main carries the trailers.
#[test]
fn a_workflow_whose_gate_fails_three_times_trips_the_breaker_then_passes_after_resume() {
    let repo = TestRepo::init();
    repo.coord_ok(&["hooks", "install"]);
    let olga = spawn(&repo, "olga", "organiser");
    let dev = spawn(&repo, "dev1", "dev");
    repo.write_file(
        ".coord/workflows/two.yaml",
        TWO_STAGES.replace("docs", "organiser").as_str(),
    );
    let started = repo.coord_json(&["workflow", "start", "two", "Login"]);
    let epic = started["id"].as_str().expect("epic").to_string();
    let ids = strings(started["tasks"].clone());
    let (notes, implement, implement_cp) = (&ids[0], &ids[2], &ids[3]);
    at(&repo, &olga, &["task", "claim", notes]);
    at(&repo, &olga, &["task", "done", notes]);
    at(&repo, &olga, &["checkpoint", "--tasks", notes]);

    at(&repo, &dev, &["task", "claim", "--next", "--role", "dev"]);
    commit(&repo, &dev, "login.rs", "login, first try");
    at(
        &repo,
        &dev,
        &["task", "done", implement, "--summary", "login"],
    );
    let gate = "test -f fixed.txt";
    for attempt in 1..=3 {
        let out = repo.coord_in(&olga, &["checkpoint", "--tasks", implement, "--gate", gate]);
        let err = fails(&out, 1);
        assert!(err.contains("a gate failed"), "{err}");
        assert_eq!(repo.coord_json(&["status"])["team"], "running");
        let dev1 = repo.coord_json(&["agent", "show", "dev1"]);
        assert_eq!(
            dev1.get("paused").is_some(),
            attempt == 3,
            "after failure {attempt}"
        );
        if attempt == 3 {
            assert!(stdout(&out).contains("breaker"), "{}", stdout(&out));
            assert!(err.contains("the breaker tripped"), "{err}");
        }
    }
    let inbox = at_json(&repo, &olga, &["inbox"]);
    let tripped = array(inbox["messages"].clone())
        .into_iter()
        .find(|m| {
            m["subject"]
                .as_str()
                .unwrap_or("")
                .starts_with("Breaker tripped")
        })
        .expect("the organiser is told");
    let id = tripped["id"].as_str().expect("id");
    let read = at(&repo, &olga, &["read", id]);
    assert!(
        read.contains("failed 3 times") && read.contains(gate),
        "{read}"
    );
    assert_eq!(repo.show(implement_cp)["state"], "open");
    assert!(read.contains("agent resume dev1"), "{read}");

    repo.coord_ok(&["agent", "resume", "dev1"]);
    commit(&repo, &dev, "fixed.txt", "the fix");
    let report = at_json(
        &repo,
        &olga,
        &["checkpoint", "--tasks", implement, "--gate", gate],
    );
    assert_eq!(report["checkpoint"]["outcome"], "moved", "{report}");
    assert_eq!(repo.show(implement_cp)["state"], "done");
    let on_main = repo.git_ok(&["log", "main", "--format=%B"]);
    assert!(on_main.contains("Coord-Agent: dev1"), "{on_main}");
    assert!(
        on_main.contains(&format!("Coord-Task: {implement}")),
        "{on_main}"
    );
    assert!(
        on_main.contains("Coord-Gate: passed test -f fixed.txt"),
        "{on_main}"
    );
    let status = &array(repo.coord_json(&["workflow", "status", &epic]))[0];
    assert_eq!(status["state"], "done", "{status}");
}

/// Artifact kinds are the team's own: any name, in roles, `artifact put` and briefs, beside the
/// kinds of the default roles.
#[test]
fn a_team_names_its_own_artifact_kinds() {
    let repo = TestRepo::init();
    commit_on_main(
        &repo,
        &[
            (
                ".coord.yaml",
                "roles:\n  - name: planner\n    outputs: [pseudocode]\n  - name: reviewer\n    inputs: [pseudocode, plan]\n    outputs: [code, test-report]\n",
            ),
            (".coord/workflows/reviewed.yaml", REVIEWED),
        ],
    );
    let roles = array(repo.coord_json(&["roles"]));
    assert_eq!(
        roles[1]["outputs"],
        serde_json::json!(["code", "test-report"])
    );
    let pia = spawn(&repo, "pia", "planner");
    let rex = spawn(&repo, "rex", "reviewer");
    let started = repo.coord_json(&["workflow", "start", "reviewed", "Search"]);
    let ids = strings(started["tasks"].clone());
    let (plan, review) = (&ids[0], &ids[1]);
    let labels = strings(repo.show(review)["labels"].clone());
    assert!(
        labels.contains(&"needs-pseudocode".to_string()),
        "{labels:?}"
    );
    at(&repo, &pia, &["task", "claim", plan]);
    std::fs::write(pia.join("algo.txt"), "for each doc: index it\n").expect("written");
    let put = at_json(
        &repo,
        &pia,
        &[
            "artifact",
            "put",
            "--task",
            plan,
            "--kind",
            "pseudocode",
            "--summary",
            "the indexing loop",
            "algo.txt",
        ],
    );
    assert_eq!(put["kind"], "pseudocode");
    // The old kinds still work, and so does any other name.
    for kind in ["plan", "code"] {
        let put = repo.coord_json(&[
            "--agent",
            "pia",
            "artifact",
            "put",
            "--task",
            plan,
            "--kind",
            kind,
            "--summary",
            &format!("a {kind}"),
            "-",
        ]);
        assert_eq!(put["kind"], kind);
    }
    at(&repo, &pia, &["task", "done", plan]);
    at(&repo, &rex, &["task", "claim", review]);
    let brief = at(&repo, &rex, &["brief"]);
    assert!(
        brief.contains("pseudocode") && brief.contains("the indexing loop"),
        "{brief}"
    );
    let listed = repo.coord_ok(&["artifact", "list", "--task", plan]);
    assert!(
        listed.contains("code") && listed.contains("a code"),
        "{listed}"
    );
    let organiser = repo.coord_json(&["brief", "--organiser"]);
    assert!(
        organiser["text"]
            .as_str()
            .expect("text")
            .contains("by kind: code 1, plan 1, pseudocode 1"),
        "{organiser}"
    );
    // A kind that is no name is refused, and nothing is written.
    let tip = repo.ref_tip(TASKS_REF);
    for bad in ["../x", "has space", ""] {
        let out = repo.coord(&[
            "--agent",
            "pia",
            "artifact",
            "put",
            "--task",
            plan,
            "--kind",
            bad,
            "--summary",
            "s",
            "-",
        ]);
        let err = fails(&out, 2);
        assert!(err.contains("artifact kind"), "{bad}: {err}");
    }
    assert_eq!(repo.ref_tip(TASKS_REF), tip);
}
