//! Checkpoints: agent branches merged back behind gates, conflicts left out with a task and a
//! message, the record, rollback without losing commits, and refreshing agent branches.

mod common;

use std::path::{Path, PathBuf};

use serde_json::Value;

use common::{TestRepo, array, json, ok, stdout};

fn spawn(repo: &TestRepo, name: &str) -> PathBuf {
    let agent = repo.coord_json(&["agent", "spawn", name, "--role", "dev"]);
    PathBuf::from(agent["worktree"].as_str().expect("a worktree"))
}

fn commit_in(repo: &TestRepo, dir: &Path, path: &str, text: &str) -> String {
    std::fs::write(dir.join(path), text).expect("written");
    ok(repo.git_in(dir, &["add", path]), "add");
    ok(
        repo.git_in(dir, &["commit", "-q", "-m", &format!("change {path}")]),
        "commit",
    );
    stdout(&ok(repo.git_in(dir, &["rev-parse", "HEAD"]), "rev-parse"))
        .trim()
        .to_string()
}

fn main_tip(repo: &TestRepo) -> String {
    repo.git_ok(&["rev-parse", "main"])
}

fn checkpoint(repo: &TestRepo, args: &[&str]) -> (Option<i32>, Value) {
    let mut all = vec!["checkpoint"];
    all.extend_from_slice(args);
    all.push("--json");
    let out = repo.coord(&all);
    let text = stdout(&out);
    let first = text.lines().next().unwrap_or("{}");
    (out.status.code(), json(first))
}

fn setup() -> (TestRepo, PathBuf, PathBuf) {
    let repo = TestRepo::init();
    repo.write_file("shared.txt", "base\n");
    ok(repo.git(&["add", "shared.txt"]), "add");
    ok(repo.git(&["commit", "-q", "-m", "base"]), "commit");
    let a = spawn(&repo, "a");
    let b = spawn(&repo, "b");
    (repo, a, b)
}

#[test]
fn two_branches_merge_behind_a_passing_gate_and_nothing_moves_when_a_gate_fails() {
    let (repo, a, b) = setup();
    let a_commit = commit_in(&repo, &a, "a.txt", "a\n");
    let b_commit = commit_in(&repo, &b, "b.txt", "b\n");
    let before = main_tip(&repo);

    // A failing gate: nothing moves, and the failure is recorded.
    let (code, report) = checkpoint(
        &repo,
        &[
            "--gate",
            "test -f a.txt",
            "--gate",
            "echo broken >&2; exit 4",
        ],
    );
    assert_eq!(code, Some(1));
    assert_eq!(report["checkpoint"]["outcome"], "gates-failed");
    assert_eq!(main_tip(&repo), before, "main did not move");
    let gates = array(report["checkpoint"]["gates"].clone());
    assert_eq!(
        (gates[0]["passed"].clone(), gates[1]["passed"].clone()),
        (true.into(), false.into())
    );
    assert_eq!(gates[1]["exit_code"], 4);
    assert!(
        gates[1]["output_tail"]
            .as_str()
            .expect("tail")
            .contains("broken")
    );

    // A passing gate: main moves to a merge holding both, in the main worktree too.
    let (code, report) = checkpoint(&repo, &["--gate", "test -f a.txt && test -f b.txt"]);
    assert_eq!(code, Some(0), "{report}");
    let c = &report["checkpoint"];
    assert_eq!(c["outcome"], "moved");
    let after = main_tip(&repo);
    assert_eq!(c["after"], after.as_str());
    for commit in [&a_commit, &b_commit, &before] {
        ok(
            repo.git(&["merge-base", "--is-ancestor", commit, "main"]),
            "both branches are in main",
        );
    }
    assert!(repo.path.join("a.txt").exists() && repo.path.join("b.txt").exists());
    assert!(
        repo.git_ok(&["status", "--porcelain"]).is_empty(),
        "the main worktree is clean"
    );

    // Recorded, listed and shown.
    let list = array(repo.coord_json(&["checkpoint", "list"]));
    assert_eq!(list.len(), 2);
    assert_eq!(list[1]["seq"], 2);
    let merged: Vec<String> = array(list[1]["merged"].clone())
        .iter()
        .map(|m| m["agent"].as_str().expect("agent").to_string())
        .collect();
    assert_eq!(merged, ["a", "b"]);
    let shown = repo.coord_ok(&["checkpoint", "show", "2"]);
    assert!(
        shown.contains("merged:  agent/a") && shown.contains("gate:    passed"),
        "{shown}"
    );
    let doc = repo.git_ok(&["show", "refs/coord/checkpoints:checkpoints/000002.yaml"]);
    assert!(doc.contains("outcome: moved"), "{doc}");
}

#[test]
fn a_conflicting_branch_is_left_out_with_a_task_and_a_message_while_the_other_goes_in() {
    let (repo, a, b) = setup();
    commit_in(&repo, &a, "shared.txt", "from a\n");
    commit_in(&repo, &b, "shared.txt", "from b\n");
    let c_dir = spawn(&repo, "c");
    commit_in(&repo, &c_dir, "c.txt", "c\n");
    let (code, report) = checkpoint(&repo, &[]);
    assert_eq!(code, Some(0), "{report}");
    let c = &report["checkpoint"];
    let merged: Vec<String> = array(c["merged"].clone())
        .iter()
        .map(|m| m["agent"].as_str().expect("a").to_string())
        .collect();
    assert_eq!(merged, ["a", "c"]);
    let left = &array(c["conflicts"].clone())[0];
    assert_eq!(left["agent"], "b");
    assert_eq!(left["paths"], serde_json::json!(["shared.txt"]));
    let diffs = array(report["diffs"].clone());
    assert!(
        diffs[0]["branch"]
            .as_str()
            .expect("diff")
            .contains("+from b")
    );
    assert!(
        diffs[0]["integration"]
            .as_str()
            .expect("diff")
            .contains("+from a")
    );
    let task_id = left["resolve_task"]
        .as_str()
        .expect("a resolve task")
        .to_string();
    let task = repo.show(&task_id);
    assert_eq!(task["assignee"], "b");
    assert_eq!(task["state"], "claimed");
    assert!(
        task["description"]
            .as_str()
            .expect("text")
            .contains("shared.txt")
    );
    let inbox = json(&repo.coord_as_ok("b", &["inbox", "--json"]));
    let msg = &array(inbox["messages"].clone())[0];
    assert_eq!(msg["task"], task_id.as_str());
    assert_eq!(
        std::fs::read_to_string(repo.path.join("shared.txt")).expect("file"),
        "from a\n"
    );
    // Asking again reuses the open task.
    let (_, again) = checkpoint(&repo, &[]);
    assert_eq!(
        array(again["checkpoint"]["conflicts"].clone())[0]["resolve_task"],
        task_id.as_str()
    );
}

#[test]
fn rollback_restores_an_earlier_checkpoint_without_losing_a_commit() {
    let (repo, a, b) = setup();
    commit_in(&repo, &a, "a.txt", "a\n");
    let (_, first) = checkpoint(&repo, &["--agents", "a"]);
    let first_after = first["checkpoint"]["after"]
        .as_str()
        .expect("after")
        .to_string();
    let b_commit = commit_in(&repo, &b, "b.txt", "b\n");
    let (_, second) = checkpoint(&repo, &["--agents", "b"]);
    let second_after = second["checkpoint"]["after"]
        .as_str()
        .expect("after")
        .to_string();
    assert!(repo.path.join("b.txt").exists());

    let rolled = json(&repo.coord_ok(&["checkpoint", "rollback", "1", "--json"]));
    assert_eq!(rolled["outcome"], "rolled-back");
    assert_eq!(rolled["rollback_of"], 1);
    assert_eq!(
        repo.git_ok(&["rev-parse", "main^{tree}"]),
        repo.git_ok(&["rev-parse", &format!("{first_after}^{{tree}}")])
    );
    assert!(!repo.path.join("b.txt").exists(), "the worktree follows");
    for commit in [&second_after, &b_commit, &first_after] {
        ok(
            repo.git(&["merge-base", "--is-ancestor", commit, "main"]),
            "no commit is lost",
        );
    }
    let err = common::fails(&repo.coord(&["checkpoint", "rollback", "1"]), 1);
    assert!(err.contains("already holds"), "{err}");
    common::fails(&repo.coord(&["checkpoint", "rollback", "99"]), 1);
}

#[test]
fn a_checkpoint_that_moved_the_branch_reports_no_error_when_a_refresh_fails_after() {
    let (repo, a, _) = setup();
    commit_in(&repo, &a, "a.txt", "a\n");
    // a's worktree can no longer be proven its own: refreshing it fails, after the move.
    std::fs::write(a.join(".git"), "not a pointer\n").expect("written");
    let (code, report) = checkpoint(&repo, &["--agents", "a", "--refresh"]);
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["checkpoint"]["outcome"], "moved");
    assert_eq!(report["recorded"], true);
    let refreshed = report["refreshed"][0][1]
        .as_str()
        .expect("what refresh did");
    assert!(refreshed.starts_with("not refreshed:"), "{report}");
    assert_eq!(report["warnings"], serde_json::json!([]));
    assert!(repo.path.join("a.txt").exists(), "main holds a's work");
}

#[test]
fn refresh_brings_clean_agent_branches_up_to_the_integration_branch() {
    let (repo, a, b) = setup();
    commit_in(&repo, &a, "a.txt", "a\n");
    let (_, report) = checkpoint(&repo, &["--agents", "a", "--refresh"]);
    assert_eq!(report["checkpoint"]["outcome"], "moved");
    // b has no changes: fast-forwarded. With uncommitted changes: left alone.
    let out = repo.coord_ok(&["agent", "refresh", "b"]);
    assert!(out.contains("fast-forwarded"), "{out}");
    assert!(b.join("a.txt").exists());
    // Files git-coord saved there (a message's attachments) do not stop a refresh.
    std::fs::write(repo.tmp().join("repro.sh"), "echo crash\n").expect("written");
    let sent = repo.coord_json(&[
        "send",
        "--to",
        "b",
        "--attach",
        repo.tmp().join("repro.sh").to_str().expect("utf-8"),
        "see the repro",
    ]);
    let id = sent["id"].as_str().expect("an id").to_string();
    ok(
        repo.command(common::BIN, &b)
            .args(["read", &id, "--save-attachments", "from-a"])
            .output()
            .expect("runs"),
        "read --save-attachments",
    );
    assert!(b.join("from-a/repro.sh").exists());
    commit_in(&repo, &a, "a2.txt", "a2\n");
    checkpoint(&repo, &["--agents", "a"]);
    let out = repo.coord_ok(&["agent", "refresh", "b"]);
    assert!(out.contains("fast-forwarded"), "{out}");
    assert!(b.join("a2.txt").exists());
    assert!(b.join("from-a/repro.sh").exists(), "the saved files stay");
    // Uncommitted changes to a tracked file: left alone.
    std::fs::write(b.join("shared.txt"), "edited\n").expect("written");
    commit_in(&repo, &a, "a3.txt", "a3\n");
    checkpoint(&repo, &["--agents", "a"]);
    let out = repo.coord_ok(&["agent", "refresh", "b"]);
    assert!(out.contains("uncommitted changes"), "{out}");
    assert!(!b.join("a3.txt").exists());
}

#[test]
fn bad_checkpoint_requests_change_nothing() {
    let (repo, a, _) = setup();
    commit_in(&repo, &a, "a.txt", "a\n");
    let before = main_tip(&repo);
    let tip = repo.ref_tip("refs/coord/checkpoints");
    let err = common::fails(&repo.coord(&["checkpoint", "--into", "nope"]), 1);
    assert!(err.contains("no such branch"), "{err}");
    common::fails(&repo.coord(&["checkpoint", "--agents", "ghost"]), 1);
    // The main worktree has uncommitted changes to a tracked file: refused before the gates
    // run, nothing moved.
    std::fs::write(repo.path.join("shared.txt"), "dirty\n").expect("written");
    let marker = repo.tmp().join("gate-ran");
    let gate = format!("touch {}", marker.display());
    let err = common::fails(&repo.coord(&["checkpoint", "--gate", &gate]), 1);
    assert!(err.contains("uncommitted changes"), "{err}");
    assert!(!marker.exists(), "the gate ran");
    assert_eq!(main_tip(&repo), before);
    assert_eq!(repo.ref_tip("refs/coord/checkpoints"), tip);
    // A dry run merges in memory only.
    std::fs::write(repo.path.join("shared.txt"), "base\n").expect("written");
    let (code, dry) = checkpoint(&repo, &["--dry-run", "--gate", "false"]);
    assert_eq!(code, Some(0));
    assert_eq!(dry["recorded"], false);
    assert_eq!(main_tip(&repo), before);
    assert_eq!(repo.ref_tip("refs/coord/checkpoints"), tip);
    // In words: what would happen, never `moved`.
    let said = repo.coord_ok(&["checkpoint", "--dry-run"]);
    assert!(
        said.starts_with("dry run: would move main once the gates pass (no gate was run; nothing was moved or recorded)"),
        "{said}"
    );
    assert!(!said.lines().any(|l| l.ends_with(" moved")), "{said}");
    assert_eq!(main_tip(&repo), before);
}

#[test]
fn rollback_undo_takes_the_branch_back_to_before_the_first_checkpoint() {
    let (repo, a, _b) = setup();
    let base_tree = repo.git_ok(&["rev-parse", "main^{tree}"]);
    let a_commit = commit_in(&repo, &a, "a.txt", "a\n");
    checkpoint(&repo, &["--agents", "a"]);
    assert!(repo.path.join("a.txt").exists());
    // `rollback 1` means the state after checkpoint 1, which main already has: the error says how
    // to undo it instead, and nothing changes.
    let tip = main_tip(&repo);
    let err = common::fails(&repo.coord(&["checkpoint", "rollback", "1"]), 1);
    assert!(err.contains("already holds the state after it"), "{err}");
    assert!(
        err.contains("git coord checkpoint rollback --undo 1"),
        "{err}"
    );
    assert_eq!(main_tip(&repo), tip);

    let said = repo.coord_ok(&["checkpoint", "rollback", "--undo", "1"]);
    assert!(
        said.starts_with("checkpoint 1 is undone on main: commit "),
        "{said}"
    );
    assert_eq!(repo.git_ok(&["rev-parse", "main^{tree}"]), base_tree);
    assert!(!repo.path.join("a.txt").exists(), "the worktree follows");
    ok(
        repo.git(&["merge-base", "--is-ancestor", &a_commit, "main"]),
        "the undone work stays in the history",
    );
    let record = repo.coord_json(&["checkpoint", "show", "2"]);
    assert_eq!(record["outcome"], "rolled-back");
    assert_eq!(record["rollback_of"], 1);
    assert_eq!(record["undo"], true);
    let subject = repo.git_ok(&["log", "-1", "--format=%s", "main"]);
    assert_eq!(subject, "checkpoint: undo checkpoint 1 on main");
    // Undoing it again: none of its changes is left.
    let err = common::fails(&repo.coord(&["checkpoint", "rollback", "--undo", "1"]), 1);
    assert!(err.contains("none of its changes is left in main"), "{err}");
}

#[test]
fn a_killed_checkpoint_leaves_a_gate_worktree_that_the_next_one_removes() {
    let (repo, a, _b) = setup();
    commit_in(&repo, &a, "a.txt", "a\n");
    let gates = repo.path.join(".git/coord/gates");
    // The gate kills the checkpoint that runs it, as a kill from outside would.
    let killed = repo.coord(&["checkpoint", "--gate", "kill -9 $PPID"]);
    assert_eq!(killed.status.code(), None, "the checkpoint was killed");
    let left: Vec<PathBuf> = std::fs::read_dir(&gates)
        .expect("the gates directory")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(left.len(), 1, "{left:?}");
    let worktrees = repo.git_ok(&["worktree", "list", "--porcelain"]);
    let left_name = left[0]
        .file_name()
        .expect("name")
        .to_string_lossy()
        .to_string();
    assert!(worktrees.contains(&left_name), "{worktrees}");

    // A gate directory of a checkpoint still running (this process stands in for it) is kept.
    let running = gates.join(format!("0123456789ab-{}", std::process::id()));
    std::fs::create_dir(&running).expect("made");
    // One whose pid now names another process (this one, started at another time) is not.
    let reused = gates.join(format!("0123456789ab-{}.1", std::process::id()));
    std::fs::create_dir(&reused).expect("made");

    let (code, report) = checkpoint(&repo, &["--gate", "test -f a.txt"]);
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["checkpoint"]["outcome"], "moved");
    assert!(!left[0].exists(), "the stale gate worktree is removed");
    let worktrees = repo.git_ok(&["worktree", "list", "--porcelain"]);
    assert!(
        !worktrees.contains(&left_name),
        "and unregistered: {worktrees}"
    );
    assert!(running.exists(), "the running checkpoint's gate is kept");
    assert!(!reused.exists(), "a gate named by a reused pid is removed");
}

#[test]
fn a_gate_worktree_left_locked_initializing_without_its_directory_is_removed() {
    let (repo, a, _b) = setup();
    commit_in(&repo, &a, "a.txt", "a\n");
    // What a checkpoint killed inside `git worktree add` leaves: a registration locked
    // "initializing" whose directory is gone, which `git worktree prune` keeps.
    let gates = repo.path.join(".git/coord/gates");
    std::fs::create_dir_all(&gates).expect("the gates directory");
    let dead = gates.join("0123456789ab-999999999");
    let shown = dead.display().to_string();
    repo.git_ok(&["worktree", "add", "--detach", "--quiet", &shown, "HEAD"]);
    repo.git_ok(&["worktree", "lock", "--reason", "initializing", &shown]);
    std::fs::remove_dir_all(&dead).expect("the directory goes");
    repo.git_ok(&["worktree", "prune"]);
    assert!(
        repo.git_ok(&["worktree", "list"])
            .contains("0123456789ab-999999999")
    );

    let (code, report) = checkpoint(&repo, &["--gate", "test -f a.txt"]);
    assert_eq!(code, Some(0), "{report}");
    let worktrees = repo.git_ok(&["worktree", "list", "--porcelain"]);
    assert!(!worktrees.contains("0123456789ab-999999999"), "{worktrees}");

    // Checkpoints killed at random instants, many rounds: the next gated one succeeds and no
    // gate worktree stays registered.
    let mut jitter = common::Jitter::new();
    for round in 0..12 {
        commit_in(&repo, &a, &format!("r{round}.txt"), "r\n");
        let mut child = repo
            .coord_cmd(&["checkpoint", "--gate", "sleep 0.05"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("a checkpoint starts");
        std::thread::sleep(std::time::Duration::from_millis(jitter.below(120)));
        let _ = child.kill();
        let _ = child.wait();
    }
    commit_in(&repo, &a, "last.txt", "last\n");
    let (code, report) = checkpoint(&repo, &["--gate", "test -f last.txt"]);
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["checkpoint"]["outcome"], "moved", "{report}");
    let worktrees = repo.git_ok(&["worktree", "list", "--porcelain"]);
    assert!(!worktrees.contains("coord/gates"), "{worktrees}");
}

#[test]
fn untracked_files_a_checkpoint_would_overwrite_are_named_and_nothing_moves() {
    let (repo, a, _b) = setup();
    std::fs::create_dir(a.join("d")).expect("made");
    commit_in(&repo, &a, "a.txt", "a\n");
    commit_in(&repo, &a, "d/b.txt", "b\n");
    // The same names, untracked, in the main worktree where main is checked out.
    repo.write_file("a.txt", "mine\n");
    repo.write_file("d/b.txt", "mine too\n");
    let before = main_tip(&repo);
    let err = common::fails(&repo.coord(&["checkpoint"]), 1);
    assert!(
        err.contains("would be overwritten by merge: a.txt, d/b.txt;"),
        "{err}"
    );
    assert!(
        err.contains("nothing was moved: move or remove those files"),
        "{err}"
    );
    assert_eq!(main_tip(&repo), before);
    assert_eq!(
        std::fs::read_to_string(repo.path.join("a.txt")).expect("file"),
        "mine\n"
    );
}

#[test]
fn a_branch_changing_a_path_leased_to_another_agent_is_left_out_even_with_hooks_off() {
    let (repo, a, b) = setup();
    repo.coord_ok(&["hooks", "install"]);
    let lease = common::at_json(&repo, &a, &["lease", "acquire", "shared.txt"]);
    let lease_id = lease["id"].as_str().expect("a lease id").to_string();
    let until = lease["expires"].as_str().expect("an expiry").to_string();
    let a_commit = commit_in(&repo, &a, "shared.txt", "a's own\n");
    // b commits to a's path with the hooks off, as Gemini CLI's shell does.
    std::fs::write(b.join("shared.txt"), "from b\n").expect("written");
    ok(repo.git_in(&b, &["add", "shared.txt"]), "add");
    ok(
        repo.git_in(
            &b,
            &[
                "-c",
                "core.hooksPath=/dev/null",
                "commit",
                "-q",
                "-m",
                "b edits shared",
            ],
        ),
        "a commit with the hooks off",
    );
    let offending = repo.git_ok(&["rev-parse", "agent/b"]);
    commit_in(&repo, &b, "b.txt", "b\n");

    let (code, report) = checkpoint(&repo, &[]);
    assert_eq!(code, Some(0), "{report}");
    let c = &report["checkpoint"];
    assert_eq!(array(c["merged"].clone()).len(), 1, "{report}");
    assert_eq!(c["merged"][0]["agent"], "a");
    let refusal = &c["lease_refusals"][0];
    assert_eq!(refusal["agent"], "b", "{report}");
    assert_eq!(refusal["branch"], "agent/b");
    let breaches = array(refusal["breaches"].clone());
    assert_eq!(breaches.len(), 1, "{report}");
    let breach = &breaches[0];
    assert_eq!(breach["path"], "shared.txt");
    assert_eq!(breach["holder"], "a");
    assert_eq!(breach["lease"], lease_id.as_str());
    assert_eq!(breach["pattern"], "shared.txt");
    assert_eq!(breach["until"], until.as_str());
    assert_eq!(breach["commit"], offending.as_str());
    assert_eq!(breach["subject"], "b edits shared");
    ok(
        repo.git(&["merge-base", "--is-ancestor", &a_commit, "main"]),
        "a's work went in",
    );
    assert!(
        !repo
            .git(&["merge-base", "--is-ancestor", &offending, "main"])
            .status
            .success(),
        "b's work stayed out"
    );
    assert!(!repo.path.join("b.txt").exists());
    // The record keeps it.
    let recorded = repo.coord_json(&["checkpoint", "show", "1"]);
    assert_eq!(recorded["lease_refusals"][0]["agent"], "b");

    // b is told, once for the same branch tip.
    let said = repo.coord_ok(&["checkpoint"]);
    assert!(
        said.contains("left out: agent/b")
            && said.contains(&format!(
                "shared.txt: leased to a until {until} (lease {lease_id}, pattern 'shared.txt'); changed by {} b edits shared",
                &offending[..12]
            )),
        "{said}"
    );
    let inbox = json(&repo.coord_as_ok("b", &["inbox", "--json"]));
    let told: Vec<Value> = array(inbox["messages"].clone())
        .into_iter()
        .filter(|m| {
            m["subject"]
                .as_str()
                .is_some_and(|s| s.starts_with("Checkpoint left agent/b"))
        })
        .collect();
    assert_eq!(told.len(), 1, "{inbox}");
    let id = told[0]["id"].as_str().expect("an id");
    let body = repo.coord_as_ok("b", &["read", id]);
    assert!(
        body.contains(&lease_id) && body.contains(&offending[..12]) && body.contains(&until),
        "{body}"
    );

    // Released: the next checkpoint takes b's branch (it conflicts with a's change now, so it is
    // left out for that instead, with a task, no longer for the lease).
    common::at(&repo, &a, &["lease", "release", &lease_id]);
    let (code, report) = checkpoint(&repo, &[]);
    assert_eq!(code, Some(0), "{report}");
    assert!(
        report["checkpoint"].get("lease_refusals").is_none(),
        "{report}"
    );
    assert_eq!(report["checkpoint"]["conflicts"][0]["agent"], "b");
}

/// A role added to .coord.yaml by hand, as a human would on main.
const ROLES: &str = "roles:\n  - name: dev\n  - name: qa\n";

/// Commits `path` on main in the main worktree, as a human would, and returns the commit.
fn human_commit(repo: &TestRepo, path: &str, text: &str, subject: &str) -> String {
    repo.write_file(path, text);
    ok(repo.git(&["add", path]), "add");
    ok(repo.git(&["commit", "-q", "-m", subject]), "commit");
    main_tip(repo)
}

fn records(repo: &TestRepo) -> usize {
    array(repo.coord_json(&["checkpoint", "list"])).len()
}

#[test]
fn undo_reverts_one_checkpoint_and_keeps_a_human_commit_made_after_it() {
    let (repo, a, b) = setup();
    commit_in(&repo, &a, "a.txt", "a\n");
    checkpoint(&repo, &["--agents", "a"]);
    let human = human_commit(&repo, ".coord.yaml", ROLES, "add the qa role");
    commit_in(&repo, &b, "b.txt", "b\n");
    checkpoint(&repo, &["--agents", "b"]);

    let undone = json(&repo.coord_ok(&["checkpoint", "rollback", "--undo", "1", "--json"]));
    assert_eq!(undone["undo"], true);
    assert_eq!(undone["rollback_of"], 1);
    assert!(
        !repo.path.join("a.txt").exists(),
        "checkpoint 1's change is gone"
    );
    assert!(repo.path.join("b.txt").exists(), "checkpoint 2's stays");
    assert_eq!(
        repo.git_ok(&["show", "main:.coord.yaml"]) + "\n",
        ROLES,
        "the human's change stays"
    );
    ok(
        repo.git(&["merge-base", "--is-ancestor", &human, "main"]),
        "and so does the commit",
    );
    assert_eq!(
        repo.git_ok(&["log", "-1", "--format=%s", "main"]),
        "checkpoint: undo checkpoint 1 on main"
    );
    assert!(repo.git_ok(&["status", "--porcelain"]).is_empty());
}

#[test]
fn undo_that_conflicts_with_later_commits_is_refused_and_moves_nothing() {
    let (repo, a, _b) = setup();
    commit_in(&repo, &a, "a.txt", "a\n");
    checkpoint(&repo, &["--agents", "a"]);
    human_commit(&repo, "a.txt", "a, edited by hand\n", "edit a.txt by hand");
    let (tip, count) = (main_tip(&repo), records(&repo));

    let err = common::fails(&repo.coord(&["checkpoint", "rollback", "--undo", "1"]), 3);
    assert!(
        err.contains("undoing checkpoint 1 conflicts with what main holds now, in a.txt"),
        "{err}"
    );
    assert!(err.contains("nothing was changed"), "{err}");
    assert!(err.contains("git apply --3way"), "{err}");
    assert_eq!(main_tip(&repo), tip);
    assert_eq!(records(&repo), count, "nothing recorded");
    assert!(repo.git_ok(&["status", "--porcelain"]).is_empty());
    assert_eq!(
        std::fs::read_to_string(repo.path.join("a.txt")).expect("file"),
        "a, edited by hand\n"
    );
}

#[test]
fn rollback_refuses_to_drop_a_commit_no_checkpoint_made_until_forced() {
    let (repo, a, b) = setup();
    commit_in(&repo, &a, "a.txt", "a\n");
    let (_, first) = checkpoint(&repo, &["--agents", "a"]);
    let first_after = first["checkpoint"]["after"]
        .as_str()
        .expect("after")
        .to_string();
    let human = human_commit(&repo, ".coord.yaml", ROLES, "add the qa role");
    commit_in(&repo, &b, "b.txt", "b\n");
    checkpoint(&repo, &["--agents", "b"]);
    let (tip, count) = (main_tip(&repo), records(&repo));

    // Refused: it names the commit and both ways on; nothing moves.
    let err = common::fails(&repo.coord(&["checkpoint", "rollback", "1"]), 3);
    assert!(
        err.contains(&format!("{} add the qa role", &human[..12])),
        "{err}"
    );
    assert!(err.contains("nothing was changed"), "{err}");
    assert!(
        err.contains("`git coord checkpoint rollback 1 --force`"),
        "{err}"
    );
    assert!(
        err.contains("`git coord checkpoint rollback --undo 2`"),
        "{err}"
    );
    assert!(
        !err.contains("checkpoint: merge"),
        "checkpoint commits are not listed: {err}"
    );
    assert_eq!(main_tip(&repo), tip);
    assert_eq!(records(&repo), count);
    // --force and --undo do not go together.
    common::fails(
        &repo.coord(&["checkpoint", "rollback", "1", "--undo", "--force"]),
        2,
    );

    // Forced: back to checkpoint 1's content, the dropped commit named, still in the history.
    let rolled = json(&repo.coord_ok(&["checkpoint", "rollback", "1", "--force", "--json"]));
    assert_eq!(
        rolled["dropped"],
        serde_json::json!([{"commit": human, "subject": "add the qa role"}])
    );
    assert_eq!(
        repo.git_ok(&["rev-parse", "main^{tree}"]),
        repo.git_ok(&["rev-parse", &format!("{first_after}^{{tree}}")])
    );
    assert!(!repo.path.join(".coord.yaml").exists());
    ok(
        repo.git(&["merge-base", "--is-ancestor", &human, "main"]),
        "no commit is lost",
    );
    let body = repo.git_ok(&["log", "-1", "--format=%B", "main"]);
    assert!(
        body.contains(&format!("- {} add the qa role", &human[..12])),
        "{body}"
    );
}

#[test]
fn a_forged_record_neither_undoes_into_a_foreign_state_nor_hides_a_human_commit() {
    let (repo, a, _b) = setup();
    commit_in(&repo, &a, "a.txt", "a\n");
    checkpoint(&repo, &["--agents", "a"]);
    let human = human_commit(&repo, ".coord.yaml", ROLES, "add the qa role");
    let parent = repo.git_ok(&["rev-parse", "main^"]);
    // A commit main never held, with a payload.
    let evil_tree = repo.git_ok(&["mktree"]);
    let evil = repo.git_ok(&["commit-tree", &evil_tree, "-m", "payload"]);
    let forge = |seq: u64, before: &str, after: &str| {
        let record = format!(
            "format: 1\nseq: {seq}\ninto: main\noutcome: moved\nbefore: {before}\nafter: {after}\nat: 2026-01-01T00:00:00Z\nby: mallory\n"
        );
        repo.put_document_in(
            "refs/coord/checkpoints",
            &format!("checkpoints/{seq:06}.yaml"),
            record.as_bytes(),
        );
    };
    // Its `after` is main's own, its `before` is not: undoing it would bring the payload in.
    forge(2, &evil, &human);
    let tip = main_tip(&repo);
    let err = common::fails(&repo.coord(&["checkpoint", "rollback", "--undo", "2"]), 1);
    assert!(err.contains("never held"), "{err}");
    assert_eq!(main_tip(&repo), tip);
    // A record that claims the human's commit as a checkpoint's hides nothing: its subject
    // does not say it is one.
    forge(3, &parent, &human);
    let err = common::fails(&repo.coord(&["checkpoint", "rollback", "1"]), 3);
    assert!(
        err.contains(&format!("{} add the qa role", &human[..12])),
        "{err}"
    );
    assert_eq!(main_tip(&repo), tip);
}

#[test]
fn a_failing_gate_is_told_to_the_agent_whose_branch_was_merged() {
    let (repo, a, _b) = setup();
    commit_in(&repo, &a, "a.txt", "a\n");
    let (code, report) = checkpoint(&repo, &["--gate", "echo 'test_parser failed'; exit 4"]);
    assert_ne!(code, Some(0), "{report}");
    assert_eq!(report["checkpoint"]["outcome"], "gates-failed", "{report}");
    let inbox = common::json(&repo.coord_as_ok("a", &["inbox", "--json"]));
    let told = inbox["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .find(|m| {
            m["subject"]
                .as_str()
                .is_some_and(|s| s.contains("failed on your branch"))
        })
        .unwrap_or_else(|| panic!("a was not told: {inbox}"))
        .clone();
    let text = repo.coord_as_ok("a", &["read", told["id"].as_str().expect("an id")]);
    assert!(
        text.contains("test_parser failed") && text.contains("exit 4"),
        "{text}"
    );
    // b merged nothing: it hears nothing.
    let b_inbox = common::json(&repo.coord_as_ok("b", &["inbox", "--json"]));
    assert_eq!(b_inbox["unread"], 0, "{b_inbox}");
}
