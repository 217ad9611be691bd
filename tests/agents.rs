//! Agents as a user drives them: spawn into a branch and a worktree, act there with no flag, go
//! stale, get taken over, retire; roles and the project's identity. Every test runs the real
//! binary on a throwaway repository; agent worktrees land beside it, inside the test's temporary
//! directory (`<tmp>/repo.agents/NAME`).

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use common::{
    BIN, TASKS_REF, TestRepo, USER_AGENT, USER_EMAIL, USER_NAME, array, fails, field, ids, json,
    ok, stderr, stdout,
};

const AGENTS_REF: &str = "refs/coord/agents";

/// Where `agent spawn NAME` puts the worktree when no --path is given.
fn default_worktree(repo: &TestRepo, name: &str) -> PathBuf {
    repo.tmp().join("repo.agents").join(name)
}

/// A path with its symbolic links resolved, so paths printed by git and by git-coord compare.
fn canon(path: impl AsRef<Path>) -> PathBuf {
    let path = path.as_ref();
    path.canonicalize().unwrap_or_else(|_| path.to_path_buf())
}

/// `git coord agent spawn NAME --role ROLE EXTRA... --json`, which must succeed.
fn spawn(repo: &TestRepo, name: &str, role: &str, extra: &[&str]) -> Value {
    let mut args = vec!["agent", "spawn", name, "--role", role];
    args.extend_from_slice(extra);
    repo.coord_json(&args)
}

/// `git coord ARGS` run in `dir` (an agent's worktree, say), with no --agent and no
/// GIT_COORD_AGENT: whoever acts is whoever the directory says.
fn coord_at_ok(repo: &TestRepo, dir: &Path, args: &[&str]) -> String {
    let what = format!("git coord {} (in {})", args.join(" "), dir.display());
    stdout(&ok(repo.coord_in(dir, args), &what))
}

fn coord_at_json(repo: &TestRepo, dir: &Path, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    json(&coord_at_ok(repo, dir, &all))
}

/// `git coord whoami --json` in `dir` with extra environment variables.
fn whoami_env(repo: &TestRepo, dir: &Path, env: &[(&str, &str)], flags: &[&str]) -> Value {
    let mut cmd = repo.command(BIN, dir);
    cmd.args(flags).args(["whoami", "--json"]);
    cmd.envs(env.iter().copied());
    json(&stdout(&ok(
        cmd.output().expect("git-coord runs"),
        "whoami",
    )))
}

/// The commit refs/coord/agents points at, or "" while it does not exist.
fn agents_tip(repo: &TestRepo) -> String {
    stdout(&repo.git(&["rev-parse", "-q", "--verify", AGENTS_REF]))
        .trim()
        .to_string()
}

/// The full message of the newest commit of `refname`.
fn last_message(repo: &TestRepo, refname: &str) -> String {
    repo.git_ok(&["log", "-1", "--format=%B", refname])
}

/// The local branches with the commits they point at, one a line.
fn branches(repo: &TestRepo) -> String {
    repo.git_ok(&[
        "for-each-ref",
        "--format=%(refname) %(objectname)",
        "refs/heads/",
    ])
}

fn branch_exists(repo: &TestRepo, branch: &str) -> bool {
    repo.git(&[
        "rev-parse",
        "-q",
        "--verify",
        &format!("refs/heads/{branch}"),
    ])
    .status
    .success()
}

/// Every worktree git knows, as (path, checked-out branch ref), from `git worktree list
/// --porcelain`.
fn worktrees(repo: &TestRepo) -> Vec<(PathBuf, Option<String>)> {
    let text = repo.git_ok(&["worktree", "list", "--porcelain"]);
    let mut out = Vec::new();
    for block in text.split("\n\n") {
        let mut path = None;
        let mut branch = None;
        for line in block.lines() {
            if let Some(p) = line.strip_prefix("worktree ") {
                path = Some(canon(p));
            } else if let Some(b) = line.strip_prefix("branch ") {
                branch = Some(b.to_string());
            }
        }
        if let Some(path) = path {
            out.push((path, branch));
        }
    }
    out
}

/// What a refused command must leave exactly as it was.
#[derive(Debug, PartialEq)]
struct Footprint {
    branches: String,
    worktrees: Vec<(PathBuf, Option<String>)>,
    agents: String,
}

fn footprint(repo: &TestRepo) -> Footprint {
    Footprint {
        branches: branches(repo),
        worktrees: worktrees(repo),
        agents: agents_tip(repo),
    }
}

/// `agent list [--all] --json` as seen from the main worktree (as the git user, who is not an
/// agent, so listing touches nobody's presence).
fn agent_list(repo: &TestRepo, all: bool) -> Vec<Value> {
    let mut args = vec!["agent", "list"];
    if all {
        args.push("--all");
    }
    array(repo.coord_json(&args))
}

fn names(list: &[Value]) -> Vec<String> {
    let mut names: Vec<String> = list
        .iter()
        .map(|a| {
            field(a, "name")
                .expect("every agent has a name")
                .to_string()
        })
        .collect();
    names.sort();
    names
}

fn listed<'a>(list: &'a [Value], name: &str) -> &'a Value {
    list.iter()
        .find(|a| field(a, "name") == Some(name))
        .unwrap_or_else(|| panic!("{name} is not listed: {list:?}"))
}

/// Writes `text` to `path` in the main worktree and commits it.
fn commit_file(repo: &TestRepo, path: &str, text: &str) {
    std::fs::write(repo.path.join(path), text).expect("the file is written");
    repo.git_ok(&["add", path]);
    repo.git_ok(&["commit", "-q", "-m", &format!("add {path}")]);
}

fn last_event(task: &Value) -> Value {
    task["history"]
        .as_array()
        .and_then(|h| h.last())
        .cloned()
        .expect("a history event")
}

/// Puts `bytes` at `path` in refs/coord/agents with git plumbing only, as a hand edit (or, once
/// sync exists, a remote) would.
fn put_agent_document(repo: &TestRepo, path: &str, bytes: &[u8]) {
    let blob = repo.git_with_input(&["hash-object", "-w", "--stdin"], &[], bytes);
    let old = agents_tip(repo);
    assert!(
        !old.is_empty(),
        "put_agent_document needs refs/coord/agents"
    );
    let index = repo.tmp().join("agents-plumbing-index");
    let run = |args: &[&str]| {
        let mut cmd = repo.command("git", &repo.path);
        cmd.args(args).env("GIT_INDEX_FILE", &index);
        stdout(&ok(cmd.output().expect("git runs"), &args.join(" ")))
            .trim()
            .to_string()
    };
    run(&["read-tree", &old]);
    run(&[
        "update-index",
        "--add",
        "--cacheinfo",
        &format!("100644,{blob},{path}"),
    ]);
    let tree = run(&["write-tree"]);
    let new = run(&["commit-tree", &tree, "-p", &old, "-m", "hand edit"]);
    run(&["update-ref", AGENTS_REF, &new, &old]);
    let _ = std::fs::remove_file(&index);
}

#[test]
fn spawned_agents_get_a_branch_a_worktree_and_act_there_with_no_flag() {
    let repo = TestRepo::init();
    let first = repo.git_ok(&["rev-parse", "HEAD"]);
    repo.git_ok(&["commit", "-q", "--allow-empty", "-m", "second"]);
    let head = repo.git_ok(&["rev-parse", "HEAD"]);

    let alice = spawn(&repo, "alice", "dev", &[]);
    let bob = spawn(&repo, "bob", "reviewer", &["--base", &first]);
    let human = format!("{USER_NAME} <{USER_EMAIL}>");
    for (agent, name, role, base, caps) in [
        (&alice, "alice", "dev", &head, json!(["code", "test"])),
        (&bob, "bob", "reviewer", &first, json!(["review"])),
    ] {
        assert_eq!(field(agent, "name"), Some(name), "{agent}");
        assert_eq!(field(agent, "role"), Some(role), "{agent}");
        assert_eq!(
            field(agent, "branch"),
            Some(format!("agent/{name}").as_str())
        );
        assert_eq!(field(agent, "base"), Some(base.as_str()), "{agent}");
        assert_eq!(field(agent, "status"), Some("active"), "{agent}");
        assert_eq!(field(agent, "human"), Some(human.as_str()), "{agent}");
        assert_eq!(field(agent, "created_by"), Some(USER_AGENT), "{agent}");
        assert_eq!(agent["capabilities"], caps, "{agent}");
        assert_eq!(agent["format"], json!(1), "{agent}");
        let dir = default_worktree(&repo, name);
        assert_eq!(
            field(agent, "worktree").map(canon),
            Some(canon(&dir)),
            "{agent}"
        );
    }

    // Git sees both worktrees, each on its own branch, at the base commit.
    let wts = worktrees(&repo);
    assert_eq!(wts.len(), 3, "{wts:?}");
    for (name, base) in [("alice", &head), ("bob", &first)] {
        let dir = default_worktree(&repo, name);
        assert!(dir.is_dir(), "{} is missing", dir.display());
        let branch = format!("refs/heads/agent/{name}");
        assert!(
            wts.contains(&(canon(&dir), Some(branch.clone()))),
            "{name} is not in git worktree list: {wts:?}"
        );
        assert_eq!(repo.git_ok(&["rev-parse", &branch]), *base);
        let at = stdout(&ok(repo.git_in(&dir, &["rev-parse", "HEAD"]), "rev-parse"));
        assert_eq!(at.trim(), base.as_str());
    }

    // agent list shows both, with role, branch, worktree and status.
    let list = agent_list(&repo, false);
    assert_eq!(names(&list), ["alice", "bob"]);
    for (name, role) in [("alice", "dev"), ("bob", "reviewer")] {
        let a = listed(&list, name);
        assert_eq!(field(a, "role"), Some(role), "{a}");
        assert_eq!(
            field(a, "branch"),
            Some(format!("agent/{name}").as_str()),
            "{a}"
        );
        assert_eq!(
            field(a, "worktree").map(canon),
            Some(canon(default_worktree(&repo, name)))
        );
        assert_eq!(field(a, "status"), Some("active"), "{a}");
        assert_eq!(a["stale"], json!(false), "{a}");
    }
    let text = repo.coord_ok(&["agent", "list"]);
    for name in ["alice", "bob"] {
        let line = text
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} not in {text}"));
        assert!(line.contains("idle"), "{line}");
        assert!(line.contains(&format!("agent/{name}")), "{line}");
    }

    // The registration: a document per agent, a commit per spawn, with its trailers.
    let doc = repo.git_ok(&["show", &format!("{AGENTS_REF}:agents/alice.yaml")]);
    for line in [
        "format: 1",
        "name: alice",
        "role: dev",
        "branch: agent/alice",
        "status: active",
    ] {
        assert!(doc.lines().any(|l| l == line), "no `{line}` in:\n{doc}");
    }
    let message = last_message(&repo, AGENTS_REF);
    assert!(
        message.starts_with(&format!("spawn agent bob by {USER_AGENT}\n")),
        "{message}"
    );
    for trailer in [
        format!("Coord-Agent: {USER_AGENT}"),
        format!("Coord-Human: {human}"),
        "Coord-Op: agent-spawn".to_string(),
        "Coord-Target: bob".to_string(),
    ] {
        assert!(
            message.lines().any(|l| l == trailer),
            "no `{trailer}` in:\n{message}"
        );
    }

    // Each worktree names its agent in its own git directory.
    let alice_dir = default_worktree(&repo, "alice");
    let bob_dir = default_worktree(&repo, "bob");
    let git_dir = stdout(&ok(
        repo.git_in(&alice_dir, &["rev-parse", "--absolute-git-dir"]),
        "rev-parse --absolute-git-dir",
    ));
    let identity = std::fs::read_to_string(Path::new(git_dir.trim()).join("coord-agent"))
        .expect("the identity file");
    assert_eq!(identity.trim(), "alice");

    // whoami knows, with no flag and no environment variable, from anywhere in the worktree.
    std::fs::create_dir(alice_dir.join("sub")).expect("a subdirectory");
    for (name, role, dir) in [
        ("alice", "dev", alice_dir.clone()),
        ("alice", "dev", alice_dir.join("sub")),
        ("bob", "reviewer", bob_dir.clone()),
    ] {
        let me = coord_at_json(&repo, &dir, &["whoami"]);
        assert_eq!(field(&me, "agent"), Some(name), "{me}");
        assert_eq!(field(&me, "source"), Some("worktree"), "{me}");
        assert_eq!(me["registered"], json!(true), "{me}");
        assert_eq!(field(&me, "role"), Some(role), "{me}");
        assert_eq!(field(&me, "branch"), Some(format!("agent/{name}").as_str()));
        assert_eq!(field(&me, "human"), Some(human.as_str()), "{me}");
    }
    let main = repo.coord_json(&["whoami"]);
    assert_eq!(field(&main, "agent"), Some(USER_AGENT), "{main}");
    assert_eq!(field(&main, "source"), Some("git-user"), "{main}");
    assert_eq!(main["registered"], json!(false), "{main}");

    // A task claimed in a worktree is that agent's, and the commit says so.
    let id = repo.new_task("Parse the config", &[]);
    let claimed = coord_at_json(&repo, &alice_dir, &["task", "claim", &id]);
    assert_eq!(field(&claimed, "assignee"), Some("alice"), "{claimed}");
    let task = repo.show(&id);
    assert_eq!(field(&task, "assignee"), Some("alice"));
    assert_eq!(field(&last_event(&task), "agent"), Some("alice"));
    let message = last_message(&repo, TASKS_REF);
    assert!(
        message.starts_with(&format!("claim {id} by alice\n")),
        "{message}"
    );
    assert!(
        message.lines().any(|l| l == "Coord-Agent: alice"),
        "{message}"
    );

    // A live agent's claim is not bob's to take.
    let out = repo.coord_in(&bob_dir, &["task", "claim", &id]);
    let err = fails(&out, 3);
    assert!(err.contains("claimed by alice"), "{err}");
    assert_eq!(field(&repo.show(&id), "assignee"), Some("alice"));
}

#[test]
fn the_flag_and_the_environment_outrank_the_worktree() {
    let repo = TestRepo::init();
    spawn(&repo, "alice", "dev", &[]);
    let dir = default_worktree(&repo, "alice");

    let me = whoami_env(&repo, &dir, &[("GIT_COORD_AGENT", "envoy")], &[]);
    assert_eq!(field(&me, "agent"), Some("envoy"), "{me}");
    assert_eq!(field(&me, "source"), Some("environment"), "{me}");
    assert_eq!(me["registered"], json!(false), "{me}");

    let me = whoami_env(
        &repo,
        &dir,
        &[("GIT_COORD_AGENT", "envoy")],
        &["--agent", "flagged"],
    );
    assert_eq!(field(&me, "agent"), Some("flagged"), "{me}");
    assert_eq!(field(&me, "source"), Some("flag"), "{me}");

    // An empty variable counts as unset.
    let me = whoami_env(&repo, &dir, &[("GIT_COORD_AGENT", "")], &[]);
    assert_eq!(field(&me, "agent"), Some("alice"), "{me}");
    assert_eq!(field(&me, "source"), Some("worktree"), "{me}");
}

#[test]
fn retire_refuses_to_drop_work_unless_forced_and_keeps_the_branch() {
    let repo = TestRepo::init();
    spawn(&repo, "alice", "dev", &[]);
    let dir = default_worktree(&repo, "alice");

    // Uncommitted work: refused, and nothing changes.
    std::fs::write(dir.join("notes.txt"), "half done\n").expect("a new file");
    let before = footprint(&repo);
    let err = fails(&repo.coord(&["agent", "retire", "alice"]), 1);
    assert!(err.contains("uncommitted"), "{err}");
    assert!(err.contains("notes.txt"), "{err}");
    assert_eq!(footprint(&repo), before);
    assert!(dir.join("notes.txt").is_file());
    assert_eq!(
        field(listed(&agent_list(&repo, false), "alice"), "status"),
        Some("active")
    );

    // Committed but not merged into the integration branch: refused, and nothing changes.
    ok(repo.git_in(&dir, &["add", "notes.txt"]), "git add");
    ok(
        repo.git_in(&dir, &["commit", "-q", "-m", "notes"]),
        "git commit",
    );
    let work = repo.git_ok(&["rev-parse", "refs/heads/agent/alice"]);
    let before = footprint(&repo);
    let err = fails(&repo.coord(&["agent", "retire", "alice"]), 1);
    assert!(err.contains("not merged"), "{err}");
    assert!(err.contains("main"), "{err}");
    assert_eq!(footprint(&repo), before);
    assert!(dir.is_dir());
    assert_eq!(
        field(listed(&agent_list(&repo, false), "alice"), "status"),
        Some("active")
    );

    // --force removes the worktree and keeps the branch, commits and all.
    let out = repo.coord_ok(&["agent", "retire", "alice", "--force"]);
    assert!(out.contains("kept"), "{out}");
    assert!(!dir.exists(), "the worktree is still there");
    assert!(
        !worktrees(&repo).iter().any(|(p, _)| p.ends_with("alice")),
        "{:?}",
        worktrees(&repo)
    );
    assert_eq!(repo.git_ok(&["rev-parse", "refs/heads/agent/alice"]), work);
    let message = last_message(&repo, AGENTS_REF);
    assert!(
        message.starts_with(&format!("retire agent alice by {USER_AGENT}\n")),
        "{message}"
    );
    assert!(
        message.lines().any(|l| l == "Coord-Op: agent-retire"),
        "{message}"
    );
    assert!(
        message.lines().any(|l| l == "Coord-Target: alice"),
        "{message}"
    );
    let shown = repo.coord_json(&["agent", "show", "alice"]);
    assert_eq!(field(&shown, "status"), Some("retired"), "{shown}");
    assert!(field(&shown, "retired").is_some(), "{shown}");

    // Work merged into the integration branch retires without --force; --delete-branch
    // deletes the branch.
    spawn(&repo, "bob", "dev", &[]);
    let bob_dir = default_worktree(&repo, "bob");
    std::fs::write(bob_dir.join("done.txt"), "done\n").expect("a file");
    ok(repo.git_in(&bob_dir, &["add", "done.txt"]), "git add");
    ok(
        repo.git_in(&bob_dir, &["commit", "-q", "-m", "done"]),
        "git commit",
    );
    repo.git_ok(&["merge", "-q", "--ff-only", "agent/bob"]);
    // Merged into the integration branch is what counts, whatever the main worktree has checked
    // out (git's own `branch -d` would ask HEAD).
    repo.write_file(".coord.yaml", "integration_branch: main\n");
    repo.git_ok(&["switch", "-q", "-c", "elsewhere", "main~1"]);
    repo.coord_ok(&["agent", "retire", "bob", "--delete-branch"]);
    repo.git_ok(&["switch", "-q", "main"]);
    std::fs::remove_file(repo.path.join(".coord.yaml")).expect("removed");
    assert!(!bob_dir.exists());
    assert!(!branch_exists(&repo, "agent/bob"));
    assert!(repo.path.join("done.txt").is_file(), "merged work is gone");

    // The list hides retired agents; --all shows them as retired.
    spawn(&repo, "carol", "tester", &[]);
    assert_eq!(names(&agent_list(&repo, false)), ["carol"]);
    let all = agent_list(&repo, true);
    assert_eq!(names(&all), ["alice", "bob", "carol"]);
    for name in ["alice", "bob"] {
        assert_eq!(field(listed(&all, name), "status"), Some("retired"));
    }
    assert_eq!(field(listed(&all, "carol"), "status"), Some("active"));
    let text = repo.coord_ok(&["agent", "list", "--all"]);
    let line = text
        .lines()
        .find(|l| l.starts_with("alice"))
        .unwrap_or_else(|| panic!("alice not in {text}"));
    assert!(line.contains("retired"), "{line}");
    assert!(!repo.coord_ok(&["agent", "list"]).contains("alice"));

    // Retiring twice is an error; a retired name whose branch is gone can be spawned again.
    let err = fails(&repo.coord(&["agent", "retire", "alice"]), 1);
    assert!(err.contains("already retired"), "{err}");
    let again = spawn(&repo, "bob", "docs", &[]);
    assert_eq!(field(&again, "status"), Some("active"), "{again}");
    assert_eq!(field(&again, "role"), Some("docs"), "{again}");
    // alice's branch was kept: spawning her name again continues on it, her commits and all;
    // asking for another base instead is refused with the command that frees the name.
    let err = fails(
        &repo.coord(&["agent", "spawn", "alice", "--role", "dev", "--base", "main"]),
        1,
    );
    assert!(err.contains("git branch -D agent/alice"), "{err}");
    let again = spawn(&repo, "alice", "dev", &[]);
    assert_eq!(field(&again, "status"), Some("active"), "{again}");
    assert_eq!(field(&again, "branch"), Some("agent/alice"), "{again}");
    assert_eq!(repo.git_ok(&["rev-parse", "refs/heads/agent/alice"]), work);
    let alice_dir = default_worktree(&repo, "alice");
    assert_eq!(
        repo.git_ok(&["-C", &alice_dir.display().to_string(), "rev-parse", "HEAD"]),
        work,
        "the worktree is on her kept branch"
    );
}

#[test]
fn retire_prunes_a_worktree_deleted_by_hand() {
    let repo = TestRepo::init();
    spawn(&repo, "alice", "dev", &[]);
    let dir = default_worktree(&repo, "alice");
    std::fs::remove_dir_all(&dir).expect("the worktree is deleted by hand");

    repo.coord_ok(&["agent", "retire", "alice", "--delete-branch"]);
    assert!(
        !branch_exists(&repo, "agent/alice"),
        "the branch was not deleted"
    );
    let wts = worktrees(&repo);
    assert_eq!(
        wts.len(),
        1,
        "the deleted worktree is still registered: {wts:?}"
    );
    let shown = repo.coord_json(&["agent", "show", "alice"]);
    assert_eq!(field(&shown, "status"), Some("retired"), "{shown}");
}

#[test]
fn retire_touches_only_the_agents_own_branch_and_worktree() {
    // A registration is data (hand-edited, or one day from a remote): retiring it must not
    // remove another agent's worktree nor delete a branch that is not agent/<name>.
    let repo = TestRepo::init();
    spawn(&repo, "erin", "dev", &[]);
    let erin = default_worktree(&repo, "erin");
    std::fs::write(erin.join("wip.txt"), "erin's work\n").expect("a file");
    repo.git_ok(&["branch", "release"]);
    let forged = format!(
        "format: 1\nname: mallory\nrole: dev\nbranch: release\nworktree: {}\n\
         human: someone\nstatus: active\ncreated: \"2020-01-01T00:00:00.000Z\"\n\
         created_by: someone\n",
        canon(&erin).display()
    );
    put_agent_document(&repo, "agents/mallory.yaml", forged.as_bytes());

    let out = repo.coord(&["agent", "retire", "mallory", "--force", "--delete-branch"]);
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "exit {:?}: {}",
        out.status.code(),
        stderr(&out)
    );
    assert!(
        erin.join("wip.txt").is_file(),
        "retiring mallory removed erin's worktree"
    );
    assert!(
        branch_exists(&repo, "release"),
        "retiring mallory deleted the branch `release`"
    );
}

#[test]
fn bad_spawns_fail_clearly_and_leave_nothing_behind() {
    // Not initialised: refs/coord/agents must still be absent after every refusal.
    let repo = TestRepo::new();
    std::fs::create_dir(repo.tmp().join("occupied")).expect("a directory");
    std::fs::create_dir_all(default_worktree(&repo, "zed")).expect("a directory");
    std::fs::write(repo.tmp().join("afile"), "").expect("a file");
    let occupied = repo.tmp().join("occupied");
    let under_a_file = repo.tmp().join("afile").join("wt");

    let refuse = |repo: &TestRepo, args: &[&str], wants: &[&str]| {
        let before = footprint(repo);
        let mut all = vec!["agent", "spawn"];
        all.extend_from_slice(args);
        let err = fails(&repo.coord(&all), 1);
        for want in wants {
            assert!(
                err.contains(want),
                "`{}`: no {want:?} in {err}",
                all.join(" ")
            );
        }
        assert_eq!(
            footprint(repo),
            before,
            "`{}` left something",
            all.join(" ")
        );
    };
    let occupied_text = occupied.display().to_string();
    let under_a_file_text = under_a_file.display().to_string();
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (
            vec!["bad name", "--role", "dev"],
            vec!["invalid agent name 'bad name'"],
        ),
        (
            vec!["../x", "--role", "dev"],
            vec!["invalid agent name '../x'"],
        ),
        (
            vec!["a..b", "--role", "dev"],
            vec!["invalid agent name 'a..b'", ".."],
        ),
        (
            vec!["carol", "--role", "wizard"],
            vec!["invalid role 'wizard'", "dev"],
        ),
        (
            vec!["carol", "--role", "dev", "--base", "no-such-ref"],
            vec!["invalid base 'no-such-ref'", "does not resolve"],
        ),
        (
            vec!["carol", "--role", "dev", "--path", &occupied_text],
            vec!["invalid worktree path", "already exists"],
        ),
        // The default place is taken.
        (
            vec!["zed", "--role", "dev"],
            vec!["invalid worktree path", "already exists"],
        ),
        // git worktree add fails: the branch it made is rolled back.
        (
            vec!["carol", "--role", "dev", "--path", &under_a_file_text],
            vec!["worktree add"],
        ),
    ];
    for (args, wants) in &cases {
        refuse(&repo, args, wants);
        assert_eq!(agents_tip(&repo), "", "{args:?} created {AGENTS_REF}");
    }
    assert!(occupied.is_dir(), "the occupied directory was removed");
    assert_eq!(
        std::fs::read_dir(&occupied).expect("occupied").count(),
        0,
        "something was written into the occupied directory"
    );

    // A name that exists.
    spawn(&repo, "alice", "dev", &[]);
    refuse(
        &repo,
        &["alice", "--role", "dev"],
        &["invalid agent name 'alice'", "already exists"],
    );
    refuse(
        &repo,
        &["alice", "--role", "dev", "--path", "elsewhere"],
        &["already exists"],
    );
    // A branch agent/NAME that exists without an agent.
    repo.git_ok(&["branch", "agent/dora"]);
    refuse(&repo, &["dora", "--role", "dev"], &["agent/dora"]);
}

#[test]
fn a_failed_registration_rolls_back_branch_and_worktree() {
    // refs/coord/agents cannot be created while a ref exists below it: the spawn gets as far as
    // the worktree, fails to register, and must undo both.
    let repo = TestRepo::new();
    repo.git_ok(&["update-ref", "refs/coord/agents/blocker", "HEAD"]);
    let before = footprint(&repo);
    let err = fails(&repo.coord(&["agent", "spawn", "zed", "--role", "dev"]), 1);
    assert!(err.contains(AGENTS_REF), "{err}");
    assert_eq!(footprint(&repo), before);
    assert!(!branch_exists(&repo, "agent/zed"));
    assert!(!default_worktree(&repo, "zed").exists());
}

#[test]
fn a_relative_path_is_relative_to_the_directory_given_with_c() {
    // `-C DIR` runs "as if started in DIR", so --path rel means DIR/rel, as with `git -C`.
    let repo = TestRepo::init();
    let elsewhere = repo.tmp().join("outside").join("deeper");
    std::fs::create_dir_all(&elsewhere).expect("a directory");
    let repo_text = repo.path.display().to_string();
    let out = repo.coord_in(
        &elsewhere,
        &[
            "-C",
            &repo_text,
            "agent",
            "spawn",
            "erin",
            "--role",
            "dev",
            "--path",
            "../wt-erin",
            "--json",
        ],
    );
    let agent = json(&stdout(&ok(out, "agent spawn -C")));
    let want = repo.tmp().join("wt-erin");
    assert_eq!(
        field(&agent, "worktree").map(canon),
        Some(canon(&want)),
        "{agent}"
    );
    assert!(want.is_dir());
}

#[test]
fn claims_of_a_stale_agent_can_be_taken_over() {
    let repo = TestRepo::init();
    // Committed before the spawns, so every worktree has it.
    commit_file(&repo, ".coord.yaml", "stale_after: 1s\n");
    spawn(&repo, "a", "dev", &[]);
    spawn(&repo, "b", "dev", &[]);
    let a_dir = default_worktree(&repo, "a");
    let b_dir = default_worktree(&repo, "b");
    let first = repo.new_task("first", &["--priority", "1"]);
    let second = repo.new_task("second", &["--priority", "2"]);
    coord_at_ok(&repo, &a_dir, &["task", "claim", &first]);
    coord_at_ok(&repo, &a_dir, &["task", "claim", &second]);
    let agents_before = agents_tip(&repo);

    // Presence is a heartbeat in refs/coord/presence, never a commit in the audited refs.
    let beat = repo.git_ok(&["show", "refs/coord/presence:heartbeats/a.yaml"]);
    assert!(beat.contains("agent: a"), "{beat}");
    assert_eq!(
        repo.git_ok(&["ls-tree", "-r", "--name-only", AGENTS_REF]),
        "agents/a.yaml\nagents/b.yaml\ncoord.yaml"
    );

    std::thread::sleep(Duration::from_secs(2));
    let list = agent_list(&repo, false);
    assert_eq!(listed(&list, "a")["stale"], json!(true), "{list:?}");
    assert!(
        repo.coord_ok(&["agent", "list"])
            .lines()
            .any(|l| l.starts_with("a ") && l.contains("stale")),
    );

    // b takes a's task by id; the history says from whom.
    let taken = coord_at_json(&repo, &b_dir, &["task", "claim", &first]);
    assert_eq!(field(&taken, "assignee"), Some("b"), "{taken}");
    let task = repo.show(&first);
    assert_eq!(field(&task, "assignee"), Some("b"));
    let event = last_event(&task);
    assert_eq!(field(&event, "op"), Some("claim"), "{event}");
    assert_eq!(field(&event, "agent"), Some("b"), "{event}");
    let note = field(&event, "note").unwrap_or_default();
    assert!(note.contains("taken over from a"), "{event}");

    // claim --next considers a stale agent's tasks too (no task is open).
    let next = coord_at_json(&repo, &b_dir, &["task", "claim", "--next"]);
    assert_eq!(field(&next, "id"), Some(second.as_str()), "{next}");
    assert_eq!(field(&next, "assignee"), Some("b"), "{next}");
    let note = field(&last_event(&repo.show(&second)), "note")
        .unwrap_or_default()
        .to_string();
    assert!(note.contains("taken over from a"), "{note}");

    // A heartbeat makes a active again, still without a commit.
    let beat = coord_at_json(&repo, &a_dir, &["agent", "heartbeat"]);
    assert_eq!(field(&beat, "name"), Some("a"), "{beat}");
    assert_eq!(beat["stale"], json!(false), "{beat}");
    assert_eq!(
        listed(&agent_list(&repo, false), "a")["stale"],
        json!(false)
    );
    assert_eq!(agents_tip(&repo), agents_before, "presence made a commit");
}

#[test]
fn claims_of_a_retired_agent_can_be_taken_over() {
    let repo = TestRepo::init();
    spawn(&repo, "a", "dev", &[]);
    spawn(&repo, "b", "dev", &[]);
    let a_dir = default_worktree(&repo, "a");
    let b_dir = default_worktree(&repo, "b");
    let first = repo.new_task("first", &["--priority", "1"]);
    let second = repo.new_task("second", &["--priority", "2"]);
    coord_at_ok(&repo, &a_dir, &["task", "claim", &first]);
    coord_at_ok(&repo, &a_dir, &["task", "claim", &second]);

    // a is live: refused, naming a.
    let err = fails(&repo.coord_in(&b_dir, &["task", "claim", &first]), 3);
    assert!(err.contains("claimed by a"), "{err}");
    let err = fails(&repo.coord_in(&b_dir, &["task", "claim", "--next"]), 3);
    assert!(err.contains("no ready task"), "{err}");

    repo.coord_ok(&["agent", "retire", "a"]);
    let taken = coord_at_json(&repo, &b_dir, &["task", "claim", &first]);
    assert_eq!(field(&taken, "assignee"), Some("b"), "{taken}");
    let note = field(&last_event(&repo.show(&first)), "note")
        .unwrap_or_default()
        .to_string();
    assert!(note.contains("taken over from a"), "{note}");
    let next = coord_at_json(&repo, &b_dir, &["task", "claim", "--next"]);
    assert_eq!(field(&next, "id"), Some(second.as_str()), "{next}");
}

#[test]
fn heartbeat_needs_a_live_registered_agent() {
    let repo = TestRepo::init();
    let err = fails(&repo.coord(&["agent", "heartbeat"]), 1);
    assert!(err.contains(USER_AGENT), "{err}");
    assert!(err.contains("no such agent"), "{err}");
    spawn(&repo, "a", "dev", &[]);
    repo.coord_as_ok("a", &["agent", "heartbeat"]);
    repo.coord_ok(&["agent", "retire", "a"]);
    let err = fails(&repo.coord_as("a", &["agent", "heartbeat"]), 1);
    assert!(err.contains("retired"), "{err}");
    let err = fails(&repo.coord(&["agent", "show", "nobody"]), 1);
    assert!(err.contains("no such agent"), "{err}");
}

#[test]
fn roles_come_from_coord_yaml_or_the_defaults() {
    let repo = TestRepo::init();
    let roles = array(repo.coord_json(&["roles"]));
    let names: Vec<&str> = roles.iter().filter_map(|r| field(r, "name")).collect();
    assert_eq!(
        names,
        ["organiser", "planner", "dev", "reviewer", "docs", "tester"]
    );
    for role in &roles {
        assert!(
            !field(role, "description").unwrap_or_default().is_empty(),
            "{role}"
        );
        assert!(role["capabilities"].is_array(), "{role}");
    }
    assert_eq!(roles[2]["capabilities"], json!(["code", "test"]));

    commit_file(
        &repo,
        ".coord.yaml",
        "roles:\n  - name: custom\n    description: does custom things\n    capabilities: [tinker]\n",
    );
    let roles = array(repo.coord_json(&["roles"]));
    assert_eq!(
        roles,
        [json!({
            "name": "custom",
            "description": "does custom things",
            "capabilities": ["tinker"],
        })]
    );
    let agent = spawn(&repo, "cat", "custom", &[]);
    assert_eq!(field(&agent, "role"), Some("custom"), "{agent}");
    assert_eq!(agent["capabilities"], json!(["tinker"]), "{agent}");
    // The defaults are replaced, not extended.
    let err = fails(&repo.coord(&["agent", "spawn", "dev1", "--role", "dev"]), 1);
    assert!(err.contains("invalid role 'dev'"), "{err}");
    assert!(err.contains("custom"), "{err}");

    // A malformed file is an error that names it, and spawns nothing.
    for bad in ["roles: [\n", "bogus: 1\n", "roles: 3\n"] {
        std::fs::write(repo.path.join(".coord.yaml"), bad).expect("config");
        let err = fails(&repo.coord(&["roles"]), 1);
        assert!(err.contains(".coord.yaml"), "{bad:?}: {err}");
        let before = footprint(&repo);
        let err = fails(
            &repo.coord(&["agent", "spawn", "dan", "--role", "custom"]),
            1,
        );
        assert!(err.contains(".coord.yaml"), "{bad:?}: {err}");
        assert_eq!(footprint(&repo), before);
    }
}

#[test]
fn a_bad_value_in_coord_yaml_names_the_file() {
    let repo = TestRepo::init();
    for bad in ["stale_after: soon\n", "roles:\n  - name: bad name\n"] {
        std::fs::write(repo.path.join(".coord.yaml"), bad).expect("config");
        let err = fails(&repo.coord(&["roles"]), 1);
        assert!(err.contains(".coord.yaml"), "{bad:?}: {err}");
    }
}

#[test]
fn every_form_of_one_remote_is_one_project() {
    let repo = TestRepo::init();
    let local = repo.coord_json(&["whoami"]);
    assert!(
        field(&local, "project").is_some_and(|p| p.starts_with("local:")),
        "{local}"
    );

    let urls = [
        "git@example.com:team/repo.git",
        "ssh://git@example.com/team/repo",
        "https://example.com/team/repo.git",
    ];
    repo.git_ok(&["remote", "add", "origin", urls[0]]);
    let mut projects = Vec::new();
    for (i, url) in urls.iter().enumerate() {
        if i > 0 {
            repo.git_ok(&["remote", "set-url", "origin", url]);
        }
        let me = repo.coord_json(&["whoami"]);
        projects.push(field(&me, "project").expect("a project").to_string());
    }
    assert_eq!(projects, ["example.com/team/repo"; 3]);

    // An agent's worktree is the same project; another repository is not.
    spawn(&repo, "a", "dev", &[]);
    let me = coord_at_json(&repo, &default_worktree(&repo, "a"), &["whoami"]);
    assert_eq!(field(&me, "project"), Some("example.com/team/repo"), "{me}");
    repo.git_ok(&[
        "remote",
        "set-url",
        "origin",
        "https://example.com/team/other.git",
    ]);
    let me = repo.coord_json(&["whoami"]);
    assert_eq!(
        field(&me, "project"),
        Some("example.com/team/other"),
        "{me}"
    );
}

#[test]
fn two_spawns_of_one_name_at_once_leave_one_whole_agent() {
    // The loser's rollback must undo only what it made itself, never the winner's branch and
    // worktree.
    let repo = TestRepo::init();
    for round in 0..8 {
        let name = format!("twin{round}");
        let racers: Vec<_> = (0..2)
            .map(|_| {
                repo.coord_cmd(&["agent", "spawn", &name, "--role", "dev"])
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .expect("git-coord starts")
            })
            .collect();
        let outs: Vec<_> = racers
            .into_iter()
            .map(|c| c.wait_with_output().expect("git-coord finishes"))
            .collect();
        let won = outs.iter().filter(|o| o.status.success()).count();
        let errors: Vec<String> = outs.iter().map(stderr).collect();
        assert_eq!(won, 1, "{name}: {won} spawns succeeded: {errors:?}");
        let shown = repo.coord_json(&["agent", "show", &name]);
        assert_eq!(field(&shown, "status"), Some("active"), "{shown}");
        assert!(
            branch_exists(&repo, &format!("agent/{name}")),
            "{name} is registered without its branch: {errors:?}"
        );
        assert!(
            default_worktree(&repo, &name).is_dir(),
            "{name} is registered without its worktree: {errors:?}"
        );
    }
}

#[test]
fn an_agents_ready_and_claim_next_take_its_own_role_unless_told_otherwise() {
    let repo = TestRepo::init();
    spawn(&repo, "d", "dev", &[]);
    let d_dir = default_worktree(&repo, "d");
    let docs = repo.new_task(
        "write the guide",
        &["--role", "reviewer", "--priority", "0"],
    );

    // Only another role's task is ready: the dev agent claims nothing, and is told how to widen.
    let err = fails(&repo.coord_in(&d_dir, &["task", "claim", "--next"]), 3);
    assert!(err.contains("no ready task for role dev"), "{err}");
    assert!(err.contains("--any-role"), "{err}");
    assert_eq!(field(&repo.show(&docs), "state"), Some("open"));
    assert!(array(coord_at_json(&repo, &d_dir, &["ready"])).is_empty());

    // A task with no role is open to every role; the other role's stays out of the way.
    let anyone = repo.new_task("tidy up", &["--priority", "3"]);
    let ready = array(coord_at_json(&repo, &d_dir, &["ready"]));
    assert_eq!(ids(&ready), [anyone.as_str()]);
    let all = array(coord_at_json(&repo, &d_dir, &["ready", "--any-role"]));
    assert_eq!(ids(&all), [docs.clone(), anyone.clone()]);
    let reviewer = array(coord_at_json(
        &repo,
        &d_dir,
        &["ready", "--role", "reviewer"],
    ));
    assert_eq!(ids(&reviewer), [docs.clone(), anyone.clone()]);
    let next = coord_at_json(&repo, &d_dir, &["task", "claim", "--next"]);
    assert_eq!(field(&next, "id"), Some(anyone.as_str()), "{next}");

    // --any-role says otherwise.
    let next = coord_at_json(&repo, &d_dir, &["task", "claim", "--next", "--any-role"]);
    assert_eq!(field(&next, "id"), Some(docs.as_str()), "{next}");

    // Someone who is not an agent has no role: every ready task is theirs, --mine too.
    let third = repo.new_task("third", &["--role", "reviewer"]);
    for args in [&["ready"][..], &["ready", "--mine"]] {
        let ready = array(repo.coord_json(args));
        assert_eq!(ids(&ready), [third.as_str()], "{args:?}");
    }
}

#[test]
fn a_takeover_takes_the_dead_holders_leases_so_the_new_holder_can_commit() {
    let repo = TestRepo::init();
    commit_file(&repo, ".coord.yaml", "stale_after: 1s\n");
    repo.coord_ok(&["hooks", "install"]);
    spawn(&repo, "a", "dev", &[]);
    spawn(&repo, "b", "dev", &[]);
    let a_dir = default_worktree(&repo, "a");
    let b_dir = default_worktree(&repo, "b");
    let task = repo.new_task("fix the parser", &[]);
    let other = repo.new_task("something else", &[]);
    coord_at_ok(&repo, &a_dir, &["task", "claim", &task]);
    let lease = coord_at_json(
        &repo,
        &a_dir,
        &["lease", "acquire", "src/parser.rs", "--task", &task],
    );
    let lease_id = field(&lease, "id").expect("a lease id").to_string();
    let unrelated = coord_at_json(&repo, &a_dir, &["lease", "acquire", "docs/"]);

    // While a is live, b's commit to the leased path is refused, and the hint names the command
    // that frees it.
    std::fs::create_dir_all(b_dir.join("src")).expect("src/");
    std::fs::write(b_dir.join("src/parser.rs"), "fn parse() {}\n").expect("a file");
    repo.git_in(&b_dir, &["add", "src/parser.rs"]);
    let out = repo.git_in(&b_dir, &["commit", "-q", "-m", "parser"]);
    assert!(!out.status.success(), "a leased path was committed");
    let err = stderr(&out);
    assert!(
        err.contains(&format!("git coord lease release {lease_id} --force")),
        "{err}"
    );

    // a goes silent; b takes its task over, and with it a's lease on that task (not the other).
    std::thread::sleep(Duration::from_secs(2));
    coord_at_ok(&repo, &b_dir, &["task", "claim", &task]);
    let leases = repo.leases(false);
    let passed = leases
        .iter()
        .find(|l| l["id"] == lease_id.as_str())
        .expect("the lease is still active");
    assert_eq!(passed["agent"], "b", "{leases:?}");
    let kept = leases
        .iter()
        .find(|l| l["id"] == unrelated["id"])
        .expect("the other lease");
    assert_eq!(kept["agent"], "a", "{leases:?}");
    let log = repo.git_ok(&["log", "-1", "--format=%B", "refs/coord/leases"]);
    assert!(log.contains("takeover") && log.contains("from a"), "{log}");

    // b commits to the path now; a is told the lease went with the task.
    let out = repo.git_in(&b_dir, &["commit", "-q", "-m", "parser"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let inbox = array(coord_at_json(&repo, &a_dir, &["inbox"])["messages"].clone());
    let notice = inbox
        .iter()
        .find(|m| field(m, "subject").is_some_and(|s| s.contains("taken over by b")))
        .expect("a notice of the takeover");
    let id = field(notice, "id").expect("an id");
    let text = coord_at_ok(&repo, &a_dir, &["read", id]);
    assert!(text.contains(&lease_id), "{text}");
    assert_eq!(field(&repo.show(&other), "state"), Some("open"));
}

#[test]
fn retiring_an_agent_registered_in_place_says_its_files_stay() {
    let repo = TestRepo::init();
    repo.write_file("notes.txt", "mine\n");
    repo.coord_ok(&["agent", "register", "here", "--role", "dev"]);
    let said = repo.coord_ok(&["agent", "retire", "here"]);
    assert!(!said.contains("worktree removed"), "{said}");
    assert!(said.contains("stay"), "{said}");
    assert!(repo.path.join("notes.txt").exists());
}
