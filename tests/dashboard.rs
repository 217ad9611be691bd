//! `git coord serve`: the JSON endpoints, the guards of a read-only local server, and the page in
//! a real headless Chromium (driven over the DevTools protocol on a pipe): it shows a task made
//! from the command line and follows its claim without a reload.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use common::{TestRepo, fails, stdout};

/// A running `git coord serve --port 0`, stopped on drop.
struct Server {
    child: Child,
    base: String,
}

impl Server {
    fn start(repo: &TestRepo, extra: &[&str]) -> Server {
        let mut child = repo
            .command(common::BIN, &repo.path)
            .args(["serve", "--port", "0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the server starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("the address line");
        let base = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .expect("an address")
            .trim_end_matches('/')
            .to_string();
        Server { child, base }
    }

    fn port(&self) -> u16 {
        self.base
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("a port")
    }

    /// A raw HTTP exchange: (status line, body).
    fn request(&self, method: &str, path: &str, host: &str) -> (String, String) {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port())).expect("connect");
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        )
        .expect("send");
        let mut text = String::new();
        stream.read_to_string(&mut text).expect("a response");
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        (
            head.lines().next().unwrap_or_default().to_string(),
            body.to_string(),
        )
    }

    fn get_json(&self, path: &str) -> Value {
        let (status, body) = self.request("GET", path, &format!("127.0.0.1:{}", self.port()));
        assert!(status.contains("200"), "{path}: {status} {body}");
        serde_json::from_str(&body).expect("json")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn every_view_has_a_json_endpoint_and_the_server_is_read_only_and_local() {
    let repo = TestRepo::init();
    repo.coord_ok(&["agent", "spawn", "al", "--role", "dev"]);
    let a = repo.new_task("Shown on the board", &[]);
    let b = repo.new_task("Waits", &["--dep", &a]);
    repo.coord_as_ok("al", &["lease", "acquire", "src/**"]);
    repo.coord_as_ok("olga", &["send", "--to", "al", "hello there"]);
    let server = Server::start(&repo, &[]);
    let tasks = server.get_json("/api/tasks");
    assert_eq!(tasks.as_array().expect("tasks").len(), 2);
    let graph = server.get_json("/api/graph");
    assert_eq!(graph["edges"], json!([[a, b]]));
    assert_eq!(server.get_json("/api/agents")[0]["name"], "al");
    assert_eq!(
        server.get_json("/api/leases")[0]["patterns"],
        json!(["src/**"])
    );
    assert_eq!(
        server.get_json("/api/threads")[0]["messages"][0]["subject"],
        "hello there"
    );
    assert!(
        server
            .get_json("/api/checkpoints")
            .as_array()
            .expect("list")
            .is_empty()
    );
    assert_eq!(server.get_json("/api/status")["tasks"]["open"], 2);
    let host = format!("127.0.0.1:{}", server.port());
    assert!(
        server
            .request("POST", "/api/tasks", &host)
            .0
            .contains("405")
    );
    assert!(
        server
            .request("GET", "/api/tasks", "evil.example:80")
            .0
            .contains("403")
    );
    assert!(
        server
            .request("GET", "/api/nothing", &host)
            .0
            .contains("404")
    );
    let (status, page) = server.request("GET", "/", &host);
    assert!(
        status.contains("200") && page.contains("EventSource"),
        "{status}"
    );

    // A request head past 16 KiB is refused, and the server goes on answering.
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", server.port())).expect("connect");
    let padding = "x".repeat(20 * 1024);
    let sent = write!(
        stream,
        "GET /api/tasks HTTP/1.1\r\nHost: {host}\r\nX-Pad: {padding}\r\n\r\n"
    );
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    assert!(
        answer.starts_with("HTTP/1.1 400"),
        "{sent:?}: {}",
        &answer[..answer.len().min(200)]
    );
    assert_eq!(server.get_json("/api/status")["tasks"]["open"], 2);

    // Beyond loopback only with a token, and then every request needs it.
    let err = fails(
        &repo.coord(&["serve", "--port", "0", "--bind", "0.0.0.0"]),
        1,
    );
    assert!(err.contains("--token"), "{err}");
    let guarded = Server::start(&repo, &["--token", "s3cret"]);
    let ghost = format!("127.0.0.1:{}", guarded.port());
    assert!(
        guarded
            .request("GET", "/api/tasks", &ghost)
            .0
            .contains("401")
    );
    assert!(
        guarded
            .request("GET", "/api/tasks?token=s3cret", &ghost)
            .0
            .contains("200")
    );
}

impl Server {
    /// Opens an event stream and reads its response head; the connection stays open.
    fn open_stream(&self) -> (String, std::net::TcpStream) {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port())).expect("connect");
        write!(
            stream,
            "GET /events HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n\r\n",
            self.port()
        )
        .expect("send");
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).expect("a response") == 1 {
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head).into_owned();
        (head.lines().next().unwrap_or_default().to_string(), stream)
    }
}

#[test]
fn event_streams_past_their_cap_get_503_while_the_views_keep_answering() {
    let repo = TestRepo::init();
    repo.new_task("Counted while the streams are full", &[]);
    let server = Server::start(&repo, &[]);
    let cap = git_coord::limits::MAX_EVENT_STREAMS;
    let mut streams = Vec::new();
    for n in 0..cap {
        let (status, stream) = server.open_stream();
        assert!(status.contains("200"), "stream {n}: {status}");
        streams.push(stream);
    }
    let (status, mut refused) = server.open_stream();
    assert!(status.contains("503"), "stream {}: {status}", cap + 1);
    let mut body = String::new();
    refused.read_to_string(&mut body).expect("a body");
    assert!(body.contains(&format!("{cap} event streams")), "{body}");

    // The views are still served while every stream place is taken.
    assert_eq!(server.get_json("/api/status")["tasks"]["open"], 1);

    // A closed stream gives its place back (it notices within a second; allow far more).
    drop(streams.pop());
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (status, stream) = server.open_stream();
        if status.contains("200") {
            streams.push(stream);
            break;
        }
        assert!(Instant::now() < deadline, "no place came back: {status}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Chromium driven over `--remote-debugging-pipe`: commands on fd 3, answers on fd 4, each a JSON
/// text ended by a NUL byte.
struct Browser {
    child: Child,
    to: std::fs::File,
    from: BufReader<std::fs::File>,
    next: u64,
    session: Option<String>,
}

fn chromium() -> String {
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        let found = std::process::Command::new("sh")
            .args(["-c", &format!("command -v {name}")])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if found {
            return name.to_string();
        }
    }
    panic!(
        "this test needs Chromium (chromium, chromium-browser or google-chrome on PATH): run tests/setup.sh"
    );
}

impl Browser {
    // Pipes handed to Chromium at fds 3 and 4, as --remote-debugging-pipe expects.
    #[allow(unsafe_code)]
    fn start(profile: &std::path::Path) -> Browser {
        let mut fds = [0; 2];
        let mut back = [0; 2];
        // SAFETY: pipe() fills two fresh descriptors each.
        unsafe {
            assert_eq!(libc::pipe(fds.as_mut_ptr()), 0);
            assert_eq!(libc::pipe(back.as_mut_ptr()), 0);
        }
        let (cmd_read, cmd_write, ans_read, ans_write) = (fds[0], fds[1], back[0], back[1]);
        let mut command = std::process::Command::new(chromium());
        command
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                "--remote-debugging-pipe",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: only dup2 between fork and exec, to put the pipe ends where Chromium reads them.
        unsafe {
            command.pre_exec(move || {
                if libc::dup2(cmd_read, 3) < 0 || libc::dup2(ans_write, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn().expect("chromium starts");
        // SAFETY: these descriptors are ours alone from here on.
        let (to, from) = unsafe {
            drop(OwnedFd::from_raw_fd(cmd_read));
            drop(OwnedFd::from_raw_fd(ans_write));
            (
                std::fs::File::from_raw_fd(cmd_write),
                std::fs::File::from_raw_fd(ans_read),
            )
        };
        Browser {
            child,
            to,
            from: BufReader::new(from),
            next: 0,
            session: None,
        }
    }

    /// A browser showing the dashboard at `base`, once the page has drawn itself.
    fn open(profile: &std::path::Path, base: &str) -> Browser {
        let mut browser = Browser::start(profile);
        let target = browser.call("Target.createTarget", json!({ "url": format!("{base}/") }));
        let attached = browser.call(
            "Target.attachToTarget",
            json!({ "targetId": target["targetId"], "flatten": true }),
        );
        let session = attached["sessionId"].as_str().expect("a session");
        browser.session = Some(session.to_string());
        browser.wait_for("!!(window.coord && window.coord.renders > 0)");
        browser
    }

    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next += 1;
        let mut msg = json!({ "id": self.next, "method": method, "params": params });
        if let Some(s) = &self.session {
            msg["sessionId"] = json!(s);
        }
        self.to.write_all(msg.to_string().as_bytes()).expect("send");
        self.to.write_all(b"\0").expect("send");
        loop {
            let mut buf = Vec::new();
            self.from.read_until(0, &mut buf).expect("an answer");
            assert!(!buf.is_empty(), "chromium closed the pipe");
            buf.pop();
            let v: Value = serde_json::from_slice(&buf).expect("json from chromium");
            if v["id"] == json!(self.next) {
                assert!(v.get("error").is_none(), "{method}: {v}");
                return v["result"].clone();
            }
        }
    }

    fn eval(&mut self, expression: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({ "expression": expression, "returnByValue": true }),
        );
        r["result"]["value"].clone()
    }

    /// Evaluates `expression` until it is true, for up to a minute.
    fn wait_for(&mut self, expression: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.eval(expression) != json!(true) {
            assert!(Instant::now() < deadline, "never true: {expression}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_page_shows_a_new_task_and_follows_its_claim_without_a_reload() {
    let repo = TestRepo::init();
    repo.coord_ok(&["agent", "spawn", "al", "--role", "dev"]);
    let server = Server::start(&repo, &[]);
    let mut browser = Browser::open(&repo.tmp().join("chromium-profile"), &server.base);

    // A task made from the command line appears in the open column, and in the graph.
    let id = repo.new_task("Made on the command line", &[]);
    browser.eval("window.__sameLoad = 42; true");
    let card = format!("document.querySelector('.card.open[data-task=\"{id}\"]') !== null");
    browser.wait_for(&card);
    browser.wait_for(&format!(
        "document.querySelector('#graph svg [data-node=\"{id}\"]') !== null"
    ));

    // Claimed from the command line: the card moves to the claimed column, same page load.
    repo.coord_as_ok("al", &["task", "claim", &id]);
    browser.wait_for(&format!(
        "document.querySelector('.card.claimed[data-task=\"{id}\"]') !== null"
    ));
    assert_eq!(
        browser.eval("window.__sameLoad"),
        json!(42),
        "the page was not reloaded"
    );
    assert!(
        browser
            .eval("window.coord.updates")
            .as_u64()
            .expect("a count")
            >= 2
    );
    // The agents table says al holds it. Not necessarily in the same render as the card: a
    // refresh that the claim's heartbeat (written first) set off may fetch the tasks after the
    // claim landed and the agents before; the claim's own change brings the next one.
    browser.wait_for(&format!(
        "document.getElementById('agents').innerText.includes('{id}')"
    ));
}

#[test]
fn the_page_shows_the_activity_feed_and_the_message_threads_live() {
    let repo = TestRepo::init();
    repo.coord_ok(&["agent", "spawn", "al", "--role", "dev"]);
    let first = repo.new_task("Seen in the feed", &[]);
    let server = Server::start(&repo, &[]);
    let activity = server.get_json("/api/activity");
    let entries = activity.as_array().expect("a timeline");
    assert!(
        entries
            .windows(2)
            .all(|w| w[0]["at"].as_str() >= w[1]["at"].as_str()),
        "newest first: {activity}"
    );
    assert!(
        entries
            .iter()
            .any(|e| e["op"] == "new" && e["on"] == "refs/coord/tasks"),
        "{activity}"
    );
    assert!(
        entries
            .iter()
            .any(|e| e["op"] == "agent-spawn" && e["on"] == "refs/coord/agents"),
        "{activity}"
    );
    let mut browser = Browser::open(&repo.tmp().join("chromium-profile"), &server.base);
    let feed = browser.eval("document.getElementById('activity').innerText");
    assert!(
        feed.as_str()
            .expect("text")
            .contains(&format!("new {first}")),
        "{feed}"
    );

    // A claim and a conversation made from the command line show up, without a reload.
    browser.eval("window.__sameLoad = 7; true");
    repo.coord_as_ok("al", &["task", "claim", &first]);
    let claim = stdout(&repo.git(&["rev-parse", "refs/coord/tasks"]));
    browser.wait_for(&format!(
        "document.querySelector('#activity tr[data-commit=\"{}\"]') !== null",
        claim.trim()
    ));
    let sent = repo.coord_as_ok(
        "olga",
        &["send", "--to", "al", "Where are the tests?", "--json"],
    );
    let id = serde_json::from_str::<Value>(&sent).expect("json")["id"]
        .as_str()
        .expect("an id")
        .to_string();
    repo.coord_as_ok("al", &["reply", &id, "In tests/, pushed soon"]);
    browser.wait_for(&format!(
        "document.querySelectorAll('#threads li').length >= 2 && document.querySelector('#threads li[data-message=\"{id}\"]') !== null"
    ));
    let threads = browser.eval("document.getElementById('threads').innerText");
    let text = threads.as_str().expect("text");
    assert!(
        text.contains("Where are the tests?") && text.contains("In tests/, pushed soon"),
        "{text}"
    );
    let feed = browser.eval("document.getElementById('activity').innerText");
    assert!(
        feed.as_str()
            .expect("text")
            .contains(&format!("claim {first} by al")),
        "{feed}"
    );
    assert_eq!(browser.eval("window.__sameLoad"), json!(7), "not reloaded");
}
