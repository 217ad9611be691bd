//! Messages as agents use them: send to an agent, a role, everyone or a task; the inbox with
//! read and acknowledged marks per agent; replies and threads; attachments saved safely;
//! artifacts; and the brief.

mod common;

use std::path::Path;
use std::process::Stdio;

use serde_json::Value;

use common::{TestRepo, array, at, at_json, fails, field, json, ok, spawn, stdout};

const INBOX_REF: &str = "refs/coord/inbox";

fn send(repo: &TestRepo, agent: &str, args: &[&str]) -> Value {
    let mut all = vec!["send"];
    all.extend_from_slice(args);
    all.push("--json");
    json(&repo.coord_as_ok(agent, &all))
}

fn inbox(repo: &TestRepo, agent: &str, args: &[&str]) -> Value {
    let mut all = vec!["inbox", "--json"];
    all.extend_from_slice(args);
    json(&repo.coord_as_ok(agent, &all))
}

fn ids_of(inbox: &Value) -> Vec<String> {
    array(inbox["messages"].clone())
        .iter()
        .map(|m| field(m, "id").expect("an id").to_string())
        .collect()
}

fn id(v: &Value) -> String {
    field(v, "id").expect("an id").to_string()
}

#[test]
fn sixteen_senders_at_once_each_land_exactly_once() {
    let repo = TestRepo::init();
    spawn(&repo, "target", "dev");
    let children: Vec<_> = (0..16)
        .map(|n| {
            repo.command(common::BIN, &repo.path)
                .args(["--agent", &format!("sender{n}"), "send", "--to", "target"])
                .arg(format!("message number {n}"))
                .args(["--subject", &format!("n{n}"), "--json"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("git-coord starts")
        })
        .collect();
    let mut sent = Vec::new();
    for child in children {
        let out = ok(child.wait_with_output().expect("finishes"), "a send");
        sent.push(id(&json(&stdout(&out))));
    }
    let got = inbox(&repo, "target", &["-n", "0"]);
    assert_eq!(got["unread"], 16);
    let mut received = ids_of(&got);
    received.sort();
    sent.sort();
    assert_eq!(received, sent, "every message exactly once");
    let mut subjects: Vec<String> = array(got["messages"].clone())
        .iter()
        .map(|m| field(m, "subject").expect("subject").to_string())
        .collect();
    subjects.sort();
    let mut expected: Vec<String> = (0..16).map(|n| format!("n{n}")).collect();
    expected.sort();
    assert_eq!(subjects, expected);
    assert_eq!(
        repo.git_ok(&["rev-list", "--count", INBOX_REF]),
        "17",
        "the root commit and one commit per message"
    );
    repo.assert_fsck_clean();
}

#[test]
fn marks_are_per_agent_and_ack_and_reply_work_in_a_worktree_with_no_flags() {
    let repo = TestRepo::init();
    let alice = spawn(&repo, "alice", "dev");
    let bob = spawn(&repo, "bob", "dev");
    let to_both = send(&repo, "olga", &["--to", "@dev", "Standup at ten"]);
    assert_eq!(to_both["to"], serde_json::json!(["alice", "bob"]));
    let m = id(&to_both);

    // alice reads it; bob's copy stays unread.
    let read = at_json(&repo, &alice, &["read", &m]);
    assert!(read["read"].is_string());
    assert!(read["acked"].is_null());
    assert_eq!(at_json(&repo, &alice, &["inbox"])["unread"], 0);
    assert_eq!(at_json(&repo, &bob, &["inbox"])["unread"], 1);
    let doc_before = repo.git_ok(&[
        "rev-parse",
        &format!("{INBOX_REF}:messages/{}/{m}.yaml", &m[..2]),
    ]);

    // bob acknowledges and replies from his worktree, no flags.
    let acked = at_json(&repo, &bob, &["ack", &m[..6]]);
    assert!(acked["acked"].is_string());
    let reply = at_json(&repo, &bob, &["reply", &m, "I will be there"]);
    assert_eq!(reply["from"], "bob");
    assert_eq!(reply["to"], serde_json::json!(["olga"]));
    assert_eq!(reply["thread"], to_both["thread"]);
    assert_eq!(reply["reply_to"], serde_json::Value::String(m.clone()));
    assert_eq!(reply["subject"], "Re: Standup at ten");

    // The message itself never changed; olga can now be written to by name.
    let doc_after = repo.git_ok(&[
        "rev-parse",
        &format!("{INBOX_REF}:messages/{}/{m}.yaml", &m[..2]),
    ]);
    assert_eq!(doc_before, doc_after);
    let olga = inbox(&repo, "olga", &[]);
    assert_eq!(ids_of(&olga), [id(&reply)]);
    let all = at_json(&repo, &bob, &["inbox", "--all"]);
    let item = &array(all["messages"].clone())[0];
    assert_eq!(
        (item["read"].clone(), item["acked"].clone()),
        (true.into(), true.into())
    );
    let alice_all = at_json(&repo, &alice, &["inbox", "--all"]);
    assert_eq!(array(alice_all["messages"].clone())[0]["acked"], false);

    // Threads keep order.
    let third = json(&repo.coord_as_ok("olga", &["reply", &id(&reply), "Good", "--json"]));
    let fourth = at_json(&repo, &bob, &["reply", &id(&third), "See you"]);
    let thread = array(json(&repo.coord_ok(&["thread", &m, "--json"])));
    let order: Vec<String> = thread.iter().map(id).collect();
    assert_eq!(order, [m.clone(), id(&reply), id(&third), id(&fourth)]);
    let by_thread = inbox(&repo, "olga", &["--all", "--thread", &m]);
    assert_eq!(by_thread["matched"], 2);
    let from_bob = inbox(
        &repo,
        "olga",
        &["--all", "--from", "bob", "--grep", "SEE YOU"],
    );
    assert_eq!(ids_of(&from_bob), [id(&fourth)]);
}

#[test]
fn a_task_target_reaches_the_assignee_and_joins_the_tasks_thread() {
    let repo = TestRepo::init();
    spawn(&repo, "alice", "dev");
    let task = repo.new_task("Fix login", &[]);
    repo.coord_as_ok("alice", &["task", "claim", &task]);
    let msg = send(
        &repo,
        "bob",
        &[
            "--to",
            &format!("#{}", &task[..5]),
            "It crashes",
            "--importance",
            "high",
        ],
    );
    assert_eq!(msg["to"], serde_json::json!(["alice"]));
    assert_eq!(msg["task"], serde_json::Value::String(task.clone()));
    assert_eq!(msg["thread"], serde_json::Value::String(task.clone()));
    let about = send(
        &repo,
        "alice",
        &["--to", "bob", "--task", &task, "Found it"],
    );
    assert_eq!(about["thread"], serde_json::Value::String(task.clone()));

    let shown = repo.show(&task);
    let thread: Vec<String> = array(shown["messages"].clone()).iter().map(id).collect();
    assert_eq!(thread, [id(&msg), id(&about)]);
    let text = repo.coord_ok(&["task", "show", &task]);
    assert!(
        text.contains("It crashes") && text.contains("Found it"),
        "{text}"
    );
}

#[test]
fn attachments_come_back_byte_for_byte_and_never_leave_the_directory() {
    let repo = TestRepo::init();
    spawn(&repo, "alice", "dev");
    let bytes: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    std::fs::write(repo.path.join("repro.bin"), &bytes).expect("written");
    let msg = send(
        &repo,
        "bob",
        &["--to", "alice", "see attached", "--attach", "repro.bin"],
    );
    // Attachments that cannot be saved (a file where the folder should be): refused, and the
    // message stays unread.
    let blocked = repo.tmp().join("a-file");
    std::fs::write(&blocked, "in the way").expect("written");
    let err = fails(
        &repo.coord_as(
            "alice",
            &[
                "read",
                &id(&msg),
                "--save-attachments",
                blocked.to_str().expect("utf-8"),
            ],
        ),
        1,
    );
    assert!(err.contains("cannot create"), "{err}");
    let inbox = json(&repo.coord_as_ok("alice", &["inbox", "--json"]));
    assert_eq!(inbox["unread"], 1, "{inbox}");

    let out = repo.tmp().join("saved");
    let read = json(&repo.coord_as_ok(
        "alice",
        &[
            "read",
            &id(&msg),
            "--save-attachments",
            out.to_str().expect("utf-8"),
            "--json",
        ],
    ));
    assert_eq!(
        read["saved"],
        serde_json::json!([out.join("repro.bin").display().to_string()])
    );
    assert_eq!(std::fs::read(out.join("repro.bin")).expect("saved"), bytes);
    // Saving again never overwrites.
    repo.coord_as_ok(
        "alice",
        &[
            "read",
            &id(&msg),
            "--save-attachments",
            out.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(
        std::fs::read(out.join("repro.bin.1")).expect("a second copy"),
        bytes
    );

    // A message from elsewhere whose recorded names try to escape.
    let hostile = "0123456789ab";
    let doc = format!(
        "format: 1\nid: {hostile}\nfrom: mallory\nhuman: M <m@x>\ntarget: alice\nto:\n- alice\nsubject: hi\nthread: {hostile}\nimportance: normal\ncreated: \"2026-01-01T00:00:00Z\"\nbody: look\nattachments:\n- name: ../../etc/x\n  size: 4\n- name: /abs/path\n  size: 4\n- name: ..\n  size: 4\n"
    );
    repo.import_documents(
        INBOX_REF,
        &[
            (
                format!("messages/01/{hostile}.yaml"),
                doc.clone().into_bytes(),
            ),
            (format!("boxes/alice/01/{hostile}.yaml"), doc.into_bytes()),
            (format!("attachments/01/{hostile}/0"), b"one\n".to_vec()),
            (format!("attachments/01/{hostile}/1"), b"two\n".to_vec()),
            (format!("attachments/01/{hostile}/2"), b"thr\n".to_vec()),
        ],
    );
    let jail = repo.tmp().join("jail").join("inner");
    repo.coord_as_ok(
        "alice",
        &[
            "read",
            hostile,
            "--save-attachments",
            jail.to_str().expect("utf-8"),
        ],
    );
    let mut names: Vec<String> = std::fs::read_dir(&jail)
        .expect("the directory")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["attachment-2", "path", "x"]);
    assert_eq!(std::fs::read(jail.join("x")).expect("x"), b"one\n");
    assert!(!repo.tmp().join("etc").exists());
    assert!(!repo.tmp().join("jail").join("x").exists());
    assert!(!Path::new("/abs/path").exists());
}

#[test]
fn bad_targets_empty_messages_and_oversized_attachments_write_nothing() {
    let repo = TestRepo::init();
    spawn(&repo, "alice", "dev");
    repo.write_file(".coord.yaml", "max_attachment_bytes: 1K\n");
    repo.write_file("big.log", &"x".repeat(2000));
    let before = repo.ref_tip(INBOX_REF);
    let cases: [(&[&str], &str); 7] = [
        (&["send", "--to", "nobody", "hi"], "no such agent"),
        (&["send", "--to", "@nosuchrole", "hi"], "nosuchrole"),
        (&["send", "--to", "@tester", "hi"], "no registered agent"),
        (&["send", "--to", "alice", "   "], "empty"),
        (
            &["send", "--to", "alice", "hi", "--attach", "big.log"],
            "over the limit of 1024 bytes",
        ),
        (
            &["send", "--to", "alice", "hi", "--attach", "missing.log"],
            "cannot read missing.log",
        ),
        (&["send", "--to", "#abcdef", "hi"], "no task matches"),
    ];
    for (args, says) in cases {
        let err = fails(&repo.coord(args), 1);
        assert!(err.contains(says), "{args:?}: {err}");
    }
    fails(&repo.coord(&["read", "abcd"]), 1);
    fails(&repo.coord(&["send", "hi"]), 2);
    assert_eq!(repo.ref_tip(INBOX_REF), before, "nothing was written");
}

#[test]
fn a_malformed_message_is_named_and_skipped() {
    let repo = TestRepo::init();
    spawn(&repo, "alice", "dev");
    let good = send(&repo, "bob", &["--to", "alice", "fine"]);
    repo.import_documents(
        INBOX_REF,
        &[(
            "boxes/alice/ff/ffffffffffff.yaml".into(),
            b"format: [\n".to_vec(),
        )],
    );
    let out = ok(repo.coord_as("alice", &["inbox", "--json"]), "inbox");
    assert_eq!(ids_of(&json(&stdout(&out))), [id(&good)]);
    let err = common::stderr(&out);
    assert!(err.contains("boxes/alice/ff/ffffffffffff.yaml"), "{err}");
}

#[test]
fn artifacts_are_kept_with_their_task_and_shown_only_when_asked() {
    let repo = TestRepo::init();
    let task = repo.new_task("Design the API", &[]);
    repo.write_file("plan.md", "# Plan\n\n1. do it\n");
    let put = json(&repo.coord_ok(&[
        "artifact",
        "put",
        "--task",
        &task,
        "--kind",
        "plan",
        "--summary",
        "three steps",
        "plan.md",
        "--json",
    ]));
    assert_eq!(put["kind"], "plan");
    let listed = array(json(
        &repo.coord_ok(&["artifact", "list", "--task", &task, "--json"]),
    ));
    assert_eq!(listed.len(), 1);
    assert!(
        listed[0].get("content").is_none(),
        "listings carry summaries only"
    );
    let shown = json(&repo.coord_ok(&["artifact", "show", &id(&put), "--json"]));
    assert_eq!(shown["content"], "# Plan\n\n1. do it\n");
    let task_json = repo.show(&task);
    assert_eq!(
        array(task_json["artifacts"].clone())[0]["summary"],
        "three steps"
    );
    assert_eq!(array(repo.coord_json(&["artifact", "list"])).len(), 1);
    // The task still lists, and its history notes the artifact.
    assert_eq!(repo.list().len(), 1);
    let history = repo.coord_json(&["task", "show", &task, "--history"]);
    assert_eq!(
        array(history["history"].clone()).last().expect("an event")["op"],
        "artifact"
    );
    let err = fails(
        &repo.coord(&[
            "artifact",
            "put",
            "--task",
            &task,
            "--kind",
            "an essay",
            "--summary",
            "x",
            "plan.md",
        ]),
        2,
    );
    assert!(err.contains("an essay"), "{err}");
    fails(
        &repo.coord(&[
            "artifact",
            "put",
            "--task",
            "abcdef",
            "--kind",
            "plan",
            "--summary",
            "x",
            "plan.md",
        ]),
        1,
    );
}

/// A task document as git-coord writes it.
fn task_doc(id: &str, title: &str, priority: u8) -> Vec<u8> {
    format!(
        "format: 1\nid: {id}\ntitle: {title}\ntype: task\nstate: open\npriority: {priority}\nrole: dev\ncreated: \"2026-01-01T00:00:00Z\"\ncreated_by: olga\nupdated: \"2026-01-01T00:00:00Z\"\ndescription: |-\n  Context for {title}.\n\n  Acceptance criteria:\n  - it works\n"
    )
    .into_bytes()
}

fn message_doc(id: &str, to: &str, subject: &str, importance: &str, minute: u32) -> Vec<u8> {
    format!(
        "format: 1\nid: {id}\nfrom: olga\nhuman: O <o@x>\ntarget: {to}\nto:\n- {to}\nsubject: {subject}\nthread: {id}\nimportance: {importance}\ncreated: \"2026-01-01T{:02}:{:02}:00Z\"\nbody: |-\n  {subject}\n  more text\n",
        minute / 60,
        minute % 60
    )
    .into_bytes()
}

#[test]
fn the_brief_fits_its_limit_and_names_what_matters_most() {
    let repo = TestRepo::init();
    let alice = spawn(&repo, "alice", "dev");
    let mut tasks = Vec::new();
    for n in 0..1000u32 {
        let id = format!("{:012x}", 0x1000_0000_0000u64 + u64::from(n) * 7919);
        tasks.push((
            format!("tasks/{}/{id}.yaml", &id[..2]),
            task_doc(&id, &format!("Task number {n}"), (n % 5) as u8),
        ));
    }
    repo.import_documents(common::TASKS_REF, &tasks);
    let mut messages = Vec::new();
    for n in 0..500u32 {
        let id = format!("{:012x}", 0x2000_0000_0000u64 + u64::from(n) * 104_729);
        let importance = if n % 10 == 0 { "high" } else { "normal" };
        let doc = message_doc(&id, "alice", &format!("Old note {n}"), importance, n);
        messages.push((format!("messages/{}/{id}.yaml", &id[..2]), doc.clone()));
        messages.push((format!("boxes/alice/{}/{id}.yaml", &id[..2]), doc));
    }
    repo.import_documents(INBOX_REF, &messages);
    let claimed = json(&stdout(&ok(
        repo.coord_in(&alice, &["task", "claim", "--next", "--json"]),
        "claim",
    )));
    let urgent = send(
        &repo,
        "olga",
        &[
            "--to",
            "alice",
            "--importance",
            "high",
            "--subject",
            "Stop the release",
            "The build is broken",
        ],
    );

    for max in [4000usize, 1500, 600] {
        let brief = at_json(&repo, &alice, &["brief", "--max-chars", &max.to_string()]);
        let text = brief["text"].as_str().expect("text");
        assert!(
            text.chars().count() <= max,
            "{max}: {} chars\n{text}",
            text.chars().count()
        );
        assert!(
            text.contains(&id(&claimed)),
            "{max}: the claimed task\n{text}"
        );
        assert!(
            text.contains("Stop the release"),
            "{max}: the newest high message\n{text}"
        );
        assert!(text.contains(&id(&urgent)));
        assert!(
            !array(brief["omitted"].clone()).is_empty(),
            "{max}: says what it left out"
        );
        assert!(
            text.contains("git coord inbox"),
            "{max}: says how to see the rest\n{text}"
        );
    }
    let text = stdout(&ok(repo.coord_in(&alice, &["brief"]), "brief"));
    assert!(text.starts_with("You are alice, role dev"), "{text}");
    assert!(text.contains("it works"), "acceptance criteria:\n{text}");

    let organiser = json(&repo.coord_as_ok("olga", &["brief", "--organiser", "--json"]));
    let text = organiser["text"].as_str().expect("text");
    assert!(text.chars().count() <= 4000);
    assert!(text.contains("999 open, 1 claimed"), "{text}");
    assert!(!text.contains("Acceptance"), "never task bodies:\n{text}");
}

#[test]
fn a_brief_holds_every_budget_from_200_and_refuses_a_smaller_one() {
    let repo = TestRepo::init();
    let mia = spawn(&repo, "mia", "dev");
    for n in 1..=3 {
        repo.new_task(
            &format!("Task number {n} with a long title to fill space"),
            &["--role", "dev"],
        );
    }
    for max in [200usize, 201, 210, 230, 248, 260, 300] {
        let text = stdout(&ok(
            repo.coord_in(&mia, &["brief", "--max-chars", &max.to_string()]),
            "brief",
        ));
        assert!(
            text.chars().count() <= max,
            "{max}: {} chars\n{text}",
            text.chars().count()
        );
        assert!(text.starts_with("You are mia"), "{max}: who\n{text}");
        assert!(
            text.contains("git coord ready --role dev"),
            "{max}: where the rest is\n{text}"
        );
    }
    let err = fails(&repo.coord_in(&mia, &["brief", "--max-chars", "199"]), 2);
    assert!(err.contains("at least 200"), "{err}");
}

#[test]
fn a_delivered_attachment_over_the_limit_is_skipped_and_saved_names_lose_bidi_controls() {
    let repo = TestRepo::init();
    spawn(&repo, "alice", "dev");
    // As a remote would deliver it: a recorded size that lies, a name that reads backwards.
    let hostile = "0123456789ab";
    let doc = format!(
        "format: 1\nid: {hostile}\nfrom: mallory\nhuman: M <m@x>\ntarget: alice\nto:\n- alice\nsubject: hi\nthread: {hostile}\nimportance: normal\ncreated: \"2026-01-01T00:00:00Z\"\nbody: look\nattachments:\n- name: \"invoice\\u202Efdp.exe\"\n  size: 4\n- name: big.bin\n  size: 4\n"
    );
    let big = vec![0u8; 6 * 1024 * 1024];
    repo.import_documents(
        INBOX_REF,
        &[
            (
                format!("messages/01/{hostile}.yaml"),
                doc.clone().into_bytes(),
            ),
            (format!("boxes/alice/01/{hostile}.yaml"), doc.into_bytes()),
            (format!("attachments/01/{hostile}/0"), b"one\n".to_vec()),
            (format!("attachments/01/{hostile}/1"), big),
        ],
    );
    let dir = repo.tmp().join("saved");
    let args = [
        "read",
        hostile,
        "--save-attachments",
        dir.to_str().expect("utf-8"),
    ];
    let mut with_json = args.to_vec();
    with_json.push("--json");
    let read = json(&repo.coord_as_ok("alice", &with_json));
    assert_eq!(
        read["saved"],
        serde_json::json!([dir.join("invoicefdp.exe").display().to_string()])
    );
    let skipped = array(read["skipped"].clone());
    assert_eq!(skipped.len(), 1, "{}", read["skipped"]);
    assert_eq!(skipped[0]["name"], "big.bin");
    assert_eq!(skipped[0]["bytes"], 6 * 1024 * 1024);
    assert!(
        field(&skipped[0], "why").is_some_and(|w| w.contains("max_attachment_bytes")),
        "{}",
        skipped[0]
    );
    let names: Vec<String> = std::fs::read_dir(&dir)
        .expect("the directory")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["invoicefdp.exe"]);
    assert!(names.iter().all(|n| !n.contains('\u{202E}')));

    let text = repo.coord_as_ok("alice", &args);
    assert!(text.contains("skipped big.bin: 6291456 bytes"), "{text}");
}

/// A notice from git-coord has no reader: a reply to one about a task goes on the task's thread,
/// and a reply to one about nothing is refused, writing nothing.
#[test]
fn a_reply_to_a_notice_goes_where_the_notice_points() {
    let repo = TestRepo::init();
    let bob = spawn(&repo, "bob", "dev");
    let task = repo.new_task("the parser", &[]);
    at_json(&repo, &bob, &["task", "claim", &task]);
    let notice = |id: &str, task: Option<&str>| {
        let mut doc = format!(
            "format: 1\nid: {id}\nfrom: git-coord\nhuman: git-coord sync\ntarget: ada\nto: [ada]\nsubject: Your claim was lost\nthread: {}\nimportance: high\ncreated: \"2026-01-01T00:00:00.000Z\"\nbody: lost\n",
            task.unwrap_or(id)
        );
        if let Some(task) = task {
            doc.push_str(&format!("task: {task}\n"));
        }
        repo.put_document_in(
            INBOX_REF,
            &format!("messages/{}/{id}.yaml", &id[..2]),
            doc.as_bytes(),
        );
    };
    notice("abcabcabcabc", None);
    notice("defdefdefdef", Some(&task));
    let before = repo.coord_refs();
    let err = fails(&repo.coord(&["reply", "abcabcabcabc", "why?"]), 1);
    assert!(
        err.contains("reads no replies") && err.contains("send --to"),
        "{err}"
    );
    assert_eq!(repo.coord_refs(), before, "nothing was written");
    let replied = stdout(&ok(
        repo.coord(&["reply", "defdefdefdef", "who took it?"]),
        "reply",
    ));
    assert!(replied.contains("to bob (thread"), "{replied}");
    let thread = repo.coord_ok(&["thread", &task]);
    assert!(thread.contains("who took it?"), "{thread}");
}

/// Runs `git coord hook after-tool` in `dir` with `input` on stdin, as an agent CLI does after a
/// tool call; it always exits 0 and says nothing on stderr. Returns what it printed.
fn after_tool(repo: &TestRepo, dir: &Path, input: &str) -> String {
    use std::io::Write;
    let mut child = repo
        .command(common::BIN, dir)
        .args(["hook", "after-tool"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the hook runs");
    let mut stdin = child.stdin.take().expect("stdin");
    // A client may write a large input; the hook must read it to the end.
    let _ = stdin.write_all(input.as_bytes());
    drop(stdin);
    let out = child.wait_with_output().expect("the hook finishes");
    assert_eq!(
        out.status.code(),
        Some(0),
        "the after-tool hook always exits 0"
    );
    assert_eq!(
        common::stderr(&out),
        "",
        "the after-tool hook says nothing on stderr"
    );
    stdout(&out)
}

/// A PostToolUse input of session `session`, as Claude Code sends it, for the worktree `dir`.
fn post_tool_use(dir: &Path, session: &str) -> String {
    serde_json::json!({
        "session_id": session,
        "transcript_path": "/nonexistent/transcript.jsonl",
        "cwd": dir,
        "hook_event_name": "PostToolUse",
        "tool_name": "Bash",
        "tool_input": {"command": "cargo test"},
        "tool_response": {"stdout": "ok", "stderr": "", "interrupted": false},
    })
    .to_string()
}

/// The context the hook added, checking the answer's shape: the event named as the input named it.
fn added_context(answer: &str, event: &str) -> String {
    let answer = json(answer);
    assert_eq!(
        answer["hookSpecificOutput"]["hookEventName"], event,
        "{answer}"
    );
    answer["hookSpecificOutput"]["additionalContext"]
        .as_str()
        .expect("additionalContext is text")
        .to_string()
}

#[test]
fn the_after_tool_hook_brings_up_unread_mail_once_the_most_important_first() {
    let repo = TestRepo::init();
    let alice = spawn(&repo, "alice", "dev");
    // The urgent one is the older: the order is by importance before time.
    let urgent = id(&send(
        &repo,
        "bob",
        &[
            "--to",
            "alice",
            "--subject",
            "stop, the API changed",
            "--importance",
            "high",
            "The login API takes a token now.\nRebase on main before going on.",
        ],
    ));
    let lunch = id(&send(&repo, "carol", &["--to", "alice", "Lunch at noon?"]));

    let context = added_context(
        &after_tool(&repo, &alice, &post_tool_use(&alice, "s1")),
        "PostToolUse",
    );
    assert!(
        context.starts_with("git-coord: 2 new message(s) for alice"),
        "{context}"
    );
    for needle in [
        &urgent,
        &lunch,
        "stop, the API changed",
        "Rebase on main before going on.",
        "Lunch at noon?",
        "`git coord inbox`",
    ] {
        assert_eq!(
            context.matches(needle).count(),
            1,
            "{needle} once in:\n{context}"
        );
    }
    assert!(
        context.find(&urgent) < context.find(&lunch),
        "high importance first:\n{context}"
    );
    assert!(
        context.contains(&format!("[high] {urgent} from bob")),
        "{context}"
    );
    assert!(context.chars().count() <= 1500, "{context}");

    // The next call adds nothing; the messages stay unread.
    assert_eq!(after_tool(&repo, &alice, &post_tool_use(&alice, "s1")), "");
    let listed = at_json(&repo, &alice, &["inbox"]);
    assert_eq!(listed["unread"], 2, "{listed}");

    // A message that arrives later is brought up at the next call, alone.
    let later = id(&send(
        &repo,
        "dan",
        &["--to", "alice", "The build is green again"],
    ));
    let context = added_context(
        &after_tool(&repo, &alice, &post_tool_use(&alice, "s1")),
        "PostToolUse",
    );
    assert!(
        context.starts_with("git-coord: 1 new message(s) for alice"),
        "{context}"
    );
    assert!(context.contains(&later), "{context}");
    assert!(
        !context.contains(&urgent) && !context.contains(&lunch),
        "{context}"
    );
    assert_eq!(after_tool(&repo, &alice, &post_tool_use(&alice, "s1")), "");

    // A message read is never brought up again; a new session (a new context) hears the rest.
    at(&repo, &alice, &["read", &lunch]);
    let context = added_context(
        &after_tool(&repo, &alice, &post_tool_use(&alice, "s2")),
        "PostToolUse",
    );
    assert!(
        context.contains(&urgent) && context.contains(&later),
        "{context}"
    );
    assert!(!context.contains(&lunch), "{context}");
    assert_eq!(after_tool(&repo, &alice, &post_tool_use(&alice, "s2")), "");

    // What it remembers is a local file, not in refs/coord/.
    let ledger = repo.path.join(".git/coord/injected/alice");
    let text = std::fs::read_to_string(&ledger).expect("the ledger");
    assert!(text.contains(&format!("s2 {urgent}")), "{text}");
    assert!(
        !text.contains(&lunch),
        "a read message is forgotten: {text}"
    );
}

#[test]
fn the_after_tool_hook_answers_in_the_event_the_client_named() {
    let repo = TestRepo::init();
    let alice = spawn(&repo, "alice", "dev");
    send(&repo, "bob", &["--to", "alice", "hello"]);
    // Gemini CLI's AfterTool event: same fields, its own name.
    let input = serde_json::json!({
        "session_id": "g1", "cwd": alice, "hook_event_name": "AfterTool",
        "tool_name": "run_shell_command", "tool_input": {}, "tool_response": {},
    });
    let context = added_context(&after_tool(&repo, &alice, &input.to_string()), "AfterTool");
    assert!(context.contains("hello"), "{context}");
    // An event whose answer cannot carry context (Stop) gets nothing, and nothing is recorded.
    let stop = serde_json::json!({"session_id": "g2", "cwd": alice, "hook_event_name": "Stop"});
    assert_eq!(after_tool(&repo, &alice, &stop.to_string()), "");
    let input = serde_json::json!({"session_id": "g2", "cwd": alice});
    assert!(
        added_context(
            &after_tool(&repo, &alice, &input.to_string()),
            "PostToolUse"
        )
        .contains("hello")
    );
}

#[test]
fn the_after_tool_hook_keeps_to_its_budget_and_says_what_it_left_out() {
    let repo = TestRepo::init();
    let alice = spawn(&repo, "alice", "dev");
    let long = "word ".repeat(400);
    for n in 0..12 {
        send(
            &repo,
            "bob",
            &["--to", "alice", "--subject", &format!("note {n}"), &long],
        );
    }
    let urgent = id(&send(
        &repo,
        "carol",
        &[
            "--to",
            "alice",
            "--importance",
            "high",
            "--subject",
            "halt",
            "halt everything",
        ],
    ));
    let context = added_context(
        &after_tool(&repo, &alice, &post_tool_use(&alice, "s1")),
        "PostToolUse",
    );
    assert!(
        context.chars().count() <= 1500,
        "{} characters:\n{context}",
        context.chars().count()
    );
    assert!(
        context.starts_with("git-coord: 13 new message(s) for alice"),
        "{context}"
    );
    assert!(
        context.contains(&format!("[high] {urgent} from carol: \"halt\"")),
        "{context}"
    );
    let shown = context.matches("[normal]").count();
    assert!(shown >= 1, "{context}");
    assert!(
        context.contains(&format!("{} more not shown here", 12 - shown))
            && context.ends_with("`git coord inbox`."),
        "{context}"
    );
    // Those counted are not repeated: the next call adds nothing.
    assert_eq!(after_tool(&repo, &alice, &post_tool_use(&alice, "s1")), "");
}

#[test]
fn the_after_tool_hook_never_fails_its_client() {
    let repo = TestRepo::init();
    let alice = spawn(&repo, "alice", "dev");
    send(&repo, "bob", &["--to", "alice", "hello"]);
    let elsewhere = repo.tmp().join("not-a-repository");
    std::fs::create_dir_all(&elsewhere).expect("a folder");
    let huge = serde_json::json!({
        "session_id": "s1", "cwd": alice, "hook_event_name": "PostToolUse",
        "tool_response": {"stdout": "x".repeat(3 * 1024 * 1024)},
    });
    for input in [
        String::new(),
        "not json".to_string(),
        "[1, 2]".to_string(),
        "{\"cwd\": 7}".to_string(),
        "{\"cwd\": \"/nonexistent/folder\"}".to_string(),
        serde_json::json!({"cwd": elsewhere}).to_string(),
        "\u{feff}\u{0}".to_string(),
        // Larger than the hook parses: read to its end, nothing added.
        huge.to_string(),
    ] {
        assert_eq!(after_tool(&repo, &alice, &input), "", "input {:.80}", input);
    }
    // An agent name that is not one: nothing, and no failure.
    let out = repo
        .command(common::BIN, &alice)
        .args(["--agent", "no good", "hook", "after-tool"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stdout(&out), "");
    // None of it used up the message: a good call still brings it up.
    assert!(after_tool(&repo, &alice, &post_tool_use(&alice, "s1")).contains("hello"));
}
