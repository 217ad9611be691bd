//! `git coord mcp` driven by an independent client: the official Python MCP SDK (pinned in
//! tests/requirements.txt, installed into tests/.venv by tests/setup.sh) initialises, lists the
//! tools, calls several, and the state changes in git.

mod common;

use serde_json::Value;

use common::{TestRepo, array, json, ok, stdout};

/// The Python of tests/.venv, where tests/setup.sh installs the pinned MCP SDK.
fn python_with_mcp() -> std::path::PathBuf {
    let venv = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/.venv");
    let python = venv.join("bin/python3");
    assert!(
        python.exists(),
        "this test needs the Python MCP SDK in {} ({} is missing): run tests/setup.sh",
        venv.display(),
        python.display()
    );
    python
}

#[test]
fn an_independent_mcp_client_works_as_the_agent_of_the_worktree() {
    let repo = TestRepo::init();
    let mia = repo.coord_json(&["agent", "spawn", "mia", "--role", "dev"]);
    repo.coord_ok(&["agent", "spawn", "ned", "--role", "dev"]);
    let worktree = mia["worktree"].as_str().expect("a worktree").to_string();
    let task = repo.new_task("Wire the MCP tools", &["--role", "dev"]);
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mcp_client.py");
    let out = repo
        .command(python_with_mcp(), repo.tmp())
        .arg(&script)
        .args([common::BIN, &worktree, &task])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "the MCP client failed:\n{}",
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
    // The brief names the tools, for clients that load MCP tools only when searched for.
    let brief = seen["brief"]["text"].as_str().expect("text");
    assert!(
        brief.contains("task_claim") && brief.contains("search for git-coord"),
        "{brief}"
    );

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
        "x".repeat(git_coord::limits::MAX_REQUEST_BYTES)
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

/// `git coord mcp` over stdio, spoken to line by line as a client would.
struct Server {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    stdout: std::io::BufReader<std::process::ChildStdout>,
    next_id: u64,
}

impl Server {
    fn start(repo: &TestRepo, dir: &std::path::Path) -> Server {
        let mut child = repo
            .command(common::BIN, dir)
            .arg("mcp")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("the server starts");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
        let mut server = Server {
            child,
            stdin,
            stdout,
            next_id: 0,
        };
        server.request(
            "initialize",
            serde_json::json!({ "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": { "name": "test", "version": "1" } }),
        );
        server.notify("notifications/initialized");
        server
    }

    fn notify(&mut self, method: &str) {
        use std::io::Write;
        let msg = serde_json::json!({ "jsonrpc": "2.0", "method": method, "params": {} });
        writeln!(self.stdin, "{msg}").expect("a notification");
    }

    fn request(&mut self, method: &str, params: Value) -> Value {
        use std::io::{BufRead, Write};
        self.next_id += 1;
        let msg = serde_json::json!({ "jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params });
        writeln!(self.stdin, "{msg}").expect("a request");
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("an answer");
        json(&line)
    }

    /// Calls a tool: Ok(the result's text parsed), Err(why it failed).
    fn call(&mut self, tool: &str, arguments: &Value) -> Result<Value, String> {
        let answer = self.request(
            "tools/call",
            serde_json::json!({ "name": tool, "arguments": arguments }),
        );
        let result = &answer["result"];
        if answer.get("error").is_some() || result["isError"] == true {
            return Err(answer.to_string());
        }
        let text = result["content"][0]["text"]
            .as_str()
            .expect("a text result");
        Ok(serde_json::from_str(text).expect("the text is JSON"))
    }

    fn stop(self) {
        drop(self.stdin);
        let mut child = self.child;
        assert!(child.wait().expect("the server ends").success());
    }
}

/// Where a format is named in a schema that JSON Schema does not define, as a JSON pointer.
fn nonstandard_formats(schema: &Value, at: &str, found: &mut Vec<String>) {
    const STANDARD: [&str; 19] = [
        "date-time",
        "date",
        "time",
        "duration",
        "email",
        "idn-email",
        "hostname",
        "idn-hostname",
        "ipv4",
        "ipv6",
        "uri",
        "uri-reference",
        "iri",
        "iri-reference",
        "uuid",
        "uri-template",
        "json-pointer",
        "relative-json-pointer",
        "regex",
    ];
    match schema {
        Value::Object(o) => {
            if let Some(f) = o.get("format").and_then(Value::as_str)
                && !STANDARD.contains(&f)
            {
                found.push(format!("{at}: format {f}"));
            }
            for (k, v) in o {
                nonstandard_formats(v, &format!("{at}/{k}"), found);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                nonstandard_formats(v, &format!("{at}/{i}"), found);
            }
        }
        _ => {}
    }
}

/// One MCP contract for every client, Gemini CLI's included (it copies the parsed text of a
/// result into `structuredContent`, which must be an object): every tool's result is a JSON
/// object; the schemas name only JSON Schema's own formats; a value at each declared bound is
/// accepted, and one past it refused.
#[test]
fn every_tool_answers_an_object_and_declares_the_bounds_it_enforces() {
    let repo = TestRepo::init();
    let mia = repo.coord_json(&["agent", "spawn", "mia", "--role", "dev"]);
    repo.coord_ok(&["agent", "spawn", "ned", "--role", "dev"]);
    let worktree = std::path::PathBuf::from(mia["worktree"].as_str().expect("a worktree"));
    let held = repo.new_task("Held by mia", &["--role", "dev"]);
    let finished = repo.new_task("Finished by mia", &["--role", "dev"]);
    repo.new_task("Ready for dev", &["--role", "dev"]);
    repo.coord_as_ok("mia", &["task", "claim", &held]);
    repo.coord_as_ok("mia", &["task", "claim", &finished]);
    let sent = json(&repo.coord_as_ok("ned", &["send", "--to", "mia", "a question", "--json"]));
    let message = sent["id"].as_str().expect("a message id").to_string();

    let mut server = Server::start(&repo, &worktree);
    let listed = server.request("tools/list", serde_json::json!({}));
    let tools = array(listed["result"]["tools"].clone());
    // Arguments that succeed, tool by tool: every tool is here, in an order that works.
    let calls: Vec<(&str, Value)> = vec![
        ("whoami", serde_json::json!({})),
        ("status", serde_json::json!({})),
        ("brief", serde_json::json!({})),
        ("ready", serde_json::json!({})),
        ("task_show", serde_json::json!({ "id": held })),
        ("task_new", serde_json::json!({ "title": "New over MCP" })),
        (
            "task_comment",
            serde_json::json!({ "id": held, "text": "on it" }),
        ),
        ("task_claim", serde_json::json!({})),
        (
            "task_done",
            serde_json::json!({ "id": finished, "summary": "done" }),
        ),
        ("send", serde_json::json!({ "to": "ned", "text": "hello" })),
        ("inbox", serde_json::json!({})),
        ("read", serde_json::json!({ "id": message })),
        ("ack", serde_json::json!({ "id": message })),
        (
            "reply",
            serde_json::json!({ "id": message, "text": "an answer" }),
        ),
        ("lease_acquire", serde_json::json!({ "globs": ["src/**"] })),
        ("lease_check", serde_json::json!({ "paths": ["src/a.rs"] })),
        ("lease_release", serde_json::json!({})),
    ];
    let mut named: Vec<&str> = tools.iter().filter_map(|t| t["name"].as_str()).collect();
    named.sort();
    let mut covered: Vec<&str> = calls.iter().map(|(name, _)| *name).collect();
    covered.sort();
    assert_eq!(named, covered, "every tool is called here");

    let mut formats = Vec::new();
    for tool in &tools {
        let name = tool["name"].as_str().expect("a name");
        nonstandard_formats(&tool["inputSchema"], name, &mut formats);
        if let Some(output) = tool.get("outputSchema") {
            nonstandard_formats(output, name, &mut formats);
        }
    }
    assert!(
        formats.is_empty(),
        "formats JSON Schema does not define: {formats:?}"
    );

    for (tool, arguments) in &calls {
        let result = server
            .call(tool, arguments)
            .unwrap_or_else(|e| panic!("{tool} failed: {e}"));
        assert!(
            result.is_object(),
            "{tool} answered {result}, not an object"
        );
    }

    // Each bound a schema declares: the value at it is accepted, the one past it refused.
    let mut bounds = 0;
    for tool in &tools {
        let name = tool["name"].as_str().expect("a name");
        let base = &calls.iter().find(|(n, _)| *n == name).expect("called").1;
        let properties = tool["inputSchema"]["properties"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        for (property, schema) in properties {
            for (keyword, step) in [("minimum", -1), ("maximum", 1)] {
                let Some(bound) = schema[keyword].as_i64() else {
                    continue;
                };
                bounds += 1;
                let mut at = base.clone();
                at[&property] = bound.into();
                let answered = server
                    .call(name, &at)
                    .unwrap_or_else(|e| panic!("{name} {property}={bound} refused: {e}"));
                assert!(answered.is_object(), "{name}: {answered}");
                let mut past = base.clone();
                past[&property] = (bound + step).into();
                assert!(
                    server.call(name, &past).is_err(),
                    "{name} accepted {property}={}, past its declared {keyword} {bound}",
                    bound + step
                );
            }
        }
    }
    // brief's max_chars (at least 200), task_new's priority (0 to 4), inbox's limit (from 0).
    assert!(bounds >= 4, "{bounds} bounds declared: {tools:?}");
    let new_task = tools
        .iter()
        .find(|t| t["name"] == "task_new")
        .expect("task_new");
    assert_eq!(
        new_task["inputSchema"]["properties"]["priority"]["maximum"],
        4
    );
    server.stop();
}
