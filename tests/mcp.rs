//! `git coord mcp` driven by an independent client: the official Python MCP SDK (installed by
//! .ci/run) initialises, lists the tools, calls several, and the state changes in git.

mod common;

use serde_json::Value;

use common::{TestRepo, array, json, ok, stdout};

#[test]
fn an_independent_mcp_client_works_as_the_agent_of_the_worktree() {
    let repo = TestRepo::init();
    let mia = repo.coord_json(&["agent", "spawn", "mia", "--role", "dev"]);
    repo.coord_ok(&["agent", "spawn", "ned", "--role", "dev"]);
    let worktree = mia["worktree"].as_str().expect("a worktree").to_string();
    let task = repo.new_task("Wire the MCP tools", &["--role", "dev"]);
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mcp_client.py");
    let out = repo
        .command("python3", repo.tmp())
        .arg(&script)
        .args([common::BIN, &worktree, &task])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "the MCP client failed (it needs `pip install mcp`, which .ci/run does):\n{}",
        common::stderr(&out)
    );
    let seen: Value = json(&stdout(&out));
    for tool in [
        "brief",
        "ready",
        "task_show",
        "task_new",
        "task_claim",
        "task_done",
        "task_comment",
        "send",
        "inbox",
        "read",
        "ack",
        "reply",
        "lease_acquire",
        "lease_release",
        "lease_check",
        "whoami",
        "status",
    ] {
        assert!(
            array(seen["tools"].clone()).iter().any(|t| t == tool),
            "no tool {tool}: {}",
            seen["tools"]
        );
    }
    assert!(
        seen["claim_schema"]["properties"]["id"].is_object(),
        "{}",
        seen["claim_schema"]
    );
    assert_eq!(
        seen["whoami"]["agent"], "mia",
        "the worktree's agent, with no flag"
    );
    assert_eq!(seen["claimed"]["assignee"], "mia");
    assert_eq!(seen["lease"]["patterns"][0], "src/**");
    assert_eq!(seen["sent"]["to"], serde_json::json!(["ned"]));
    assert_eq!(seen["missing"]["is_error"], true);
    assert!(
        seen["missing"]["text"]
            .as_str()
            .expect("text")
            .contains("no task matches"),
        "{}",
        seen["missing"]
    );
    assert_eq!(seen["bad"]["is_error"], true);
    assert!(
        seen["brief"]["text"]
            .as_str()
            .expect("text")
            .contains(&task)
    );
    assert_eq!(seen["done"]["state"], "done");

    // The state changed in git, as the CLI sees it.
    let shown = repo.show(&task);
    assert_eq!(
        (shown["state"].clone(), shown["summary"].clone()),
        ("done".into(), "done over MCP".into())
    );
    assert!(
        repo.leases(false).is_empty(),
        "task_done released the lease"
    );
    let inbox = json(&repo.coord_as_ok("ned", &["inbox", "--json"]));
    assert_eq!(array(inbox["messages"].clone())[0]["from"], "mia");
    let log = repo.git_ok(&["log", "--format=%s", "-3", "refs/coord/tasks"]);
    assert!(log.contains(&format!("done {task} by mia")), "{log}");
    // The object files the server made ahead of its next writes went with it.
    repo.assert_no_temporary_files();
}

#[test]
fn hooks_install_mcp_registers_the_server_in_mcp_json() {
    let repo = TestRepo::init();
    let path = repo.path.join(".mcp.json");
    std::fs::write(
        &path,
        r#"{"mcpServers": {"other": {"command": "other-server"}}}"#,
    )
    .expect("written");
    repo.coord_ok(&["hooks", "install", "--mcp"]);
    repo.coord_ok(&["hooks", "install", "--mcp"]);
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
    assert_eq!(v["mcpServers"]["other"]["command"], "other-server");
    assert_eq!(v["mcpServers"]["git-coord"]["command"], "git");
    assert_eq!(
        v["mcpServers"]["git-coord"]["args"],
        serde_json::json!(["coord", "mcp"])
    );
    ok(repo.coord(&["hooks", "uninstall", "--mcp"]), "uninstall");
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
    assert!(v["mcpServers"].get("git-coord").is_none());
    assert_eq!(v["mcpServers"]["other"]["command"], "other-server");
}

#[test]
fn an_oversized_request_or_an_object_id_gets_an_error_and_the_server_keeps_serving() {
    use std::io::Write;
    let repo = TestRepo::init();
    let huge = format!(
        r#"{{"jsonrpc":"2.0","id":9,"method":"tools/list","params":{{"pad":"{}"}}}}"#,
        "x".repeat(git_coord::mcp::MAX_REQUEST_BYTES)
    );
    let requests = [
        huge,
        r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-03-26","capabilities":{},"clientInfo":{"name":"test","version":"1"}}}"#.to_string(),
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#.to_string(),
        r#"{"jsonrpc":"2.0","id":{"evil":true},"method":"tools/list"}"#.to_string(),
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#.to_string(),
    ];
    let mut child = repo
        .command(common::BIN, &repo.path)
        .arg("mcp")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("the server starts");
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || {
        for line in requests {
            stdin.write_all(line.as_bytes()).expect("write");
            stdin.write_all(b"\n").expect("write");
        }
    });
    let out = child
        .wait_with_output()
        .expect("the server ends when stdin closes");
    writer.join().expect("all sent");
    let replies: Vec<Value> = stdout(&out).lines().map(json).collect();
    let errors: Vec<&Value> = replies
        .iter()
        .filter(|r| r.get("error").is_some())
        .collect();
    assert_eq!(errors.len(), 2, "{replies:?}");
    for error in &errors {
        assert!(
            error.as_object().expect("object").get("id") == Some(&Value::Null),
            "an error whose id is unknown carries id null: {error}"
        );
        assert_eq!(error["error"]["code"], -32600, "{error}");
    }
    let texts: Vec<&str> = errors
        .iter()
        .map(|e| e["error"]["message"].as_str().expect("message"))
        .collect();
    assert!(texts.iter().any(|t| t.contains("byte limit")), "{texts:?}");
    assert!(
        texts.iter().any(|t| t.contains("id is an object")),
        "{texts:?}"
    );
    // The requests after them were served.
    let answered = |id: i64| {
        replies
            .iter()
            .any(|r| r["id"] == id && r.get("result").is_some())
    };
    assert!(answered(1), "initialize answered: {replies:?}");
    assert!(answered(2), "tools/list answered: {replies:?}");
}

/// The server acts with its command line's `--agent` and `--offline`. Between calls it holds the
/// files of its next write, made ahead (a lock and the object files), and has let go of the ref
/// files its last write replaced; when the session ends, nothing is left behind. Only speed
/// depends on the files, so only this test notices when their wiring goes.
#[cfg(target_os = "linux")]
#[test]
fn the_server_keeps_its_flags_and_between_calls_holds_files_made_ahead_and_no_replaced_ref() {
    use std::io::{BufRead, Write};
    let repo = TestRepo::init();
    let task = repo.new_task("Claimed over MCP", &[]);
    // A remote that is gone: only an offline claim succeeds.
    let gone = repo.tmp().join("gone.git");
    repo.git_ok(&["remote", "add", "origin", gone.to_str().expect("utf-8")]);
    let mut child = repo
        .command(common::BIN, &repo.path)
        .args(["--agent", "mia", "--offline", "mcp"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("the server starts");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut call = |id: u64, method: &str, params: Value| {
        let mut msg = serde_json::json!({ "jsonrpc": "2.0", "method": method, "params": params });
        if id > 0 {
            msg["id"] = id.into();
        }
        writeln!(stdin, "{msg}").expect("a request");
        if id == 0 {
            return Value::Null;
        }
        let mut line = String::new();
        stdout.read_line(&mut line).expect("an answer");
        json(&line)
    };
    call(
        1,
        "initialize",
        serde_json::json!({ "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": { "name": "test", "version": "1" } }),
    );
    call(0, "notifications/initialized", serde_json::json!({}));
    let claimed = call(
        2,
        "tools/call",
        serde_json::json!({ "name": "task_claim", "arguments": { "id": task } }),
    );
    assert!(
        claimed["result"]["isError"] != true,
        "the claim failed: {claimed}"
    );
    assert_eq!(repo.show(&task)["assignee"], "mia");

    // The files are made once the reply is out: wait for them (no time limit is tested).
    // A lock, and the object files of a send (11), at least.
    let ready = |names: &[String]| {
        let locks = names
            .iter()
            .filter(|n| n.starts_with("tmp_obj_lock_"))
            .count();
        locks >= 1 && names.len() - locks >= 11
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let names = repo.temporary_files();
        if ready(&names) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not made ahead: {names:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // Closed before the files are made: no descriptor of the server is a ref file replaced since.
    let fds = std::fs::read_dir(format!("/proc/{}/fd", child.id())).expect("the server's fds");
    let replaced: Vec<_> = fds
        .filter_map(|fd| std::fs::read_link(fd.expect("an fd").path()).ok())
        .filter(|target| {
            let target = target.to_string_lossy();
            target.contains("refs/coord") && target.ends_with("(deleted)")
        })
        .collect();
    assert!(
        replaced.is_empty(),
        "replaced refs still held: {replaced:?}"
    );

    drop(stdin);
    assert!(child.wait().expect("the server ends").success());
    repo.assert_no_temporary_files();
}
