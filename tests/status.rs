//! `status` (the overview) and `graph` (the dependency graph for other tools).

mod common;

use common::{TestRepo, fails};

#[test]
fn status_counts_what_there_is_without_colours_off_a_terminal() {
    let repo = TestRepo::init();
    repo.coord_ok(&["agent", "spawn", "al", "--role", "dev"]);
    let a = repo.new_task("First", &[]);
    repo.new_task("Second", &["--dep", &a]);
    repo.coord_as_ok("al", &["task", "claim", &a]);
    let v = repo.coord_json(&["status"]);
    assert_eq!(v["tasks"]["claimed"], 1);
    assert_eq!(v["tasks"]["open"], 1);
    assert_eq!(v["tasks"]["ready"], 0);
    assert_eq!(v["agents"][0]["claimed"][0], a.as_str());
    assert_eq!(v["team"], "running");
    let text = repo.coord_ok(&["status"]);
    assert!(text.contains("1 claimed") && text.contains(&a), "{text}");
    assert!(!text.contains('\x1b'), "no colour codes when piped");
}

#[test]
fn graph_draws_dependencies_as_dot_or_mermaid() {
    let repo = TestRepo::init();
    let a = repo.new_task("Design \"the\" API", &[]);
    let b = repo.new_task("Build it", &["--dep", &a]);
    let dot = repo.coord_ok(&["graph"]);
    assert!(dot.starts_with("digraph tasks {"), "{dot}");
    assert!(dot.contains(&format!("\"{a}\" -> \"{b}\";")), "{dot}");
    assert!(
        dot.contains("Design \\\"the\\\" API"),
        "quotes are escaped: {dot}"
    );
    let mermaid = repo.coord_ok(&["graph", "--format", "mermaid"]);
    assert!(mermaid.contains(&format!("t{a} --> t{b}")), "{mermaid}");
    repo.coord_ok(&["task", "done", &a]);
    let open_only = repo.coord_ok(&["graph", "--no-done"]);
    assert!(!open_only.contains(&format!("\"{a}\"")), "{open_only}");
    // A format it does not know is a usage error, like every flag value that does not parse.
    let err = fails(&repo.coord(&["graph", "--format", "svg"]), 2);
    assert!(err.contains("[possible values: dot, mermaid]"), "{err}");
}

#[test]
fn graph_json_gives_nodes_and_edges() {
    let repo = TestRepo::init();
    let a = repo.new_task("Design it", &[]);
    let b = repo.new_task("Build it", &["--dep", &a]);
    let graph = repo.coord_json(&["graph"]);
    assert_eq!(graph["edges"], serde_json::json!([[a, b]]), "{graph}");
    let nodes = graph["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), 2);
    let first = nodes.iter().find(|n| n["id"] == a.as_str()).expect("a");
    assert_eq!(first["title"], "Design it");
    assert_eq!(first["state"], "open");
    assert!(first["assignee"].is_null());
    repo.coord_ok(&["task", "done", &a]);
    let open_only = repo.coord_json(&["graph", "--no-done"]);
    assert_eq!(open_only["nodes"].as_array().expect("nodes").len(), 1);
    assert_eq!(open_only["edges"], serde_json::json!([]));
}

/// GET `path` from the dashboard on `port`; the body.
fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .expect("request");
    let mut text = String::new();
    stream.read_to_string(&mut text).expect("response");
    text.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}

/// A process that is stopped when dropped, a failing test's too.
struct Stopped(std::process::Child);

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The port `git coord serve --port 0` says it listens on (its first line of output).
fn served_port(serve: &mut std::process::Child) -> u16 {
    use std::io::BufRead;
    let mut first_line = String::new();
    let stdout = serve.stdout.as_mut().expect("stdout");
    std::io::BufReader::new(stdout)
        .read_line(&mut first_line)
        .expect("the address");
    first_line
        .split("127.0.0.1:")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {first_line:?}"))
}

#[test]
fn status_and_the_dashboard_follow_the_remote_when_told_to_fetch() {
    let c = common::cluster::Cluster::new(2);
    let task = c
        .ok(0, &["task", "new", "Claimed far away"])
        .trim()
        .to_string();
    c.ok(0, &["sync"]);
    c.ok(1, &["sync"]);
    c.ok(1, &["--agent", "far", "task", "claim", &task]);

    // This clone's own refs have not seen the claim; a fetch brings it, and says when.
    assert_eq!(c.json(0, &["status"])["tasks"]["claimed"], 0);
    let fetched = c.json(0, &["status", "--fetch"]);
    assert_eq!(fetched["tasks"]["claimed"], 1, "{fetched}");
    assert_eq!(fetched["fetched"]["remote"], "origin", "{fetched}");
    let text = c.ok(0, &["status", "--fetch"]);
    assert!(text.contains("fetched from origin at"), "{text}");

    // serve --fetch: the page's status says when it last fetched, and a claim made on the other
    // clone shows without anyone syncing here.
    let second = c.ok(0, &["task", "new", "Another"]).trim().to_string();
    c.ok(0, &["sync"]);
    c.ok(1, &["sync"]);
    let mut serve = Stopped(c.spawn(0, &["serve", "--port", "0", "--fetch", "1s"]));
    let port = served_port(&mut serve.0);
    c.ok(1, &["--agent", "far", "task", "claim", &second]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut seen = String::new();
    while std::time::Instant::now() < deadline {
        seen = http_get(port, "/api/tasks");
        let claimed = common::json(&seen).as_array().is_some_and(|all| {
            all.iter()
                .any(|t| t["id"] == second.as_str() && t["state"] == "claimed")
        });
        if claimed {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let status = http_get(port, "/api/status");
    drop(serve);
    assert!(seen.contains(&second) && seen.contains("claimed"), "{seen}");
    assert!(
        status.contains("\"fetched\"") && status.contains("origin"),
        "{status}"
    );
}

#[test]
fn the_dashboard_shows_launched_agents_output_interleaved_in_time_order() {
    let repo = TestRepo::init();
    repo.coord_ok(&["init"]);
    let logs = repo.path.join(".git/coord/logs");
    std::fs::create_dir_all(&logs).expect("the logs folder");
    std::fs::write(
        logs.join("mia.log"),
        "2026-12-01T10:00:00.000Z mia starts\n2026-12-01T10:00:02.000Z mia runs the tests\n",
    )
    .expect("a log");
    std::fs::write(
        logs.join("ned.log"),
        "2026-12-01T10:00:01.000Z ned reads the plan\n",
    )
    .expect("a log");
    let mut serve = Stopped(
        repo.coord_cmd(&["serve", "--port", "0"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("serve starts"),
    );
    let port = served_port(&mut serve.0);
    let body = http_get(port, "/api/logs");
    let page = http_get(port, "/");
    drop(serve);
    let lines: Vec<String> = common::array(common::json(&body))
        .iter()
        .map(|l| {
            format!(
                "[{}] {}",
                l["agent"].as_str().unwrap_or(""),
                l["text"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(
        lines,
        [
            "[mia] mia starts",
            "[ned] ned reads the plan",
            "[mia] mia runs the tests"
        ],
        "{body}"
    );
    assert!(page.contains("Agents' output"), "the page has the section");
}
