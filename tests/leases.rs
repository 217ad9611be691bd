//! Leases as agents use them: reserve paths, collide, share, expire, renew, release, and check
//! paths before touching them.

mod common;

use std::process::Stdio;

use serde_json::Value;

use common::{LEASES_REF, TestRepo, fails, field, is_full_id, json, ok, stderr, stdout};

/// `lease acquire ARGS --json` as `agent`; insists it succeeds and returns the lease.
fn acquire(repo: &TestRepo, agent: &str, args: &[&str]) -> Value {
    let mut all = vec!["lease", "acquire"];
    all.extend_from_slice(args);
    all.push("--json");
    json(&repo.coord_as_ok(agent, &all))
}

/// `lease acquire ARGS` as `agent`; insists it is refused (exit 3) and returns stderr.
fn refused(repo: &TestRepo, agent: &str, args: &[&str]) -> String {
    let mut all = vec!["lease", "acquire"];
    all.extend_from_slice(args);
    fails(&repo.coord_as(agent, &all), 3)
}

fn id(lease: &Value) -> String {
    field(lease, "id").expect("a lease id").to_string()
}

/// (agent, patterns) of each lease listed, in list order.
fn holders(leases: &[Value]) -> Vec<(String, Vec<String>)> {
    leases
        .iter()
        .map(|l| {
            let patterns = l["patterns"]
                .as_array()
                .expect("patterns")
                .iter()
                .map(|p| p.as_str().expect("a pattern").to_string())
                .collect();
            (field(l, "agent").expect("an agent").to_string(), patterns)
        })
        .collect()
}

fn commit_count(repo: &TestRepo) -> usize {
    repo.git_ok(&["rev-list", "--count", LEASES_REF])
        .parse()
        .expect("a count")
}

#[test]
fn ten_agents_racing_for_overlapping_paths_leave_exactly_one_holder() {
    let repo = TestRepo::init();
    repo.write_file("src/main.rs", "fn main() {}\n");
    let patterns = ["src/**", "src/main.rs", "src/", "/src", "*.rs"];
    // Every process waits on a FIFO and starts acquiring the moment it is opened for writing, so
    // the ten really race instead of running one after another.
    let gate = repo.tmp().join("gate");
    ok(
        repo.command("mkfifo", repo.tmp())
            .arg(&gate)
            .output()
            .expect("mkfifo runs"),
        "mkfifo",
    );
    let children: Vec<_> = (0..10)
        .map(|n| {
            let agent = format!("racer{n}");
            let pattern = patterns[n % patterns.len()];
            let child = repo
                .command("sh", &repo.path)
                .args(["-c", "read _ < \"$0\"; exec \"$@\""])
                .arg(&gate)
                .args([
                    common::BIN,
                    "--agent",
                    &agent,
                    "lease",
                    "acquire",
                    pattern,
                    "--json",
                ])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("sh starts");
            (agent, child)
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(300));
    drop(
        std::fs::OpenOptions::new()
            .write(true)
            .open(&gate)
            .expect("the gate opens"),
    );
    let outcomes: Vec<(String, std::process::Output)> = children
        .into_iter()
        .map(|(agent, child)| (agent, child.wait_with_output().expect("git-coord ends")))
        .collect();

    let winners: Vec<&(String, std::process::Output)> = outcomes
        .iter()
        .filter(|(_, out)| out.status.success())
        .collect();
    assert_eq!(
        winners.len(),
        1,
        "exactly one agent gets the lease: {:?}",
        outcomes
            .iter()
            .map(|(a, o)| (a, o.status.code(), stderr(o)))
            .collect::<Vec<_>>()
    );
    let (winner, won) = winners[0];
    let granted = json(&stdout(won));
    let leases = repo.leases(false);
    assert_eq!(leases.len(), 1, "one lease is held: {leases:?}");
    assert_eq!(field(&leases[0], "agent"), Some(winner.as_str()));
    assert_eq!(field(&leases[0], "id"), field(&granted, "id"));
    for (agent, out) in outcomes.iter().filter(|(a, _)| a != winner) {
        let err = fails(out, 3);
        assert!(
            err.contains(&format!("leased by {winner} until"))
                && err.contains(field(&granted, "expires").expect("an expiry"))
                && err.contains(&id(&granted)),
            "{agent} is told who holds it, until when, and which lease: {err}"
        );
    }
    assert_eq!(commit_count(&repo), 2, "the root commit and one acquire");
    repo.assert_fsck_clean();
}

#[test]
fn shared_leases_coexist_but_never_with_another_agents_exclusive_one() {
    let repo = TestRepo::init();
    repo.write_file("docs/a.md", "# A\n");
    acquire(&repo, "alice", &["--shared", "docs/"]);
    acquire(&repo, "bob", &["--shared", "docs/*.md"]);

    let err = refused(&repo, "carol", &["docs/a.md"]);
    assert!(err.contains("shared lease"), "{err}");
    assert!(err.contains("alice") || err.contains("bob"), "{err}");
    // Alice's exclusive lease would overlap Bob's shared one; her own shared one does not count.
    let err = refused(&repo, "alice", &["docs/"]);
    assert!(
        err.contains("leased by bob") && err.contains("'docs/*.md'"),
        "{err}"
    );

    acquire(&repo, "carol", &["src/**"]);
    let err = refused(&repo, "dave", &["--shared", "src/lib.rs"]);
    assert!(
        err.contains("leased by carol") && err.contains("exclusive lease"),
        "{err}"
    );

    // An agent's own leases never conflict, whatever their modes.
    acquire(&repo, "carol", &["src/main.rs"]);
    acquire(&repo, "carol", &["--shared", "src/"]);
    acquire(&repo, "carol", &["*.rs"]);

    let by = holders(&repo.leases(false));
    assert_eq!(by.len(), 6, "{by:?}");
    assert_eq!(by[0], ("alice".into(), vec!["docs/".into()]));
    assert_eq!(by[1], ("bob".into(), vec!["docs/*.md".into()]));
    assert!(by[2..].iter().all(|(agent, _)| agent == "carol"));
}

#[test]
fn leases_overlap_through_the_paths_that_exist() {
    let repo = TestRepo::init();
    repo.write_file("src/main.rs", "fn main() {}\n");
    repo.git_ok(&["add", "src/main.rs"]);
    repo.git_ok(&["commit", "-q", "-m", "main"]);
    repo.write_file("docs/a.md", "# A\n");
    repo.write_file(".gitignore", "*.log\n");
    repo.write_file("gen/debug.log", "ignored\n");

    acquire(&repo, "alice", &["src/*.rs"]);
    let err = refused(&repo, "bob", &["src/main.rs"]);
    assert!(err.contains("src/main.rs is leased by alice"), "{err}");
    assert!(err.contains("pattern 'src/*.rs'"), "{err}");
    // `main.rs` (any depth) and `src/*.rs` share no text; they meet in the file that exists.
    let err = refused(&repo, "bob", &["main.rs"]);
    assert!(err.contains("src/main.rs is leased by alice"), "{err}");

    acquire(&repo, "alice", &["docs/"]);
    let err = refused(&repo, "bob", &["docs/a.md"]);
    assert!(
        err.contains("leased by alice") && err.contains("'docs/'"),
        "{err}"
    );

    // Paths that do not meet anywhere are free.
    acquire(&repo, "bob", &["lib/*.rs", "*.md5", "README"]);
    // A file under gen/ that git ignores does not make `gen/` and `*.log` overlap...
    let gen_lease = acquire(&repo, "alice", &["gen/"]);
    acquire(&repo, "bob", &["--ttl", "1m", "*.log", "*.cfg"]);
    // ...an untracked file that git does not ignore does.
    repo.write_file("gen/out.txt", "generated\n");
    let err = refused(&repo, "bob", &["*.txt"]);
    assert!(err.contains("gen/out.txt is leased by alice"), "{err}");
    // Leases granted before a file made them meet stay as they are, and can be renewed.
    repo.write_file("gen/app.cfg", "generated\n");
    repo.coord_as_ok("alice", &["lease", "renew", &id(&gen_lease)]);
}

#[test]
fn leases_overlap_through_their_patterns_alone() {
    let repo = TestRepo::init();
    // Nothing exists under src/: the patterns themselves are compared.
    acquire(&repo, "alice", &["src/**"]);
    let err = refused(&repo, "bob", &["/src/lib.rs"]);
    assert!(err.contains("src/lib.rs is leased by alice"), "{err}");
    assert!(err.contains("pattern 'src/**'"), "{err}");
    let err = refused(&repo, "bob", &["src/deep/"]);
    assert!(err.contains("leased by alice"), "{err}");
    acquire(&repo, "carol", &["/tests/fixtures/a.json"]);
    let err = refused(&repo, "bob", &["tests/"]);
    assert!(
        err.contains("leased by carol") && err.contains("tests/fixtures/a.json"),
        "{err}"
    );
    let err = refused(&repo, "bob", &["**/*.json"]);
    assert!(err.contains("leased by carol"), "{err}");
    // A directory named at the root and the same directory named at any depth.
    acquire(&repo, "dave", &["/vendor"]);
    let err = refused(&repo, "erin", &["vendor/"]);
    assert!(err.contains("leased by dave"), "{err}");
    acquire(&repo, "erin", &["src2/**", "vendor2"]);
}

#[test]
fn lease_check_says_who_holds_a_path_and_until_when() {
    let repo = TestRepo::init();
    let held = acquire(
        &repo,
        "alice",
        &["src/**", "--reason", "refactoring the parser"],
    );
    let expires = field(&held, "expires").expect("an expiry").to_string();
    acquire(&repo, "carol", &["--shared", "docs/"]);

    let out = repo.coord_as("bob", &["lease", "check", "README.md", "src/parse/mod.rs"]);
    let err = fails(&out, 3);
    let text = stdout(&out);
    assert!(
        text.contains("src/parse/mod.rs: leased by alice until")
            && text.contains(&expires)
            && text.contains("pattern 'src/**'")
            && text.contains(&id(&held)),
        "{text}"
    );
    assert!(!text.contains("README.md"), "README.md is free: {text}");
    // The conflict is said once (stdout); the error only counts it, so a terminal shows it once.
    assert!(!err.contains("src/parse/mod.rs"), "{err}");
    assert!(
        err.contains("1 of the paths checked is leased by other agents (listed above)"),
        "{err}"
    );

    let out = repo.coord_as("bob", &["lease", "check", "src/a.rs", "src/b.rs", "--json"]);
    fails(&out, 3);
    let report = json(&stdout(&out));
    assert_eq!(report["exit_code"], 3);
    let conflicts = report["conflicts"].as_array().expect("conflicts");
    assert_eq!(conflicts.len(), 2, "{report}");
    assert_eq!(field(&conflicts[0], "path"), Some("src/a.rs"));
    assert_eq!(field(&conflicts[1], "path"), Some("src/b.rs"));
    for c in conflicts {
        assert_eq!(field(c, "holder"), Some("alice"));
        assert_eq!(field(c, "pattern"), Some("src/**"));
        assert_eq!(field(c, "lease_id"), Some(id(&held).as_str()));
        assert_eq!(field(c, "expires"), Some(expires.as_str()));
    }

    // A directory conflicts with a lease under it.
    fails(&repo.coord_as("bob", &["lease", "check", "src/"]), 3);
    // The holder may touch its own paths; a shared lease blocks nobody; free paths are free.
    let out = ok(
        repo.coord_as("alice", &["lease", "check", "src/a.rs"]),
        "alice checks",
    );
    assert!(stdout(&out).starts_with("ok"), "{}", stdout(&out));
    repo.coord_as_ok(
        "bob",
        &["lease", "check", "docs/guide.md", "README.md", "srcx/a.rs"],
    );
    let clear = json(&repo.coord_as_ok("bob", &["lease", "check", "docs/x.md", "--json"]));
    assert_eq!(clear["conflicts"], serde_json::json!([]));
    // Bad paths are errors, not answers.
    let err = fails(
        &repo.coord_as("bob", &["lease", "check", "../etc/passwd"]),
        1,
    );
    assert!(err.contains("invalid path"), "{err}");
}

#[test]
fn expired_leases_stop_counting_without_clean_up() {
    let repo = TestRepo::init();
    let old = acquire(&repo, "alice", &["--ttl", "1s", "src/**"]);
    fails(&repo.coord_as("bob", &["lease", "check", "src/main.rs"]), 3);
    std::thread::sleep(std::time::Duration::from_secs(2));

    repo.coord_as_ok("bob", &["lease", "check", "src/main.rs"]);
    let new = acquire(&repo, "bob", &["src/main.rs"]);
    assert_eq!(
        holders(&repo.leases(false)),
        vec![("bob".into(), vec!["src/main.rs".into()])]
    );
    let all = repo.leases(true);
    let expired = all
        .iter()
        .find(|l| field(l, "id") == field(&old, "id"))
        .expect("the expired lease is still listed with --all");
    assert_eq!(field(expired, "status"), Some("expired"));

    // Renewing the expired lease would now overlap Bob's.
    let err = fails(&repo.coord_as("alice", &["lease", "renew", &id(&old)]), 3);
    assert!(
        err.contains("leased by bob") && err.contains(&id(&new)),
        "{err}"
    );
}

#[test]
fn renew_and_release() {
    let repo = TestRepo::init();
    let lease = acquire(
        &repo,
        "alice",
        &["--ttl", "1m", "src/**", "src/**", "docs/"],
    );
    assert!(is_full_id(&id(&lease)));
    assert_eq!(
        lease["patterns"],
        serde_json::json!(["src/**", "docs/"]),
        "repeats kept once"
    );
    assert_eq!(field(&lease, "mode"), Some("exclusive"));
    assert_eq!(field(&lease, "status"), Some("active"));
    let message = repo.git_ok(&["log", "-1", "--format=%B", LEASES_REF]);
    assert!(
        message.starts_with(&format!("acquire {} by alice", id(&lease)))
            && message.contains("Coord-Op: acquire")
            && message.contains(&format!("Coord-Lease: {}", id(&lease))),
        "{message}"
    );

    let prefix = &id(&lease)[..6];
    let renewed = json(&repo.coord_as_ok(
        "alice",
        &["lease", "renew", prefix, "--ttl", "2h", "--json"],
    ));
    assert!(
        field(&renewed, "expires") > field(&lease, "expires"),
        "{renewed} after {lease}"
    );
    assert_eq!(repo.leases(false)[0]["expires"], renewed["expires"]);

    let err = fails(&repo.coord_as("bob", &["lease", "renew", prefix]), 3);
    assert!(err.contains("held by alice"), "{err}");
    let err = fails(&repo.coord_as("bob", &["lease", "release", prefix]), 3);
    assert!(err.contains("held by alice"), "{err}");
    let err = fails(&repo.coord_as("bob", &["lease", "release", "abcd"]), 1);
    assert!(err.contains("no lease matches"), "{err}");

    let released =
        json(&repo.coord_as_ok("bob", &["lease", "release", prefix, "--force", "--json"]));
    assert_eq!(field(&released, "status"), Some("released"));
    assert!(field(&released, "released").is_some());
    assert!(repo.leases(false).is_empty());
    let tip = repo.ref_tip(LEASES_REF);
    repo.coord_as_ok("alice", &["lease", "release", prefix]);
    assert_eq!(
        repo.ref_tip(LEASES_REF),
        tip,
        "releasing twice writes nothing"
    );
    let err = fails(&repo.coord_as("alice", &["lease", "renew", prefix]), 3);
    assert!(err.contains("was released"), "{err}");
    // The tombstone is listed with --all, and frees the paths.
    let all = repo.leases(true);
    assert_eq!(field(&all[0], "status"), Some("released"));
    acquire(&repo, "bob", &["src/lib.rs"]);

    // release --all: every lease of the acting agent, and nobody else's.
    acquire(&repo, "alice", &["a/"]);
    acquire(&repo, "alice", &["b/"]);
    acquire(&repo, "carol", &["c/"]);
    let gone = json(&repo.coord_as_ok("alice", &["lease", "release", "--all", "--json"]));
    assert_eq!(gone.as_array().map(Vec::len), Some(2), "{gone}");
    let left: Vec<String> = holders(&repo.leases(false))
        .into_iter()
        .map(|(a, _)| a)
        .collect();
    assert_eq!(left, vec!["bob", "carol"]);
    let tip = repo.ref_tip(LEASES_REF);
    assert_eq!(
        repo.coord_as_ok("alice", &["lease", "release", "--all"])
            .trim(),
        "no leases to release"
    );
    assert_eq!(repo.ref_tip(LEASES_REF), tip);
    repo.assert_fsck_clean();
}

#[test]
fn leases_taken_for_a_task_are_released_for_it() {
    let repo = TestRepo::init();
    let task = repo.new_task("Parser", &[]);
    let other = repo.new_task("Docs", &[]);
    let lease = acquire(&repo, "alice", &["src/**", "--task", &task[..6]]);
    assert_eq!(
        field(&lease, "task"),
        Some(task.as_str()),
        "the prefix is resolved"
    );
    acquire(&repo, "bob", &["--shared", "docs/", "--task", &task]);
    acquire(&repo, "bob", &["tests/", "--task", &other]);
    acquire(&repo, "bob", &["benches/"]);
    let err = fails(
        &repo.coord_as("alice", &["lease", "acquire", "x/", "--task", "abcdef"]),
        1,
    );
    assert!(err.contains("no task matches"), "{err}");

    // Finishing the task releases its two leases, in one write.
    repo.coord_as_ok("olga", &["task", "done", &task]);
    let left: Vec<Vec<String>> = holders(&repo.leases(false))
        .into_iter()
        .map(|(_, p)| p)
        .collect();
    assert_eq!(
        left,
        vec![vec!["tests/".to_string()], vec!["benches/".to_string()]]
    );
    let message = repo.git_ok(&["log", "-1", "--format=%B", LEASES_REF]);
    assert!(
        message.starts_with("release 2 leases by olga")
            && message.contains(&format!("Coord-Task: {task}")),
        "{message}"
    );
}

#[test]
fn bad_patterns_and_durations_are_refused_and_change_nothing() {
    let repo = TestRepo::init();
    acquire(&repo, "alice", &["keep/"]);
    let tip = repo.ref_tip(LEASES_REF);
    let absolute = format!("{}/src/main.rs", repo.path.display());
    for (args, words) in [
        (vec!["../outside"], "'..' is not allowed"),
        (vec!["src/../../etc"], "'..' is not allowed"),
        (vec![""], "it is empty"),
        (vec!["/"], "whole repository"),
        (vec!["!src"], "negation"),
        (vec!["src/[a-"], "not a valid glob"),
        (vec!["a//b"], "empty path component"),
        (vec![absolute.as_str()], "absolute filesystem path"),
        (vec!["ok/", "../bad"], "'..' is not allowed"),
        (vec!["src/", "--reason", "two\nlines"], "one line"),
    ] {
        let mut all = vec!["lease", "acquire"];
        all.extend_from_slice(&args);
        let err = fails(&repo.coord_as("bob", &all), 1);
        assert!(err.contains(words), "{args:?}: expected {words:?} in {err}");
        assert_eq!(repo.ref_tip(LEASES_REF), tip, "{args:?} changed the leases");
    }
    // A flag value that does not parse is a usage error (exit 2), like an unknown flag.
    for (ttl, words) in [
        ("8d", "longer than 7d"),
        ("30", "no unit"),
        ("soon", "not a unit"),
        ("0s", "at least 1s"),
    ] {
        let err = fails(
            &repo.coord_as("bob", &["lease", "acquire", "src/", "--ttl", ttl]),
            2,
        );
        assert!(
            err.contains(words),
            "--ttl {ttl}: expected {words:?} in {err}"
        );
        assert_eq!(
            repo.ref_tip(LEASES_REF),
            tip,
            "--ttl {ttl} changed the leases"
        );
    }
    fails(&repo.coord_as("bob", &["lease", "acquire"]), 2);
    let held = repo.leases(false);
    let err = fails(
        &repo.coord_as("alice", &["lease", "renew", &id(&held[0]), "--ttl", "2w"]),
        2,
    );
    assert!(err.contains("invalid ttl"), "{err}");
    assert_eq!(repo.ref_tip(LEASES_REF), tip);
}

#[test]
fn damaged_and_long_ended_leases() {
    let repo = TestRepo::init();
    let lease = acquire(&repo, "alice", &["src/"]);
    repo.put_document_in(
        LEASES_REF,
        "leases/0123456789ab.yaml",
        b"format: 1\nid: [oops\n",
    );
    let long_ago = "format: 1\nid: abcdefabcdef\nagent: zed\nhuman: Zed\npatterns:\n- old/\nmode: exclusive\nacquired: \"2020-01-01T00:00:00.000Z\"\nexpires: \"2020-01-01T00:30:00.000Z\"\n";
    repo.put_document_in(LEASES_REF, "leases/abcdefabcdef.yaml", long_ago.as_bytes());

    let out = ok(repo.coord(&["lease", "list", "--all"]), "lease list");
    assert!(
        stderr(&out).contains("warning: skipped refs/coord/leases:leases/0123456789ab.yaml"),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).contains(&id(&lease)) && stdout(&out).contains("expired"));
    let err = fails(&repo.coord_as("alice", &["lease", "release", "0123"]), 1);
    assert!(err.contains("malformed document"), "{err}");
    // A damaged document does not stop leases from working.
    fails(&repo.coord_as("bob", &["lease", "acquire", "src/x"]), 3);
    acquire(&repo, "bob", &["old/"]);
    // That write dropped the lease that ended years ago; the damaged one stays for a human.
    let tree = repo.git_ok(&["ls-tree", "--name-only", &format!("{LEASES_REF}:leases")]);
    assert!(!tree.contains("abcdefabcdef"), "{tree}");
    assert!(tree.contains("0123456789ab"), "{tree}");
    let message = repo.git_ok(&["log", "-1", "--format=%B", LEASES_REF]);
    assert!(message.contains("Coord-Pruned: 1"), "{message}");
}

#[test]
fn a_lease_follows_its_task_even_when_the_lease_write_after_it_never_happened() {
    let repo = TestRepo::init();
    let task = repo.new_task("parser", &[]);
    repo.coord_as_ok("alice", &["task", "claim", &task]);
    acquire(&repo, "alice", &["src/", "--task", &task]);
    fails(&repo.coord_as("bob", &["lease", "check", "src/a.rs"]), 3);

    // A takeover whose command died after the task write, before passing the lease: the task
    // is bob's, the lease still names alice. It binds bob's work no longer, and carol's still.
    let path = common::task_path(&task);
    let shown = repo.git_ok(&["show", &format!("refs/coord/tasks:{path}")]);
    let taken = shown.replace("assignee: alice", "assignee: bob");
    assert_ne!(taken, shown, "the document names its holder: {shown}");
    repo.put_document_in("refs/coord/tasks", &path, taken.as_bytes());
    repo.coord_as_ok("bob", &["lease", "check", "src/a.rs"]);
    fails(&repo.coord_as("carol", &["lease", "check", "src/a.rs"]), 3);
    refused(&repo, "carol", &["src/b.rs"]);

    // Then done, again without the lease's release: the lease is in no one's way.
    let done = taken.replace("state: claimed", "state: done");
    assert_ne!(done, taken, "{taken}");
    repo.put_document_in("refs/coord/tasks", &path, done.as_bytes());
    repo.coord_as_ok("carol", &["lease", "check", "src/a.rs"]);
    acquire(&repo, "carol", &["src/b.rs"]);
    // The lease document itself was never touched.
    let alices = repo.leases(false);
    assert!(alices.iter().any(|l| l["agent"] == "alice"), "{alices:?}");
}
