//! The task commands as a user drives them: create, list, claim, finish, depend, and read back.

mod common;

use serde_json::Value;

use common::{
    TASKS_REF, TestRepo, USER_AGENT, USER_EMAIL, USER_NAME, array, fails, field, ids, json, stderr,
    stdout, task_path,
};

/// The `op` of each event in a task's history, oldest first.
fn ops(task: &Value) -> Vec<String> {
    task["history"]
        .as_array()
        .expect("a history")
        .iter()
        .map(|e| field(e, "op").expect("an op").to_string())
        .collect()
}

fn last_event(task: &Value) -> Value {
    task["history"]
        .as_array()
        .and_then(|h| h.last())
        .cloned()
        .expect("a history event")
}

/// The full message of the newest commit of refs/coord/tasks.
fn last_message(repo: &TestRepo) -> String {
    repo.git_ok(&["log", "-1", "--format=%B", TASKS_REF])
}

#[test]
fn init_is_idempotent() {
    let repo = TestRepo::new();
    let first = repo.coord_json(&["init"]);
    let created: Vec<&str> = first["created"]
        .as_array()
        .expect("a list of created refs")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(created.contains(&TASKS_REF), "{first}");
    let refs = repo.coord_refs();
    for name in &created {
        assert!(refs.contains(name), "{name} not created: {refs}");
    }
    assert!(!repo.tip().is_empty());

    assert_eq!(
        repo.coord_ok(&["init"]).trim(),
        "already initialised: nothing to do"
    );
    assert_eq!(repo.coord_json(&["init"])["created"], serde_json::json!([]));
    assert_eq!(repo.coord_refs(), refs, "a second init moved a ref");
    assert!(repo.list().is_empty());

    // Two repositories initialised apart share the same root commit, so they can merge later.
    let other = TestRepo::init();
    assert_eq!(other.tip(), repo.tip());
}

#[test]
fn new_and_list_with_filters() {
    let repo = TestRepo::init();
    let api = repo.new_task(
        "Build the API",
        &[
            "--role",
            "backend",
            "--label",
            "api",
            "--label",
            "v2",
            "--priority",
            "1",
        ],
    );
    let ui = repo.new_task("Draw the UI", &["--role", "frontend", "--label", "v2"]);
    let docs = repo.new_task("Write docs", &["--type", "chore", "--priority", "4"]);
    let bug = repo.new_task("Fix the crash", &["--type", "bug", "--priority", "0"]);
    repo.coord_as_ok("alice", &["task", "claim", &api]);
    repo.coord_as_ok("bob", &["task", "claim", &ui]);
    repo.coord_as_ok("bob", &["task", "done", &ui]);

    let all = repo.list();
    assert_eq!(
        ids(&all),
        vec![bug.clone(), api.clone(), ui.clone(), docs.clone()]
    );
    // Every summary field is present in the JSON, null when unset.
    for task in &all {
        for key in [
            "id", "title", "type", "state", "assignee", "priority", "role", "labels", "deps",
            "parent", "summary",
        ] {
            assert!(task.get(key).is_some(), "{key} missing from {task}");
        }
    }
    let api_json = &all[1];
    assert_eq!(field(api_json, "title"), Some("Build the API"));
    assert_eq!(field(api_json, "state"), Some("claimed"));
    assert_eq!(field(api_json, "assignee"), Some("alice"));
    assert_eq!(api_json["priority"], 1);
    assert_eq!(field(api_json, "role"), Some("backend"));
    assert_eq!(api_json["labels"], serde_json::json!(["api", "v2"]));
    assert_eq!(api_json["deps"], serde_json::json!([]));
    assert!(api_json["parent"].is_null() && api_json["summary"].is_null());
    assert_eq!(field(&all[0], "type"), Some("bug"));
    assert_eq!(field(&all[3], "type"), Some("chore"));
    assert_eq!(all[3]["priority"], 4);
    assert_eq!(field(&all[3], "state"), Some("open"));
    assert!(all[3]["assignee"].is_null() && all[3]["role"].is_null());

    let filtered = |args: &[&str]| {
        let mut full = vec!["task", "list"];
        full.extend_from_slice(args);
        ids(&array(repo.coord_json(&full)))
    };
    assert_eq!(
        filtered(&["--state", "open"]),
        vec![bug.clone(), docs.clone()]
    );
    assert_eq!(filtered(&["--state", "claimed"]), vec![api.clone()]);
    assert_eq!(filtered(&["--state", "done"]), vec![ui.clone()]);
    assert!(filtered(&["--state", "blocked"]).is_empty());
    assert_eq!(filtered(&["--assignee", "bob"]), vec![ui.clone()]);
    assert!(filtered(&["--assignee", "carol"]).is_empty());
    assert_eq!(filtered(&["--role", "frontend"]), vec![ui.clone()]);
    assert_eq!(filtered(&["--label", "v2"]), vec![api.clone(), ui.clone()]);
    assert_eq!(
        filtered(&["--label", "v2", "--state", "claimed"]),
        vec![api.clone()]
    );
    assert!(filtered(&["--label", "v3"]).is_empty());

    // The human listing: one line per task with id, priority, state, assignee, title, role, labels.
    let human = repo.coord_ok(&["task", "list", "--role", "backend"]);
    let line = human.trim_end();
    assert_eq!(human.lines().count(), 1, "{human}");
    assert!(
        line.starts_with(&format!("{api}  P1  claimed  alice")),
        "{line}"
    );
    assert!(line.ends_with("Build the API @backend #api #v2"), "{line}");
    assert_eq!(repo.coord_ok(&["task", "list", "--label", "nope"]), "");
}

#[test]
fn new_reads_its_description_from_a_flag_or_a_file() {
    let repo = TestRepo::init();
    let id = repo.new_task("Described", &["-d", "line one\nline two"]);
    let task = repo.coord_json(&["task", "show", &id]);
    assert_eq!(field(&task, "description"), Some("line one\nline two"));
    assert!(
        task.get("history").is_none(),
        "history shown without --history"
    );

    let file = repo.tmp().join("brief.md");
    std::fs::write(&file, "# Brief\n\nFrom a file.\n").expect("a description file");
    let task = repo.coord_json(&["task", "new", "From file", "-F", file.to_str().unwrap()]);
    assert_eq!(field(&task, "title"), Some("From file"));
    assert_eq!(
        field(&task, "description"),
        Some("# Brief\n\nFrom a file.\n")
    );
    assert_eq!(field(&task, "created_by"), Some(USER_AGENT));
    assert_eq!(field(&task, "state"), Some("open"));

    let mut piped = repo.coord_cmd(&["task", "new", "From stdin", "-F", "-", "--json"]);
    let mut child = piped
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("git-coord starts");
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), b"piped text\n").unwrap();
    let out = child.wait_with_output().expect("git-coord finishes");
    assert_eq!(
        field(&json(&stdout(&out)), "description"),
        Some("piped text\n")
    );

    let missing = repo.tmp().join("missing.md");
    let out = repo.coord(&["task", "new", "x", "-F", missing.to_str().unwrap()]);
    assert!(fails(&out, 1).contains("missing.md"));

    // The human show prints the description indented under the header.
    let shown = repo.coord_ok(&["task", "show", &id]);
    assert!(shown.starts_with(&format!("{id}  Described\n")), "{shown}");
    assert!(shown.contains("state:    open"), "{shown}");
    assert!(shown.contains("    line one\n    line two\n"), "{shown}");
}

#[test]
fn show_with_history_tells_the_whole_story() {
    let repo = TestRepo::init();
    let id = repo.new_task("Story", &[]);
    repo.coord_as_ok("alice", &["task", "claim", &id]);
    repo.coord_as_ok("alice", &["task", "comment", &id, "halfway there"]);
    repo.coord_as_ok("alice", &["task", "done", &id, "--summary", "all good"]);

    let task = repo.show(&id);
    assert_eq!(ops(&task), ["new", "claim", "comment", "done"]);
    let agents: Vec<&str> = task["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| field(e, "agent"))
        .collect();
    assert_eq!(agents, [USER_AGENT, "alice", "alice", "alice"]);
    assert_eq!(field(&last_event(&task), "note"), Some("all good"));

    let human = repo.coord_ok(&["task", "show", &id, "--history"]);
    assert!(human.contains("\nhistory:\n"), "{human}");
    assert!(human.contains(&format!(" {USER_AGENT} new\n")), "{human}");
    assert!(human.contains(" alice done (all good)\n"), "{human}");
    assert!(human.contains("alice: halfway there"), "{human}");
    assert!(human.contains("summary:  all good"), "{human}");
    assert!(!repo.coord_ok(&["task", "show", &id]).contains("history:"));
}

#[test]
fn edit_changes_fields_and_records_what_changed() {
    let repo = TestRepo::init();
    let id = repo.new_task("Old title", &["--label", "keep", "--label", "drop"]);
    let edited = repo.coord_json(&[
        "task",
        "edit",
        &id,
        "--title",
        "New title",
        "--priority",
        "0",
        "--type",
        "feature",
        "--role",
        "qa",
        "--add-label",
        "fresh",
        "--rm-label",
        "drop",
        "-d",
        "now described",
    ]);
    assert_eq!(field(&edited, "title"), Some("New title"));
    let task = repo.show(&id);
    assert_eq!(field(&task, "title"), Some("New title"));
    assert_eq!(task["priority"], 0);
    assert_eq!(field(&task, "type"), Some("feature"));
    assert_eq!(field(&task, "role"), Some("qa"));
    assert_eq!(task["labels"], serde_json::json!(["keep", "fresh"]));
    assert_eq!(field(&task, "description"), Some("now described"));
    let event = last_event(&task);
    assert_eq!(field(&event, "op"), Some("edit"));
    let note = field(&event, "note").expect("a note naming the fields");
    for changed in ["title", "description", "priority", "type", "role", "labels"] {
        assert!(note.contains(changed), "{changed} missing from {note}");
    }
    assert_eq!(
        field(&repo.list()[0], "title"),
        Some("New title"),
        "the listing still shows the old title"
    );

    repo.coord_ok(&["task", "edit", &id, "--no-role"]);
    assert!(repo.show(&id)["role"].is_null());

    let parent = repo.new_task("Epic", &["--type", "epic"]);
    repo.coord_ok(&["task", "edit", &id, "--parent", &parent]);
    assert_eq!(field(&repo.show(&id), "parent"), Some(parent.as_str()));
    let out = repo.coord(&["task", "edit", &parent, "--parent", &id]);
    let err = fails(&out, 3);
    assert!(err.contains("cycle"), "{err}");
    assert!(repo.show(&parent)["parent"].is_null());
    repo.coord_ok(&["task", "edit", &id, "--no-parent"]);
    assert!(repo.show(&id)["parent"].is_null());
}

#[test]
fn claim_release_done_reopen_and_block() {
    let repo = TestRepo::init();
    let id = repo.new_task("Lifecycle", &[]);

    let claimed = repo.coord_as("alice", &["task", "claim", &id, "--json"]);
    let claimed = json(&stdout(&claimed));
    assert_eq!(field(&claimed, "state"), Some("claimed"));
    assert_eq!(field(&claimed, "assignee"), Some("alice"));
    assert!(field(&claimed, "claimed_at").is_some());
    // Claiming what you already hold is fine and writes nothing.
    let tip = repo.tip();
    let again = repo.coord_as("alice", &["task", "claim", &id]);
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    assert_eq!(repo.tip(), tip);

    let released = repo.coord_as("alice", &["task", "release", &id]);
    assert_eq!(stdout(&released).trim(), format!("released {id} Lifecycle"));
    let task = repo.show(&id);
    assert_eq!(field(&task, "state"), Some("open"));
    assert!(task["assignee"].is_null() && task["claimed_at"].is_null());
    let out = repo.coord_as("alice", &["task", "release", &id]);
    assert!(fails(&out, 3).contains("only a claimed task can be released"));

    repo.coord_as_ok("alice", &["task", "claim", &id]);
    let out = repo.coord_as("bob", &["task", "done", &id]);
    assert!(fails(&out, 3).contains("claimed by alice"));
    repo.coord_as_ok(
        "alice",
        &["task", "done", &id, "--summary", "shipped in v2"],
    );
    let task = repo.show(&id);
    assert_eq!(field(&task, "state"), Some("done"));
    assert_eq!(field(&task, "summary"), Some("shipped in v2"));
    assert_eq!(field(&task, "assignee"), Some("alice"));
    assert_eq!(field(&repo.list()[0], "summary"), Some("shipped in v2"));

    repo.coord_as_ok("bob", &["task", "reopen", &id, "--reason", "regressed"]);
    let task = repo.show(&id);
    assert_eq!(field(&task, "state"), Some("open"));
    assert!(task["assignee"].is_null() && task["summary"].is_null());
    assert_eq!(field(&last_event(&task), "op"), Some("reopen"));
    assert_eq!(field(&last_event(&task), "note"), Some("regressed"));
    assert_eq!(field(&last_event(&task), "agent"), Some("bob"));

    repo.coord_as_ok(
        "bob",
        &["task", "block", &id, "--reason", "waiting on the vendor"],
    );
    let task = repo.show(&id);
    assert_eq!(field(&task, "state"), Some("blocked"));
    assert_eq!(field(&task, "block_reason"), Some("waiting on the vendor"));
    assert!(
        repo.coord_ok(&["task", "show", &id])
            .contains("blocked:  waiting on the vendor")
    );
    repo.coord_ok(&["task", "reopen", &id]);
    let task = repo.show(&id);
    assert_eq!(field(&task, "state"), Some("open"));
    assert!(task["block_reason"].is_null());

    // --force lets someone else release or finish a claimed task.
    repo.coord_as_ok("alice", &["task", "claim", &id]);
    repo.coord_as_ok("bob", &["task", "release", &id, "--force"]);
    assert_eq!(field(&repo.show(&id), "state"), Some("open"));
    repo.coord_as_ok("alice", &["task", "claim", &id]);
    repo.coord_as_ok("bob", &["task", "done", &id, "--force"]);
    let task = repo.show(&id);
    assert_eq!(field(&task, "state"), Some("done"));
    assert_eq!(field(&task, "assignee"), Some("alice"));
    assert_eq!(
        ops(&task),
        [
            "new", "claim", "release", "claim", "done", "reopen", "block", "reopen", "claim",
            "release", "claim", "done"
        ]
    );
}

#[test]
fn comments_are_kept_in_order_with_their_authors() {
    let repo = TestRepo::init();
    let id = repo.new_task("Discuss", &[]);
    repo.coord_as_ok("alice", &["task", "comment", &id, "first thought"]);
    repo.coord_as_ok(
        "bob",
        &["task", "comment", &id, "second: with 'quotes' and: colons"],
    );
    let comments = repo.show(&id)["comments"].clone();
    let comments = comments.as_array().expect("comments");
    assert_eq!(comments.len(), 2);
    assert_eq!(field(&comments[0], "author"), Some("alice"));
    assert_eq!(field(&comments[0], "text"), Some("first thought"));
    assert_eq!(field(&comments[1], "author"), Some("bob"));
    assert_eq!(
        field(&comments[1], "text"),
        Some("second: with 'quotes' and: colons")
    );
    assert!(
        comments
            .iter()
            .all(|c| field(c, "at").is_some() && field(c, "id").is_some())
    );
}

#[test]
fn dependencies_gate_readiness_and_show_as_a_tree() {
    let repo = TestRepo::init();
    let a = repo.new_task("foundation", &[]);
    let c = repo.new_task("tooling", &[]);
    let b = repo.new_task("walls", &["--dep", &a]);
    let d = repo.new_task("roof", &["--dep", &b, "--dep", &a[..6]]);
    assert_eq!(repo.show(&d)["deps"], serde_json::json!([b, a]));

    repo.coord_ok(&["task", "dep", "add", &b, &c]);
    assert_eq!(repo.show(&b)["deps"], serde_json::json!([a, c]));
    // Adding a dependency that is already there writes nothing.
    let tip = repo.tip();
    repo.coord_ok(&["task", "dep", "add", &b, &c]);
    assert_eq!(repo.tip(), tip);

    let tree = repo.coord_json(&["task", "dep", "tree", &d]);
    assert_eq!(field(&tree, "id"), Some(d.as_str()));
    assert_eq!(field(&tree, "title"), Some("roof"));
    let kids = tree["deps"].as_array().expect("deps");
    assert_eq!(field(&kids[0], "id"), Some(b.as_str()));
    let grandkids = ids(kids[0]["deps"].as_array().expect("deps"));
    assert_eq!(grandkids, vec![a.clone(), c.clone()]);
    assert_eq!(field(&kids[1], "id"), Some(a.as_str()));
    assert_eq!(kids[1]["repeated"], true, "{tree}");
    let human = repo.coord_ok(&["task", "dep", "tree", &d]);
    assert_eq!(
        human,
        format!(
            "{d} [open] roof\n  {b} [open] walls\n    {a} [open] foundation\n    \
             {c} [open] tooling\n  {a} [open] foundation (shown above)\n"
        )
    );

    let ready = || ids(&array(repo.coord_json(&["ready"])));
    assert_eq!(ready(), vec![a.clone(), c.clone()]);
    let out = repo.coord_as("eve", &["task", "claim", &b]);
    assert!(fails(&out, 3).contains(&a));

    repo.coord_ok(&["task", "done", &a]);
    assert_eq!(ready(), vec![c.clone()]);
    repo.coord_ok(&["task", "dep", "rm", &b, &c]);
    assert_eq!(repo.show(&b)["deps"], serde_json::json!([a]));
    assert_eq!(field(&last_event(&repo.show(&b)), "op"), Some("dep-rm"));
    assert_eq!(ready(), vec![c.clone(), b.clone()]);
    let out = repo.coord(&["task", "dep", "rm", &b, &c]);
    assert!(fails(&out, 1).contains("does not depend on it"));
    let out = repo.coord(&["task", "dep", "rm", &b, "lib:1234"]);
    assert!(fails(&out, 1).contains("does not depend on it"));

    // --force claims a task whose dependencies are not done.
    let forced = repo.coord_as("eve", &["task", "claim", &d, "--force", "--json"]);
    assert_eq!(field(&json(&stdout(&forced)), "assignee"), Some("eve"));
}

#[test]
fn ready_orders_by_priority_then_age() {
    let repo = TestRepo::init();
    let older = repo.new_task("older P2", &[]);
    let urgent = repo.new_task("urgent P0", &["--priority", "0"]);
    let newer = repo.new_task("newer P2", &["--role", "qa"]);
    let low = repo.new_task("low P4", &["--priority", "4"]);
    let urgent_too = repo.new_task("urgent P0 later", &["--priority", "0", "--role", "qa"]);
    let held = repo.new_task("held", &["--priority", "0"]);
    repo.coord_as_ok("alice", &["task", "claim", &held]);
    repo.new_task(
        "an epic is never ready",
        &["--type", "epic", "--priority", "0"],
    );
    repo.new_task("waits", &["--dep", &low, "--priority", "0"]);
    let blocked = repo.new_task("blocked", &["--priority", "0"]);
    repo.coord_ok(&["task", "block", &blocked, "--reason", "needs a decision"]);

    let ready = ids(&array(repo.coord_json(&["ready"])));
    assert_eq!(
        ready,
        vec![
            urgent.clone(),
            urgent_too.clone(),
            older.clone(),
            newer.clone(),
            low.clone()
        ]
    );
    // A task with no role is anyone's: ready for qa too.
    let qa = ids(&array(repo.coord_json(&["ready", "--role", "qa"])));
    assert_eq!(qa, ready);
    let dev = ids(&array(repo.coord_json(&["ready", "--role", "dev"])));
    assert_eq!(dev, vec![urgent.clone(), older.clone(), low.clone()]);
    let human = repo.coord_ok(&["ready"]);
    let firsts: Vec<&str> = human.lines().map(|l| &l[..12]).collect();
    assert_eq!(firsts, ready.iter().map(String::as_str).collect::<Vec<_>>());

    // claim --next takes them in the same order, honouring the role.
    let next = |agent: &str, role: Option<&str>| {
        let mut args = vec!["task", "claim", "--next", "--json"];
        args.extend(role.map(|r| ["--role", r]).into_iter().flatten());
        let out = repo.coord_as(agent, &args);
        field(&json(&stdout(&out)), "id").map(str::to_string)
    };
    assert_eq!(next("w1", Some("dev")), Some(urgent));
    assert_eq!(next("w2", Some("dev")), Some(older));
    assert_eq!(next("w3", Some("qa")), Some(urgent_too));
    assert_eq!(next("w4", None), Some(newer));
    assert_eq!(next("w5", None), Some(low));
    let out = repo.coord_as("w6", &["task", "claim", "--next"]);
    assert!(fails(&out, 3).contains("no ready task"));
}

#[test]
fn blocked_lists_what_each_task_waits_on() {
    let repo = TestRepo::init();
    let base = repo.new_task("base", &[]);
    let side = repo.new_task("side", &[]);
    let top = repo.new_task("top", &["--dep", &base, "--dep", &side]);
    let stuck = repo.new_task("stuck", &[]);
    repo.coord_ok(&["task", "block", &stuck, "--reason", "no credentials"]);
    repo.coord_as_ok("alice", &["task", "claim", &side]);
    repo.coord_ok(&["task", "done", &base]);

    let waiting = array(repo.coord_json(&["blocked"]));
    assert_eq!(ids(&waiting), vec![top.clone(), stuck.clone()]);
    let waits_on = waiting[0]["waits_on"].as_array().expect("waits_on");
    assert_eq!(
        waits_on.len(),
        1,
        "done dependencies do not count: {waiting:?}"
    );
    assert_eq!(field(&waits_on[0], "id"), Some(side.as_str()));
    assert_eq!(field(&waits_on[0], "title"), Some("side"));
    assert_eq!(field(&waits_on[0], "state"), Some("claimed"));
    assert_eq!(field(&waiting[0], "title"), Some("top"));
    assert_eq!(field(&waiting[1], "block_reason"), Some("no credentials"));
    assert_eq!(waiting[1]["waits_on"], serde_json::json!([]));

    let human = repo.coord_ok(&["blocked"]);
    assert!(
        human.contains(&format!("    waits on {side} (claimed) side\n")),
        "{human}"
    );
    assert!(human.contains("    blocked: no credentials\n"), "{human}");
    assert!(!human.contains(&format!("waits on {base}")), "{human}");
}

#[test]
fn log_is_the_audit_trail_newest_first() {
    let repo = TestRepo::init();
    let one = repo.new_task("one", &[]);
    let two = repo.new_task("two", &[]);
    repo.coord_as_ok("alice", &["task", "claim", &one]);
    repo.coord_as_ok("alice", &["task", "done", &one, "--summary", "ok"]);
    repo.coord_as_ok("bob", &["task", "comment", &two, "later"]);

    let log = array(repo.coord_json(&["log", "--task", &one]));
    let ops: Vec<&str> = log.iter().filter_map(|e| field(e, "op")).collect();
    assert_eq!(ops, ["done", "claim", "new"]);
    assert!(log.iter().all(|e| field(e, "task") == Some(one.as_str())));
    let agents: Vec<&str> = log.iter().filter_map(|e| field(e, "agent")).collect();
    assert_eq!(agents, ["alice", "alice", USER_AGENT]);
    assert_eq!(
        field(&log[0], "subject"),
        Some(format!("done {one} by alice").as_str())
    );
    let commit = field(&log[0], "commit").expect("a commit id");
    assert_eq!(commit.len(), 40);
    assert!(field(&log[0], "at").is_some());
    assert_eq!(
        repo.git_ok(&["rev-parse", &format!("{TASKS_REF}~1")]),
        commit
    );

    let all = array(repo.coord_json(&["log"]));
    assert_eq!(field(&all[0], "op"), Some("comment"));
    assert_eq!(field(&all[0], "task"), Some(two.as_str()));
    // Newest first: the tip, then back to the root commit init made.
    assert_eq!(field(&all[0], "commit"), Some(repo.tip().as_str()));
    assert_eq!(all.len(), 6, "{all:?}");
    let limited = array(repo.coord_json(&["log", "-n", "2"]));
    assert_eq!(ids_of_commits(&limited), ids_of_commits(&all[..2]));
    assert_eq!(
        array(repo.coord_json(&["log", "-n", "0"])),
        Vec::<Value>::new(),
        "log -n 0 printed entries"
    );

    let human = repo.coord_ok(&["log", "--task", &one[..5]]);
    assert_eq!(human.lines().count(), 3, "{human}");
    assert!(
        human
            .lines()
            .next()
            .unwrap()
            .ends_with(&format!("done {one} by alice"))
    );
}

fn ids_of_commits(entries: &[Value]) -> Vec<String> {
    entries
        .iter()
        .filter_map(|e| field(e, "commit").map(str::to_string))
        .collect()
}

#[test]
fn labels_are_kept_once_each() {
    let repo = TestRepo::init();
    let id = repo.new_task("x", &["--label", "a", "--label", "b", "--label", "a"]);
    assert_eq!(repo.show(&id)["labels"], serde_json::json!(["a", "b"]));
    repo.coord_ok(&["task", "edit", &id, "--add-label", "b", "--add-label", "c"]);
    assert_eq!(repo.show(&id)["labels"], serde_json::json!(["a", "b", "c"]));
    repo.coord_ok(&["task", "edit", &id, "--rm-label", "a"]);
    assert_eq!(repo.show(&id)["labels"], serde_json::json!(["b", "c"]));
}

#[test]
fn the_acting_agent_comes_from_the_flag_then_the_environment_then_git() {
    let repo = TestRepo::init();
    let env = [("GIT_COORD_AGENT", "env-agent")];
    let trailers = |repo: &TestRepo| {
        let message = last_message(repo);
        let agent = message
            .lines()
            .find_map(|l| l.strip_prefix("Coord-Agent: "))
            .map(str::to_string);
        (agent, message)
    };

    let out = repo.coord_env(&env, &["--agent", "flag-agent", "task", "new", "by flag"]);
    let by_flag = stdout(&out).trim().to_string();
    let (agent, message) = trailers(&repo);
    assert_eq!(agent.as_deref(), Some("flag-agent"), "{message}");
    assert!(
        message.contains(&format!("Coord-Human: {USER_NAME} <{USER_EMAIL}>")),
        "{message}"
    );
    assert!(
        message.contains(&format!("Coord-Task: {by_flag}")),
        "{message}"
    );
    assert!(message.contains("Coord-Op: new"), "{message}");
    assert_eq!(
        field(&repo.show(&by_flag), "created_by"),
        Some("flag-agent")
    );

    let out = repo.coord_env(&env, &["task", "claim", &by_flag]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(trailers(&repo).0.as_deref(), Some("env-agent"));
    assert_eq!(field(&repo.show(&by_flag), "assignee"), Some("env-agent"));

    repo.coord_ok(&["task", "release", &by_flag, "--force"]);
    assert_eq!(trailers(&repo).0.as_deref(), Some(USER_AGENT));
    assert_eq!(
        field(&last_event(&repo.show(&by_flag)), "agent"),
        Some(USER_AGENT)
    );

    // An empty GIT_COORD_AGENT does not count; a bad one is refused.
    let out = repo.coord_env(
        &[("GIT_COORD_AGENT", "")],
        &["task", "comment", &by_flag, "hi"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(trailers(&repo).0.as_deref(), Some(USER_AGENT));
    let tip = repo.tip();
    let out = repo.coord_env(&[("GIT_COORD_AGENT", "no/slashes")], &["task", "new", "x"]);
    assert!(fails(&out, 1).contains("invalid agent name 'no/slashes'"));
    assert_eq!(repo.tip(), tip);

    // With no user, no flag and no variable, nobody can be named.
    repo.git_ok(&["config", "--unset", "user.name"]);
    let out = repo.coord(&["task", "new", "anonymous"]);
    let err = fails(&out, 1);
    assert!(err.contains("cannot tell who is acting"), "{err}");
    assert!(err.contains("--agent"), "{err}");
    assert_eq!(repo.tip(), tip);
    // Reading needs no identity.
    assert_eq!(repo.list().len(), 1);
}

#[test]
fn commands_work_from_a_linked_worktree() {
    let repo = TestRepo::init();
    let from_main = repo.new_task("made in main", &[]);
    let wt = repo.tmp().join("wt");
    repo.git_ok(&["worktree", "add", "-q", "-b", "side", wt.to_str().unwrap()]);

    let listed = repo.coord_in(&wt, &["task", "list", "--json"]);
    assert_eq!(listed.status.code(), Some(0), "{}", stderr(&listed));
    assert_eq!(ids(&array(json(&stdout(&listed)))), vec![from_main.clone()]);

    let out = repo.coord_in(&wt, &["--agent", "wt-agent", "task", "new", "made in wt"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let from_wt = stdout(&out).trim().to_string();
    let out = repo.coord_in(&wt, &["--agent", "wt-agent", "task", "claim", &from_main]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    // One ref, shared by every worktree.
    assert_eq!(
        repo.git_in(&wt, &["rev-parse", TASKS_REF]).stdout,
        repo.git(&["rev-parse", TASKS_REF]).stdout
    );
    let all = repo.list();
    assert_eq!(all.len(), 2);
    assert!(ids(&all).contains(&from_wt));
    assert_eq!(field(&repo.show(&from_main), "assignee"), Some("wt-agent"));
    // -C points at the worktree from anywhere.
    let out = repo.coord_in(
        repo.tmp(),
        &["-C", wt.to_str().unwrap(), "task", "show", &from_wt],
    );
    assert!(stdout(&out).contains("made in wt"), "{}", stderr(&out));
}

#[test]
fn ids_resolve_by_unique_prefix() {
    let repo = TestRepo::init();
    let id = repo.new_task("findable", &[]);
    for input in [
        &id[..4],
        &id[..7],
        &id,
        &id.to_uppercase(),
        &format!("#{id}"),
    ] {
        let out = repo.coord(&["task", "show", input, "--json"]);
        assert_eq!(out.status.code(), Some(0), "{input}: {}", stderr(&out));
        assert_eq!(
            field(&json(&stdout(&out)), "id"),
            Some(id.as_str()),
            "{input}"
        );
    }

    // Two documents sharing a prefix, put there by hand: the prefix is ambiguous, the ids are not.
    let doc = |id: &str| {
        format!(
            "format: 1\nid: {id}\ntitle: twin {id}\ntype: task\nstate: open\npriority: 2\n\
             created: \"2020-01-01T00:00:00.000Z\"\ncreated_by: someone\n\
             updated: \"2020-01-01T00:00:00.000Z\"\n"
        )
    };
    let (x, y) = ("abcd00000001", "abcd00000002");
    repo.put_document(&task_path(x), doc(x).as_bytes());
    repo.put_document(&task_path(y), doc(y).as_bytes());
    let out = repo.coord(&["task", "show", "abcd"]);
    let err = fails(&out, 1);
    assert!(err.contains("'abcd' is ambiguous"), "{err}");
    assert!(err.contains(x) && err.contains(y), "{err}");
    let tip = repo.tip();
    let out = repo.coord_as("alice", &["task", "claim", "abcd0000000"]);
    fails(&out, 1);
    assert_eq!(repo.tip(), tip);
    let out = repo.coord_as("alice", &["task", "claim", x, "--json"]);
    assert_eq!(field(&json(&stdout(&out)), "id"), Some(x));
    assert_eq!(field(&repo.show(y), "state"), Some("open"));
}

#[test]
fn every_task_is_a_plain_yaml_document_in_the_ref() {
    let repo = TestRepo::init();
    let dep = repo.new_task("dependency", &[]);
    let id = repo.new_task(
        "Plain text",
        &["--label", "docs", "--dep", &dep, "-d", "body"],
    );
    repo.coord_as_ok("alice", &["task", "claim", &id, "--force"]);

    let path = task_path(&id);
    assert_eq!(path, format!("tasks/{}/{id}.yaml", &id[..2]));
    let doc = repo.git_ok(&["show", &format!("{TASKS_REF}:{path}")]);
    for line in [
        "format: 1".to_string(),
        format!("id: {id}"),
        "title: Plain text".into(),
        "state: claimed".into(),
        "assignee: alice".into(),
        format!("- {dep}"),
        "- docs".into(),
        "description: body".into(),
    ] {
        // An id that reads as a number (all digits, or like 12e3...) is written quoted.
        assert!(
            doc.lines().any(|l| l.replace('"', "") == line),
            "{line:?} not in:\n{doc}"
        );
    }
    let tree = repo.git_ok(&["ls-tree", "-r", "--name-only", TASKS_REF]);
    assert!(tree.lines().any(|l| l == path), "{tree}");
    assert!(tree.lines().any(|l| l == task_path(&dep)), "{tree}");
    repo.assert_fsck_clean();
}

/// `claim --next` takes exactly the task `ready` lists first, whatever changed since the last
/// claim: a more urgent task created, a claim released, a dependency finished, a priority edited,
/// a task reopened, and a claim cache file that is damaged or missing.
#[test]
fn claim_next_takes_what_ready_lists_first_after_every_kind_of_change() {
    let repo = TestRepo::init();
    let first_ready = || -> String {
        let ready = array(repo.coord_json(&["ready"]));
        field(&ready[0], "id").expect("a ready task").to_string()
    };
    let claim_next = |agent: &str| -> String {
        let task = repo.coord_json(&["--agent", agent, "task", "claim", "--next"]);
        assert_eq!(field(&task, "assignee"), Some(agent), "{task}");
        field(&task, "id").expect("an id").to_string()
    };
    let check = |agent: &str, what: &str| {
        let expected = first_ready();
        assert_eq!(claim_next(agent), expected, "after {what}");
    };
    let dep = repo.new_task("the dependency", &["--priority", "3"]);
    let waiting = repo.new_task("waits on it", &["--priority", "0", "--dep", &dep]);
    for n in 0..6 {
        repo.new_task(&format!("plain {n}"), &["--priority", "2"]);
    }
    check("a1", "nothing");
    check("a2", "a claim");
    let urgent = repo.new_task("urgent", &["--priority", "1"]);
    assert_eq!(first_ready(), urgent);
    // This claim brings the list the last one left up to date, rather than read every task.
    let out = repo.coord(&["-v", "--agent", "a3", "task", "claim", "--next", "--json"]);
    assert_eq!(field(&json(&stdout(&out)), "id"), Some(urgent.as_str()));
    assert!(
        stderr(&out).contains("claim cache: brought up to date from 2 changed documents"),
        "{}",
        stderr(&out)
    );
    repo.coord_ok(&["--agent", "a3", "task", "release", &urgent]);
    check("a4", "a claim was released");
    repo.coord_ok(&["--agent", "z", "task", "claim", &dep]);
    repo.coord_ok(&["--agent", "z", "task", "done", &dep]);
    assert_eq!(first_ready(), waiting);
    check("a5", "a dependency was finished");
    let plain = first_ready();
    let last = array(repo.coord_json(&["ready"]))
        .last()
        .and_then(|t| field(t, "id").map(str::to_string))
        .expect("a ready task");
    assert_ne!(plain, last);
    repo.coord_ok(&["task", "edit", &last, "--priority", "0"]);
    check("a6", "a priority was raised");
    let finished = claim_of(&repo, "a1");
    repo.coord_ok(&["--agent", "a1", "task", "done", &finished]);
    repo.coord_ok(&["task", "reopen", &finished]);
    check("a7", "a task was finished and reopened");
    let cache = repo.path.join(".git/coord/cache");
    for entry in std::fs::read_dir(&cache).expect("the cache directory") {
        let path = entry.expect("an entry").path();
        if path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("claimable"))
        {
            std::fs::write(&path, "git-coord claimable 1\ntree zzzz\nnonsense\n").expect("write");
        }
    }
    check("a8", "the claim cache was damaged");
    std::fs::remove_dir_all(&cache).expect("remove the cache");
    check("a9", "the caches were removed");
}

/// The one task `agent` has claimed, done or not.
fn claim_of(repo: &TestRepo, agent: &str) -> String {
    let all = repo.list();
    let mine: Vec<&Value> = all
        .iter()
        .filter(|t| field(t, "assignee") == Some(agent))
        .collect();
    assert_eq!(mine.len(), 1, "{agent} holds {mine:?}");
    field(mine[0], "id").expect("an id").to_string()
}

/// The subjects of the messages in `agent`'s inbox.
fn inbox_subjects(repo: &TestRepo, agent: &str) -> Vec<String> {
    let inbox = json(&repo.coord_as_ok(agent, &["inbox", "--json"]));
    inbox["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["subject"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn a_tasks_creator_hears_when_it_is_done_or_blocked_unless_told_not_to() {
    let repo = TestRepo::init();
    let fix = field(
        &repo.coord_json(&["--agent", "alice", "task", "new", "Fix it"]),
        "id",
    )
    .expect("an id")
    .to_string();
    let stuck = field(
        &repo.coord_json(&["--agent", "alice", "task", "new", "Stuck"]),
        "id",
    )
    .expect("an id")
    .to_string();
    repo.coord_as_ok("bob", &["task", "claim", &fix]);
    repo.coord_as_ok(
        "bob",
        &["task", "done", &fix, "--summary", "patched the parser"],
    );
    repo.coord_as_ok(
        "bob",
        &["task", "block", &stuck, "--reason", "needs the new API"],
    );
    let subjects = inbox_subjects(&repo, "alice");
    assert!(
        subjects.contains(&format!("Task {fix} is done: Fix it")),
        "{subjects:?}"
    );
    assert!(
        subjects.contains(&format!("Task {stuck} is blocked: Stuck")),
        "{subjects:?}"
    );
    let inbox = json(&repo.coord_as_ok("alice", &["inbox", "--json"]));
    let done = inbox["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .find(|m| m["subject"].as_str().is_some_and(|s| s.contains("is done")))
        .expect("the done message");
    let id = done["id"].as_str().expect("an id");
    let text = repo.coord_as_ok("alice", &["read", id]);
    assert!(
        text.contains("patched the parser") && text.contains("bob"),
        "{text}"
    );

    // --quiet, the creator's own work, and notify_creator: false tell no one.
    let quiet = field(
        &repo.coord_json(&["--agent", "alice", "task", "new", "Quiet"]),
        "id",
    )
    .expect("an id")
    .to_string();
    repo.coord_as_ok("bob", &["task", "done", &quiet, "--quiet"]);
    let own = field(
        &repo.coord_json(&["--agent", "alice", "task", "new", "Own"]),
        "id",
    )
    .expect("an id")
    .to_string();
    repo.coord_as_ok("alice", &["task", "done", &own]);
    repo.write_file(".coord.yaml", "notify_creator: false\n");
    let off = field(
        &repo.coord_json(&["--agent", "alice", "task", "new", "Off"]),
        "id",
    )
    .expect("an id")
    .to_string();
    repo.coord_as_ok("bob", &["task", "done", &off]);
    // Only the blocked notice is still unread: the done one was read above.
    let subjects = inbox_subjects(&repo, "alice");
    assert_eq!(subjects, [format!("Task {stuck} is blocked: Stuck")]);
}

#[test]
fn a_tasks_followers_are_told_when_it_is_done_and_stop_when_they_unfollow() {
    let repo = TestRepo::init();
    let id = field(
        &repo.coord_json(&["--agent", "alice", "task", "new", "Ship it"]),
        "id",
    )
    .expect("an id")
    .to_string();
    repo.coord_as_ok("carol", &["task", "follow", &id]);
    repo.coord_as_ok("dave", &["task", "follow", &id]);
    repo.coord_as_ok("dave", &["task", "follow", &id]); // twice is once
    repo.coord_as_ok("erin", &["task", "follow", &id]);
    repo.coord_as_ok("erin", &["task", "unfollow", &id]);
    let shown = repo.show(&id);
    assert_eq!(shown["followers"], serde_json::json!(["carol", "dave"]));
    assert!(
        repo.coord_ok(&["task", "show", &id])
            .contains("followed: carol, dave")
    );
    // The fast summary reader still reads the task: it is ready, and listed.
    let ready = repo.coord_ok(&["ready"]);
    assert!(ready.contains("Ship it"), "{ready}");

    repo.coord_as_ok("dave", &["task", "claim", &id]);
    repo.coord_as_ok("dave", &["task", "done", &id, "--summary", "shipped"]);
    let done = format!("Task {id} is done: Ship it");
    for who in ["alice", "carol"] {
        assert!(inbox_subjects(&repo, who).contains(&done), "{who}");
    }
    assert!(
        inbox_subjects(&repo, "dave").is_empty(),
        "not the one who did it"
    );
    assert!(inbox_subjects(&repo, "erin").is_empty(), "erin unfollowed");
}
