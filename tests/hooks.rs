//! The installed git hooks: the lease guards in pre-commit and pre-push, chaining with hooks that
//! were there before, core.hooksPath, and uninstalling.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_json::Value;

use common::{CLIENT_FILES, INSTALL_ALL, TestRepo, UNINSTALL_ALL, fails, json, ok, stderr};

fn spawn(repo: &TestRepo, name: &str) -> PathBuf {
    let agent = json(&repo.coord_ok(&["agent", "spawn", name, "--role", "dev", "--json"]));
    PathBuf::from(agent["worktree"].as_str().expect("a worktree"))
}

fn write(dir: &Path, path: &str, text: &str) {
    let path = dir.join(path);
    std::fs::create_dir_all(path.parent().expect("a parent")).expect("the directory");
    std::fs::write(path, text).expect("the file is written");
}

fn write_hook(path: &Path, body: &str) {
    std::fs::create_dir_all(path.parent().expect("a parent")).expect("the hooks directory");
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).expect("the hook is written");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// `git commit -m MESSAGE` in `dir` after staging `path` (and extra git flags).
fn commit(repo: &TestRepo, dir: &Path, path: &str, flags: &[&str]) -> std::process::Output {
    ok(repo.git_in(dir, &["add", path]), "git add");
    let mut args = vec!["commit", "-q", "-m", "change"];
    args.extend_from_slice(flags);
    repo.git_in(dir, &args)
}

fn head(repo: &TestRepo, dir: &Path) -> String {
    common::stdout(&ok(repo.git_in(dir, &["rev-parse", "HEAD"]), "rev-parse"))
        .trim()
        .to_string()
}

fn actions(changes: &Value) -> Vec<(String, String)> {
    changes
        .as_array()
        .expect("an array of changes")
        .iter()
        .map(|c| {
            (
                c["hook"].as_str().expect("hook").to_string(),
                c["action"].as_str().expect("action").to_string(),
            )
        })
        .collect()
}

fn pair(hook: &str, action: &str) -> (String, String) {
    (hook.to_string(), action.to_string())
}

#[test]
fn a_commit_touching_another_agents_lease_is_refused_until_it_is_released() {
    let repo = TestRepo::init();
    write(&repo.path, "src/login.rs", "fn login() {}\n");
    ok(repo.git(&["add", "."]), "add");
    ok(repo.git(&["commit", "-q", "-m", "login"]), "commit");
    let a = spawn(&repo, "a");
    let b = spawn(&repo, "b");
    repo.coord_ok(&["hooks", "install"]);

    let lease = json(&common::stdout(&ok(
        repo.coord_in(&a, &["lease", "acquire", "src/login.rs", "--json"]),
        "a leases src/login.rs",
    )));
    let lease_id = lease["id"].as_str().expect("a lease id").to_string();

    // b, in its own worktree, with no flag: refused, naming a, the lease and its expiry.
    write(&b, "src/login.rs", "fn login() { todo!() }\n");
    let before = head(&repo, &b);
    let out = commit(&repo, &b, "src/login.rs", &[]);
    let err = stderr(&out);
    assert!(!out.status.success(), "the commit went through: {err}");
    assert!(err.contains("src/login.rs"), "{err}");
    assert!(err.contains("leased exclusively to a"), "{err}");
    assert!(err.contains(&lease_id), "{err}");
    assert!(
        err.contains(lease["expires"].as_str().expect("expiry")),
        "{err}"
    );
    assert_eq!(head(&repo, &b), before, "no commit was made");

    // a's own commit to the path is its business.
    write(&a, "src/login.rs", "fn login() { /* a */ }\n");
    ok(
        commit(&repo, &a, "src/login.rs", &[]),
        "a commits its own path",
    );

    // Other paths are free for b.
    write(&b, "src/other.rs", "fn other() {}\n");
    ok(repo.git_in(&b, &["reset", "-q", "src/login.rs"]), "unstage");
    ok(
        commit(&repo, &b, "src/other.rs", &[]),
        "b commits a free path",
    );

    // Warn mode lets it through and still says so; --no-verify bypasses as usual.
    let mut cmd = repo.command("git", &b);
    ok(
        cmd.args(["add", "src/login.rs"]).output().expect("git"),
        "add",
    );
    let warned = repo
        .command("git", &b)
        .args(["commit", "-q", "-m", "warned"])
        .env("GIT_COORD_GUARD", "warn")
        .output()
        .expect("git runs");
    let warned = ok(warned, "a warned commit");
    assert!(stderr(&warned).contains("warning"), "{}", stderr(&warned));
    write(&b, "src/login.rs", "fn login() { 2 }\n");
    ok(
        commit(&repo, &b, "src/login.rs", &["--no-verify"]),
        "--no-verify",
    );

    // After a releases, b commits freely.
    write(&b, "src/login.rs", "fn login() { 3 }\n");
    let refused = commit(&repo, &b, "src/login.rs", &[]);
    assert!(!refused.status.success(), "refused while a holds the lease");
    ok(
        repo.coord_in(&a, &["lease", "release", &lease_id]),
        "a releases",
    );
    ok(
        commit(&repo, &b, "src/login.rs", &[]),
        "b commits after the release",
    );
}

#[test]
fn install_chains_the_hook_that_was_there_and_uninstall_restores_it() {
    let repo = TestRepo::init();
    let hooks = repo.path.join(".git/hooks");
    let marker = repo.tmp().join("old-hook-ran");
    let old = format!("echo ran >> '{}'", marker.display());
    write_hook(&hooks.join("pre-commit"), &old);
    let original = std::fs::read_to_string(hooks.join("pre-commit")).expect("the old hook");

    let first = json(&repo.coord_ok(&["hooks", "install", "--json"]));
    assert_eq!(
        actions(&first),
        [
            pair("pre-commit", "chained"),
            pair("prepare-commit-msg", "installed"),
            pair("pre-push", "installed")
        ]
    );
    let second = json(&repo.coord_ok(&["hooks", "install", "--json"]));
    assert_eq!(
        actions(&second),
        [
            pair("pre-commit", "unchanged"),
            pair("prepare-commit-msg", "unchanged"),
            pair("pre-push", "unchanged")
        ],
        "installing twice changes nothing"
    );

    write(&repo.path, "a.txt", "a\n");
    ok(commit(&repo, &repo.path, "a.txt", &[]), "a commit");
    assert_eq!(
        std::fs::read_to_string(&marker).expect("the old hook ran"),
        "ran\n"
    );

    // The old hook's verdict still counts.
    write_hook(&hooks.join("pre-commit.coord-chained"), "exit 7");
    write(&repo.path, "b.txt", "b\n");
    assert!(!commit(&repo, &repo.path, "b.txt", &[]).status.success());
    write_hook(&hooks.join("pre-commit.coord-chained"), &old);

    let removed = json(&repo.coord_ok(&["hooks", "uninstall", "--json"]));
    assert_eq!(
        actions(&removed),
        [
            pair("pre-commit", "restored"),
            pair("prepare-commit-msg", "removed"),
            pair("pre-push", "removed")
        ]
    );
    assert_eq!(
        std::fs::read_to_string(hooks.join("pre-commit")).expect("the old hook is back"),
        original
    );
    assert!(!hooks.join("pre-push").exists());
    assert!(!hooks.join("prepare-commit-msg").exists());
    assert!(!hooks.join("pre-commit.coord-chained").exists());
}

#[test]
fn install_respects_core_hooks_path() {
    let repo = TestRepo::init();
    ok(
        repo.git(&["config", "core.hooksPath", "custom-hooks"]),
        "config",
    );
    let changes = json(&repo.coord_ok(&["hooks", "install", "--json"]));
    let path = changes[0]["path"].as_str().expect("a path");
    assert!(
        path.ends_with("custom-hooks/pre-commit"),
        "installed at {path}"
    );
    assert!(repo.path.join("custom-hooks/pre-commit").exists());
    assert!(!repo.path.join(".git/hooks/pre-commit").exists());

    // The guard runs from there.
    write(&repo.path, "x.txt", "x\n");
    ok(repo.git(&["add", "x.txt"]), "add");
    ok(repo.git(&["commit", "-q", "-m", "x"]), "commit");
    repo.coord_as_ok("other", &["lease", "acquire", "x.txt"]);
    write(&repo.path, "x.txt", "y\n");
    let out = commit(&repo, &repo.path, "x.txt", &[]);
    assert!(
        stderr(&out).contains("leased exclusively to other"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn pre_push_refuses_commits_that_touch_another_agents_lease() {
    let repo = TestRepo::init();
    let remote = repo.tmp().join("remote.git");
    ok(
        repo.command("git", repo.tmp())
            .args(["init", "-q", "--bare"])
            .arg(&remote)
            .output()
            .expect("git"),
        "a bare remote",
    );
    ok(
        repo.git(&["remote", "add", "origin", remote.to_str().expect("utf-8")]),
        "remote add",
    );
    ok(repo.git(&["push", "-q", "origin", "main"]), "first push");
    repo.coord_ok(&["hooks", "install"]);

    // Committed before the lease existed, pushed after: pre-push still catches it.
    write(&repo.path, "api/v1.rs", "v1\n");
    ok(commit(&repo, &repo.path, "api/v1.rs", &[]), "commit");
    repo.coord_as_ok("carol", &["lease", "acquire", "api/**"]);
    let out = repo.git(&["push", "-q", "origin", "main"]);
    assert!(!out.status.success(), "the push went through");
    let err = stderr(&out);
    assert!(err.contains("api/v1.rs"), "{err}");
    assert!(err.contains("carol"), "{err}");
    let remote_main = repo
        .command("git", repo.tmp())
        .args([
            "--git-dir",
            remote.to_str().expect("utf-8"),
            "rev-parse",
            "main",
        ])
        .output()
        .expect("git");
    assert_ne!(
        common::stdout(&remote_main).trim(),
        head(&repo, &repo.path),
        "nothing was pushed"
    );

    repo.coord_as_ok("carol", &["lease", "release", "--all"]);
    ok(
        repo.git(&["push", "-q", "origin", "main"]),
        "the push after the release",
    );
}

#[test]
fn in_a_repository_git_coord_does_not_manage_the_hooks_do_nothing() {
    let repo = TestRepo::new();
    repo.coord_ok(&["hooks", "install"]);
    write(&repo.path, "free.txt", "free\n");
    let out = commit(&repo, &repo.path, "free.txt", &[]);
    ok(out, "a commit where git-coord was never initialised");
    assert!(
        repo.git(&["rev-parse", "--verify", "-q", "refs/coord/leases"])
            .stdout
            .is_empty(),
        "the hook created no coordination state"
    );
}

#[test]
fn an_unknown_hook_is_an_error_and_changes_nothing() {
    let repo = TestRepo::init();
    let err = fails(&repo.coord(&["hook", "post-checkout"]), 1);
    assert!(err.contains("pre-commit"), "{err}");
}

#[test]
fn install_codex_merges_with_the_files_there_and_uninstall_restores_them() {
    let repo = TestRepo::init();
    let hooks_json = "{\n  \"hooks\": {\n    \"Stop\": [\n      {\n        \"hooks\": [\n          {\n            \"type\": \"command\",\n            \"command\": \"echo mine\"\n          }\n        ]\n      }\n    ]\n  }\n}\n";
    let config = "model = \"gpt-5\"\n\n[mcp_servers.other]\ncommand = \"other-server\"\n";
    write(&repo.path, ".codex/hooks.json", hooks_json);
    write(&repo.path, ".codex/config.toml", config);
    let out = repo.coord_ok(&["hooks", "install", "--codex"]);
    assert!(out.contains("codex Stop: installed"), "{out}");
    assert!(out.contains("codex mcp server: installed"), "{out}");
    let again = repo.coord_ok(&["hooks", "install", "--codex"]);
    assert!(again.contains("codex Stop: unchanged"), "{again}");
    assert!(again.contains("codex mcp server: unchanged"), "{again}");

    let merged: Value =
        json(&std::fs::read_to_string(repo.path.join(".codex/hooks.json")).unwrap());
    let stop = merged["hooks"]["Stop"]
        .as_array()
        .expect("a Stop list")
        .clone();
    assert_eq!(stop.len(), 2, "theirs kept, ours added once: {stop:?}");
    assert_eq!(stop[0]["hooks"][0]["command"], "echo mine");
    assert_eq!(stop[1]["hooks"][0]["command"], "git coord hook stop");
    let toml = std::fs::read_to_string(repo.path.join(".codex/config.toml")).unwrap();
    assert!(toml.starts_with(config), "{toml}");
    assert!(
        toml.contains("[mcp_servers.git-coord]\ncommand = \"git\"\nargs = [\"coord\", \"mcp\"]\nenv_vars = [\"GIT_COORD_AGENT\"]\n"),
        "{toml}"
    );
    assert_eq!(toml.matches("[mcp_servers.git-coord]").count(), 1, "{toml}");

    let out = repo.coord_ok(&["hooks", "uninstall", "--codex"]);
    assert!(out.contains("codex Stop: removed"), "{out}");
    assert_eq!(
        json(&std::fs::read_to_string(repo.path.join(".codex/hooks.json")).unwrap()),
        json(hooks_json)
    );
    assert_eq!(
        std::fs::read_to_string(repo.path.join(".codex/config.toml")).unwrap(),
        config,
        "uninstall gives back the config byte for byte"
    );
}

#[test]
fn install_refuses_a_git_coord_server_it_did_not_write_and_a_refusal_changes_no_file() {
    let repo = TestRepo::init();
    let config = "[mcp_servers.git-coord]\ncommand = \"/opt/git-coord\"\n";
    write(&repo.path, ".codex/config.toml", config);
    let err = fails(&repo.coord(&INSTALL_ALL), 1);
    assert!(
        err.contains("already defines an MCP server named git-coord"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(repo.path.join(".codex/config.toml")).unwrap(),
        config
    );
    // Refused, it changed nothing: not the files of the CLIs before it, nor .codex/hooks.json
    // beside it, nor the git hooks.
    let status = repo.git_ok(&["status", "--porcelain", "--untracked-files=all"]);
    assert_eq!(
        status, "?? .codex/config.toml",
        "only the user's file is there"
    );
    let hooks = repo.path.join(".git/hooks");
    for hook in ["pre-commit", "prepare-commit-msg", "pre-push"] {
        assert!(!hooks.join(hook).exists(), "{hook} was installed");
    }

    // The same for uninstall: a block it cannot take out is refused before anything goes.
    std::fs::remove_file(repo.path.join(".codex/config.toml")).expect("removed");
    repo.coord_ok(&INSTALL_ALL);
    let installed = repo.git_ok(&["status", "--porcelain", "--untracked-files=all"]);
    let toml = repo.path.join(".codex/config.toml");
    let cut = std::fs::read_to_string(&toml)
        .unwrap()
        .replace("# <<< git-coord\n", "");
    std::fs::write(&toml, &cut).expect("the end line gone");
    let err = fails(&repo.coord(&UNINSTALL_ALL), 1);
    assert!(err.contains("has no end line"), "{err}");
    assert_eq!(
        repo.git_ok(&["status", "--porcelain", "--untracked-files=all"]),
        installed
    );
    assert_eq!(std::fs::read_to_string(&toml).unwrap(), cut);
    for hook in ["pre-commit", "prepare-commit-msg", "pre-push"] {
        assert!(hooks.join(hook).exists(), "{hook} was removed");
    }
}

/// Issue 29: a `.codex/config.toml` git-coord cannot parse is refused and left byte for byte,
/// with no file of any client written; so is one where git-coord's table cannot go (an inline
/// `mcp_servers` table), or that defines the server in another form.
#[test]
fn install_codex_refuses_toml_it_cannot_parse_and_leaves_it_as_it_was() {
    let cases = [
        (
            "an unclosed table header",
            "model = \"gpt-5\"\n[mcp_servers.other\ncommand = \"x\"\n",
            "is not valid TOML",
        ),
        (
            "an unclosed string",
            "model = \"gpt-5\n",
            "is not valid TOML",
        ),
        (
            "a duplicate key",
            "model = \"gpt-5\"\nmodel = \"o3\"\n",
            "is not valid TOML",
        ),
        (
            "an inline mcp_servers table",
            "mcp_servers = { other = { command = \"x\" } }\n",
            "cannot be added",
        ),
        (
            "the server as an inline table",
            "mcp_servers = { git-coord = { command = \"/opt/git-coord\" } }\n",
            "already defines an MCP server named git-coord",
        ),
        (
            "the server as a quoted table",
            "[mcp_servers.\"git-coord\"]\ncommand = \"/opt/git-coord\"\n",
            "already defines an MCP server named git-coord",
        ),
    ];
    for (what, config, said) in cases {
        let repo = TestRepo::init();
        write(&repo.path, ".codex/config.toml", config);
        let err = fails(&repo.coord(&["hooks", "install", "--codex"]), 1);
        assert!(err.contains(said), "{what}: {err}");
        assert!(err.contains("nothing was changed"), "{what}: {err}");
        assert_eq!(
            std::fs::read(repo.path.join(".codex/config.toml")).unwrap(),
            config.as_bytes(),
            "{what}: the file is left byte for byte"
        );
        assert_eq!(
            repo.git_ok(&["status", "--porcelain", "--untracked-files=all"]),
            "?? .codex/config.toml",
            "{what}: no other file written"
        );
    }
}

/// A block written by an earlier git-coord (without `env_vars`) is replaced by the current one.
#[test]
fn install_codex_brings_an_earlier_block_up_to_date() {
    let repo = TestRepo::init();
    let config = "model = \"gpt-5\"\n\n# >>> git-coord: `git coord hooks uninstall --codex` removes this block\n[mcp_servers.git-coord]\ncommand = \"git\"\nargs = [\"coord\", \"mcp\"]\n# <<< git-coord\n";
    write(&repo.path, ".codex/config.toml", config);
    let out = repo.coord_ok(&["hooks", "install", "--codex"]);
    assert!(out.contains("codex mcp server: installed"), "{out}");
    let toml = std::fs::read_to_string(repo.path.join(".codex/config.toml")).unwrap();
    assert!(
        toml.starts_with("model = \"gpt-5\"\n\n# >>> git-coord"),
        "{toml}"
    );
    assert!(
        toml.contains("env_vars = [\"GIT_COORD_AGENT\"]\n# <<< git-coord\n"),
        "{toml}"
    );
    assert_eq!(toml.matches("[mcp_servers.git-coord]").count(), 1, "{toml}");
    let again = repo.coord_ok(&["hooks", "install", "--codex"]);
    assert!(again.contains("codex mcp server: unchanged"), "{again}");
    repo.coord_ok(&["hooks", "uninstall", "--codex"]);
    assert_eq!(
        std::fs::read_to_string(repo.path.join(".codex/config.toml")).unwrap(),
        "model = \"gpt-5\"\n"
    );
}

#[test]
fn uninstall_leaves_no_empty_file_behind() {
    let repo = TestRepo::init();
    repo.coord_ok(&INSTALL_ALL);
    for file in CLIENT_FILES {
        assert!(repo.path.join(file).exists(), "{file} was written");
    }
    repo.coord_ok(&UNINSTALL_ALL);
    for path in [".claude", ".mcp.json", ".codex", ".gemini"] {
        assert!(
            !repo.path.join(path).exists(),
            "{path} was created by install alone and should be gone"
        );
    }
    let status = repo.git_ok(&["status", "--porcelain"]);
    assert_eq!(status, "", "the worktree is as it was");
}

#[test]
fn install_gemini_merges_with_the_settings_there_and_uninstall_restores_them() {
    let repo = TestRepo::init();
    // A settings file as `git coord` writes JSON (sorted keys, two spaces), with the user's own
    // AfterAgent hook, another MCP server and other settings.
    let settings = "{\n  \"general\": {\n    \"vimMode\": true\n  },\n  \"hooks\": {\n    \"AfterAgent\": [\n      {\n        \"hooks\": [\n          {\n            \"command\": \"echo mine\",\n            \"type\": \"command\"\n          }\n        ]\n      }\n    ]\n  },\n  \"mcpServers\": {\n    \"other\": {\n      \"command\": \"other-server\"\n    }\n  }\n}\n";
    write(&repo.path, ".gemini/settings.json", settings);
    let out = repo.coord_ok(&["hooks", "install", "--gemini"]);
    assert!(out.contains("gemini AfterAgent: installed"), "{out}");
    assert!(out.contains("gemini mcp server: installed"), "{out}");
    let again = repo.coord_ok(&["hooks", "install", "--gemini"]);
    assert!(again.contains("gemini AfterAgent: unchanged"), "{again}");
    assert!(again.contains("gemini mcp server: unchanged"), "{again}");

    let merged: Value =
        json(&std::fs::read_to_string(repo.path.join(".gemini/settings.json")).unwrap());
    assert_eq!(merged["general"]["vimMode"], true, "{merged}");
    let after = merged["hooks"]["AfterAgent"]
        .as_array()
        .expect("an AfterAgent list")
        .clone();
    assert_eq!(after.len(), 2, "theirs kept, ours added once: {after:?}");
    assert_eq!(after[0]["hooks"][0]["command"], "echo mine");
    let ours = &after[1]["hooks"][0];
    assert_eq!(ours["command"], "git coord hook stop");
    // Gemini CLI counts hook timeouts in milliseconds.
    assert_eq!(ours["timeout"], 30000);
    assert_eq!(merged["mcpServers"]["other"]["command"], "other-server");
    assert_eq!(merged["mcpServers"]["git-coord"]["command"], "git");
    assert_eq!(
        merged["mcpServers"]["git-coord"]["args"],
        serde_json::json!(["coord", "mcp"])
    );
    assert!(merged["hooks"].get("Stop").is_none(), "{merged}");

    let out = repo.coord_ok(&["hooks", "uninstall", "--gemini"]);
    assert!(out.contains("gemini AfterAgent: removed"), "{out}");
    assert!(out.contains("gemini mcp server: removed"), "{out}");
    assert_eq!(
        std::fs::read_to_string(repo.path.join(".gemini/settings.json")).unwrap(),
        settings,
        "uninstall gives back the settings byte for byte"
    );
    let again = repo.coord_ok(&["hooks", "uninstall", "--gemini"]);
    assert!(again.contains("gemini AfterAgent: unchanged"), "{again}");
}

#[test]
fn install_gemini_refuses_settings_it_cannot_read_and_changes_nothing() {
    let repo = TestRepo::init();
    // Gemini CLI accepts comments in its settings; git-coord does not edit such a file.
    let settings = "{\n  // mine\n  \"general\": {}\n}\n";
    write(&repo.path, ".gemini/settings.json", settings);
    let err = fails(&repo.coord(&["hooks", "install", "--gemini"]), 1);
    assert!(err.contains("is not valid JSON"), "{err}");
    assert!(err.contains("nothing was changed"), "{err}");
    assert_eq!(
        std::fs::read_to_string(repo.path.join(".gemini/settings.json")).unwrap(),
        settings
    );
}

#[test]
fn uninstall_in_one_worktree_is_refused_while_others_share_the_hooks_unless_all() {
    let repo = TestRepo::init();
    repo.coord_ok(&["hooks", "install"]);
    let a = spawn(&repo, "a");
    let hooks = repo.path.join(".git/hooks");
    let ours = |hook: &str| {
        std::fs::read_to_string(hooks.join(hook)).is_ok_and(|t| t.contains("git-coord hook shim"))
    };
    ok(
        repo.coord_in(&a, &["hooks", "install", "--claude"]),
        "install",
    );
    let settings = std::fs::read_to_string(a.join(".claude/settings.json")).expect("settings");

    // In the agent's worktree, and in the main one: refused, nothing changed, --all named.
    for dir in [&a, &repo.path] {
        let err = fails(&repo.coord_in(dir, &["hooks", "uninstall", "--claude"]), 3);
        assert!(err.contains("shared by every worktree"), "{err}");
        assert!(err.contains("git coord hooks uninstall --all"), "{err}");
        assert!(ours("pre-commit") && ours("pre-push") && ours("prepare-commit-msg"));
    }
    let other = repo.path.canonicalize().expect("the main worktree");
    let err = fails(&repo.coord_in(&a, &["hooks", "uninstall"]), 3);
    assert!(err.contains(&other.display().to_string()), "{err}");
    assert_eq!(
        std::fs::read_to_string(a.join(".claude/settings.json")).expect("settings"),
        settings,
        "a refusal changes no file"
    );

    // --all: gone for every worktree.
    let removed = json(&common::stdout(&ok(
        repo.coord_in(&a, &["hooks", "uninstall", "--all", "--claude", "--json"]),
        "uninstall --all",
    )));
    assert!(
        actions(&removed).contains(&pair("pre-commit", "removed")),
        "{removed}"
    );
    assert!(!ours("pre-commit") && !ours("pre-push") && !ours("prepare-commit-msg"));
    assert!(!a.join(".claude/settings.json").exists());
}

#[test]
fn hooks_kept_in_each_worktree_are_uninstalled_there_alone() {
    let repo = TestRepo::init();
    let a = spawn(&repo, "a");
    // A relative core.hooksPath: each worktree runs the hooks in its own folder.
    repo.git_ok(&["config", "core.hooksPath", ".githooks"]);
    ok(repo.coord_in(&a, &["hooks", "install"]), "install in a");
    repo.coord_ok(&["hooks", "install"]);
    ok(repo.coord_in(&a, &["hooks", "uninstall"]), "uninstall in a");
    assert!(!a.join(".githooks/pre-commit").exists());
    assert!(
        repo.path.join(".githooks/pre-commit").exists(),
        "the main worktree keeps its own"
    );
}

#[test]
fn an_idle_workers_stop_hook_waits_for_work_then_lets_go() {
    let repo = TestRepo::init();
    std::fs::write(repo.path.join(".coord.yaml"), "idle_wait: 6s\n").expect("config");
    repo.git_ok(&["add", ".coord.yaml"]);
    repo.git_ok(&["commit", "-q", "-m", "config"]);
    let dev = common::spawn(&repo, "w", "dev");
    let input = serde_json::json!({ "cwd": dev, "session_id": "s1" }).to_string();

    // Nothing to do when the hook starts; a task for its role is filed 2 s later.
    let filed = std::thread::scope(|scope| {
        let filer = scope.spawn(|| {
            std::thread::sleep(std::time::Duration::from_secs(2));
            repo.new_task("Arrives while the worker waits", &["--role", "dev"])
        });
        let (out, _) = common::stop_hook(&repo, &input);
        let id = filer.join().expect("the filer");
        (out, id)
    });
    let (out, id) = filed;
    let decision = json(&out);
    assert_eq!(decision["decision"], "block", "{decision}");
    assert!(
        decision["reason"].as_str().is_some_and(|r| r.contains(&id)),
        "{decision}"
    );

    // Nothing for its role arrives: past idle_wait it lets the agent stop, and says why.
    let docs = common::spawn(&repo, "d", "docs");
    let input = serde_json::json!({ "cwd": docs, "session_id": "s2" }).to_string();
    let (out, err) = common::stop_hook(&repo, &input);
    assert_eq!(out, "", "{err}");
    assert!(err.contains("idle_wait"), "{err}");

    // hooks install gives the clients a time limit the wait fits in.
    repo.coord_ok(&["hooks", "install", "--claude"]);
    let settings: Value = serde_json::from_str(
        &std::fs::read_to_string(repo.path.join(".claude/settings.json")).expect("settings"),
    )
    .expect("json");
    assert_eq!(
        settings["hooks"]["Stop"][0]["hooks"][0]["timeout"], 36,
        "{settings}"
    );
}

#[test]
fn install_gemini_writes_the_identity_its_shell_cannot_see_into_the_repository() {
    let repo = TestRepo::init();
    // The identity lives in the user's global configuration only.
    let global = repo.tmp().join("gitconfig");
    std::fs::write(
        &global,
        "[user]\n\tname = Gem User\n\temail = gem@example.com\n",
    )
    .expect("a global config");
    repo.git_ok(&["config", "--local", "--unset", "user.name"]);
    repo.git_ok(&["config", "--local", "--unset", "user.email"]);
    let out = repo.coord_env(
        &[("GIT_CONFIG_GLOBAL", global.to_str().expect("utf-8"))],
        &["hooks", "install", "--gemini"],
    );
    let said = common::stdout(&ok(out, "hooks install --gemini"));
    assert!(said.contains("gemini identity"), "{said}");
    assert!(said.contains("no hooks"), "{said}");
    // As Gemini CLI's shell runs git: no global configuration, no hooks. The commit has an
    // identity.
    std::fs::write(repo.path.join("g.txt"), "g\n").expect("a file");
    let add = repo
        .command("git", &repo.path)
        .args(["add", "g.txt"])
        .output()
        .expect("git");
    assert!(add.status.success());
    let commit = repo
        .command("git", &repo.path)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .args(["-c", "core.hooksPath=", "commit", "-q", "-m", "from gemini"])
        .output()
        .expect("git");
    assert!(commit.status.success(), "{}", stderr(&commit));
    let author = repo.git_ok(&["log", "-1", "--format=%an <%ae>"]);
    assert_eq!(author, "Gem User <gem@example.com>");
}

#[test]
fn install_adds_the_after_tool_hook_for_each_client_and_uninstall_removes_it() {
    let repo = TestRepo::init();
    // A PostToolUse hook of the user's own, for one tool, stays as it is.
    let settings = "{\n  \"hooks\": {\n    \"PostToolUse\": [\n      {\n        \"hooks\": [\n          {\n            \"command\": \"echo mine\",\n            \"type\": \"command\"\n          }\n        ],\n        \"matcher\": \"Edit\"\n      }\n    ]\n  }\n}\n";
    write(&repo.path, ".claude/settings.json", settings);
    let args = ["hooks", "install", "--claude", "--codex", "--gemini"];
    let out = repo.coord_ok(&args);
    for hook in [
        "claude PostToolUse",
        "codex PostToolUse",
        "gemini AfterTool",
    ] {
        assert!(out.contains(&format!("{hook}: installed")), "{out}");
    }
    let again = repo.coord_ok(&args);
    for hook in [
        "claude PostToolUse",
        "codex PostToolUse",
        "gemini AfterTool",
    ] {
        assert!(again.contains(&format!("{hook}: unchanged")), "{again}");
    }
    let read = |path: &str| json(&std::fs::read_to_string(repo.path.join(path)).unwrap());
    let claude = read(".claude/settings.json");
    let after = claude["hooks"]["PostToolUse"]
        .as_array()
        .expect("a list")
        .clone();
    assert_eq!(after.len(), 2, "theirs kept, ours added once: {after:?}");
    assert_eq!(after[0]["matcher"], "Edit");
    // Ours has no matcher: it runs after every tool. Claude Code and Codex count seconds.
    assert!(after[1].get("matcher").is_none(), "{claude}");
    assert_eq!(after[1]["hooks"][0]["command"], "git coord hook after-tool");
    assert_eq!(after[1]["hooks"][0]["timeout"], 10);
    assert_eq!(
        claude["hooks"]["Stop"][0]["hooks"][0]["command"],
        "git coord hook stop"
    );
    let codex = read(".codex/hooks.json");
    assert_eq!(
        codex["hooks"]["PostToolUse"][0]["hooks"][0]["command"],
        "git coord hook after-tool"
    );
    let gemini = read(".gemini/settings.json");
    let ours = &gemini["hooks"]["AfterTool"][0]["hooks"][0];
    assert_eq!(ours["command"], "git coord hook after-tool");
    assert_eq!(ours["timeout"], 10000, "Gemini CLI counts milliseconds");
    assert!(gemini["hooks"].get("PostToolUse").is_none(), "{gemini}");

    let out = repo.coord_ok(&["hooks", "uninstall", "--claude", "--codex", "--gemini"]);
    for hook in [
        "claude PostToolUse",
        "codex PostToolUse",
        "gemini AfterTool",
    ] {
        assert!(out.contains(&format!("{hook}: removed")), "{out}");
    }
    assert_eq!(
        std::fs::read_to_string(repo.path.join(".claude/settings.json")).unwrap(),
        settings,
        "uninstall gives back the settings byte for byte"
    );
    for gone in [".codex", ".gemini"] {
        assert!(
            !repo.path.join(gone).exists(),
            "{gone} held only git-coord's entries"
        );
    }
}
