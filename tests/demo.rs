//! `git coord demo` runs whole on a clean machine and shows every capability working.

mod common;

use common::{BIN, TestRepo, ok, stdout};

#[test]
fn the_demo_fits_one_screen_and_ends_on_a_summary() {
    let repo = TestRepo::new();
    let scratch = repo.tmp().join("scratch");
    std::fs::create_dir_all(&scratch).expect("a scratch directory");
    let out = repo
        .command(BIN, repo.tmp())
        .arg("demo")
        .env("TMPDIR", &scratch)
        .output()
        .expect("the demo runs");
    let text = stdout(&ok(out, "git coord demo"));
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() <= 50, "{} lines:\n{text}", lines.len());
    for shown in [
        "bob claimed",
        "refused: dependency cycle",
        "leased exclusively to alice",
        "checkpoint 2: moved",
        "whoami -> alice",
        "claimed online",
        "breaker:",
    ] {
        assert!(
            text.contains(shown),
            "the demo did not show {shown:?}:\n{text}"
        );
    }
    let summary = lines
        .iter()
        .find(|l| l.starts_with("In all: "))
        .unwrap_or_else(|| panic!("no summary:\n{text}"));
    assert!(summary.contains("(`git fsck`: clean)"), "{summary}");
    assert!(
        lines
            .last()
            .is_some_and(|l| l.contains("git coord demo --keep")),
        "{text}"
    );
}

/// `--full`: every command with its real output.
#[test]
fn the_demo_runs_start_to_end_and_cleans_up() {
    let repo = TestRepo::new();
    let scratch = repo.tmp().join("scratch");
    std::fs::create_dir_all(&scratch).expect("a scratch directory");
    let out = repo
        .command(BIN, repo.tmp())
        .args(["demo", "--full"])
        .env("TMPDIR", &scratch)
        .output()
        .expect("the demo runs");
    let text = stdout(&ok(out, "git coord demo"));
    for shown in [
        "claimed",                            // two agents claim at once
        "dependency cycle",                   // a refused cycle
        "leased exclusively to alice",        // the lease guard stops bob's commit
        "committed",                          // and lets it through after the release
        "login crashes on an empty password", // the handoff on a task's thread
        "Organiser brief",                    // the organiser's view
        "checkpoint 2: moved",                // a feature workflow's checkpoints
        "Coord-Agent: alice",                 // the trailers on alice's commit and on main
        "Coord-Gate: passed",                 // the gate results on the merge commit
        "failed 3 times",                     // the breaker trips
        "Breaker tripped",                    // and the organiser is told
        "8/8 done, finished",                 // the workflow run to its end
        "whoami -> alice (dev)",              // the MCP server in alice's worktree
        "GET http://127.0.0.1:",              // the dashboard's JSON
        "claimed (the remote accepted it)",   // the online claim race
        "You lost the claim",                 // the offline race settled by sync
        ":erin: parse() panics",              // mail into another project, from project:agent
        "lib:",                               // a task filed into another project
        "done: empty input now parses",       // followed home
        "ready: ",                            // the dependent task unblocked
        "clean",                              // git fsck
        // Real outputs of the commands shown, not retellings of them.
        "initialised refs/coord/tasks",
        "already initialised: nothing to do",
        "commands run in that worktree act as alice with no flag",
        "pre-commit: installed (",
        "acquired lease ",
        "synced with origin (1 round)",
    ] {
        assert!(
            text.contains(shown),
            "the demo did not show {shown:?}:\n{text}"
        );
    }
    // The first push shares refs/coord/* through the pre-push hook; sync then finds them there.
    assert!(
        text.contains("git-coord: refs/coord/* synced with origin"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.trim_start().starts_with("refs/coord/tasks") && l.ends_with("up-to-date")),
        "{text}"
    );
    assert!(!text.contains("pushed 0 refs"), "{text}");
    let left: Vec<_> = std::fs::read_dir(&scratch).expect("scratch").collect();
    assert!(left.is_empty(), "the demo left {left:?} behind");
}
