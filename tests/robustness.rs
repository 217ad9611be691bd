//! What survives the worst: writers killed mid-write, documents broken by hand, bad input.

mod common;

use std::collections::BTreeSet;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{
    Jitter, TASKS_REF, TestRepo, fails, field, ids, is_full_id, json, stderr, stdout, task_path,
};

/// A writer started in a round of the kill test: the agent it claims as (None for `task new`),
/// and the moment it gets SIGKILL unless it has finished by then.
struct Writer {
    child: Child,
    agent: Option<String>,
    deadline: Duration,
}

#[test]
fn writers_killed_at_random_moments_leave_a_valid_repository() {
    const ROUNDS: usize = 40;
    const WRITERS_PER_ROUND: usize = 3;
    let repo = TestRepo::init();
    let mut rng = Jitter::new();
    let mut created = BTreeSet::new();
    // How long one write takes on this machine (the median of a few, the first run being cold),
    // so the kills land before, during and after a write however fast or slow the machine is.
    let mut write_times = Vec::new();
    for n in 0..7 {
        let started = Instant::now();
        created.insert(repo.new_task(&format!("seed {n}"), &[]));
        write_times.push(started.elapsed());
    }
    write_times.sort();
    let write_time = write_times[write_times.len() / 2];
    let window = (write_time * 2).as_micros().max(1) as u64;
    let lock = repo.path.join(".git").join(format!("{TASKS_REF}.lock"));
    let mut claimed: Vec<(String, String)> = Vec::new();
    let (mut killed, mut stale_locks) = (0, Vec::new());

    for round in 0..ROUNDS {
        let started = Instant::now();
        let mut writers: Vec<Writer> = (0..WRITERS_PER_ROUND)
            .map(|w| {
                let (args, agent) = if rng.below(2) == 0 {
                    let title = format!("round {round} writer {w}");
                    (["task", "new", &title].map(String::from).to_vec(), None)
                } else {
                    let agent = format!("k{round}-{w}");
                    let args = ["--agent", &agent, "task", "claim", "--next", "--json"];
                    (args.map(String::from).to_vec(), Some(agent))
                };
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                let child = repo
                    .coord_cmd(&args)
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("git-coord starts");
                let deadline = Duration::from_micros(rng.below(window));
                Writer {
                    child,
                    agent,
                    deadline,
                }
            })
            .collect();
        writers.sort_by_key(|w| w.deadline);
        for mut writer in writers {
            std::thread::sleep(writer.deadline.saturating_sub(started.elapsed()));
            // SIGKILL; an error only means the writer had already finished.
            let _ = writer.child.kill();
            let out = writer
                .child
                .wait_with_output()
                .expect("the writer is reaped");
            if !out.status.success() {
                killed += usize::from(out.status.code().is_none());
                continue;
            }
            match writer.agent {
                None => {
                    let id = stdout(&out).trim().to_string();
                    assert!(is_full_id(&id), "task new printed {id:?}");
                    created.insert(id);
                }
                Some(agent) => {
                    let task = json(&stdout(&out));
                    let id = field(&task, "id").expect("a claimed id").to_string();
                    claimed.push((id, agent));
                }
            }
        }
        // Every writer of the round is reaped, so a lock file left now belongs to a dead one.
        // Recovering it is checked by `a_stale_ref_lock_...`; here it is cleared at once, so the
        // later rounds do not wait for it to grow old.
        if lock.exists() {
            stale_locks.push(round);
            std::fs::remove_file(&lock).expect("the stale lock is removable");
        }
    }
    assert!(killed > 0, "no writer was ever killed mid-run");
    eprintln!(
        "{killed} writers killed; {} tasks and {} claims to find",
        created.len(),
        claimed.len()
    );
    if !stale_locks.is_empty() {
        eprintln!("note: killed writers left {TASKS_REF}.lock after rounds {stale_locks:?}");
    }

    repo.assert_fsck_clean();
    let listed: BTreeSet<String> = ids(&repo.list()).into_iter().collect(); // fails on a warning
    for id in &created {
        assert!(
            listed.contains(id),
            "task {id}, reported created, is missing"
        );
    }
    for (id, agent) in &claimed {
        let task = repo.show(id);
        assert_eq!(field(&task, "state"), Some("claimed"), "{task}");
        assert_eq!(
            field(&task, "assignee"),
            Some(agent.as_str()),
            "task {id} was reported claimed by {agent}"
        );
    }
    // The repository still takes writes.
    let id = repo.new_task("after the storm", &[]);
    let out = repo.coord_as("survivor", &["task", "claim", &id, "--json"]);
    assert_eq!(field(&json(&stdout(&out)), "assignee"), Some("survivor"));
}

#[test]
fn a_stale_ref_lock_left_by_a_killed_writer_is_recovered() {
    // What a writer killed between taking the ref lock and renaming it into place leaves behind,
    // found a minute later.
    let repo = TestRepo::init();
    let id = repo.new_task("before the crash", &[]);
    let refs_dir = repo.path.join(".git/refs/coord");
    let lock = refs_dir.join("tasks.lock");
    let stale = std::fs::File::create(&lock).expect("a lock file");
    let a_minute_ago = std::time::SystemTime::now() - Duration::from_secs(60);
    stale
        .set_modified(a_minute_ago)
        .expect("the lock is backdated");
    drop(stale);

    let out = repo.coord_as("next", &["task", "claim", &id, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(field(&json(&stdout(&out)), "assignee"), Some("next"));
    assert_eq!(field(&repo.show(&id), "assignee"), Some("next"));
    let left: Vec<String> = std::fs::read_dir(&refs_dir)
        .expect("refs/coord")
        .map(|e| {
            e.expect("an entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| name.contains("lock"))
        .collect();
    assert!(left.is_empty(), "lock files left behind: {left:?}");
    repo.assert_fsck_clean();
}

#[test]
fn a_fresh_ref_lock_is_waited_for_not_taken() {
    // A lock just taken belongs to a live writer (git itself, say): wait for it, never steal it.
    let repo = TestRepo::init();
    let id = repo.new_task("wanted", &[]);
    let tip = repo.tip();
    let lock = repo.path.join(".git/refs/coord/tasks.lock");
    std::fs::write(&lock, "").expect("a lock file");
    let writer = repo
        .coord_cmd(&["--agent", "patient", "task", "claim", &id])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("git-coord starts");
    std::thread::sleep(Duration::from_millis(300));
    assert!(lock.exists(), "a live writer's lock was taken");
    assert_eq!(repo.tip(), tip, "the ref moved under a held lock");
    std::fs::remove_file(&lock).expect("the lock is released");

    let out = writer.wait_with_output().expect("the writer finishes");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(field(&repo.show(&id), "assignee"), Some("patient"));
}

/// A valid task document, written by hand, as a newer or older git-coord might have.
fn task_yaml(id: &str, title: &str) -> String {
    format!(
        "format: 1\nid: {id}\ntitle: {title}\ntype: task\nstate: open\npriority: 2\n\
         created: \"2020-01-01T00:00:00.000Z\"\ncreated_by: someone\n\
         updated: \"2020-01-01T00:00:00.000Z\"\n"
    )
}

/// Task `n` of a store written in one go, in the shape git-coord writes: an id spread over the
/// shards, every summary field used by some task, a two-line summary on every third.
fn canonical_task(n: usize) -> (String, String) {
    let id = format!("{:02x}{n:010x}", (n * 37) % 256);
    let state = ["open", "claimed", "done", "blocked"][n % 4];
    let mut doc = format!(
        "format: 1\nid: {id}\ntitle: Packed task number {n}\ntype: task\nstate: {state}\n\
         priority: {}\nrole: dev\nlabels:\n- packed\n- l{}\n",
        n % 5,
        n % 3
    );
    if state != "open" {
        doc.push_str(&format!("assignee: agent{}\n", n % 7));
    }
    if n.is_multiple_of(3) {
        doc.push_str("summary: |-\n  two\n  lines\n");
    }
    if state == "blocked" {
        doc.push_str("block_reason: waiting\n");
    }
    doc.push_str(
        "created: \"2026-01-01T00:00:00.000Z\"\ncreated_by: bench\n\
         updated: \"2026-01-02T00:00:00.000Z\"\ndescription: Written in one go.\nhistory:\n\
         - at: \"2026-01-01T00:00:00.000Z\"\n  agent: bench\n  op: new\n",
    );
    (id, doc)
}

#[test]
fn a_cold_index_of_a_packed_store_lists_what_the_warm_one_does_and_names_the_same_problems() {
    const TASKS: usize = 600;
    let repo = TestRepo::init();
    // One commit of packed documents, each blob a delta of the one before, as fast-import and the
    // benchmark write them: the cold index reads them in pack order, on several threads.
    let mut stream = Vec::new();
    let docs: Vec<(String, String)> = (0..TASKS).map(canonical_task).collect();
    for (n, (_, doc)) in docs.iter().enumerate() {
        stream.extend_from_slice(format!("blob\nmark :{}\ndata {}\n", n + 1, doc.len()).as_bytes());
        stream.extend_from_slice(doc.as_bytes());
        stream.push(b'\n');
    }
    stream.extend_from_slice(
        format!(
            "commit {TASKS_REF}\ncommitter Test <test@example.com> 0 +0000\ndata 5\nbulk\nfrom {TASKS_REF}^0\n"
        )
        .as_bytes(),
    );
    for (n, (id, _)) in docs.iter().enumerate() {
        stream.extend_from_slice(format!("M 100644 :{} {}\n", n + 1, task_path(id)).as_bytes());
    }
    repo.git_with_input(&["fast-import", "--quiet"], &[], &stream);
    // Loose objects beside the pack: one hand-written document for the YAML parser, and three
    // that must be named as problems whichever way the index was built.
    let hand = "ab0000000001";
    repo.put_document(
        &task_path(hand),
        task_yaml(hand, "'single quoted, by hand'").as_bytes(),
    );
    let bad_yaml = "b0d000000001";
    repo.put_document(
        &task_path(bad_yaml),
        format!("format: 1\nid: {bad_yaml}\ntitle: [unclosed\n  state: : open\n").as_bytes(),
    );
    let misplaced = "c0c000000001";
    let misplaced_path = format!("tasks/aa/{misplaced}.yaml");
    repo.put_document(
        &misplaced_path,
        task_yaml(misplaced, "elsewhere").as_bytes(),
    );
    let huge = "e0e000000bad";
    let mut big = task_yaml(huge, "too big");
    big.push_str("description: |\n");
    while big.len() <= 1024 * 1024 + 100 {
        big.push_str("  a line of padding that makes this document larger than one mebibyte\n");
    }
    let tip = repo.put_document(&task_path(huge), big.as_bytes());

    let cache = repo.path.join(".git/coord/cache");
    let run = |args: &[&str]| {
        let out = repo.coord(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        (stdout(&out), stderr(&out))
    };
    let _ = std::fs::remove_dir_all(&cache);
    let cold = run(&["task", "list", "--json"]);
    let listed = common::array(json(&cold.0));
    assert_eq!(listed.len(), TASKS + 1, "every good task is listed");
    for n in [0, 1, 2, 3, 299, 598] {
        let (id, _) = canonical_task(n);
        let task = listed
            .iter()
            .find(|t| field(t, "id") == Some(id.as_str()))
            .unwrap_or_else(|| panic!("task {n} ({id}) is not listed"));
        assert_eq!(
            field(task, "title"),
            Some(format!("Packed task number {n}").as_str())
        );
        assert_eq!(
            field(task, "state"),
            Some(["open", "claimed", "done", "blocked"][n % 4])
        );
        assert_eq!(task["priority"], n % 5);
        assert_eq!(
            task["labels"],
            serde_json::json!(["packed", format!("l{}", n % 3)])
        );
        let assignee = (!n.is_multiple_of(4)).then(|| format!("agent{}", n % 7));
        assert_eq!(field(task, "assignee"), assignee.as_deref());
        assert_eq!(
            field(task, "summary"),
            n.is_multiple_of(3).then_some("two\nlines")
        );
        assert_eq!(field(task, "updated"), Some("2026-01-02T00:00:00.000Z"));
    }
    let by_hand = listed.iter().find(|t| field(t, "id") == Some(hand));
    assert_eq!(
        by_hand.and_then(|t| field(t, "title")),
        Some("single quoted, by hand")
    );
    for (bad, why) in [
        (task_path(bad_yaml), ""),
        (misplaced_path.clone(), "wrong shard"),
        (task_path(huge), "limit"),
    ] {
        let named = format!("refs/coord/tasks:{bad}");
        let line = cold.1.lines().find(|l| l.contains(&named));
        assert!(
            line.is_some_and(|l| l.contains(why)),
            "{named} ({why}) not named in:\n{}",
            cold.1
        );
    }
    assert_eq!(
        cold.1.lines().count(),
        3,
        "one warning per bad document:\n{}",
        cold.1
    );
    let cold_ready = run(&["ready", "--json"]);

    // Warm, from the cache file the cold run wrote: the same listing and the same problems.
    assert!(
        cache.join("tasks.index").exists(),
        "the cold run saved the index"
    );
    assert_eq!(run(&["task", "list", "--json"]), cold);
    assert_eq!(run(&["ready", "--json"]), cold_ready);

    // Repacked (other deltas, another order) and cold again: still the same.
    repo.git_ok(&[
        "repack",
        "-a",
        "-d",
        "-f",
        "-q",
        "--window=50",
        "--depth=20",
    ]);
    std::fs::remove_dir_all(&cache).expect("the cache is removable");
    assert_eq!(run(&["task", "list", "--json"]), cold);
    std::fs::remove_dir_all(&cache).expect("the cache is removable");
    assert_eq!(run(&["ready", "--json"]), cold_ready);
    assert_eq!(repo.tip(), tip, "listing changed the ref");
}

#[test]
fn malformed_documents_are_named_and_skipped_while_good_tasks_still_list() {
    let repo = TestRepo::init();
    let good_a = repo.new_task("good one", &[]);
    let good_b = repo.new_task("good two", &["--label", "fine"]);

    let bad_yaml = "b0d000000001";
    let future = "f0f000000099";
    let huge = "e0e000000bad";
    repo.put_document(
        &task_path(bad_yaml),
        format!("format: 1\nid: {bad_yaml}\ntitle: [unclosed\n  state: : open\n").as_bytes(),
    );
    repo.put_document(
        &task_path(future),
        format!(
            "format: 99\nid: {future}\nheadline: a field this build has never heard of\n\
             status: {{ phase: open }}\n"
        )
        .as_bytes(),
    );
    let mut big = task_yaml(huge, "too big");
    big.push_str("description: |\n");
    while big.len() <= 1024 * 1024 + 100 {
        big.push_str("  a line of padding that makes this document larger than one mebibyte\n");
    }
    let tip = repo.put_document(&task_path(huge), big.as_bytes());

    // Twice: the second run reads the cached index, which must still carry the problems.
    for _ in 0..2 {
        let out = repo.coord(&["task", "list", "--json"]);
        let warnings = stderr(&out);
        assert_eq!(out.status.code(), Some(0), "task list: {warnings}");
        let listed = ids(&common::array(json(&stdout(&out))));
        assert_eq!(
            listed.iter().collect::<BTreeSet<_>>(),
            [&good_a, &good_b].into_iter().collect::<BTreeSet<_>>()
        );
        for bad in [bad_yaml, future, huge] {
            let named = format!("refs/coord/tasks:{}", task_path(bad));
            assert!(
                warnings.contains(&named),
                "{named} not named in:\n{warnings}"
            );
        }
        assert_eq!(
            warnings.lines().count(),
            3,
            "one warning per bad document:\n{warnings}"
        );
        assert!(
            warnings.contains("newer"),
            "format 99 is not called newer:\n{warnings}"
        );
        assert!(
            warnings.contains("limit"),
            "the huge one is not called too big:\n{warnings}"
        );
    }
    // The human listing skips them too, and the other views as well.
    let human = repo.coord(&["task", "list"]);
    assert_eq!(human.status.code(), Some(0));
    assert_eq!(stdout(&human).lines().count(), 2, "{}", stdout(&human));
    assert!(stderr(&human).contains(&task_path(future)));
    for view in [
        &["ready"][..],
        &["blocked"],
        &["task", "list", "--label", "fine"],
    ] {
        let out = repo.coord(view);
        assert_eq!(out.status.code(), Some(0), "{view:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(&task_path(bad_yaml)), "{view:?}");
    }
    assert_eq!(repo.tip(), tip, "listing changed the ref");

    let out = repo.coord(&["task", "show", bad_yaml]);
    let err = fails(&out, 1);
    assert!(
        err.contains(&format!(
            "malformed document refs/coord/tasks:{}",
            task_path(bad_yaml)
        )),
        "{err}"
    );

    let out = repo.coord(&["task", "show", future]);
    let err = fails(&out, 1);
    assert!(
        err.contains(&format!("refs/coord/tasks:{}", task_path(future))),
        "{err}"
    );
    assert!(err.contains("format version 99, newer than"), "{err}");
    assert!(err.contains("upgrade git-coord"), "{err}");

    let out = repo.coord(&["task", "show", huge]);
    let err = fails(&out, 1);
    assert!(
        err.contains(&format!("refs/coord/tasks:{}", task_path(huge))),
        "{err}"
    );
    assert!(err.contains("over the 1048576-byte limit"), "{err}");

    // Writing to a bad document is refused without touching the ref; good ones still work.
    for bad in [bad_yaml, future, huge] {
        let out = repo.coord_as("fixer", &["task", "claim", bad]);
        assert!(fails(&out, 1).contains(&task_path(bad)));
    }
    assert_eq!(repo.tip(), tip, "a refused write changed the ref");
    let out = repo.coord_as("w1", &["task", "claim", "--next", "--json"]);
    let claimed = json(&stdout(&out));
    assert_eq!(
        field(&claimed, "id"),
        Some(good_a.as_str()),
        "the oldest good task"
    );
    let out = repo.coord(&["task", "show", &good_b, "--json"]);
    assert_eq!(field(&json(&stdout(&out)), "title"), Some("good two"));
}

#[test]
fn a_document_in_the_wrong_shard_is_reported_not_listed() {
    let repo = TestRepo::init();
    let good = repo.new_task("good", &[]);
    let stray = "abc000000001";
    let path = "tasks/cd/abc000000001.yaml";
    repo.put_document(path, task_yaml(stray, "misplaced").as_bytes());
    let out = repo.coord(&["task", "list", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(ids(&common::array(json(&stdout(&out)))), vec![good]);
    assert!(
        stderr(&out).contains(&format!("refs/coord/tasks:{path}")),
        "{}",
        stderr(&out)
    );
}

/// Runs a command that must be refused with `code`, checks its words and that the ref stayed put.
fn refused(repo: &TestRepo, out: std::process::Output, code: i32, words: &[&str]) -> String {
    let tip = repo.tip();
    let err = fails(&out, code);
    for w in words {
        assert!(err.contains(w), "{w:?} missing from:\n{err}");
    }
    assert_eq!(repo.tip(), tip);
    err
}

#[test]
fn bad_names_and_ids_are_refused_and_change_nothing() {
    let repo = TestRepo::init();
    let id = repo.new_task("a task", &[]);
    let tip = repo.tip();
    let long_title = "t".repeat(201);
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["--agent", "bad name", "task", "new", "x"],
            &["invalid agent name 'bad name'"],
        ),
        (
            &["--agent", "bad name", "task", "claim", &id],
            &["invalid agent name"],
        ),
        (
            &["task", "new", "x", "--role", "../x"],
            &["invalid role '../x'"],
        ),
        (
            &["task", "new", "x", "--label", "a b"],
            &["invalid label 'a b'"],
        ),
        (
            &["task", "edit", &id, "--add-label", "a b"],
            &["invalid label 'a b'"],
        ),
        (
            &["task", "claim", "--next", "--role", "../x"],
            &["invalid role"],
        ),
        (&["task", "show", "zz"], &["invalid id 'zz'", "hex"]),
        (&["task", "show", "xyz!"], &["invalid id 'xyz!'"]),
        (&["task", "claim", "xyz!"], &["invalid id 'xyz!'"]),
        (&["task", "new", "x", "--dep", "zz"], &["invalid id 'zz'"]),
        (&["task", "new", "   "], &["invalid title"]),
        (
            &["task", "new", &long_title],
            &["invalid title", "at most 200"],
        ),
        (&["task", "new", "two\nlines"], &["invalid title"]),
        (&["task", "comment", &id, "  "], &["invalid comment"]),
        (
            &["task", "block", &id, "--reason", " "],
            &["invalid reason"],
        ),
        (&["task", "edit", &id], &["nothing to change"]),
    ];
    for (args, words) in cases {
        let out = repo.coord(args);
        let err = fails(&out, 1);
        for w in *words {
            assert!(err.contains(w), "{args:?}: {w:?} missing from:\n{err}");
        }
        assert_eq!(repo.tip(), tip, "{args:?} changed the ref");
    }
    assert_eq!(repo.list().len(), 1);
}

#[test]
fn a_missing_task_is_an_error_naming_what_was_asked() {
    let repo = TestRepo::init();
    repo.new_task("exists", &[]);
    for args in [
        &["task", "show", "0123456789ab"][..],
        &["task", "claim", "0123456789ab"],
        &["task", "done", "0123456789ab"],
        &["task", "dep", "tree", "0123456789ab"],
        &["log", "--task", "0123456789ab"],
        &["task", "new", "x", "--dep", "0123456789ab"],
        &["task", "new", "x", "--parent", "0123456789ab"],
        &["task", "dep", "add", "0123456789ab", "0123"],
    ] {
        let out = repo.coord(args);
        refused(
            &repo,
            out,
            1,
            &["no task matches '0123456789ab'", "task list"],
        );
    }
    // --json errors are JSON on stdout too, with the same exit code.
    let out = repo.coord(&["task", "show", "0123456789ab", "--json"]);
    fails(&out, 1);
    let error = json(&stdout(&out));
    assert_eq!(
        field(&error, "error"),
        Some("no task matches '0123456789ab'")
    );
    assert_eq!(error["exit_code"], 1);
}

#[test]
fn dependency_cycles_are_refused_and_named_in_order() {
    let repo = TestRepo::init();
    let a = repo.new_task("a", &[]);
    let b = repo.new_task("b", &[]);
    let c = repo.new_task("c", &[]);
    repo.coord_ok(&["task", "dep", "add", &a, &b]);
    repo.coord_ok(&["task", "dep", "add", &b, &c]);

    let out = repo.coord(&["task", "dep", "add", &c, &a]);
    let err = refused(&repo, out, 3, &["dependency cycle"]);
    let cycle = format!("{c} -> {a} -> {b} -> {c}");
    assert!(err.contains(&cycle), "expected {cycle} in:\n{err}");
    assert!(err.contains("git coord task dep rm"), "no hint in:\n{err}");

    let out = repo.coord(&["task", "dep", "add", &a, &a]);
    let err = refused(&repo, out, 3, &["dependency cycle"]);
    assert!(err.contains(&format!("{a} -> {a}")), "{err}");

    // A unique prefix is resolved before the cycle check.
    let out = repo.coord(&["task", "dep", "add", &c[..6], &a[..6]]);
    refused(&repo, out, 3, &[&cycle]);

    assert!(repo.show(&c)["deps"].as_array().expect("deps").is_empty());
}

#[test]
fn outside_a_repository_is_an_error() {
    let repo = TestRepo::new();
    let elsewhere = repo.tmp().join("not-a-repo");
    std::fs::create_dir(&elsewhere).expect("a plain directory");
    for args in [&["task", "list"][..], &["init"], &["task", "new", "x"]] {
        let out = repo.coord_in(&elsewhere, args);
        let err = fails(&out, 1);
        assert!(err.contains("not a git repository"), "{args:?}: {err}");
        assert!(err.contains("git init"), "no hint: {err}");
    }
    let out = repo.coord(&[
        "-C",
        elsewhere.to_str().expect("utf-8 path"),
        "task",
        "list",
    ]);
    assert!(fails(&out, 1).contains("not a git repository"));
    assert!(!elsewhere.join(".git").exists());
    assert_eq!(repo.tip(), "", "the neighbouring repository was touched");
}

#[test]
fn usage_errors_exit_2_and_change_nothing() {
    let repo = TestRepo::init();
    let id = repo.new_task("x", &[]);
    let tip = repo.tip();
    for args in [
        &["task", "frobnicate"][..],
        &["task", "new"],
        &["task", "claim"],
        &["task", "claim", &id, "--next"],
        &["task", "new", "x", "--priority", "9"],
        &["task", "list", "--state", "sleeping"],
        &["task", "block", &id],
        // A global where a value belongs is what clap says it is, wherever it stands.
        &["task", "block", &id, "--reason", "--json", "why"],
        &["task", "block", &id, "--reason", "-v", "why"],
        &["task", "list", "--agent"],
        &["--no-such-flag"],
    ] {
        let out = repo.coord(args);
        let err = fails(&out, 2);
        assert!(err.starts_with("error:"), "{args:?}: {err}");
        assert!(err.contains("--help"), "{args:?}: {err}");
        assert_eq!(repo.tip(), tip, "{args:?} changed the ref");
    }
    // Help is not an error.
    let out = repo.coord(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("Exit codes"));
}

/// The globals read the same before the subcommand, after it and between its arguments; after
/// `--` they are words like any other.
#[test]
fn global_options_read_the_same_wherever_they_stand() {
    let repo = TestRepo::init();
    let sub = repo.path.join("sub");
    std::fs::create_dir(&sub).expect("mkdir");
    let sub = sub.to_str().expect("utf-8 path");
    let outside = repo.tmp().to_str().expect("utf-8 path");
    let out = repo.coord(&["whoami", "--json", "-C", outside]);
    assert!(fails(&out, 1).contains("not a git repository"));
    for args in [
        &["--json", "--agent", "zed", "-C", sub, "whoami"][..],
        &["whoami", "--agent=zed", "--json", "-C", sub],
        &["-C", sub, "whoami", "--agent", "zed", "--json"],
    ] {
        let who = json(&repo.coord_ok(args));
        assert_eq!(who["agent"], "zed", "{args:?}");
        assert_eq!(who["source"], "flag", "{args:?}");
    }
    let id = repo.new_task("x", &[]);
    let out = repo.coord_ok(&["task", "comment", &id, "--", "--json"]);
    assert!(!out.trim_start().starts_with('{'), "{out}");
    let task = json(&repo.coord_ok(&["task", "show", &id, "--json", "-v"]));
    let comments = task["comments"].as_array().expect("comments");
    assert_eq!(comments[0]["text"], "--json");
    let json_after_a_flag = repo.coord_ok(&["task", "claim", "--next", "--json", "--agent", "zed"]);
    assert_eq!(json(&json_after_a_flag)["id"], id.as_str());
}

#[test]
fn claims_refused_by_the_state_exit_3_and_change_nothing() {
    let repo = TestRepo::init();
    let held = repo.new_task("held", &[]);
    repo.coord_as_ok("alice", &["task", "claim", &held]);
    let out = repo.coord_as("bob", &["task", "claim", &held]);
    refused(
        &repo,
        out,
        3,
        &[&format!("task {held} is claimed by alice"), "release"],
    );
    let out = repo.coord_as("bob", &["task", "release", &held]);
    refused(&repo, out, 3, &["claimed by alice"]);
    let out = repo.coord_as("bob", &["task", "done", &held]);
    refused(&repo, out, 3, &["claimed by alice"]);

    let out = repo.coord_as("bob", &["task", "claim", "--next"]);
    refused(&repo, out, 3, &["no ready task", "git coord blocked"]);
    let out = repo.coord_as("bob", &["task", "claim", "--next", "--role", "qa"]);
    refused(&repo, out, 3, &["no ready task for role qa"]);

    let waits = repo.new_task("waits", &["--dep", &held]);
    let out = repo.coord_as("bob", &["task", "claim", &waits]);
    refused(&repo, out, 3, &["waits on", &held, "--force"]);
    let out = repo.coord_as("bob", &["task", "claim", "--next"]);
    refused(&repo, out, 3, &["no ready task"]);

    let done = repo.new_task("done", &[]);
    repo.coord_ok(&["task", "done", &done]);
    let out = repo.coord_as("bob", &["task", "claim", &done]);
    refused(&repo, out, 3, &["is done", "reopen"]);
    let out = repo.coord(&["task", "done", &done]);
    refused(&repo, out, 3, &["already done"]);
    let out = repo.coord(&["task", "reopen", &waits]);
    refused(&repo, out, 3, &["already open"]);

    let blocked = repo.new_task("blocked", &[]);
    repo.coord_ok(&["task", "block", &blocked, "--reason", "needs a key"]);
    let out = repo.coord_as("bob", &["task", "claim", &blocked]);
    refused(&repo, out, 3, &["is blocked", "needs a key"]);

    assert_eq!(field(&repo.show(&held), "assignee"), Some("alice"));
    // --json refusals carry the exit code too.
    let out = repo.coord_as("bob", &["task", "claim", &held, "--json"]);
    fails(&out, 3);
    assert_eq!(json(&stdout(&out))["exit_code"], 3);
    assert!(TASKS_REF.starts_with("refs/coord/"));
}

/// Every file under `.git/coord/cache`, the derived index that may be deleted at will.
fn cache_files(repo: &TestRepo) -> Vec<std::path::PathBuf> {
    fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&repo.path.join(".git/coord/cache"), &mut out);
    out.sort();
    out
}

#[test]
fn a_damaged_index_cache_is_rebuilt_never_trusted() {
    let repo = TestRepo::init();
    let a = repo.new_task("alpha", &["--label", "x"]);
    let b = repo.new_task("beta", &["--dep", &a]);
    repo.list();
    // A change after the listing that wrote the index: its shard is saved beside it.
    repo.coord_as_ok("alice", &["task", "claim", &a]);
    let expected = repo.list();
    assert_eq!(expected.len(), 2);
    let files = cache_files(&repo);
    for name in ["tasks.index", "tasks.changed"] {
        assert!(
            files.iter().any(|f| f.ends_with(name)),
            "listing wrote no {name} under .git/coord/cache"
        );
    }
    let originals: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();

    // Damage of the kinds a crash, a full disk or a foreign tool leaves: each file in turn is
    // emptied, cut short, padded, overwritten, or given huge counts right after its header line.
    let after_header = |good: &[u8]| good.iter().position(|&b| b == b'\n').map_or(0, |n| n + 1);
    type Damage = Box<dyn Fn(&[u8]) -> Vec<u8>>;
    let mut damages: Vec<(String, Damage)> = vec![
        ("empty".into(), Box::new(|_: &[u8]| Vec::new()) as Damage),
        (
            "junk appended".into(),
            Box::new(|g: &[u8]| [g, b"junk"].concat()),
        ),
        (
            "garbage".into(),
            Box::new(|g: &[u8]| g.iter().map(|b| b.wrapping_mul(31) ^ 0x5a).collect()),
        ),
    ];
    for n in 1..8 {
        damages.push((
            format!("cut to {n}/8"),
            Box::new(move |g: &[u8]| g[..g.len() * n / 8].to_vec()),
        ));
    }
    for fill in [0x00u8, 0xff] {
        damages.push((
            format!("{fill:#04x} after the header"),
            Box::new(move |g: &[u8]| {
                let h = after_header(g);
                [&g[..h], &vec![fill; g.len() - h][..]].concat()
            }),
        ));
    }
    for word in 0..3 {
        damages.push((
            format!("count word {word} after the header set to u32::MAX"),
            Box::new(move |g: &[u8]| {
                let at = (after_header(g) + 4 * word).min(g.len().saturating_sub(4));
                let mut d = g.to_vec();
                d[at..at + 4].copy_from_slice(&[0xff; 4]);
                d
            }),
        ));
    }

    let tip = repo.tip();
    let mut failures = Vec::new();
    for (file, good) in files.iter().zip(&originals) {
        for (what, damage) in &damages {
            std::fs::write(file, damage(good)).expect("the cache file is writable");
            let out = repo.coord(&["task", "list", "--json"]);
            let listed = (out.status.code() == Some(0))
                .then(|| serde_json::from_slice::<serde_json::Value>(&out.stdout).ok())
                .flatten();
            if out.status.code() != Some(0)
                || !out.stderr.is_empty()
                || listed != Some(serde_json::Value::Array(expected.clone()))
            {
                let first_line = stderr(&out).lines().next().unwrap_or_default().to_string();
                failures.push(format!(
                    "{} {what}: exit {:?}, {first_line}",
                    file.display(),
                    out.status.code()
                ));
            }
        }
        std::fs::write(file, good).expect("the cache file is restored");
    }
    assert!(
        failures.is_empty(),
        "task list with a damaged cache:\n{}",
        failures.join("\n")
    );
    assert_eq!(repo.tip(), tip, "reading a damaged cache moved the ref");

    // A cache from another repository is not mistaken for this one's.
    let other = TestRepo::init();
    other.new_task("from elsewhere", &[]);
    other.list();
    for (theirs, ours) in cache_files(&other).iter().zip(&files) {
        std::fs::copy(theirs, ours).expect("the cache is copied");
    }
    assert_eq!(repo.list(), expected);
    // And with no cache at all nothing is lost.
    std::fs::remove_dir_all(repo.path.join(".git/coord/cache")).expect("the cache is removable");
    assert_eq!(repo.list(), expected);
    assert_eq!(ids(&repo.list()), vec![a, b]);
}

#[test]
fn a_few_changed_shards_are_saved_beside_the_index_and_an_outdated_side_file_is_never_trusted() {
    let repo = TestRepo::init();
    let ids: Vec<String> = (0..6)
        .map(|n| repo.new_task(&format!("task {n}"), &[]))
        .collect();
    let a = &ids[0];
    let cache = repo.path.join(".git/coord/cache");
    let (index, side) = (cache.join("tasks.index"), cache.join("tasks.changed"));
    repo.list();
    let full = std::fs::read(&index).expect("the cold listing wrote the index");
    assert!(!side.exists());

    // A task changed: its shard goes to the side file; the index file stays as it was.
    repo.coord_as_ok("alice", &["task", "claim", a]);
    let listed = repo.list();
    assert_eq!(std::fs::read(&index).expect("the index"), full);
    let first_side = std::fs::read(&side).expect("the changed shard was saved beside the index");
    // Read back, not redone: a reader that redoes a shard saves the side file again (a new file,
    // renamed over it), one that uses it leaves it alone.
    let inode = |path: &std::path::Path| {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).expect("the side file").ino()
    };
    let saved = inode(&side);
    assert_eq!(repo.list(), listed);
    assert_eq!(inode(&side), saved, "the side file was not used");

    // A task of another shard changed too: the next side file holds both shards.
    let b = ids
        .iter()
        .find(|id| id[..2] != a[..2])
        .expect("six random ids are not all in one shard");
    repo.coord_as_ok("alice", &["task", "claim", b]);
    let listed = repo.list();
    let saved = inode(&side);
    assert_eq!(repo.list(), listed);
    assert_eq!(inode(&side), saved, "a shard was left out of the side file");

    // The same shard changed again, then the whole index rebuilt (which drops the side file):
    // the first side file, put back, is older than the index and must not be believed.
    repo.coord_as_ok("alice", &["task", "done", a, "--summary", "finished"]);
    let expected = repo.list();
    std::fs::remove_file(&index).expect("the index is removable");
    assert_eq!(repo.list(), expected);
    assert!(!side.exists(), "a whole rewrite leaves no side file");
    std::fs::write(&side, &first_side).expect("the old side file is put back");
    assert_eq!(repo.list(), expected);
    let done = expected
        .iter()
        .find(|t| t["id"] == a.as_str())
        .expect("listed");
    assert_eq!(done["state"], "done");

    // With no index file at all, the side file alone is never taken for the whole.
    std::fs::remove_file(&index).expect("the index is removable");
    std::fs::write(&side, &first_side).expect("the old side file is put back");
    assert_eq!(repo.list(), expected);
}

/// A task document as a hand edit or a foreign tool may write it.
fn task_doc(id: &str, priority: u8, created: &str, title: &str, extra: &str) -> String {
    format!(
        "format: 1\nid: {id}\ntitle: {title}\ntype: task\npriority: {priority}\n\
         created: \"{created}\"\ncreated_by: someone\nupdated: \"{created}\"\n{extra}"
    )
}

#[test]
fn listings_order_by_priority_created_and_id_whatever_the_form_of_created_and_read_the_same_from_the_cache()
 {
    let repo = TestRepo::init();
    let t0 = "2026-01-01T00:00:00.000Z";
    // In the order a listing must show them: priority, then `created` as text, then the id.
    let tasks = [
        (
            "ee0000000001",
            0,
            "2027-01-01T00:00:00.000Z",
            "most urgent",
            "state: open\n",
        ),
        (
            "cc0000000001",
            1,
            "2025-12-31",
            "created in another form",
            "state: open\n",
        ),
        (
            "aa0000000001",
            1,
            t0,
            "same time, first id",
            "state: open\n",
        ),
        ("ab0000000001", 1, t0, "émoji 🎉", "state: open\n"),
        // These two share their first eight characters.
        ("bbbbbbbb0001", 1, t0, "shares a prefix", "state: open\n"),
        (
            "bbbbbbbb0002",
            1,
            t0,
            "shares a prefix too",
            "state: open\n",
        ),
        (
            "dd0000000001",
            1,
            "2026-01-01T00:00:00.000Z and later",
            "created longer",
            "state: open\n",
        ),
        (
            "ff0000000001",
            1,
            "2026-01-01T00:00:00.001Z",
            "Ünïcödé ✓ 日本",
            "state: claimed\nassignee: jürgen\nlabels:\n- größe\n",
        ),
    ];
    for (id, priority, created, title, extra) in tasks {
        let doc = task_doc(id, priority, created, title, extra);
        repo.put_document(&task_path(id), doc.as_bytes());
    }
    let expected: Vec<&str> = tasks.iter().map(|t| t.0).collect();
    let first_words = |text: &str| -> Vec<String> {
        text.lines()
            .map(|l| l.split(' ').next().unwrap_or_default().to_string())
            .collect()
    };
    let cache = repo.path.join(".git/coord/cache");
    let _ = std::fs::remove_dir_all(&cache);
    let cold = repo.coord_ok(&["task", "list"]);
    assert!(
        cache.join("tasks.index").exists(),
        "the cold listing wrote no index cache"
    );
    std::fs::remove_dir_all(&cache).expect("the cache the listing wrote");
    let cold_ready = repo.coord_ok(&["ready"]);
    let warm = repo.coord_ok(&["task", "list"]);
    let warm_ready = repo.coord_ok(&["ready"]);
    assert_eq!(first_words(&cold), expected, "cold listing:\n{cold}");
    assert_eq!(warm, cold, "the warm listing differs from the cold one");
    assert_eq!(warm_ready, cold_ready, "warm ready differs from cold");
    // Ready: the same order, without the claimed task.
    assert_eq!(
        first_words(&warm_ready),
        expected[..7],
        "ready:\n{warm_ready}"
    );
    // Columns are padded by characters, not bytes, and text comes back whole from the cache.
    assert!(
        warm.lines()
            .any(|l| l == "ff0000000001  P1  claimed  jürgen        Ünïcödé ✓ 日本 #größe"),
        "{warm}"
    );
    assert!(
        warm.lines()
            .any(|l| l == "ab0000000001  P1  open     -             émoji 🎉"),
        "{warm}"
    );
    let json_ids = |args: &[&str]| ids(&common::array(repo.coord_json(args)));
    assert_eq!(json_ids(&["task", "list"]), expected);
    assert_eq!(json_ids(&["ready"]), expected[..7]);
}

#[test]
fn claim_next_skips_a_task_whose_document_is_damaged_where_listings_do_not_look() {
    let repo = TestRepo::init();
    let good = repo.new_task("good and later", &["--priority", "3"]);
    // Oldest and most urgent, and its summary fields read fine; its history is not YAML.
    let damaged = "d0d000000001";
    let mut doc = task_yaml(damaged, "damaged history");
    doc = doc.replace("priority: 2", "priority: 0");
    doc.push_str("history:\n- at: [unclosed\n  agent: x\n");
    repo.put_document(&task_path(damaged), doc.as_bytes());

    let out = repo.coord_as("worker", &["task", "claim", "--next", "--json"]);
    assert_eq!(out.status.code(), Some(0), "claim --next: {}", stderr(&out));
    assert_eq!(field(&json(&stdout(&out)), "id"), Some(good.as_str()));
    let show = repo.coord(&["task", "show", damaged]);
    let why = fails(&show, 1);
    assert!(
        why.contains(&format!("refs/coord/tasks:{}", task_path(damaged))),
        "{why}"
    );
}

#[test]
fn a_huge_agent_document_is_refused_by_its_size_without_being_read() {
    let repo = TestRepo::init();
    repo.coord_ok(&["agent", "spawn", "mia", "--role", "dev"]);
    // 200 MiB: reading it whole cannot fit in the address space the commands get below.
    let huge = vec![b'#'; 200 * 1024 * 1024];
    repo.put_document_in("refs/coord/agents", "agents/evil.yaml", &huge);
    drop(huge);
    let limited = |args: &str| {
        repo.command("sh", &repo.path)
            .args(["-c", &format!("ulimit -v 131072 && exec git-coord {args}")])
            .output()
            .expect("sh runs")
    };
    let out = limited("agent list --json");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let names: Vec<serde_json::Value> = common::array(json(&stdout(&out)))
        .iter()
        .map(|a| a["name"].clone())
        .collect();
    assert_eq!(names, [serde_json::Value::from("mia")]);
    let warnings = stderr(&out);
    assert!(
        warnings.contains("agents/evil.yaml") && warnings.contains("over the 1048576-byte limit"),
        "{warnings}"
    );
    let sent = limited("send --to @all --json hello");
    assert_eq!(sent.status.code(), Some(0), "{}", stderr(&sent));
    assert_eq!(json(&stdout(&sent))["to"], serde_json::json!(["mia"]));
}

#[test]
fn ready_never_reads_the_done_tasks_and_a_damaged_done_part_is_never_trusted_even_when_written_again()
 {
    let repo = TestRepo::init();
    let a = repo.new_task("finished-alpha", &[]);
    let b = repo.new_task("beta", &["--dep", &a]);
    repo.coord_as_ok("alice", &["task", "claim", &a]);
    repo.coord_as_ok("alice", &["task", "done", &a, "--summary", "shipped"]);
    let expected = repo.list();
    assert_eq!(expected.len(), 2);
    let ready = repo.coord_ok(&["ready"]);
    assert!(ready.contains(&b), "beta waits on a done task: {ready}");
    let index = repo.path.join(".git/coord/cache/tasks.index");
    let good = std::fs::read(&index).expect("the listing wrote the index");

    // The done task's title is only in its shard's done part: damaged there (its checksum left
    // as it was), `ready` does not notice, as it never reads that part, and lists the same.
    let at = good
        .windows(14)
        .position(|w| w == b"finished-alpha")
        .expect("the done task's title is in the index");
    let mut damaged = good.clone();
    damaged[at..at + 14].copy_from_slice(b"FINISHED-ALPHA");
    std::fs::write(&index, &damaged).expect("the index is writable");
    let out = repo.coord(&["ready"]);
    assert_eq!(stdout(&out), ready);
    assert_eq!(stderr(&out), "");
    assert_eq!(
        std::fs::read(&index).expect("the index"),
        damaged,
        "ready rewrote the index"
    );
    // A reader that checked the done part would have rebuilt that shard into the side file.
    let side = index.with_extension("changed");
    assert!(!side.exists(), "ready read the done part");
    // What reads the done tasks checks their part first, and rebuilds it.
    assert_eq!(repo.list(), expected);

    // Written out again by a reader that did not check it (a new task in a new shard makes
    // `ready` rewrite the whole file), the damaged part keeps its old checksum, so it is still
    // found out.
    std::fs::write(&index, &damaged).expect("the index is writable");
    let _ = std::fs::remove_file(repo.path.join(".git/coord/cache/tasks.changed"));
    let c = loop {
        let c = repo.new_task("gamma", &[]);
        if c[..2] != a[..2] && c[..2] != b[..2] {
            break c;
        }
    };
    let out = repo.coord(&["ready"]);
    assert!(stdout(&out).contains(&c));
    assert_ne!(
        std::fs::read(&index).expect("the index"),
        damaged,
        "ready kept the old file"
    );
    let titles: Vec<String> = repo
        .list()
        .iter()
        .map(|t| t["title"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(titles.contains(&"finished-alpha".to_string()), "{titles:?}");
    assert!(!titles.iter().any(|t| t.contains("FINISHED")), "{titles:?}");
}

#[test]
fn durations_follow_one_rule_exit_two_when_bad_and_never_panic() {
    let repo = TestRepo::init();
    for args in [
        &["wait", "--timeout", "18446744073709551615s"][..],
        &["wait", "--interval", "18446744073709551615s"],
        &["wait", "--timeout", "99999999999999999999999d"],
        &["wait", "--timeout", "soon"],
        &["wait", "--interval", "0s"],
        &["lease", "acquire", "src/", "--ttl", "18446744073709551615s"],
    ] {
        let err = fails(&repo.coord(args), 2);
        assert!(err.contains("90s"), "{args:?}: {err}");
    }
    // The longest one taken is a deadline a clock can hold: waiting with it is no panic.
    repo.new_task("ready at once", &[]);
    let out = repo.coord_ok(&[
        "wait",
        "--ready",
        "--timeout",
        "36500d",
        "--interval",
        "36500d",
    ]);
    assert!(out.contains("ready at once"), "{out}");
}

/// Every task the index answers with, `list` and `ready`, warm or rebuilt, is what a full parse
/// of every document in the store gives, through a run of random changes made by commands and by
/// hand (documents in other shapes, malformed ones, rewrites the commands would not make).
#[test]
fn the_index_answers_what_a_full_parse_of_the_store_gives() {
    use git_coord::model::task::{Kind, State, Task, TaskSummary};
    let repo = TestRepo::init();
    let mut rng = Jitter::new();
    let full_parse = || -> Vec<TaskSummary> {
        let listing = repo.git_ok(&["ls-tree", "-r", TASKS_REF]);
        let mut tasks: Vec<TaskSummary> = listing
            .lines()
            .filter_map(|l| {
                let (meta, path) = l.split_once('\t')?;
                let oid = meta.split_whitespace().nth(2)?;
                path.starts_with("tasks/")
                    .then(|| (oid.to_string(), path.to_string()))
            })
            .filter_map(|(oid, path)| {
                let out = repo.git(&["cat-file", "blob", &oid]);
                Task::from_yaml(&out.stdout, TASKS_REF, &path)
                    .ok()
                    .map(|t| TaskSummary::from(&t))
            })
            .collect();
        tasks.sort_by(|a, b| a.id.cmp(&b.id));
        tasks
    };
    let sorted = |mut v: Vec<serde_json::Value>| {
        v.sort_by(|a, b| field(a, "id").cmp(&field(b, "id")));
        v
    };
    let mut made: Vec<String> = Vec::new();
    let mut states = BTreeSet::new();
    for step in 0..40 {
        let pick = |rng: &mut Jitter, made: &[String]| {
            (!made.is_empty()).then(|| made[rng.below(made.len() as u64) as usize].clone())
        };
        match rng.below(8) {
            0..=2 => {
                let title = format!(
                    "Task {step}: {}",
                    ["plain", "a: colon", "#hash", "'q'"][rng.below(4) as usize]
                );
                let priority = rng.below(5).to_string();
                let mut args = vec!["--priority", &priority, "--label", "l1"];
                let dep = pick(&mut rng, &made);
                if let Some(dep) = dep.as_deref().filter(|_| rng.below(2) == 0) {
                    args.extend(["--dep", dep]);
                }
                made.push(repo.new_task(&title, &args));
            }
            3 => {
                if let Some(id) = pick(&mut rng, &made) {
                    let _ = repo.coord(&["task", "claim", &id, "--offline"]);
                }
            }
            4 => {
                if let Some(id) = pick(&mut rng, &made) {
                    let _ = repo.coord(&["task", "done", &id, "--force", "--quiet"]);
                }
            }
            5 => {
                // A document written by hand, in a shape git-coord does not write.
                let id = format!("{:02x}{:010x}", rng.below(256), step);
                let doc = format!(
                    "# by hand\nformat: 1\nid: {id}\ntitle: 'hand ''{step}'''\ntype: task\n\
                     state: {}\npriority: {}\nlabels: [x, y]\n\
                     created: \"2020-01-01T00:00:00.000Z\"\ncreated_by: someone\n\
                     updated: \"2020-01-01T00:00:00.000Z\"\n",
                    ["open", "done", "blocked"][rng.below(3) as usize],
                    rng.below(5)
                );
                repo.put_document(&task_path(&id), doc.as_bytes());
                made.push(id);
            }
            6 => {
                // A malformed document: named as a problem, never listed.
                let id = format!("{:02x}{:010x}", rng.below(256), 1000 + step);
                let doc = format!("format: 1\nid: {id}\ntitle: [unclosed\nstate: open\n");
                repo.put_document(&task_path(&id), doc.as_bytes());
            }
            _ => {
                // The next command builds the index from nothing.
                let _ = std::fs::remove_dir_all(repo.path.join(".git/coord/cache"));
            }
        }
        let parsed = full_parse();
        let expected: Vec<serde_json::Value> = parsed
            .iter()
            .map(|t| serde_json::to_value(t).expect("serializes"))
            .collect();
        let listed = sorted(common::array(repo.coord_json(&["task", "list"])));
        assert_eq!(listed, expected, "step {step}: list");
        let done: BTreeSet<&str> = parsed
            .iter()
            .filter(|t| t.state == State::Done)
            .map(|t| t.id.as_str())
            .collect();
        let ready: BTreeSet<String> = parsed
            .iter()
            .filter(|t| t.kind != Kind::Epic && t.state == State::Open && t.assignee.is_none())
            .filter(|t| t.deps.iter().all(|d| done.contains(d.as_str())))
            .map(|t| t.id.clone())
            .collect();
        let answered: BTreeSet<String> = ids(&common::array(repo.coord_json(&["ready"])))
            .into_iter()
            .collect();
        assert_eq!(answered, ready, "step {step}: ready");
        states.extend(parsed.iter().map(|t| t.state.as_str()));
    }
    // The run went through the states a listing tells apart.
    for state in ["open", "claimed", "done"] {
        assert!(states.contains(state), "no {state} task in the run");
    }
}

/// The ids of every loose object of `repo`.
fn loose_objects(repo: &TestRepo) -> Vec<String> {
    let mut ids = Vec::new();
    for fanout in std::fs::read_dir(repo.path.join(".git/objects")).expect("objects") {
        let fanout = fanout.expect("an entry");
        let dir = fanout.file_name().to_string_lossy().into_owned();
        if dir.len() != 2 {
            continue;
        }
        for file in std::fs::read_dir(fanout.path()).expect("a fan-out directory") {
            let name = file.expect("an entry").file_name();
            let name = name.to_string_lossy();
            if name.len() == 38 {
                ids.push(format!("{dir}{name}"));
            }
        }
    }
    ids
}

#[test]
fn writers_killed_while_they_pack_their_objects_lose_none() {
    const ROUNDS: usize = 30;
    let repo = TestRepo::init();
    let mut created = BTreeSet::new();
    for n in 0..5 {
        created.insert(repo.new_task(&format!("seed {n}"), &[]));
    }
    let list = repo.path.join(".git/coord/unpacked");
    // The list of objects to pack, all but full: the next write's ref move packs it.
    let fill = || {
        // Once all are packed, the tip alone (packed, so passed over): the write's own objects
        // fill the list.
        let mut loose = loose_objects(&repo);
        loose.push(repo.ref_tip(TASKS_REF));
        let mut lines = String::new();
        while lines.len() < 520 * 41 {
            for id in &loose {
                lines.push_str(id);
                lines.push('\n');
            }
        }
        std::fs::write(&list, lines).expect("the list written");
    };
    // How long a write that packs takes here, so the kills land before, during and after it.
    fill();
    let started = Instant::now();
    created.insert(repo.new_task("timed", &[]));
    let window = (started.elapsed() * 2).as_micros().max(1) as u64;
    assert!(!list.exists(), "the full list was taken and packed");
    let mut rng = Jitter::new();
    let mut killed = 0;
    for round in 0..ROUNDS {
        fill();
        let mut child = repo
            .coord_cmd(&["task", "new", &format!("round {round}")])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("git-coord starts");
        std::thread::sleep(Duration::from_micros(rng.below(window)));
        let _ = child.kill();
        let out = child.wait_with_output().expect("the writer is reaped");
        if out.status.success() {
            created.insert(stdout(&out).trim().to_string());
        } else {
            killed += usize::from(out.status.code().is_none());
        }
        let _ = std::fs::remove_file(repo.path.join(format!(".git/{TASKS_REF}.lock")));
    }
    assert!(killed > 0, "no writer was ever killed mid-run");
    repo.assert_fsck_clean();
    let listed: BTreeSet<String> = ids(&repo.list()).into_iter().collect();
    for id in &created {
        assert!(
            listed.contains(id),
            "task {id}, reported created, is missing"
        );
    }
    let packs = std::fs::read_dir(repo.path.join(".git/objects/pack"))
        .expect("packs")
        .filter(|f| {
            f.as_ref()
                .is_ok_and(|f| f.file_name().to_string_lossy().ends_with(".idx"))
        })
        .count();
    assert!(packs > 0, "no write packed its objects");
    repo.new_task("after the storm", &[]);
}
