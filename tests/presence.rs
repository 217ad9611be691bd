//! Presence across machines: heartbeats shared through a bare remote, staleness judged by every
//! clone, takeover of a stale agent's task confirmed at the remote, joining in place, `wait`, the
//! stop hook's idleness per agent, and the bound on presence history.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use common::cluster::Cluster;
use common::{TestRepo, array, fails, field, json, ok, stderr, stdout};

const CLONE_NAMES: [&str; 3] = ["laptop", "desk", "server"];

/// Clones of one bare remote named laptop, desk and server (`coord.clone`).
fn cluster(clones: usize) -> Cluster {
    Cluster::named(clones, &CLONE_NAMES)
}

/// What these tests ask of a cluster besides running commands.
trait PresenceCluster {
    fn config(&self, clone: usize, text: &str);
    fn agent(&self, clone: usize, name: &str) -> Value;
    fn new_task(&self, clone: usize, title: &str) -> String;
    fn remote_commits(&self, refs: &str) -> usize;
}

impl PresenceCluster for Cluster {
    /// `.coord.yaml` of one clone's working tree (not committed: each clone its own).
    fn config(&self, clone: usize, text: &str) {
        std::fs::write(self.clones[clone].join(".coord.yaml"), text).expect("config");
    }

    fn agent(&self, clone: usize, name: &str) -> Value {
        let list = array(self.json(clone, &["agent", "list", "--all"]));
        list.into_iter()
            .find(|a| field(a, "name") == Some(name))
            .unwrap_or_else(|| panic!("{name} is not listed on clone {clone}"))
    }

    fn new_task(&self, clone: usize, title: &str) -> String {
        self.ok(clone, &["task", "new", title]).trim().to_string()
    }

    /// Commits reachable from the coordination refs of the bare remote.
    fn remote_commits(&self, refs: &str) -> usize {
        reachable(&self.origin, &self.remote, refs)
    }
}

/// How many commits are reachable from the refs under `prefix` in the repository at `dir`.
fn reachable(repo: &TestRepo, dir: &Path, prefix: &str) -> usize {
    let refs = stdout(&ok(
        repo.git_in(dir, &["for-each-ref", "--format=%(refname)", prefix]),
        "for-each-ref",
    ));
    let refs: Vec<&str> = refs.lines().collect();
    if refs.is_empty() {
        return 0;
    }
    let mut args = vec!["rev-list", "--count"];
    args.extend(refs);
    stdout(&ok(repo.git_in(dir, &args), "rev-list"))
        .trim()
        .parse()
        .expect("a count")
}

fn last_event(task: &Value) -> Value {
    array(task["history"].clone())
        .pop()
        .expect("the task has a history")
}

#[test]
fn a_silent_agent_goes_stale_on_another_clone_which_takes_over_its_task() {
    let c = cluster(2);
    // The crashing agent's clone promises a heartbeat every second; the other waits for 30m.
    c.config(0, "stale_after: 1s\n");
    c.ok(0, &["agent", "register", "crashy", "--role", "dev"]);
    let task = c.new_task(0, "Fix the parser");
    let second = c.new_task(0, "Fix the lexer");
    c.ok(0, &["task", "claim", &task]);
    c.ok(0, &["task", "claim", &second]);
    let claimed_at = Instant::now();

    // Clone 2 sees crashy through the remote: who it is, when and from where it was last seen.
    c.ok(1, &["sync"]);
    let seen = c.agent(1, "crashy");
    assert_eq!(seen["last_seen"]["clone"], "laptop", "{seen}");
    assert_eq!(seen["last_seen"]["here"], false, "{seen}");
    let mut held = array(seen["claimed"].clone());
    held.sort_by_key(|v| v.as_str().unwrap_or_default().to_string());
    let mut want = vec![Value::from(task.clone()), Value::from(second.clone())];
    want.sort_by_key(|v| v.as_str().unwrap_or_default().to_string());
    assert_eq!(held, want, "{seen}");

    // crashy goes silent. Past stale_after, clone 2 judges it stale after a sync.
    let silent = Duration::from_millis(1500);
    std::thread::sleep(silent.saturating_sub(claimed_at.elapsed()));
    c.ok(1, &["agent", "register", "bea", "--role", "dev"]);
    c.ok(1, &["sync"]);
    let seen = c.agent(1, "crashy");
    assert_eq!(seen["stale"], true, "{seen}");
    assert_eq!(seen["presence"], "stale", "{seen}");
    let status = c.ok(1, &["status"]);
    let line = status
        .lines()
        .find(|l| l.trim_start().starts_with("crashy"))
        .unwrap_or_else(|| panic!("crashy not in {status}"));
    assert!(line.contains("stale"), "{line}");
    let bea = c.agent(1, "bea");
    assert_eq!(bea["presence"], "idle", "{bea}");

    // bea takes the task over; confirmed at the remote, recorded in its history.
    let taken = c.json(1, &["task", "claim", &task]);
    assert_eq!(field(&taken, "assignee"), Some("bea"), "{taken}");
    // claim --next considers a stale agent's tasks as well (nothing is open).
    let next = c.json(1, &["task", "claim", "--next"]);
    assert_eq!(field(&next, "id"), Some(second.as_str()), "{next}");
    assert_eq!(field(&next, "assignee"), Some("bea"), "{next}");

    // Any command on laptop is crashy's heartbeat: it is back.
    c.ok(0, &["sync"]);
    let on_laptop = json(&c.ok(0, &["task", "show", &task, "--history", "--json"]));
    assert_eq!(field(&on_laptop, "assignee"), Some("bea"), "{on_laptop}");
    let event = last_event(&on_laptop);
    assert_eq!(field(&event, "agent"), Some("bea"), "{event}");
    assert!(
        field(&event, "note").is_some_and(|n| n.contains("taken over from crashy")),
        "{event}"
    );

    // When crashy comes back, its brief says it lost the task, to whom, and why.
    let brief = c.ok(0, &["brief"]);
    assert!(brief.contains("You are crashy"), "{brief}");
    assert!(
        brief.contains(&format!("Task {task} was taken over by bea")),
        "{brief}"
    );
    assert!(
        brief.contains(&format!("Task {second} was taken over by bea")),
        "{brief}"
    );
    assert!(brief.contains("Your claimed tasks (0)"), "{brief}");
    let inbox = c.json(0, &["inbox"]);
    let body = c.ok(
        0,
        &[
            "read",
            array(inbox["messages"].clone())[0]["id"]
                .as_str()
                .expect("an id"),
        ],
    );
    assert!(body.contains("stale_after"), "{body}");
}

#[test]
fn an_agent_that_keeps_heartbeating_is_not_stale_on_another_clone() {
    let c = cluster(2);
    c.ok(0, &["agent", "register", "alive", "--role", "dev"]);
    c.ok(1, &["sync"]);
    let first = c.agent(1, "alive");
    assert_eq!(first["stale"], false, "{first}");
    assert_eq!(first["presence"], "idle", "{first}");
    assert_eq!(first["last_seen"]["clone"], "laptop", "{first}");
    let first_at = first["last_seen"]["at"].as_str().expect("at").to_string();

    // Each heartbeat goes to the remote; none adds a commit to the audited refs.
    let audited = c.remote_commits("refs/coord/agents");
    let audited_tasks = c.remote_commits("refs/coord/tasks");
    std::thread::sleep(Duration::from_millis(20));
    for _ in 0..3 {
        let beat = c.json(0, &["agent", "heartbeat"]);
        assert_eq!(beat["stale"], false, "{beat}");
    }
    assert_eq!(c.remote_commits("refs/coord/agents"), audited);
    assert_eq!(c.remote_commits("refs/coord/tasks"), audited_tasks);

    c.ok(1, &["sync"]);
    let later = c.agent(1, "alive");
    let later_at = later["last_seen"]["at"].as_str().expect("at");
    assert!(later_at > first_at.as_str(), "{first_at} -> {later}");
    assert_eq!(later["stale"], false, "{later}");

    // Holding a task makes it busy, on its own clone and on the other.
    let task = c.new_task(1, "Something to do");
    c.ok(1, &["sync"]);
    // A heartbeat kept local goes out with the next online write (the claim), after it.
    let local = c.json(0, &["--offline", "agent", "heartbeat"]);
    let local_at = local["last_seen"]["at"].as_str().expect("at").to_string();
    c.ok(0, &["task", "claim", &task]);
    c.ok(1, &["fetch"]);
    let fetched = c.agent(1, "alive");
    assert!(
        fetched["last_seen"]["at"].as_str().expect("at") >= local_at.as_str(),
        "{local_at} -> {fetched}"
    );
    let me = c.json(0, &["whoami"]);
    assert_eq!(me["presence"], "busy", "{me}");
    assert_eq!(me["last_seen"]["clone"], "laptop", "{me}");
    c.ok(1, &["sync"]);
    assert_eq!(c.agent(1, "alive")["presence"], "busy");
    let status = c.json(1, &["status"]);
    let row = array(status["agents"].clone())
        .into_iter()
        .find(|a| a["name"] == "alive")
        .expect("alive in status");
    assert_eq!(row["presence"], "busy", "{row}");
}

#[test]
fn two_clones_racing_to_take_over_a_stale_task_exactly_one_wins_each_round() {
    let c = cluster(3);
    c.config(0, "stale_after: 1s\n");
    c.ok(0, &["agent", "register", "crashy", "--role", "dev"]);
    let tasks: Vec<String> = (0..10)
        .map(|n| c.new_task(0, &format!("task {n}")))
        .collect();
    for t in &tasks {
        c.ok(0, &["task", "claim", t]);
    }
    c.ok(1, &["agent", "register", "r1", "--role", "dev"]);
    c.ok(2, &["agent", "register", "r2", "--role", "dev"]);
    // The racing clones fetch crashy's last heartbeat, then it is silent there for longer
    // than stale_after (a heartbeat counts from when it arrived).
    c.ok(1, &["sync"]);
    c.ok(2, &["sync"]);
    std::thread::sleep(Duration::from_millis(1500));

    for (round, task) in tasks.iter().enumerate() {
        let racers = [
            c.spawn(1, &["task", "claim", task, "--json"]),
            c.spawn(2, &["task", "claim", task, "--json"]),
        ];
        let outs: Vec<Output> = racers
            .into_iter()
            .map(|r| r.wait_with_output().expect("a claim finishes"))
            .collect();
        let won: Vec<usize> = (0..2).filter(|&i| outs[i].status.success()).collect();
        assert_eq!(
            won.len(),
            1,
            "round {round}: {:?} / {:?}",
            stderr(&outs[0]),
            stderr(&outs[1])
        );
        let winner = ["r1", "r2"][won[0]];
        let loser = &outs[1 - won[0]];
        assert_eq!(
            loser.status.code(),
            Some(3),
            "round {round}: {}",
            stderr(loser)
        );
        assert!(
            stderr(loser).contains(&format!("claimed by {winner}")),
            "round {round}: {}",
            stderr(loser)
        );
        assert_eq!(
            field(&json(&stdout(&outs[won[0]])), "assignee"),
            Some(winner)
        );
        // Both racing clones agree, and the history holds exactly one takeover. (Clone 0 is
        // left alone: a command there would be crashy's heartbeat, bringing it back.)
        for clone in 1..3 {
            c.ok(clone, &["sync"]);
            let shown = json(&c.ok(clone, &["task", "show", task, "--history", "--json"]));
            assert_eq!(field(&shown, "assignee"), Some(winner), "round {round}");
            let takeovers = array(shown["history"].clone())
                .iter()
                .filter(|e| field(e, "note").is_some_and(|n| n.contains("taken over")))
                .count();
            assert_eq!(takeovers, 1, "round {round}: {shown}");
        }
    }
}

#[test]
fn an_unreachable_remote_does_not_fail_a_heartbeat_which_goes_out_on_the_next_contact() {
    let c = cluster(2);
    c.ok(0, &["agent", "register", "roamer", "--role", "dev"]);
    let url = c.remote.to_str().expect("utf-8").to_string();
    let gone = c.origin.tmp().join("nowhere.git");
    c.origin
        .git_ok(&["remote", "set-url", "origin", gone.to_str().expect("utf-8")]);

    let out = ok(
        c.run(0, &["agent", "heartbeat", "--json"]),
        "heartbeat offline",
    );
    let beat = json(&stdout(&out));
    assert_eq!(beat["last_seen"]["here"], true, "{beat}");
    let at = beat["last_seen"]["at"].as_str().expect("at").to_string();
    assert!(stderr(&out).contains("not shared"), "{}", stderr(&out));
    // Local work goes on meanwhile.
    c.ok(0, &["--offline", "task", "new", "local work"]);

    c.origin.git_ok(&["remote", "set-url", "origin", &url]);
    c.ok(0, &["sync"]);
    c.ok(1, &["sync"]);
    let seen = c.agent(1, "roamer");
    assert!(
        seen["last_seen"]["at"].as_str().expect("at") >= at.as_str(),
        "{seen}"
    );
    assert_eq!(seen["last_seen"]["clone"], "laptop");
}

/// Pushes, with plain git, a presence tree holding one heartbeat of `agent` stamped `at` by
/// `clone`, as a clone whose clock is off would write it; no command of the agent's own clone
/// refreshes it.
fn push_heartbeat(c: &Cluster, agent: &str, at: &str, clone: &str) {
    let doc = format!("format: 1\nagent: {agent}\nat: {at}\nclone: {clone}\nstale_after: 3600\n");
    let blob = c
        .origin
        .git_with_input(&["hash-object", "-w", "--stdin"], &[], doc.as_bytes());
    let inner = c.origin.git_with_input(
        &["mktree"],
        &[],
        format!("100644 blob {blob}\t{agent}.yaml\n").as_bytes(),
    );
    let tree = c.origin.git_with_input(
        &["mktree"],
        &[],
        format!("040000 tree {inner}\theartbeats\n").as_bytes(),
    );
    let commit = c
        .origin
        .git_ok(&["commit-tree", tree.as_str(), "-m", "presence"]);
    c.origin.git_ok(&[
        "push",
        "-q",
        "--force",
        "origin",
        &format!("{commit}:refs/coord/presence"),
    ]);
}

#[test]
fn a_clock_far_ahead_keeps_an_agent_live_only_until_stale_after_past_its_arrival() {
    let c = cluster(2);
    c.config(1, "stale_after: 1s\n");
    c.ok(0, &["agent", "register", "ahead", "--role", "dev"]);
    push_heartbeat(&c, "ahead", "2099-01-01T00:00:00.000Z", "future");
    c.ok(1, &["sync"]);
    let arrived = Instant::now();
    let seen = c.agent(1, "ahead");
    assert_eq!(seen["last_seen"]["clone"], "future", "{seen}");
    std::thread::sleep(Duration::from_millis(1500).saturating_sub(arrived.elapsed()));
    let seen = c.agent(1, "ahead");
    assert_eq!(
        seen["stale"], true,
        "a heartbeat from 2099 kept it live: {seen}"
    );
}

/// A clone whose clock is an hour behind writes heartbeats that look an hour old: judged by
/// their stamps, its live agents would be stale everywhere at once and taken over. Found by the
/// soak's clock skew. A heartbeat counts from when it arrived.
#[test]
fn a_clock_behind_does_not_make_a_live_agent_stale() {
    let c = cluster(2);
    c.config(1, "stale_after: 2s\n");
    c.ok(0, &["agent", "register", "behind", "--role", "dev"]);
    let hour_ago = (jiff::Timestamp::now() - jiff::SignedDuration::from_hours(1))
        .strftime("%Y-%m-%dT%H:%M:%S.000Z")
        .to_string();
    push_heartbeat(&c, "behind", &hour_ago, "slow-clock");
    c.ok(1, &["sync"]);
    let arrived = Instant::now();
    let seen = c.agent(1, "behind");
    assert_eq!(seen["last_seen"]["clone"], "slow-clock", "{seen}");
    assert_eq!(seen["stale"], false, "a clock behind made it stale: {seen}");
    std::thread::sleep(Duration::from_millis(2500).saturating_sub(arrived.elapsed()));
    let seen = c.agent(1, "behind");
    assert_eq!(seen["stale"], true, "silent past stale_after: {seen}");
}

#[test]
fn a_thousand_heartbeats_from_five_agents_add_at_most_one_commit_to_shared_history() {
    let c = cluster(1);
    let names = ["h1", "h2", "h3", "h4", "h5"];
    for name in names {
        c.ok(0, &["agent", "spawn", name, "--role", "dev"]);
    }
    c.ok(0, &["sync"]);
    let local = |prefix: &str| reachable(&c.origin, c.dir(0), prefix);
    let before_local = local("refs/coord/");
    let before_remote = c.remote_commits("refs/coord/");
    let before_audited = local("refs/coord/tasks") + local("refs/coord/agents");

    for n in 0..1000 {
        let agent = names[n % names.len()];
        // Most stay here; every 100th goes to the remote too.
        let mut args = vec!["--agent", agent, "agent", "heartbeat"];
        if n % 100 != 99 {
            args.insert(0, "--offline");
        }
        c.ok(0, &args);
    }
    c.ok(0, &["sync"]);

    // The bound stated in docs/FORMAT.md: refs/coord/presence is one commit without parent,
    // so heartbeats add at most one commit reachable from shared refs, here and at the remote.
    assert!(local("refs/coord/") <= before_local + 1);
    assert!(c.remote_commits("refs/coord/") <= before_remote + 1);
    assert_eq!(
        c.origin
            .git_ok(&["rev-list", "--count", "refs/coord/presence"]),
        "1"
    );
    assert_eq!(
        local("refs/coord/tasks") + local("refs/coord/agents"),
        before_audited
    );
    let beats = c.origin.git_ok(&[
        "ls-tree",
        "--name-only",
        "refs/coord/presence",
        "heartbeats/",
    ]);
    assert_eq!(beats.lines().count(), 5, "{beats}");
}

/// Branches and worktrees of a repository, to see that joining in place makes neither.
fn branches_and_worktrees(repo: &TestRepo) -> (String, String) {
    (
        repo.git_ok(&["for-each-ref", "--format=%(refname)", "refs/heads/"]),
        repo.git_ok(&["worktree", "list", "--porcelain"]),
    )
}

#[test]
fn an_existing_checkout_joins_in_place_acts_as_the_agent_and_retires_keeping_its_work() {
    let repo = TestRepo::init();
    std::fs::write(repo.path.join("notes.txt"), "mine\n").expect("a file");
    let before = branches_and_worktrees(&repo);

    let out = repo.coord_ok(&["agent", "register", "ada", "--role", "dev"]);
    assert!(out.contains("registered ada (dev) in place"), "{out}");
    assert_eq!(
        branches_and_worktrees(&repo),
        before,
        "no branch, no worktree"
    );

    // Every command here acts as ada, with no flag.
    let me = repo.coord_json(&["whoami"]);
    assert_eq!(field(&me, "agent"), Some("ada"), "{me}");
    assert_eq!(field(&me, "source"), Some("worktree"), "{me}");
    assert_eq!(field(&me, "role"), Some("dev"), "{me}");
    assert_eq!(me["branch"], Value::Null, "{me}");
    assert_eq!(field(&me, "presence"), Some("idle"), "{me}");
    assert_eq!(me["last_seen"]["here"], true, "{me}");
    let text = repo.coord_ok(&["whoami"]);
    assert!(text.contains("ada (this worktree's agent)"), "{text}");
    assert!(text.contains("joined in place"), "{text}");
    assert!(text.contains("idle, last seen"), "{text}");
    let task = repo.new_task("Write the notes", &[]);
    let claimed = repo.coord_json(&["task", "claim", &task]);
    assert_eq!(field(&claimed, "assignee"), Some("ada"), "{claimed}");
    assert_eq!(
        field(&repo.coord_json(&["whoami"]), "presence"),
        Some("busy")
    );
    let line = repo.coord_ok(&["agent", "list"]);
    assert!(
        line.starts_with("ada") && line.contains("busy") && line.contains("(in place)"),
        "{line}"
    );
    // Registering again, same name and role: nothing changes.
    let agents_tip = repo.git_ok(&["rev-parse", "refs/coord/agents"]);
    repo.coord_ok(&["agent", "register", "ada", "--role", "dev"]);
    assert_eq!(repo.git_ok(&["rev-parse", "refs/coord/agents"]), agents_tip);

    // Refused, with nothing written: another name here while ada is active, a name active
    // elsewhere, names unfit for a ref, an unknown role.
    repo.coord_ok(&["agent", "spawn", "sam", "--role", "dev"]);
    let agents_tip = repo.git_ok(&["rev-parse", "refs/coord/agents"]);
    let err = fails(
        &repo.coord(&["agent", "register", "bob", "--role", "dev"]),
        1,
    );
    assert!(err.contains("already is agent ada"), "{err}");
    let sam_dir = repo.tmp().join("repo.agents").join("sam");
    let other = repo.tmp().join("other");
    ok(
        repo.command("git", repo.tmp())
            .args(["clone", "-q"])
            .arg(&repo.path)
            .arg(&other)
            .output()
            .expect("git"),
        "clone",
    );
    ok(
        repo.git_in(&other, &["config", "user.name", "Other Human"]),
        "config",
    );
    ok(
        repo.command("git", &other)
            .args(["fetch", "-q", "origin", "refs/coord/*:refs/coord/*"])
            .output()
            .expect("git"),
        "fetch coord refs",
    );
    let err = fails(
        &repo.coord_in(&other, &["agent", "register", "sam", "--role", "dev"]),
        1,
    );
    assert!(err.contains("sam is already active"), "{err}");
    assert!(
        err.contains(
            &sam_dir
                .canonicalize()
                .expect("sam's worktree")
                .display()
                .to_string()
        ),
        "{err}"
    );
    for bad in ["a/b", "../x", "x.lock", "has space", ""] {
        let out = repo.coord_in(&other, &["agent", "register", bad, "--role", "dev"]);
        assert!(!out.status.success(), "{bad:?} was accepted");
        assert!(
            stderr(&out).contains("agent name"),
            "{bad:?}: {}",
            stderr(&out)
        );
    }
    let err = fails(
        &repo.coord_in(&other, &["agent", "register", "zed", "--role", "wizard"]),
        1,
    );
    assert!(err.contains("known roles"), "{err}");
    assert!(
        !other.join(".git/coord-agent").exists(),
        "an identity was written"
    );
    assert_eq!(repo.git_ok(&["rev-parse", "refs/coord/agents"]), agents_tip);

    // Retire removes only the registration: the checkout, its branch and its files stay.
    let head = repo.git_ok(&["rev-parse", "HEAD"]);
    repo.coord_ok(&["task", "release", &task]);
    let out = repo.coord_ok(&["agent", "retire", "ada"]);
    assert!(out.contains("retired ada"), "{out}");
    assert!(repo.path.join("notes.txt").is_file());
    assert_eq!(repo.git_ok(&["rev-parse", "HEAD"]), head);
    let (branches, _) = branches_and_worktrees(&repo);
    assert!(branches.contains("refs/heads/main"), "{branches}");
    let me = repo.coord_json(&["whoami"]);
    assert_eq!(field(&me, "source"), Some("git-user"), "{me}");
    let shown = repo.coord_json(&["agent", "show", "ada"]);
    assert_eq!(field(&shown, "status"), Some("retired"), "{shown}");
    assert_eq!(field(&shown, "presence"), Some("retired"), "{shown}");
    // And the name can join again.
    repo.coord_ok(&["agent", "register", "ada", "--role", "reviewer"]);
    assert_eq!(
        field(&repo.coord_json(&["whoami"]), "role"),
        Some("reviewer")
    );
}

/// Waits for a child, for at most `limit` (a generous bound, not a timing assertion).
fn finish(mut child: Child, limit: Duration) -> Output {
    let started = Instant::now();
    while child.try_wait().expect("try_wait").is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("the child finishes")
}

#[test]
fn wait_returns_when_a_message_or_a_task_change_arrives_and_times_out_with_exit_3() {
    let repo = TestRepo::init();
    repo.coord_ok(&["agent", "register", "waiter", "--role", "dev"]);

    // Nothing for it: exit 3 after the timeout, saying so.
    let err = fails(&repo.coord(&["wait", "--inbox", "--timeout", "1s"]), 3);
    assert!(err.contains("nothing arrived within 1s"), "{err}");

    // A message sent by another process ends the wait; the wait prints it.
    let child = repo
        .coord_cmd(&["wait", "--inbox", "--timeout", "120s", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("wait starts");
    repo.coord_as_ok(
        "boss",
        &["send", "--to", "waiter", "please review the parser"],
    );
    let out = finish(child, Duration::from_secs(150));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let arrived = array(json(&stdout(&out))["arrived"].clone());
    assert_eq!(arrived[0]["kind"], "message", "{arrived:?}");
    assert_eq!(arrived[0]["from"], "boss", "{arrived:?}");
    assert_eq!(
        arrived[0]["subject"], "please review the parser",
        "{arrived:?}"
    );
    let id = arrived[0]["id"].as_str().expect("id").to_string();
    repo.coord_ok(&["read", &id]);

    // --task: a change to the task after the wait began (comments until the wait has seen one).
    let task = repo.new_task("Watch me", &[]);
    let mut child = repo
        .coord_cmd(&["wait", "--task", &task, "--timeout", "120s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("wait starts");
    let started = Instant::now();
    while child.try_wait().expect("try_wait").is_none()
        && started.elapsed() < Duration::from_secs(120)
    {
        repo.coord_as_ok("boss", &["task", "comment", &task, "ping"]);
        std::thread::sleep(Duration::from_millis(300));
    }
    let out = finish(child, Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!("task {task} changed: open Watch me")),
        "{}",
        stdout(&out)
    );

    // --ready: ready work for its role, at once when there is some.
    repo.new_task("For a dev", &["--role", "dev"]);
    let out = repo.coord_ok(&["wait", "--ready", "--timeout", "60s"]);
    assert!(out.contains("ready ") && out.contains("For a dev"), "{out}");
}

#[test]
fn wait_returns_when_a_message_comes_from_another_clone_through_the_remote() {
    let c = cluster(2);
    c.ok(1, &["agent", "register", "far", "--role", "dev"]);
    c.ok(0, &["sync"]);
    let child = c.spawn(
        1,
        &[
            "wait",
            "--inbox",
            "--interval",
            "1s",
            "--timeout",
            "120s",
            "--json",
        ],
    );
    c.ok(0, &["send", "--to", "far", "the build is green"]);
    c.ok(0, &["sync"]);
    let out = finish(child, Duration::from_secs(150));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let arrived = array(json(&stdout(&out))["arrived"].clone());
    assert_eq!(arrived[0]["subject"], "the build is green", "{arrived:?}");
}

/// Runs `git coord hook stop` for the checkout at `dir`; returns (stdout, stderr).
fn stop_hook(repo: &TestRepo, dir: &Path, stop_hook_active: bool) -> (String, String) {
    let input = serde_json::json!({
        "session_id": "s1",
        "cwd": dir.display().to_string(),
        "hook_event_name": "Stop",
        "stop_hook_active": stop_hook_active,
    })
    .to_string();
    common::stop_hook(repo, &input)
}

fn blocked(out: &str) -> bool {
    !out.is_empty() && json(out)["decision"] == "block"
}

/// A worker spawned with `config` in its worktree, holding a task of its own.
fn worker_with_a_task(repo: &TestRepo, name: &str, config: &str) -> (PathBuf, String) {
    repo.coord_ok(&["agent", "spawn", name, "--role", "dev"]);
    let dir = repo.tmp().join("repo.agents").join(name);
    std::fs::write(dir.join(".coord.yaml"), config).expect("config");
    let task = repo.new_task(&format!("{name}'s work"), &["--role", "dev"]);
    ok(repo.coord_in(&dir, &["task", "claim", &task]), "claim");
    (dir, task)
}

fn commit_in(repo: &TestRepo, dir: &Path, file: &str) {
    std::fs::write(dir.join(file), "work\n").expect("a file");
    ok(repo.git_in(dir, &["add", file]), "git add");
    ok(
        repo.git_in(dir, &["commit", "-q", "-m", file]),
        "git commit",
    );
}

#[test]
fn the_stop_hook_lets_a_stalled_agent_stop_after_its_own_idle_time_in_a_busy_team() {
    let repo = TestRepo::init();
    let (dir, task) = worker_with_a_task(&repo, "slow", "stop_idle: 1s\nstop_max_blocks: 100\n");
    let (out, _) = stop_hook(&repo, &dir, false);
    assert!(blocked(&out), "{out}");
    assert!(out.contains(&task), "{out}");

    // The team keeps writing; slow does nothing of its own.
    let started = Instant::now();
    let mut n = 0;
    while started.elapsed() < Duration::from_millis(1300) {
        repo.coord_as_ok("busy", &["task", "new", &format!("more work {n}")]);
        repo.coord_as_ok("busy", &["send", "--to", "@all", &format!("update {n}")]);
        n += 1;
    }
    repo.coord_as_ok("busy", &["task", "comment", &task, "how is it going?"]);
    let (out, err) = stop_hook(&repo, &dir, true);
    assert!(out.is_empty(), "kept going by its teammates' writes: {out}");
    assert!(err.contains("no progress by slow for "), "{err}");
    // Under a minute it says seconds, never 0m.
    assert!(err.contains("s (stop_idle 1s"), "{err}");
    assert!(!err.contains("0m"), "{err}");
}

#[test]
fn the_stop_hook_keeps_an_agent_that_commits_code_going() {
    let repo = TestRepo::init();
    let (dir, task) = worker_with_a_task(&repo, "coder", "stop_idle: 1s\nstop_max_blocks: 100\n");
    let (out, _) = stop_hook(&repo, &dir, false);
    assert!(blocked(&out), "{out}");
    for round in 0..2 {
        std::thread::sleep(Duration::from_millis(1200));
        // Code committed on its branch, no coordination write: still progress.
        commit_in(&repo, &dir, &format!("part{round}.rs"));
        let (out, err) = stop_hook(&repo, &dir, true);
        assert!(
            blocked(&out),
            "round {round}: let stop while it commits: {err}"
        );
        assert!(out.contains(&task), "{out}");
    }
    // Its own coordination write counts too.
    std::thread::sleep(Duration::from_millis(1200));
    ok(
        repo.coord_in(&dir, &["task", "comment", &task, "halfway"]),
        "comment",
    );
    let (out, _) = stop_hook(&repo, &dir, true);
    assert!(blocked(&out), "{out}");
    // Then nothing of its own for the idle time: it may stop.
    std::thread::sleep(Duration::from_millis(1200));
    let (out, err) = stop_hook(&repo, &dir, true);
    assert!(out.is_empty(), "{out}");
    assert!(err.contains("no progress by coder"), "{err}");
}

#[test]
fn the_stop_hook_tells_the_agent_why_the_team_is_paused_or_cancelled_on_stdout() {
    let repo = TestRepo::init();
    let (dir, _) = worker_with_a_task(&repo, "wendy", "");
    repo.coord_ok(&["pause", "--reason", "the release is frozen"]);
    let (out, _) = stop_hook(&repo, &dir, false);
    let answer = json(&out);
    assert_eq!(answer["continue"], false, "{answer}");
    let why = answer["stopReason"].as_str().expect("a stopReason");
    assert!(
        why.contains("paused") && why.contains("the release is frozen"),
        "{why}"
    );
    assert!(why.contains("git coord resume"), "{why}");
    assert!(answer.get("decision").is_none(), "{answer}");
    // Clients do not show stopReason in headless mode: the next session's brief says it.
    let brief = stdout(&ok(repo.coord_in(&dir, &["brief"]), "brief"));
    assert!(
        brief.contains("The team is paused (the release is frozen)"),
        "{brief}"
    );
    repo.coord_ok(&["cancel", "--reason", "wrong plan"]);
    let (out, _) = stop_hook(&repo, &dir, true);
    let why = json(&out)["stopReason"]
        .as_str()
        .expect("stopReason")
        .to_string();
    assert!(
        why.contains("cancelled") && why.contains("wrong plan"),
        "{why}"
    );
}

#[test]
fn the_stop_hook_bounds_blocks_in_a_row_without_progress() {
    let repo = TestRepo::init();
    let (dir, task) = worker_with_a_task(&repo, "stuck", "stop_max_blocks: 3\n");
    // A stuck model (as a client with no limit of its own would loop): three blocks, then stop.
    for n in 0..3 {
        let (out, _) = stop_hook(&repo, &dir, n > 0);
        assert!(blocked(&out), "block {n}: {out}");
    }
    for _ in 0..2 {
        let (out, err) = stop_hook(&repo, &dir, true);
        assert!(out.is_empty(), "{out}");
        assert!(err.contains("3 time(s) in a row with no progress"), "{err}");
    }
    // Progress of its own starts a new count.
    commit_in(&repo, &dir, "fix.rs");
    let (out, _) = stop_hook(&repo, &dir, true);
    assert!(blocked(&out) && out.contains(&task), "{out}");
    stop_hook(&repo, &dir, true);
    stop_hook(&repo, &dir, true);
    let (out, _) = stop_hook(&repo, &dir, true);
    assert!(out.is_empty(), "{out}");
    // However the client reports stop_hook_active: Gemini CLI sends false after every retry
    // turn that made tool calls, so false starts no new count.
    for _ in 0..3 {
        let (out, _) = stop_hook(&repo, &dir, false);
        assert!(out.is_empty(), "{out}");
    }
    // A new session of the agent does.
    let input = serde_json::json!({
        "session_id": "s2",
        "cwd": dir.display().to_string(),
        "stop_hook_active": false,
    });
    let (out, _) = common::stop_hook(&repo, &input.to_string());
    assert!(blocked(&out), "{out}");
}

/// An update hook in the bare remote that refuses rewinds and deletions of every ref, as a
/// gitolite `RW refs/coord/` rule (no `+`) does; git's own receive.denyNonFastForwards guards
/// branches only.
fn refuse_rewinds(c: &Cluster) {
    let hook = c.remote.join("hooks/update");
    std::fs::write(
        &hook,
        "#!/bin/sh\n\
         zero=0000000000000000000000000000000000000000\n\
         if [ \"$3\" = $zero ]; then echo \"policy: $1 may not be deleted\" >&2; exit 1; fi\n\
         if [ \"$2\" != $zero ] && ! git merge-base --is-ancestor \"$2\" \"$3\"; then\n\
             echo \"policy: $1 may only fast-forward\" >&2; exit 1\n\
         fi\n",
    )
    .expect("the hook");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

#[test]
fn on_a_server_that_only_fast_forwards_a_heartbeating_agent_is_never_taken_over() {
    let c = cluster(2);
    refuse_rewinds(&c);
    c.config(0, "stale_after: 2s\n");
    c.ok(0, &["agent", "register", "live", "--role", "dev"]);
    let task = c.new_task(0, "Keep the lights on");
    c.ok(0, &["task", "claim", &task]);
    c.ok(1, &["agent", "register", "taker", "--role", "dev"]);
    let before = c.remote_commits("refs/coord/presence");

    // live heartbeats every half second for three times its stale_after; every takeover tried
    // from the other clone meanwhile is refused.
    let start = Instant::now();
    let mut tries = 0;
    while start.elapsed() < Duration::from_secs(6) {
        let beat = c.json(0, &["agent", "heartbeat"]);
        assert_eq!(beat["stale"], false, "{beat}");
        if start.elapsed() > Duration::from_millis(2500) {
            let err = fails(&c.run(1, &["task", "claim", &task]), 3);
            assert!(err.contains("claimed by live"), "{err}");
            tries += 1;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(tries > 0);
    let after = c.remote_commits("refs/coord/presence");
    assert!(
        after > before,
        "presence did not reach the remote: {before} -> {after}"
    );

    // A sync says nothing about later: presence went out as fast-forwards.
    let synced = c.ok(0, &["sync"]);
    assert!(!synced.contains("next sync"), "{synced}");

    // live goes silent: past stale_after from when its last heartbeat reached the other clone,
    // it is taken over there.
    c.ok(1, &["sync"]);
    std::thread::sleep(Duration::from_secs(3));
    let taken = c.json(1, &["task", "claim", &task]);
    assert_eq!(field(&taken, "assignee"), Some("taker"), "{taken}");
}

#[test]
fn a_server_that_refuses_presence_outright_is_an_error_naming_its_words() {
    let c = cluster(2);
    let hook = c.remote.join("hooks/update");
    std::fs::write(
        &hook,
        "#!/bin/sh\ncase \"$1\" in refs/coord/presence) echo \"policy: no presence here\" >&2; exit 1;; esac\n",
    )
    .expect("the hook");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    c.ok(0, &["agent", "register", "lonely", "--role", "dev"]);
    let err = fails(&c.run(0, &["agent", "heartbeat"]), 1);
    assert!(err.contains("refs/coord/presence"), "{err}");
    assert!(!err.contains("next sync"), "{err}");
    let out = c.run(0, &["sync"]);
    let err = fails(&out, 1);
    assert!(err.contains("refs/coord/presence"), "{err}");
    assert!(!stdout(&out).contains("next sync"), "{}", stdout(&out));
}

/// A claim younger than stale_after proves that its holder was alive when it made it. An agent
/// back from an outage longer than stale_after has its claim confirmed at the remote before its
/// heartbeat gets there: found by the soak (tests/soak/run), where a clone took over a task 1.5 s
/// after another clone's agent claimed it.
#[test]
fn a_claim_younger_than_stale_after_is_not_taken_over_before_its_heartbeat_arrives() {
    let c = cluster(2);
    c.config(0, "stale_after: 2s\n");
    c.ok(0, &["agent", "register", "back", "--role", "dev"]);
    let task = c.new_task(0, "Claimed as the outage ends");
    c.ok(0, &["sync"]);
    c.ok(1, &["agent", "register", "taker", "--role", "dev"]);
    // From now on back's heartbeats never reach the remote; its claim does.
    let hook = c.remote.join("hooks/update");
    std::fs::write(
        &hook,
        "#!/bin/sh\ncase \"$1\" in refs/coord/presence) echo \"policy: not now\" >&2; exit 1;; esac\n",
    )
    .expect("the hook");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::thread::sleep(Duration::from_millis(2500));
    let claimed = c.run(0, &["task", "claim", &task]);
    let claimed_at = Instant::now();
    ok(claimed, "back claims");

    // back looks stale on the other clone, but its claim is newer than stale_after.
    let err = fails(&c.run(1, &["task", "claim", &task]), 3);
    assert!(err.contains("claimed by back"), "{err}");
    let err = fails(&c.run(1, &["task", "claim", "--next"]), 3);
    assert!(err.contains("no ready task"), "{err}");

    // Silent for stale_after past its claim, it is taken over.
    std::thread::sleep(Duration::from_millis(2500).saturating_sub(claimed_at.elapsed()));
    let taken = c.json(1, &["task", "claim", "--next"]);
    assert_eq!(field(&taken, "id"), Some(task.as_str()), "{taken}");
    assert_eq!(field(&taken, "assignee"), Some("taker"), "{taken}");
}

#[test]
fn a_late_done_of_a_task_taken_over_elsewhere_is_refused_at_the_remote() {
    let c = cluster(2);
    c.config(0, "stale_after: 1s\n");
    c.ok(0, &["agent", "register", "slow", "--role", "dev"]);
    let task = c.new_task(0, "Race for it");
    let other = c.new_task(0, "Finish this one");
    c.ok(0, &["task", "claim", &task]);
    c.ok(0, &["task", "claim", &other]);
    c.ok(1, &["agent", "register", "quick", "--role", "dev"]);
    std::thread::sleep(Duration::from_millis(2500));
    let taken = c.json(1, &["task", "claim", &task]);
    assert_eq!(field(&taken, "assignee"), Some("quick"), "{taken}");

    // slow comes back and, without a sync, says it finished: the remote knows better.
    let err = fails(&c.run(0, &["task", "done", &task, "--summary", "late"]), 3);
    assert!(err.contains("claimed by quick"), "{err}");
    c.ok(1, &["task", "done", &task, "--summary", "on time"]);
    c.ok(0, &["sync"]);
    let shown = json(&c.ok(0, &["task", "show", &task, "--json"]));
    assert_eq!(field(&shown, "summary"), Some("on time"), "{shown}");

    // Its own task's done goes to the remote at once: the other clone sees it without a sync
    // of slow's clone.
    c.ok(0, &["task", "done", &other, "--summary", "done here"]);
    c.ok(1, &["sync"]);
    let shown = json(&c.ok(1, &["task", "show", &other, "--json"]));
    assert_eq!(field(&shown, "state"), Some("done"), "{shown}");

    // With the remote gone, a done is kept here and said, exit 1: nobody else knows of it yet.
    // Done again once the remote is back confirms it; then the next sync has nothing to add.
    let third = c.new_task(0, "Offline finish");
    c.ok(0, &["task", "claim", &third]);
    let moved = c.remote.with_extension("away");
    std::fs::rename(&c.remote, &moved).expect("the remote goes away");
    let kept = fails(&c.run(0, &["task", "done", &third]), 1);
    assert!(kept.contains("not confirmed at origin"), "{kept}");
    assert!(kept.contains("run the same command again"), "{kept}");
    let here = json(&c.ok(0, &["task", "show", &third, "--json"]));
    assert_eq!(field(&here, "state"), Some("done"), "{here}");
    std::fs::rename(&moved, &c.remote).expect("the remote comes back");
    c.ok(0, &["task", "done", &third]);
    c.ok(1, &["sync"]);
    let shown = json(&c.ok(1, &["task", "show", &third, "--json"]));
    assert_eq!(field(&shown, "state"), Some("done"), "{shown}");
    // Done again of a done at the remote is refused, and writes nothing: one done exits 0.
    let before = c.git(0, &["rev-parse", "refs/coord/tasks"]);
    let err = fails(&c.run(0, &["task", "done", &third]), 3);
    assert!(err.contains("already done"), "{err}");
    assert_eq!(c.git(0, &["rev-parse", "refs/coord/tasks"]), before);
}

/// A clone whose clock was set back: its next heartbeat, stamped by the clock, would lose every
/// merge to the one stamped before, and its agent would look silent until the clock passed it.
/// A heartbeat is stamped just after this clone's last one instead, and counts as new.
#[test]
fn a_clock_set_back_still_gets_heartbeats_through() {
    let c = cluster(2);
    c.config(1, "stale_after: 2s\n");
    c.ok(0, &["agent", "register", "setback", "--role", "dev"]);
    let clone = c.agent(0, "setback")["last_seen"]["clone"]
        .as_str()
        .expect("a clone name")
        .to_string();
    let hour_ahead = (jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1))
        .strftime("%Y-%m-%dT%H:%M:%S.000Z")
        .to_string();
    push_heartbeat(&c, "setback", &hour_ahead, &clone);
    c.ok(0, &["sync"]);
    c.ok(1, &["sync"]);
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(c.agent(1, "setback")["stale"], true);
    let beat = c.json(0, &["--agent", "setback", "agent", "heartbeat"]);
    assert!(
        beat["last_seen"]["at"].as_str() > Some(hour_ahead.as_str()),
        "{beat}"
    );
    c.ok(0, &["sync"]);
    c.ok(1, &["sync"]);
    let seen = c.agent(1, "setback");
    assert_eq!(
        seen["stale"], false,
        "its heartbeat did not get through: {seen}"
    );
}

/// A remote down for a moment delays an online claim rather than failing it: the claim tries
/// it again for up to `coord.remoteWait`, and says it waited. Past that, it fails (exit 1).
#[test]
fn a_claim_waits_for_a_remote_down_for_a_moment() {
    let c = cluster(1);
    let task = c.new_task(0, "Claimed through a blip");
    let other = c.new_task(0, "Claimed through an outage");
    c.git(0, &["config", "coord.remoteWait", "20s"]);
    let moved = c.remote.with_extension("away");
    std::fs::rename(&c.remote, &moved).expect("the remote goes away");
    let claim = c.spawn(0, &["task", "claim", &task]);
    std::thread::sleep(Duration::from_millis(2500));
    std::fs::rename(&moved, &c.remote).expect("the remote comes back");
    let out = claim.wait_with_output().expect("the claim ends");
    let said = stderr(&ok(out, "the claim that waited"));
    assert!(said.contains("waited for it"), "{said}");
    let shown = c.git(0, &["rev-parse", "refs/coord/tasks"]);
    assert_eq!(
        c.git(0, &["ls-remote", "origin", "refs/coord/tasks"])
            .split('\t')
            .next(),
        Some(shown.as_str())
    );

    c.git(0, &["config", "coord.remoteWait", "2s"]);
    std::fs::rename(&c.remote, &moved).expect("the remote goes away");
    let err = fails(&c.run(0, &["task", "claim", &other]), 1);
    assert!(err.contains("cannot"), "{err}");
    std::fs::rename(&moved, &c.remote).expect("the remote comes back");
}

/// One clone cut off from the remote (the others reach it) for longer than stale_after: its
/// agent looks silent, another takes its task over and finishes it. The cut-off agent's done is
/// kept in its clone and exits 1, and its done again after the cut is refused: only one done
/// of the task ever exits 0, and the merge keeps that one. Found by the soak (a partition).
#[test]
fn a_done_kept_in_a_cut_off_clone_never_doubles_a_takeover() {
    let c = cluster(2);
    c.config(0, "stale_after: 1s\n");
    c.ok(0, &["agent", "register", "cut", "--role", "dev"]);
    let task = c.new_task(0, "Cut off while working");
    c.ok(0, &["task", "claim", &task]);
    c.ok(1, &["agent", "register", "taker", "--role", "dev"]);
    c.ok(1, &["sync"]);

    let url = c.git(0, &["remote", "get-url", "origin"]);
    let nowhere = c.remote.with_extension("nowhere");
    c.git(
        0,
        &[
            "remote",
            "set-url",
            "origin",
            nowhere.to_str().expect("utf-8"),
        ],
    );
    let kept = fails(&c.run(0, &["task", "done", &task, "--summary", "mine"]), 1);
    assert!(kept.contains("not confirmed at origin"), "{kept}");
    std::thread::sleep(Duration::from_millis(2000));
    let taken = c.json(1, &["task", "claim", &task]);
    assert_eq!(field(&taken, "assignee"), Some("taker"), "{taken}");
    c.ok(1, &["task", "done", &task, "--summary", "theirs"]);

    c.git(0, &["remote", "set-url", "origin", &url]);
    let err = fails(&c.run(0, &["task", "done", &task]), 3);
    assert!(err.contains("taker took it over"), "{err}");
    c.ok(0, &["sync"]);
    c.ok(1, &["sync"]);
    for clone in 0..2 {
        let shown = json(&c.ok(clone, &["task", "show", &task, "--json"]));
        assert_eq!(field(&shown, "assignee"), Some("taker"), "{shown}");
        assert_eq!(field(&shown, "summary"), Some("theirs"), "{shown}");
    }
}

/// After an outage of the remote longer than stale_after, every agent looks stale to every
/// other, and a task one finished while the remote was gone (kept in its clone) was taken over and
/// done again elsewhere: found by the soak. A clone that could not reach the remote within
/// stale_after takes no live agent's task over: the others had no way to be heard either.
#[test]
fn after_an_outage_no_clone_takes_over_until_the_others_could_be_heard() {
    let c = cluster(2);
    c.config(0, "stale_after: 2s\n");
    c.ok(0, &["agent", "register", "worker", "--role", "dev"]);
    let task = c.new_task(0, "Finished during the outage");
    c.ok(0, &["task", "claim", &task]);
    c.ok(1, &["agent", "register", "taker", "--role", "dev"]);
    c.ok(1, &["sync"]);

    // The remote goes away for longer than stale_after; both clones try to reach it.
    let moved = c.remote.with_extension("away");
    std::fs::rename(&c.remote, &moved).expect("the remote goes away");
    let kept = fails(&c.run(0, &["task", "done", &task]), 1);
    assert!(kept.contains("not confirmed at origin"), "{kept}");
    fails(&c.run(1, &["task", "claim", "--next"]), 1);
    std::thread::sleep(Duration::from_millis(2500));
    std::fs::rename(&moved, &c.remote).expect("the remote comes back");

    // Back: worker looks stale to taker, but taker itself just could not reach the remote.
    let out = c.run(1, &["task", "claim", &task]);
    let err = fails(&out, 3);
    assert!(err.contains("claimed by worker"), "{err}");
    // worker's done goes out with its next contact; nothing was done twice.
    c.ok(0, &["sync"]);
    c.ok(1, &["sync"]);
    let shown = json(&c.ok(1, &["task", "show", &task, "--json"]));
    assert_eq!(field(&shown, "state"), Some("done"), "{shown}");
    assert_eq!(field(&shown, "assignee"), Some("worker"), "{shown}");
}

/// The heartbeat documents of a presence tree, by file name, in the repository at `dir`.
fn presence_entries(repo: &TestRepo, dir: &Path) -> Vec<String> {
    let out = ok(
        repo.git_in(
            dir,
            &["ls-tree", "--name-only", "refs/coord/presence:heartbeats"],
        ),
        "ls-tree",
    );
    stdout(&out).lines().map(str::to_string).collect()
}

#[test]
fn presence_swollen_by_a_hostile_push_is_bounded_by_the_next_sync() {
    let c = cluster(2);
    c.ok(0, &["agent", "register", "real", "--role", "dev"]);
    c.ok(0, &["agent", "heartbeat"]);
    c.ok(0, &["sync"]);
    c.ok(1, &["agent", "register", "gone", "--role", "dev"]);
    c.ok(1, &["agent", "heartbeat"]);
    c.ok(1, &["agent", "retire", "gone"]);
    c.ok(1, &["sync"]);
    c.ok(0, &["sync"]);

    // A hostile clone pushes 3,000 fresh heartbeats of agents nobody registered.
    let now = c.ok(0, &["agent", "show", "real", "--json"]);
    let at = json(&now)["last_seen"]["at"]
        .as_str()
        .expect("a heartbeat time")
        .to_string();
    let junk: Vec<(String, Vec<u8>)> = (0..3000)
        .map(|n| {
            let doc =
                format!("format: 1\nagent: junk{n}\nat: \"{at}\"\nclone: evil\nstale_after: 60\n");
            (format!("heartbeats/junk{n}.yaml"), doc.into_bytes())
        })
        .collect();
    c.origin.import_documents("refs/coord/presence", &junk);
    c.git(
        0,
        &["push", "-q", "--force", "origin", "refs/coord/presence"],
    );
    assert!(presence_entries(&c.origin, &c.remote).len() > 3000);

    // One sync of the other clone bounds it, here and at the remote: the registered agent stays,
    // the retired one goes.
    c.ok(1, &["sync"]);
    for dir in [c.dir(1).to_path_buf(), c.remote.clone()] {
        let entries = presence_entries(&c.origin, &dir);
        assert!(
            entries.len() <= 1000,
            "{} entries in {dir:?}",
            entries.len()
        );
        assert!(entries.contains(&"real.yaml".to_string()), "{dir:?}");
        assert!(!entries.contains(&"gone.yaml".to_string()), "{dir:?}");
    }
    // The swollen clone's next heartbeat exchange bounds its own copy too.
    c.ok(0, &["agent", "heartbeat"]);
    assert!(presence_entries(&c.origin, c.dir(0)).len() <= 1000);
    let real = c.agent(1, "real");
    assert_eq!(real["stale"], false, "{real}");
}
