//! A team that keeps itself working: `supervise` launching agents' role commands (small shell
//! scripts here), launching them again while work waits, bounding crash loops, stopping them on
//! pause and cancel, finding them again after its own crash; `logs` gathering their output.
//! Every process a test starts is stopped by the test, by pid (never by process group).

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use common::{TestRepo, array, at, at_json, fails, json, spawn};

/// A `git coord supervise --json` running in the repository, its events gathered as they come;
/// ended (SIGTERM, then SIGKILL) when dropped, and every agent it may have left stopped.
struct Supervise<'r> {
    repo: &'r TestRepo,
    child: Option<Child>,
    events: Arc<Mutex<Vec<Value>>>,
    agents: Vec<String>,
}

impl<'r> Supervise<'r> {
    fn start(repo: &'r TestRepo, agents: &[&str]) -> Supervise<'r> {
        let mut child = repo
            .coord_cmd(&["supervise", "--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("supervise starts");
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = events.clone();
        let stdout = child.stdout.take().expect("piped");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(value) = serde_json::from_str::<Value>(&line) {
                    sink.lock().expect("events").push(value);
                }
            }
        });
        Supervise {
            repo,
            child: Some(child),
            events,
            agents: agents.iter().map(|a| a.to_string()).collect(),
        }
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// The events of `kind` about `agent` so far.
    fn events(&self, kind: &str, agent: &str) -> Vec<Value> {
        self.events
            .lock()
            .expect("events")
            .iter()
            .filter(|e| e["event"] == kind && e["agent"] == agent)
            .cloned()
            .collect()
    }

    /// Waits until `n` events of `kind` about `agent` came.
    fn wait_for(&self, kind: &str, agent: &str, n: usize, within: Duration) -> Vec<Value> {
        let deadline = Instant::now() + within;
        loop {
            let seen = self.events(kind, agent);
            if seen.len() >= n {
                return seen;
            }
            assert!(
                Instant::now() < deadline,
                "no {n} {kind} event(s) for {agent}; events: {:?}",
                self.events.lock().expect("events")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL to the supervisor alone, as a crash would: its agents keep running.
    fn crash(&mut self) {
        let mut child = self.child.take().expect("running");
        let _ = child.kill();
        let _ = child.wait();
    }

    /// SIGTERM, as Ctrl-C or `supervise --stop` would; waits for it to end.
    fn end(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(child.id(), "TERM");
            let deadline = Instant::now() + Duration::from_secs(20);
            while child.try_wait().expect("its state").is_none() {
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("supervise did not end on SIGTERM");
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

impl Drop for Supervise<'_> {
    fn drop(&mut self) {
        self.end();
        for agent in &self.agents {
            let _ = self.repo.coord(&["agent", "stop", agent]);
        }
    }
}

fn signal(pid: u32, name: &str) {
    let _ = std::process::Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

/// Whether process `pid` is gone (or only a zombie waiting for its parent).
fn gone(pid: u64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit_once(')')
                .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}

fn wait_until(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Writes a shell script into the test's scratch folder and returns its path.
fn script(repo: &TestRepo, name: &str, body: &str) -> PathBuf {
    let path = repo.tmp().join(name);
    std::fs::write(&path, body).expect("the script");
    path
}

/// Claims the next task of its role, finishes it and exits (exit 0 with nothing to claim).
const ONE_TASK: &str = r#"out=$(git coord task claim --next --json) || exit 0
id=$(echo "$out" | grep -o '"id":"[0-9a-f]\{12\}"' | head -1 | cut -d'"' -f4)
echo "claimed $id"
git coord task done "$id" --summary "done by $GIT_COORD_AGENT" >/dev/null
echo "finished $id"
"#;

/// The recorded runner pid of `agent` (None when no pid file).
fn runner_pid(repo: &TestRepo, agent: &str) -> Option<u64> {
    let text =
        std::fs::read_to_string(repo.path.join(format!(".git/coord/run/{agent}.pid"))).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("pid: "))
        .and_then(|p| p.trim().parse().ok())
}

#[test]
fn a_supervised_agent_is_launched_again_until_the_work_is_done_and_cancel_stops_the_rest() {
    let repo = TestRepo::init();
    let work = script(&repo, "one-task.sh", ONE_TASK);
    repo.write_file(
        ".coord.yaml",
        &format!(
            "roles:\n  - name: organiser\n  - name: dev\n    command: sh {}\n  - name: waiter\n    command: \"echo waiting; exec sleep 300\"\n",
            work.display()
        ),
    );
    spawn(&repo, "mia", "dev");
    spawn(&repo, "sam", "waiter");
    let tasks: Vec<String> = (1..=3)
        .map(|n| repo.new_task(&format!("Task {n}"), &["--role", "dev"]))
        .collect();
    let supervise = Supervise::start(&repo, &["mia", "sam"]);
    wait_until("the three tasks done", Duration::from_secs(90), || {
        tasks.iter().all(|t| repo.show(t)["state"] == "done")
    });
    for task in &tasks {
        assert_eq!(repo.show(task)["assignee"], "mia");
    }
    // One launch per task (the first one unconditioned), and no more once nothing is left.
    let exits = supervise.wait_for("exited", "mia", 3, Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(supervise.events("launched", "mia").len(), 3, "{exits:?}");
    assert!(supervise.events("gave-up", "mia").is_empty());

    // The long-running one runs until the team is cancelled, then is stopped within seconds,
    // and stays stopped.
    supervise.wait_for("launched", "sam", 1, Duration::from_secs(30));
    let pid = runner_pid(&repo, "sam").expect("sam runs");
    assert!(!gone(pid));
    let asked = Instant::now();
    repo.coord_ok(&["cancel", "--reason", "enough"]);
    wait_until("sam stopped", Duration::from_secs(10), || gone(pid));
    assert!(asked.elapsed() < Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        supervise.events("launched", "sam").len(),
        1,
        "not launched again"
    );
    fails(&repo.coord(&["agent", "stop", "sam"]), 1);
}

/// A run that finished a task and was then killed did work: it is no crash loop, and does not
/// count toward giving up. Found by the soak, whose supervised agents were killed at random and
/// given up on after five kills in a row, their tasks left waiting.
#[test]
fn a_run_killed_after_doing_work_is_no_crash_loop() {
    let repo = TestRepo::init();
    let work = script(
        &repo,
        "one-task-then-killed.sh",
        &format!("{ONE_TASK}kill -KILL $$\n"),
    );
    repo.write_file(
        ".coord.yaml",
        &format!(
            "supervise_restarts: 2\nsupervise_backoff: 1s\nroles:\n  - name: organiser\n  - name: dev\n    command: sh {}\n",
            work.display()
        ),
    );
    spawn(&repo, "kim", "dev");
    let tasks: Vec<String> = (1..=3)
        .map(|n| repo.new_task(&format!("Task {n}"), &["--role", "dev"]))
        .collect();
    let supervise = Supervise::start(&repo, &["kim"]);
    wait_until("the three tasks done", Duration::from_secs(90), || {
        tasks.iter().all(|t| repo.show(t)["state"] == "done")
    });
    assert!(supervise.events("gave-up", "kim").is_empty());
}

#[test]
fn a_crash_loop_is_bounded_and_the_organiser_is_told_why() {
    let repo = TestRepo::init();
    repo.write_file(
        ".coord.yaml",
        "supervise_restarts: 3\nsupervise_backoff: 1s\nroles:\n  - name: organiser\n  - name: dev\n    command: \"echo cannot start: no API key; exit 1\"\n",
    );
    let olga = spawn(&repo, "olga", "organiser");
    spawn(&repo, "cody", "dev");
    let task = repo.new_task("Something to do", &["--role", "dev"]);
    let supervise = Supervise::start(&repo, &["cody"]);
    let gave_up = supervise.wait_for("gave-up", "cody", 1, Duration::from_secs(60));
    assert!(
        gave_up[0]["why"].as_str().unwrap_or("").contains("3 times"),
        "{gave_up:?}"
    );
    // Bounded: no launch after giving up, though the work still waits.
    let launches = supervise.events("launched", "cody").len();
    assert_eq!(launches, 3);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(supervise.events("launched", "cody").len(), launches);
    assert_eq!(repo.show(&task)["state"], "open");
    let shown = repo.coord_json(&["agent", "show", "cody"]);
    assert!(
        shown["paused"]["reason"]
            .as_str()
            .unwrap_or("")
            .contains("supervise"),
        "{shown}"
    );
    // The organiser's inbox says which agent, why, and shows the last of its output.
    let inbox = at_json(&repo, &olga, &["inbox"]);
    let message = array(inbox["messages"].clone())
        .into_iter()
        .find(|m| {
            m["subject"]
                .as_str()
                .unwrap_or("")
                .contains("gave up on cody")
        })
        .unwrap_or_else(|| panic!("no message to the organiser: {inbox}"));
    let id = message["id"].as_str().expect("an id");
    let text = at(&repo, &olga, &["read", id]);
    assert!(text.contains("exited with status 1"), "{text}");
    assert!(text.contains("no API key"), "{text}");
    assert!(text.contains("git coord agent resume cody"), "{text}");
}

#[test]
fn a_paused_agent_is_stopped_and_not_launched_again_until_resumed() {
    let repo = TestRepo::init();
    repo.write_file(
        ".coord.yaml",
        "roles:\n  - name: dev\n    command: \"echo working; exec sleep 300\"\n",
    );
    let pat = spawn(&repo, "pat", "dev");
    let task = repo.new_task("Work", &["--role", "dev"]);
    let supervise = Supervise::start(&repo, &["pat"]);
    supervise.wait_for("launched", "pat", 1, Duration::from_secs(30));
    let pid = runner_pid(&repo, "pat").expect("pat runs");

    repo.coord_ok(&["agent", "pause", "pat", "--reason", "check its plan"]);
    let err = fails(&repo.coord_in(&pat, &["task", "claim", &task]), 3);
    assert!(err.contains("paused"), "{err}");
    supervise.wait_for("stopped", "pat", 1, Duration::from_secs(15));
    assert!(gone(pid));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        supervise.events("launched", "pat").len(),
        1,
        "ready work waits, yet it stays stopped"
    );

    repo.coord_ok(&["agent", "resume", "pat"]);
    at(&repo, &pat, &["task", "claim", &task]);
    // Its claim is work: it is launched again.
    supervise.wait_for("launched", "pat", 2, Duration::from_secs(30));
    let again = runner_pid(&repo, "pat").expect("pat runs again");
    assert!(!gone(again));
}

#[test]
fn logs_interleave_the_agents_output_each_line_after_its_agent() {
    let repo = TestRepo::init();
    repo.write_file(
        ".coord.yaml",
        "roles:\n  - name: dev\n    command: \"echo hello from $GIT_COORD_AGENT; sleep 1; echo later from $GIT_COORD_AGENT; exec sleep 300\"\n",
    );
    spawn(&repo, "ann", "dev");
    spawn(&repo, "ben", "dev");
    let _stop = StopAgents(&repo, &["ann", "ben"]);
    repo.coord_ok(&["agent", "launch", "ann"]);
    // `logs -f` follows: it prints lines written after it started.
    let mut follow = repo
        .coord_cmd(&["logs", "-f"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("logs -f starts");
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = lines.clone();
    let stdout = follow.stdout.take().expect("piped");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            sink.lock().expect("lines").push(line);
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    repo.coord_ok(&["agent", "launch", "ben"]);
    wait_until("both agents' later lines", Duration::from_secs(20), || {
        let text = repo.coord_ok(&["logs"]);
        text.contains("later from ann") && text.contains("later from ben")
    });
    let text = repo.coord_ok(&["logs"]);
    let order: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(" from "))
        .map(|l| l.split_once(' ').map_or("", |(agent, _)| agent))
        .collect();
    assert_eq!(order.len(), 4, "{text}");
    assert!(text.contains("[ann] ") && text.contains("[ben] "), "{text}");
    for line in text.lines().filter(|l| l.contains(" from ")) {
        let agent = &line[1..line.find(']').expect("a prefix")];
        assert!(line.ends_with(&format!("from {agent}")), "{line}");
    }
    // In time order: ann said hello before ben was launched.
    let first = text
        .lines()
        .find(|l| l.contains("hello from"))
        .expect("a hello");
    assert!(first.starts_with("[ann] "), "{text}");
    let only_ben = repo.coord_ok(&["logs", "ben"]);
    assert!(
        !only_ben.contains("[ann]") && only_ben.contains("[ben]"),
        "{only_ben}"
    );
    let json_lines: Vec<Value> = repo
        .coord_ok(&["logs", "ann", "--json"])
        .lines()
        .map(json)
        .collect();
    assert!(
        json_lines
            .iter()
            .any(|l| l["agent"] == "ann" && l["text"] == "hello from ann")
    );
    let future = repo.coord_ok(&["logs", "--since", "2999-01-01T00:00:00Z"]);
    assert!(future.is_empty(), "{future}");

    wait_until(
        "logs -f to show ben's later line",
        Duration::from_secs(20),
        || {
            lines
                .lock()
                .expect("lines")
                .iter()
                .any(|l| l.contains("later from ben"))
        },
    );
    signal(follow.id(), "TERM");
    let _ = follow.wait();
}

/// Stops the named agents when dropped (a failing test too).
struct StopAgents<'r>(&'r TestRepo, &'r [&'r str]);

impl Drop for StopAgents<'_> {
    fn drop(&mut self) {
        for agent in self.1 {
            let _ = self.0.coord(&["agent", "stop", agent]);
        }
    }
}

#[test]
fn a_supervisor_killed_and_started_again_finds_its_agents_and_no_reused_pid() {
    let repo = TestRepo::init();
    repo.write_file(
        ".coord.yaml",
        "roles:\n  - name: dev\n    command: \"echo up; exec sleep 300\"\n",
    );
    spawn(&repo, "kim", "dev");
    let mut first = Supervise::start(&repo, &["kim"]);
    first.wait_for("launched", "kim", 1, Duration::from_secs(30));
    let kim = runner_pid(&repo, "kim").expect("kim runs");
    let first_pid = first.pid();
    first.crash();
    assert!(gone(first_pid.into()));
    assert!(!gone(kim), "the agent outlives its supervisor");

    // Meanwhile: a new agent whose pid file names a live process that is not its runner (a pid
    // reused by another program: same pid, another start time).
    spawn(&repo, "zed", "dev");
    let mut stranger = std::process::Command::new("sleep")
        .arg("300")
        .spawn()
        .expect("sleep starts");
    let run = repo.path.join(".git/coord/run");
    std::fs::write(
        run.join("zed.pid"),
        format!("pid: {}\nstart: 1\ncommand: x\nstarted: x\n", stranger.id()),
    )
    .expect("a pid file");

    let mut second = Supervise::start(&repo, &["kim", "zed"]);
    let found = second.wait_for("found", "kim", 1, Duration::from_secs(30));
    assert_eq!(found[0]["pid"].as_u64(), Some(kim));
    let launched = second.wait_for("launched", "zed", 1, Duration::from_secs(30));
    assert_ne!(launched[0]["pid"].as_u64(), Some(u64::from(stranger.id())));
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        second.events("launched", "kim").is_empty(),
        "no second copy of kim"
    );
    assert_eq!(runner_pid(&repo, "kim"), Some(kim));

    // A second supervisor of the same repository is refused while this one runs.
    let err = fails(&repo.coord(&["supervise"]), 3);
    assert!(err.contains("already runs"), "{err}");

    // Ending it stops its agents, found or launched, and leaves the stranger alone.
    let zed = runner_pid(&repo, "zed").expect("zed runs");
    second.end();
    assert!(gone(kim) && gone(zed), "its agents are stopped");
    assert!(!gone(stranger.id().into()), "the stranger still runs");
    let _ = stranger.kill();
    let _ = stranger.wait();
}
