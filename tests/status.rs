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
