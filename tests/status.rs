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
    let err = fails(&repo.coord(&["graph", "--format", "svg"]), 1);
    assert!(err.contains("dot or mermaid"), "{err}");
}
