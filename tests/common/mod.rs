//! Throwaway repositories for the integration tests: a real `git`, the real `git-coord` binary, and
//! an environment cleared of everything the user has (no ~/.gitconfig, no GIT_COORD_AGENT).

// Each test binary uses a different part of this module.
#![allow(dead_code)]

pub mod cluster;

use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use tempfile::TempDir;

pub const BIN: &str = env!("CARGO_BIN_EXE_git-coord");
pub const TASKS_REF: &str = "refs/coord/tasks";
pub const USER_NAME: &str = "Ada Lovelace";
pub const USER_EMAIL: &str = "ada@example.com";
/// The agent name git-coord derives from USER_NAME when nothing else names one.
pub const USER_AGENT: &str = "ada-lovelace";

/// PATH with the directory of the binary under test first, so that `git coord` (and the hook
/// shims that call it) run this build.
pub fn path_with_binary() -> std::ffi::OsString {
    let bin_dir = Path::new(BIN).parent().expect("the binary's directory");
    let mut dirs = vec![bin_dir.to_path_buf()];
    dirs.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    std::env::join_paths(dirs).expect("a PATH")
}

/// A repository in a temporary directory, with its own HOME and global git config.
pub struct TestRepo {
    tmp: TempDir,
    pub path: PathBuf,
}

impl TestRepo {
    /// A fresh repository with one empty commit on its branch and a local user, not yet
    /// initialised for git-coord.
    pub fn new() -> TestRepo {
        let tmp = TempDir::new().expect("a temporary directory");
        // An online write fails at once on a remote it cannot reach, rather than trying it for
        // 30 s: tests/presence.rs sets the wait where it is the point.
        std::fs::write(tmp.path().join("gitconfig"), "[coord]\n\tremoteWait = 0s\n")
            .expect("the global config");
        let repo = TestRepo {
            path: tmp.path().join("repo"),
            tmp,
        };
        std::fs::create_dir(&repo.path).expect("the repository directory");
        repo.git_ok(&["init", "-q", "-b", "main"]);
        repo.git_ok(&["config", "user.name", USER_NAME]);
        repo.git_ok(&["config", "user.email", USER_EMAIL]);
        repo.git_ok(&["commit", "-q", "--allow-empty", "-m", "start"]);
        repo
    }

    /// A fresh repository after `git coord init`.
    pub fn init() -> TestRepo {
        let repo = TestRepo::new();
        repo.coord_ok(&["init"]);
        repo
    }

    /// The temporary directory around the repository (HOME for every command).
    pub fn tmp(&self) -> &Path {
        self.tmp.path()
    }

    /// A command with a cleared environment: PATH, and a HOME and git config of our own.
    pub fn command(&self, program: impl AsRef<OsStr>, dir: &Path) -> Command {
        let mut cmd = Command::new(program);
        cmd.env_clear()
            .env("PATH", path_with_binary())
            .env("HOME", self.tmp())
            .env("XDG_CONFIG_HOME", self.tmp().join("xdg"))
            .env("GIT_CONFIG_GLOBAL", self.tmp().join("gitconfig"))
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CEILING_DIRECTORIES", self.tmp())
            .env("LC_ALL", "C")
            .current_dir(dir)
            .stdin(Stdio::null());
        cmd
    }

    /// `git coord ARGS` in the repository, as the git user.
    pub fn coord_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = self.command(BIN, &self.path);
        cmd.args(args);
        cmd
    }

    pub fn coord(&self, args: &[&str]) -> Output {
        self.coord_cmd(args).output().expect("git-coord runs")
    }

    /// `git coord --agent AGENT ARGS`.
    pub fn coord_as(&self, agent: &str, args: &[&str]) -> Output {
        let mut cmd = self.coord_cmd(&["--agent", agent]);
        cmd.args(args);
        cmd.output().expect("git-coord runs")
    }

    /// `git coord ARGS` run from another directory.
    pub fn coord_in(&self, dir: &Path, args: &[&str]) -> Output {
        self.command(BIN, dir)
            .args(args)
            .output()
            .expect("git-coord runs")
    }

    /// `git coord ARGS` with extra environment variables.
    pub fn coord_env(&self, env: &[(&str, &str)], args: &[&str]) -> Output {
        let mut cmd = self.coord_cmd(args);
        cmd.envs(env.iter().copied());
        cmd.output().expect("git-coord runs")
    }

    /// Runs git-coord, insists it succeeds, and returns its stdout.
    pub fn coord_ok(&self, args: &[&str]) -> String {
        stdout(&ok(
            self.coord(args),
            &format!("git coord {}", args.join(" ")),
        ))
    }

    /// Runs `git coord --agent AGENT ARGS`, insists it succeeds, and returns its stdout.
    pub fn coord_as_ok(&self, agent: &str, args: &[&str]) -> String {
        let what = format!("git coord --agent {agent} {}", args.join(" "));
        stdout(&ok(self.coord_as(agent, args), &what))
    }

    /// Runs git-coord with `--json`, insists it succeeds, and parses its stdout.
    pub fn coord_json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        json(&self.coord_ok(&all))
    }

    /// Creates a task and returns its id.
    pub fn new_task(&self, title: &str, extra: &[&str]) -> String {
        let mut args = vec!["task", "new", title];
        args.extend_from_slice(extra);
        let id = self.coord_ok(&args).trim().to_string();
        assert!(is_full_id(&id), "task new printed {id:?}, not an id");
        id
    }

    /// Every task, as `task list --json` gives them; fails if the listing warns about anything.
    pub fn list(&self) -> Vec<Value> {
        let out = ok(self.coord(&["task", "list", "--json"]), "task list");
        assert_eq!(stderr(&out), "", "task list warned");
        array(json(&stdout(&out)))
    }

    /// One task, as `task show --history --json` gives it.
    pub fn show(&self, id: &str) -> Value {
        self.coord_json(&["task", "show", id, "--history"])
    }

    pub fn git(&self, args: &[&str]) -> Output {
        self.git_in(&self.path, args)
    }

    pub fn git_in(&self, dir: &Path, args: &[&str]) -> Output {
        self.command("git", dir)
            .args(args)
            .output()
            .expect("git runs")
    }

    /// Runs git, insists it succeeds, and returns its stdout without the final newline.
    pub fn git_ok(&self, args: &[&str]) -> String {
        let out = ok(self.git(args), &format!("git {}", args.join(" ")));
        stdout(&out).trim_end().to_string()
    }

    /// Runs git with stdin fed from `input`.
    pub fn git_with_input(&self, args: &[&str], env: &[(&str, &Path)], input: &[u8]) -> String {
        let mut cmd = self.command("git", &self.path);
        cmd.args(args)
            .envs(env.iter().map(|(k, v)| (*k, *v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("git runs");
        let mut stdin = child.stdin.take().expect("piped stdin");
        // Write on another thread: git may start answering before it has read everything.
        let input = input.to_vec();
        let writer = std::thread::spawn(move || stdin.write_all(&input));
        let out = child.wait_with_output().expect("git finishes");
        writer
            .join()
            .expect("writer thread")
            .expect("stdin written");
        stdout(&ok(out, &format!("git {}", args.join(" "))))
            .trim_end()
            .to_string()
    }

    /// The commit refs/coord/tasks points at (empty if it does not exist).
    pub fn tip(&self) -> String {
        let out = self.git(&["rev-parse", "-q", "--verify", TASKS_REF]);
        stdout(&out).trim().to_string()
    }

    /// Every ref under refs/coord/, with the object it points at.
    pub fn coord_refs(&self) -> String {
        self.git_ok(&[
            "for-each-ref",
            "--format=%(refname) %(objectname)",
            "refs/coord/",
        ])
    }

    /// Puts `bytes` at `path` in refs/coord/tasks with git plumbing only, as a hand edit or a
    /// foreign tool would, and returns the new tip.
    pub fn put_document(&self, path: &str, bytes: &[u8]) -> String {
        self.put_document_in(TASKS_REF, path, bytes)
    }

    /// The names of the temporary files in `.git/objects`: a write's, or ones made ahead
    /// (`tmp_obj_*`, `tmp_obj_lock_*` for a ref lock).
    pub fn temporary_files(&self) -> Vec<String> {
        let mut names = Vec::new();
        for fanout in std::fs::read_dir(self.path.join(".git/objects")).expect("objects") {
            let Ok(files) = std::fs::read_dir(fanout.expect("an entry").path()) else {
                continue;
            };
            for file in files {
                let name = file.expect("an entry").file_name();
                let name = name.to_string_lossy();
                if name.starts_with("tmp_") {
                    names.push(name.into_owned());
                }
            }
        }
        names
    }

    /// No temporary object file is left in `.git/objects` (a write's, or one made ahead).
    pub fn assert_no_temporary_files(&self) {
        let left = self.temporary_files();
        assert!(left.is_empty(), "temporary files left: {left:?}");
    }

    /// `git fsck --strict` finds nothing wrong (dangling objects from lost races are fine).
    pub fn assert_fsck_clean(&self) {
        let out = self.git(&["fsck", "--strict", "--no-dangling", "--no-progress"]);
        assert!(
            out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
            "git fsck --strict is not clean (exit {:?}):\n{}{}",
            out.status.code(),
            stdout(&out),
            stderr(&out)
        );
    }
}

/// Insists a command exited 0, showing what it printed if not.
pub fn ok(out: Output, what: &str) -> Output {
    assert!(
        out.status.success(),
        "`{what}` failed with exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        stdout(&out),
        stderr(&out)
    );
    out
}

/// Insists a command exited with `code` and returns its stderr.
pub fn fails(out: &Output, code: i32) -> String {
    assert_eq!(
        out.status.code(),
        Some(code),
        "expected exit {code}\nstdout: {}\nstderr: {}",
        stdout(out),
        stderr(out)
    );
    stderr(out)
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn json(text: &str) -> Value {
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {text:?}"))
}

pub fn array(value: Value) -> Vec<Value> {
    match value {
        Value::Array(items) => items,
        other => panic!("expected a JSON array, got {other}"),
    }
}

/// A JSON array of strings (the task ids `workflow start` prints, for one).
pub fn strings(value: Value) -> Vec<String> {
    array(value)
        .iter()
        .map(|s| s.as_str().expect("a string").to_string())
        .collect()
}

/// The string field `key` of a JSON object (None when null or absent).
pub fn field<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value.get(key).and_then(Value::as_str)
}

pub fn ids(tasks: &[Value]) -> Vec<String> {
    tasks
        .iter()
        .map(|t| field(t, "id").expect("every task has an id").to_string())
        .collect()
}

pub fn is_full_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Where a task's document lives in refs/coord/tasks.
pub fn task_path(id: &str) -> String {
    format!("tasks/{}/{id}.yaml", &id[..2])
}

/// A small pseudo-random number generator, so tests vary their timing without another
/// dependency. Seeded from `GIT_COORD_TEST_SEED` when set, else from the standard library's
/// random hasher keys; the seed is printed (a failing test shows its output), so a run repeats
/// with `GIT_COORD_TEST_SEED=<seed> cargo test NAME`.
pub struct Jitter(u64);

impl Jitter {
    pub fn new() -> Jitter {
        use std::hash::{BuildHasher, RandomState};
        let seed = match std::env::var("GIT_COORD_TEST_SEED") {
            Ok(given) => given
                .trim()
                .parse::<u64>()
                .expect("GIT_COORD_TEST_SEED is a number"),
            Err(_) => RandomState::new().hash_one(std::process::id()),
        };
        println!("random instants from GIT_COORD_TEST_SEED={seed}");
        Jitter(seed | 1)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        // xorshift64
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

pub const LEASES_REF: &str = "refs/coord/leases";

impl TestRepo {
    /// The commit `refname` points at (empty if it does not exist).
    pub fn ref_tip(&self, refname: &str) -> String {
        let out = self.git(&["rev-parse", "-q", "--verify", refname]);
        stdout(&out).trim().to_string()
    }

    /// Writes a file of the working tree (creating its directories), without adding it.
    pub fn write_file(&self, path: &str, text: &str) {
        let full = self.path.join(path);
        if let Some(dir) = full.parent() {
            std::fs::create_dir_all(dir).expect("the file's directory");
        }
        std::fs::write(full, text).expect("the file is written");
    }

    /// Leases as `lease list --json` gives them (`--all` with `all`).
    pub fn leases(&self, all: bool) -> Vec<Value> {
        let args: &[&str] = if all {
            &["lease", "list", "--all", "--json"]
        } else {
            &["lease", "list", "--json"]
        };
        array(json(&stdout(&ok(self.coord(args), "lease list"))))
    }

    /// Puts `bytes` at `path` in `refname` with git plumbing only (like `put_document`, for any
    /// ref), and returns the new tip.
    pub fn put_document_in(&self, refname: &str, path: &str, bytes: &[u8]) -> String {
        let blob = self.git_with_input(&["hash-object", "-w", "--stdin"], &[], bytes);
        self.put_entry_in(refname, "100644", blob.trim(), path)
    }

    /// Puts a tree entry of any mode (`160000` with a commit: a gitlink) at `path` in
    /// `refname` with git plumbing only, and returns the new tip.
    pub fn put_entry_in(&self, refname: &str, mode: &str, oid: &str, path: &str) -> String {
        let old = self.ref_tip(refname);
        assert!(!old.is_empty(), "put_document_in needs {refname} to exist");
        let index = self.tmp().join("plumbing-index");
        let _ = std::fs::remove_file(&index);
        let env = [("GIT_INDEX_FILE", index.as_path())];
        let run = |args: &[&str]| {
            let mut cmd = self.command("git", &self.path);
            cmd.args(args).envs(env.iter().map(|(k, v)| (*k, *v)));
            stdout(&ok(cmd.output().expect("git runs"), &args.join(" ")))
                .trim()
                .to_string()
        };
        run(&["read-tree", &old]);
        let cacheinfo = format!("{mode},{oid},{path}");
        run(&["update-index", "--add", "--cacheinfo", &cacheinfo]);
        let tree = run(&["write-tree"]);
        let new = run(&["commit-tree", &tree, "-p", &old, "-m", "hand edit"]);
        run(&["update-ref", refname, &new, &old]);
        let _ = std::fs::remove_file(&index);
        new
    }
}

impl TestRepo {
    /// Adds `files` (path, bytes) to `refname` in one commit with `git fast-import`, as a large
    /// store (or a remote) would have them. The ref must exist.
    pub fn import_documents(&self, refname: &str, files: &[(String, Vec<u8>)]) {
        let mut stream = Vec::new();
        let message = format!("import {} documents", files.len());
        stream.extend_from_slice(
            format!(
                "commit {refname}\ncommitter Test <test@example.com> 0 +0000\ndata {}\n{message}\nfrom {refname}^0\n",
                message.len()
            )
            .as_bytes(),
        );
        for (path, bytes) in files {
            stream.extend_from_slice(
                format!("M 100644 inline {path}\ndata {}\n", bytes.len()).as_bytes(),
            );
            stream.extend_from_slice(bytes);
            stream.push(b'\n');
        }
        stream.extend_from_slice(b"done\n");
        self.git_with_input(&["fast-import", "--quiet", "--done"], &[], &stream);
    }
}

/// Spawns agent `name` with `role` (`agent spawn`) and returns its worktree.
pub fn spawn(repo: &TestRepo, name: &str, role: &str) -> PathBuf {
    let agent = repo.coord_json(&["agent", "spawn", name, "--role", role]);
    PathBuf::from(agent["worktree"].as_str().expect("a worktree"))
}

/// `git coord ARGS` in `dir` with no flag naming the agent; must succeed. Returns stdout.
pub fn at(repo: &TestRepo, dir: &Path, args: &[&str]) -> String {
    stdout(&ok(repo.coord_in(dir, args), &args.join(" ")))
}

/// `git coord ARGS --json` in `dir` with no flag naming the agent; must succeed.
pub fn at_json(repo: &TestRepo, dir: &Path, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    json(&at(repo, dir, &all))
}

/// Runs `git coord hook stop` with `input` on stdin; returns (stdout, stderr). The hook must
/// exit 0 whatever it answers.
pub fn stop_hook(repo: &TestRepo, input: &str) -> (String, String) {
    stop_hook_with(repo, &[], input)
}

/// `git coord hook stop` with global flags before it (`--agent`, `-C`), run in the scratch folder.
pub fn stop_hook_with(repo: &TestRepo, flags: &[&str], input: &str) -> (String, String) {
    let mut child = repo
        .command(BIN, repo.tmp())
        .args(flags)
        .args(["hook", "stop"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the hook runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("input written");
    let out = child.wait_with_output().expect("the hook finishes");
    assert_eq!(out.status.code(), Some(0), "the stop hook always exits 0");
    (stdout(&out), stderr(&out))
}

/// `hooks install` with every agent CLI, and `hooks uninstall` of them all.
pub const INSTALL_ALL: [&str; 6] = [
    "hooks", "install", "--claude", "--mcp", "--codex", "--gemini",
];
pub const UNINSTALL_ALL: [&str; 6] = [
    "hooks",
    "uninstall",
    "--claude",
    "--mcp",
    "--codex",
    "--gemini",
];
/// The files `hooks install` writes for the agent CLIs.
pub const CLIENT_FILES: [&str; 5] = [
    ".claude/settings.json",
    ".mcp.json",
    ".codex/hooks.json",
    ".codex/config.toml",
    ".gemini/settings.json",
];

/// A port free on loopback now, for a server a test starts.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("address").port()
}

/// `git daemon` on loopback, serving every repository under a folder for fetch and push (as
/// `git://127.0.0.1:PORT/<path under the folder>`); stopped when dropped, a failing test too.
pub struct GitDaemon {
    child: std::process::Child,
    /// Where a daemon started with [`GitDaemon::start_logged`] writes its log.
    log: Option<PathBuf>,
}

impl GitDaemon {
    /// Starts it with `repo`'s isolated environment and waits until it takes connections.
    pub fn start(repo: &TestRepo, base: &Path, port: u16) -> GitDaemon {
        GitDaemon::launch(repo, base, port, None)
    }

    /// As [`GitDaemon::start`], logging every connection to `log`, for [`GitDaemon::requests`].
    pub fn start_logged(repo: &TestRepo, base: &Path, port: u16, log: &Path) -> GitDaemon {
        GitDaemon::launch(repo, base, port, Some(log))
    }

    /// The services asked of it so far, one per connection, in order: `upload-pack` for a
    /// fetch, `receive-pack` for a push. Only for a daemon started with a log.
    pub fn requests(&self) -> Vec<String> {
        let log = self.log.as_ref().expect("a daemon started with a log");
        // Logged before the service runs: a client that finished has its line written.
        let text = std::fs::read_to_string(log).unwrap_or_default();
        text.lines()
            .filter_map(|l| l.split("] Request ").nth(1))
            .filter_map(|l| l.split(' ').next())
            .map(str::to_string)
            .collect()
    }

    fn launch(repo: &TestRepo, base: &Path, port: u16, log: Option<&Path>) -> GitDaemon {
        // git-daemon itself, not `git daemon`: the `git` wrapper would run it as a child that
        // killing the wrapper leaves listening.
        let exec_path = stdout(&repo.git(&["--exec-path"])).trim().to_string();
        let child = repo
            .command(Path::new(&exec_path).join("git-daemon"), base)
            .args([
                "--reuseaddr",
                "--listen=127.0.0.1",
                &format!("--port={port}"),
                "--export-all",
                "--enable=receive-pack",
                &format!("--base-path={}", base.display()),
            ])
            .args(
                log.map(|_| ["--verbose", "--log-destination=stderr"])
                    .iter()
                    .flatten(),
            )
            .arg(base)
            .stdout(Stdio::null())
            .stderr(match log {
                Some(log) => Stdio::from(std::fs::File::create(log).expect("the daemon's log")),
                None => Stdio::null(),
            })
            .spawn()
            .unwrap_or_else(|e| {
                panic!("git-daemon did not start ({e}): this test needs git's daemon: run tests/setup.sh")
            });
        let mut daemon = GitDaemon {
            child,
            log: log.map(Path::to_path_buf),
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            let ended = daemon.child.try_wait().expect("the daemon's state");
            assert!(ended.is_none(), "git daemon ended at once: {ended:?}");
            assert!(
                std::time::Instant::now() < deadline,
                "git daemon did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        daemon
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends SIGKILL, after `after`, to `child` and to every process below it (found through /proc,
/// all stopped first), as a crash of the whole command would. Never to a process group, which
/// may hold the test harness itself.
pub fn kill_tree_after(mut child: std::process::Child, after: std::time::Duration) {
    std::thread::sleep(after);
    let mut doomed = vec![child.id()];
    let mut n = 0;
    while n < doomed.len() {
        doomed.extend(children_of(doomed[n]));
        n += 1;
    }
    // Stopped first, the command before its children, in one `kill` each: killed one by one
    // from the bottom, a child's end (a push returning) could let the command go on meanwhile.
    let pids: Vec<String> = doomed.iter().map(u32::to_string).collect();
    for signal in ["-STOP", "-KILL"] {
        let _ = Command::new("kill")
            .arg(signal)
            .args(&pids)
            .stderr(Stdio::null())
            .status();
    }
    let _ = child.wait();
}

/// The processes whose parent is `pid`, from /proc.
pub fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(child) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ...: comm may hold spaces, so read after its closing paren.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(pid) && child > 1 {
            out.push(child);
        }
    }
    out
}
