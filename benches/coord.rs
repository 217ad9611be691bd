//! The benchmark: builds stores of 10k and 100k tasks and times whole `git-coord` processes
//! against them, next to the same write done with plain git plumbing.
//!
//! Run: `cargo bench --bench coord` (options after `--`: `--sizes 10000,100000 --runs 15`;
//! `--only online-write` times only the uncontended online write against `git push`, and
//! `--only online-claims` only the online claims of 4 clones at once, and `--only under-load`
//! only the claims under load, `--only sync` only the sync figures, at the first size).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use git_coord::model::id::new_id;
use git_coord::model::lease::{LEASE_FORMAT, Lease, Mode};
use git_coord::model::message::{Importance, MESSAGE_FORMAT, Mark, Message};
use git_coord::model::task::{Event, Kind, State, TASK_FORMAT, Task};

const BIN: &str = env!("CARGO_BIN_EXE_git-coord");

struct Bench {
    dir: PathBuf,
    home: PathBuf,
    /// The largest resident set of any git-coord process timed so far, in KiB.
    peak_kib: std::cell::Cell<i64>,
}

/// Runs `cmd` to its end and returns its exit code and its own peak resident set in KiB (not
/// that of other children, such as the `git fast-import` that built the store).
/// Returns freed heap memory to the system, so that children's peak memory is their own.
#[allow(unsafe_code)]
fn release_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory at the top of the heap and in free chunks.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[allow(clippy::zombie_processes)] // reaped by the wait4 below, which also gives its rusage
#[allow(unsafe_code)]
fn run_measured(cmd: &mut Command) -> (Option<i32>, i64) {
    // A pre_exec hook makes std fork rather than spawn in this process's memory: a child spawned
    // sharing our memory would inherit our peak (building the store) as its own.
    // SAFETY: the hook does nothing.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(cmd, || Ok(()));
    }
    let child = cmd.spawn().expect("git-coord runs");
    let mut status = 0;
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: wait4 waits for this child only and fills `usage` with its resource use.
    let usage = unsafe {
        libc::wait4(child.id() as i32, &mut status, 0, usage.as_mut_ptr());
        usage.assume_init()
    };
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    (code, usage.ru_maxrss)
}

struct Store {
    open_ids: Vec<String>,
}

/// Rounds of the 8-process claim race and its floor, interleaved.
const RACE_ROUNDS: usize = 3;

/// `task_claim` and `send` calls through one MCP session, each: enough for a median that one
/// slow moment of the machine does not move.
const MCP_CALLS: usize = 100;

fn main() {
    // The benchmark runs itself as the floor of one write (see `floor_write`).
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("--floor-write") => return floor_write(Path::new(&args[2])),
        Some("--floor-write-gix") => return floor_write_gix(Path::new(&args[2])),
        Some("--floor-writes-in-process") => {
            let writes = args[3].parse().expect("a count of writes");
            return floor_writes_in_process(Path::new(&args[2]), writes);
        }
        _ => {}
    }
    let mut sizes = vec![10_000usize, 100_000];
    let mut runs = 15usize;
    let mut keep = false;
    let mut only: Option<String> = None;
    let args: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < args.len() {
        match args[i].as_str() {
            "--sizes" => {
                sizes = args[i + 1]
                    .split(',')
                    .map(|s| s.parse().expect("a number"))
                    .collect();
                i += 1;
            }
            "--runs" => {
                runs = args[i + 1].parse().expect("a number");
                i += 1;
            }
            "--keep" => keep = true,
            "--only" => {
                only = Some(args[i + 1].clone());
                i += 1;
            }
            _ => {} // cargo passes --bench
        }
        i += 1;
    }
    let scratch = tempfile::tempdir().expect("a temporary directory");
    println!("git-coord benchmark: whole-process wall time, median of {runs} runs\n");
    if let Some(part) = only {
        let size = sizes[0];
        let bench = Bench::new(scratch.path(), size);
        let store = bench.build_store(size);
        println!("== {size} tasks ==");
        match part.as_str() {
            "online-write" => {
                bench.online_write_against_push(scratch.path(), &store.open_ids, runs);
            }
            "online-claims" => bench.online_claims(scratch.path(), 4, 10),
            "under-load" => bench.claims_under_load(scratch.path(), 60),
            "sync" => bench.sync(scratch.path(), runs),
            other => panic!(
                "--only {other}: the parts run alone are online-write, online-claims, under-load, sync"
            ),
        }
        if keep {
            println!("stores kept in {}", scratch.keep().display());
        }
        return;
    }
    // The first size's race (claims/s, and its floor's ref moves/s), which the others are
    // compared with.
    let mut first_race: Option<(usize, (f64, f64))> = None;
    for &size in &sizes {
        let bench = Bench::new(scratch.path(), size);
        let store = bench.build_store(size);
        // A forked child starts with a copy of what this process holds, which the kernel counts in
        // the child's peak: give back what building the store took first.
        release_memory();
        println!("== {size} tasks ==");
        let mut open = store.open_ids.clone().into_iter();
        report(
            "task new",
            &bench.time(runs, |_| {
                vec!["task".into(), "new".into(), "A benchmark task".into()]
            }),
        );
        report(
            "plain git plumbing (same write)",
            &bench.time_plumbing(runs),
        );
        report(
            "floor: gix blob+tree+commit+CAS",
            &bench.time_floor("--floor-write-gix", runs),
        );
        report(
            "(the same with git-coord's writer)",
            &bench.time_floor("--floor-write", runs),
        );
        bench.against_floor("task new", runs, |_| {
            vec!["task".into(), "new".into(), "A benchmark task".into()]
        });
        // Each claim takes another open task: the race below needs 720 of the 800 at 10k.
        let claim_id = bench.against_floor("task claim ID", runs, |_| {
            vec![
                "task".into(),
                "claim".into(),
                open.next().expect("enough open tasks"),
            ]
        });
        report("task claim ID", &claim_id);
        bench.coord(&["ready"]); // build the index once
        report("ready (warm)", &bench.time(runs, |_| vec!["ready".into()]));
        report(
            "list (warm)",
            &bench.time(runs, |_| vec!["task".into(), "list".into()]),
        );
        let cold = bench.time_with(runs.min(5), || bench.drop_cache(), |_| vec!["ready".into()]);
        report("ready (cold: no index)", &cold);
        let cold = bench.time_with(
            runs.min(5),
            || bench.drop_cache(),
            |_| vec!["task".into(), "list".into()],
        );
        report("list (cold: no index)", &cold);
        println!(
            "  {:<34} {:>8.1} MiB",
            "peak memory (any git-coord above)",
            bench.peak_rss_kib() as f64 / 1024.0
        );
        if size == sizes[0] {
            stop_hook(scratch.path(), runs.max(50));
            bench.leases(runs);
            bench.sync(scratch.path(), runs);
        }
        bench.messages(size, runs);
        if size == sizes[0] {
            // Local writes, as the CLI timings above (the sync part added a remote).
            bench.git(&["config", "coord.online", "false"]);
            bench.mcp_calls(MCP_CALLS);
            bench.git(&["config", "--unset", "coord.online"]);
            bench.online_claims(scratch.path(), 4, 10);
            bench.online_write_against_push(scratch.path(), &store.open_ids, runs);
        }
        // Last: the race and its floor create and delete thousands of files, which on some file
        // systems slows every file creation after them for hours. Local claims, as the floor's
        // ref moves are (the sync part added a remote); 3 rounds of 8 x 30 claims, as the 10k
        // store has about 800 ready tasks.
        bench.git(&["config", "coord.online", "false"]);
        let race = bench.race_against_floor(8, 30, RACE_ROUNDS);
        bench.git(&["config", "--unset", "coord.online"]);
        match first_race {
            None => first_race = Some((size, race)),
            Some((first, (rate, floor))) => {
                let (now_rate, now_floor) = race;
                println!(
                    "  {:<34} {:>8.0}%   ({now_rate:.0} / {rate:.0} claims/s); against their floors, taken minutes apart: {:.0}% ({:.0}% / {:.0}%)",
                    format!("claim --next x8, {size} vs {first}"),
                    100.0 * now_rate / rate,
                    100.0 * (now_rate / now_floor) / (rate / floor),
                    100.0 * now_rate / now_floor,
                    100.0 * rate / floor,
                );
            }
        }
        println!();
    }
    // After every other figure: its git gc runs and thousands of files would slow what follows.
    if let Some(&size) = sizes.first() {
        let bench = Bench::new(scratch.path(), size);
        bench.claims_under_load(scratch.path(), 60);
    }
    if keep {
        println!("stores kept in {}", scratch.keep().display());
    }
}

/// The stop hook that blocks (w1 holds a task) against the one that lets the agent stop (w2 has
/// nothing), interleaved, in a team of 200 tasks and 60 messages, each written by its own
/// command (a history of one commit each, as a team makes it). The blocking hook is asked again
/// and again in one session, as a stuck client asks it (the bound set out of reach).
fn stop_hook(root: &Path, runs: usize) {
    let bench = Bench::new(root, 0);
    bench.git(&["commit", "-q", "--allow-empty", "-m", "start"]);
    bench.coord(&["init"]);
    for n in 0..200 {
        bench.coord(&[
            "--agent",
            "org",
            "task",
            "new",
            &format!("task {n}"),
            "--role",
            "dev",
        ]);
    }
    bench.coord(&["agent", "spawn", "carol", "--role", "docs"]);
    for n in 0..60 {
        bench.coord(&[
            "--agent",
            "bob",
            "send",
            "--to",
            "carol",
            &format!("message {n}"),
        ]);
    }
    bench.coord(&["--agent", "w1", "task", "claim", "--next", "--role", "dev"]);
    std::fs::write(
        bench.dir.join(".coord.yaml"),
        "stop_max_blocks: 1000000\nstop_idle: 30d\n",
    )
    .expect("the config");
    let input = format!(
        r#"{{"cwd":"{}","session_id":"bench","stop_hook_active":true}}"#,
        bench.dir.display()
    );
    let hook = |agent: &str, blocks: bool| {
        let mut cmd = Command::new(BIN);
        bench.env(&mut cmd);
        let started = Instant::now();
        let mut child = cmd
            .args(["--agent", agent, "hook", "stop"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the hook runs");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("the input");
        let out = child.wait_with_output().expect("the hook ends");
        let elapsed = started.elapsed();
        assert_eq!(
            out.stdout.starts_with(b"{\"decision\":\"block\""),
            blocks,
            "{agent}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        elapsed
    };
    let (mut block, mut allow) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        block.push(hook("w1", true));
        allow.push(hook("w2", false));
    }
    report("hook stop: blocks (200 tasks)", &block);
    report("hook stop: lets stop (200 tasks)", &allow);
    println!(
        "  {:<34} {:>8.2}x",
        "hook stop: blocks / lets stop",
        median_ms(&block) / median_ms(&allow)
    );
}

/// The median of a few figures (the upper one of an even count).
fn median(figures: &mut [f64]) -> f64 {
    figures.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    figures[figures.len() / 2]
}

fn median_ms(samples: &[Duration]) -> f64 {
    let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    median(&mut ms)
}

/// The floor of one write, in a fresh process, through gix alone (the floor the one-write ratios
/// are taken against): open the repository, write a blob, the trees from it to the root of
/// refs/coord/tasks' tree (gix's object-level tree editor), a commit, and move a ref of its own
/// by compare-and-swap (gix's ref transaction).
fn floor_write_gix(dir: &Path) {
    use gix::refs::transaction::PreviousValue;
    let repo = gix::discover(dir).expect("a repository");
    let peeled = |name: &str| {
        repo.try_find_reference(name)
            .expect("readable")
            .map(|mut r| r.peel_to_id().expect("a commit").detach())
    };
    let base: gix::objs::Tree = match peeled("refs/coord/tasks") {
        Some(tip) => {
            let tree = repo
                .find_commit(tip)
                .expect("a commit")
                .tree()
                .expect("a tree");
            tree.decode().expect("a tree").into()
        }
        None => gix::objs::Tree::empty(),
    };
    let tip = peeled("refs/bench/floor-gix");
    let id = new_id();
    let blob = repo
        .write_blob(format!("format: 1\nid: {id}\ntitle: floor\n").as_bytes())
        .expect("a blob")
        .detach();
    let mut editor = gix::objs::tree::Editor::new(base, &repo.objects, repo.object_hash());
    editor
        .upsert(
            ["tasks", &id[..2], &format!("{id}.yaml")],
            gix::objs::tree::EntryKind::Blob,
            blob,
        )
        .expect("an edit");
    let tree = editor
        .write(|t| repo.write_object(t).map(|id| id.detach()))
        .expect("the trees");
    let sig = gix::actor::Signature {
        name: "floor".into(),
        email: "floor@example.com".into(),
        time: gix::date::Time::new(0, 0),
    };
    let commit = gix::objs::Commit {
        tree,
        parents: tip.into_iter().collect(),
        author: sig.clone(),
        committer: sig,
        encoding: None,
        message: "floor\n".into(),
        extra_headers: Vec::new(),
    };
    let commit = repo.write_object(&commit).expect("a commit").detach();
    let expected = match tip {
        Some(tip) => PreviousValue::MustExistAndMatch(tip.into()),
        None => PreviousValue::MustNotExist,
    };
    repo.reference("refs/bench/floor-gix", commit, expected, "floor")
        .expect("a compare-and-swap");
}

/// The same write through git-coord's git layer, which writes its objects itself.
fn floor_write(dir: &Path) {
    let repo = git_coord::git::Repo::discover(dir).expect("a repository");
    write_through(&repo);
}

/// The floor of one write in a long-lived process (the floor the MCP server's calls are taken
/// against): `floor_write`'s write, `writes` times after one to warm up, through one repository
/// opened once. Prints each write's time in nanoseconds, a line each.
fn floor_writes_in_process(dir: &Path, writes: usize) {
    let repo = git_coord::git::Repo::discover(dir).expect("a repository");
    write_through(&repo);
    for _ in 0..writes {
        let started = Instant::now();
        write_through(&repo);
        println!("{}", started.elapsed().as_nanos());
    }
}

/// One write through git-coord's git layer: a blob, the trees from it to the root of
/// refs/coord/tasks' tree, a commit, and a compare-and-swap of a ref of its own.
fn write_through(repo: &git_coord::git::Repo) {
    use git_coord::git::{Author, PathEdit};
    let base = repo
        .ref_tip("refs/coord/tasks")
        .expect("readable")
        .map(|t| repo.commit_tree(t).expect("a tree"));
    let tip = repo.ref_tip("refs/bench/floor").expect("readable");
    let id = new_id();
    let blob = repo
        .write_blob(format!("format: 1\nid: {id}\ntitle: floor\n").as_bytes())
        .expect("a blob");
    let tree = repo
        .edit_tree(
            base,
            &[PathEdit {
                path: format!("tasks/{}/{id}.yaml", &id[..2]),
                blob: Some(blob),
            }],
        )
        .expect("a tree");
    let author = Author {
        name: "floor".into(),
        email: "floor@example.com".into(),
        seconds: 0,
    };
    let commit = repo
        .write_commit(tree, tip.as_slice(), &author, "floor\n")
        .expect("a commit");
    repo.cas_ref("refs/bench/floor", tip, commit, "floor")
        .expect("a compare-and-swap");
}

fn report(what: &str, samples: &[Duration]) {
    let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    ms.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    let median = ms[ms.len() / 2];
    println!(
        "  {what:<34} {median:>8.2} ms   (min {:.2}, max {:.2})",
        ms[0],
        ms[ms.len() - 1]
    );
}

impl Bench {
    fn new(root: &Path, size: usize) -> Bench {
        let dir = root.join(format!("store-{size}"));
        let home = root.join("home");
        std::fs::create_dir_all(&dir).expect("bench dir");
        std::fs::create_dir_all(&home).expect("home dir");
        let bench = Bench {
            dir,
            home,
            peak_kib: std::cell::Cell::new(0),
        };
        bench.git(&["init", "-q"]);
        bench.git(&["config", "user.name", "Bench"]);
        bench.git(&["config", "user.email", "bench@example.com"]);
        bench
    }

    fn env(&self, cmd: &mut Command) {
        cmd.current_dir(&self.dir)
            .env("HOME", &self.home)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env_remove("GIT_COORD_AGENT");
    }

    /// Runs `program` with `args` in `dir`, in the benchmark's environment; insists it succeeds
    /// and returns its output, trimmed.
    fn run_in(&self, dir: &Path, program: &str, args: &[&str]) -> String {
        let mut cmd = Command::new(program);
        self.env(&mut cmd);
        let out = cmd.current_dir(dir).args(args).output().expect("runs");
        assert!(
            out.status.success(),
            "{program} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn git(&self, args: &[&str]) -> String {
        let mut cmd = Command::new("git");
        self.env(&mut cmd);
        let out = cmd.args(args).output().expect("git runs");
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .expect("utf-8")
            .trim()
            .to_string()
    }

    fn git_stdin(&self, args: &[&str], input: &[u8]) -> String {
        let mut cmd = Command::new("git");
        self.env(&mut cmd);
        let mut child = cmd
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("git runs");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input)
            .expect("write stdin");
        let out = child.wait_with_output().expect("git finishes");
        assert!(out.status.success(), "git {args:?} failed");
        String::from_utf8(out.stdout)
            .expect("utf-8")
            .trim()
            .to_string()
    }

    fn coord(&self, args: &[&str]) -> String {
        let mut cmd = Command::new(BIN);
        self.env(&mut cmd);
        let out = cmd.args(args).output().expect("git-coord runs");
        assert!(
            out.status.success(),
            "git coord {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8")
    }

    /// Writes `size` tasks in one commit with `git fast-import`: 80% done, 10% claimed, 10% open
    /// (a fifth of those waiting on an open task).
    fn build_store(&self, size: usize) -> Store {
        let started = Instant::now();
        self.coord(&["init"]);
        let mut files = Vec::with_capacity(size);
        let mut open_ids: Vec<String> = Vec::new();
        let now = "2026-01-01T00:00:00.000Z".to_string();
        for n in 0..size {
            let id = new_id();
            let (state, assignee) = match n % 10 {
                0 => (State::Open, None),
                1 => (State::Claimed, Some(format!("agent{}", n % 7))),
                _ => (State::Done, Some(format!("agent{}", n % 7))),
            };
            let deps = if state == State::Open && n % 50 == 0 && !open_ids.is_empty() {
                vec![open_ids[open_ids.len() - 1].clone()]
            } else {
                Vec::new()
            };
            if state == State::Open && deps.is_empty() {
                open_ids.push(id.clone());
            }
            let task = Task {
                format: TASK_FORMAT,
                id: id.clone(),
                title: format!("Benchmark task number {n}"),
                kind: Kind::Task,
                state,
                priority: (n % 5) as u8,
                role: Some(["dev", "review", "docs"][n % 3].to_string()),
                labels: vec!["bench".into()],
                deps,
                followers: Vec::new(),
                parent: None,
                assignee,
                claimed_at: None,
                summary: (state == State::Done).then(|| "finished".to_string()),
                block_reason: None,
                created: now.clone(),
                created_by: "bench".into(),
                updated: now.clone(),
                description: "Generated by the benchmark.".into(),
                comments: Vec::new(),
                history: vec![Event {
                    at: now.clone(),
                    agent: "bench".into(),
                    op: "new".into(),
                    note: None,
                }],
                conflicts: Vec::new(),
                origin: None,
                extra: Default::default(),
            };
            files.push((Task::path(&id), task.to_yaml().into_bytes()));
        }
        self.import("refs/coord/tasks", &files);
        println!(
            "(built {size} tasks in {:.1} s)",
            started.elapsed().as_secs_f64()
        );
        Store { open_ids }
    }

    fn drop_cache(&self) {
        let _ = std::fs::remove_dir_all(self.dir.join(".git/coord/cache"));
    }

    fn time(&self, runs: usize, args: impl FnMut(usize) -> Vec<String>) -> Vec<Duration> {
        self.time_with(runs, || {}, args)
    }

    fn time_with(
        &self,
        runs: usize,
        mut before: impl FnMut(),
        mut args: impl FnMut(usize) -> Vec<String>,
    ) -> Vec<Duration> {
        (0..runs)
            .map(|n| {
                before();
                let args = args(n);
                let mut cmd = Command::new(BIN);
                self.env(&mut cmd);
                cmd.args(&args).stdout(Stdio::null()).stderr(Stdio::null());
                let started = Instant::now();
                let (code, kib) = run_measured(&mut cmd);
                let elapsed = started.elapsed();
                assert_eq!(code, Some(0), "git coord {args:?} failed");
                self.peak_kib.set(self.peak_kib.get().max(kib));
                elapsed
            })
            .collect()
    }

    /// The same single write as `task new`, done with git plumbing: hash-object -w, mktree for the
    /// shard, the tasks tree and the root, commit-tree, update-ref with the old value.
    fn time_plumbing(&self, runs: usize) -> Vec<Duration> {
        (0..runs)
            .map(|n| {
                let id = new_id();
                let shard = &id[..2];
                let doc = format!("format: 1\nid: {id}\ntitle: plumbing {n}\nstate: open\n");
                let started = Instant::now();
                let old = self.git(&["rev-parse", "refs/coord/tasks"]);
                let blob = self.git_stdin(&["hash-object", "-w", "--stdin"], doc.as_bytes());
                let mut shard_listing = self.git(&["ls-tree", &format!("{old}:tasks/{shard}")]);
                shard_listing.push_str(&format!("\n100644 blob {blob}\t{id}.yaml\n"));
                let shard_tree = self.git_stdin(&["mktree"], shard_listing.trim_start().as_bytes());
                let tasks_listing = self.git(&["ls-tree", &format!("{old}:tasks")]);
                let tasks_listing = replace_entry(
                    &tasks_listing,
                    shard,
                    &format!("040000 tree {shard_tree}\t{shard}"),
                );
                let tasks_tree = self.git_stdin(&["mktree"], tasks_listing.as_bytes());
                let root_listing = self.git(&["ls-tree", &old]);
                let root_listing = replace_entry(
                    &root_listing,
                    "tasks",
                    &format!("040000 tree {tasks_tree}\ttasks"),
                );
                let root_tree = self.git_stdin(&["mktree"], root_listing.as_bytes());
                let commit = self.git(&[
                    "commit-tree",
                    &root_tree,
                    "-p",
                    &old,
                    "-m",
                    "new by plumbing",
                ]);
                self.git(&["update-ref", "refs/coord/tasks", &commit, &old]);
                started.elapsed()
            })
            .collect()
    }

    /// Times `args` and the floor write (`--floor-write-gix`) by turns, a run of each, so that
    /// both meet the machine in the same moments (its speed moves within a run by more than the
    /// targets' margins), and prints the ratio of their medians. Returns the command's times.
    fn against_floor(
        &self,
        what: &str,
        runs: usize,
        mut args: impl FnMut(usize) -> Vec<String>,
    ) -> Vec<Duration> {
        let (mut samples, mut floor) = (Vec::new(), Vec::new());
        for n in 0..runs {
            samples.extend(self.time(1, |_| args(n)));
            floor.extend(self.time_floor("--floor-write-gix", 1));
        }
        println!(
            "  {:<34} {:>8.2}x  ({what} {:.2} ms / floor {:.2} ms, by turns)",
            format!("{what} / floor"),
            median_ms(&samples) / median_ms(&floor),
            median_ms(&samples),
            median_ms(&floor),
        );
        samples
    }

    /// The largest resident set of any git-coord process timed so far, in KiB.
    fn peak_rss_kib(&self) -> i64 {
        self.peak_kib.get()
    }

    /// The 8-process claim race against its floor, in `rounds` interleaved rounds (the floor first
    /// in one round, the race first in the next): every file the floor and the race create and
    /// delete slows the file creations after it on some file systems, so neither always runs on
    /// the other's leavings. Prints each side's median and their ratio, and returns them (claims/s,
    /// ref moves/s).
    fn race_against_floor(&self, processes: usize, each: usize, rounds: usize) -> (f64, f64) {
        let ready = self.coord(&["ready", "--json"]);
        let ready = serde_json::from_str::<serde_json::Value>(&ready).expect("json");
        let ready = ready.as_array().map_or(0, Vec::len);
        assert!(
            ready >= rounds * processes * each,
            "{ready} ready tasks, fewer than the {rounds} x {processes} x {each} claims of the race"
        );
        let (mut moves, mut claims) = (Vec::new(), Vec::new());
        let (mut claimed, mut tries, mut elapsed) = (Vec::new(), Tries::default(), 0.0);
        for round in 0..rounds {
            let mut race = || {
                let (ids, round_tries, secs) = self.concurrent_claims(processes, each);
                claims.push(ids.len() as f64 / secs);
                claimed.extend(ids);
                tries.attempts += round_tries.attempts;
                tries.repicked += round_tries.repicked;
                elapsed += secs;
            };
            if round % 2 == 1 {
                race();
                moves.push(self.concurrent_update_ref(processes, each));
            } else {
                moves.push(self.concurrent_update_ref(processes, each));
                race();
            }
        }
        let total = claimed.len();
        let doubles = doubles(claimed);
        let (floor, rate) = (median(&mut moves), median(&mut claims));
        println!(
            "  {:<34} {floor:>8.0} moves/s  (floor: {processes} processes, git update-ref NEW OLD on refs of their own; median of {rounds} rounds)",
            format!("update-ref x{processes} processes")
        );
        println!(
            "  {:<34} {rate:>8.0} claims/s   (median of {rounds} rounds; {total} claims by {processes} processes in {elapsed:.2} s, {doubles} double claims, {} taken by a second pick under the ref lock)",
            format!("claim --next x{processes} processes"),
            tries.repicked
        );
        println!(
            "  {:<34} {:>8.0}%   ({rate:.0} claims/s / {floor:.0} ref moves/s, interleaved rounds), {:.2} tries per claim",
            format!("claim --next x{processes} / update-ref x{processes}"),
            100.0 * rate / floor,
            tries.attempts as f64 / total.max(1) as f64
        );
        (rate, floor)
    }

    /// `processes` processes each moving a ref of its own with `git update-ref NEW OLD`, `each`
    /// times, all at once. Returns ref moves per second.
    fn concurrent_update_ref(&self, processes: usize, each: usize) -> f64 {
        let a = self.git(&["rev-parse", "refs/coord/tasks"]);
        let b = self.git(&["rev-parse", "refs/coord/tasks~1"]);
        for p in 0..processes {
            self.git(&["update-ref", &format!("refs/bench/mover{p}"), &a]);
        }
        let started = Instant::now();
        let handles: Vec<_> = (0..processes)
            .map(|p| {
                let mut cmd = Command::new("sh");
                self.env(&mut cmd);
                let script = format!(
                    "r=refs/bench/mover{p}; for i in $(seq {half}); do git update-ref $r {b} {a} && git update-ref $r {a} {b} || exit 1; done",
                    half = each / 2
                );
                cmd.args(["-c", &script]).spawn().expect("sh runs")
            })
            .collect();
        for mut h in handles {
            assert!(
                h.wait().expect("mover finishes").success(),
                "update-ref failed"
            );
        }
        let moves = (processes * (each / 2) * 2) as f64;
        moves / started.elapsed().as_secs_f64()
    }

    /// `processes` processes each claiming `each` tasks with `claim --next`, all at once.
    /// Returns the ids claimed (one per claim), the tries, and the seconds it took.
    fn concurrent_claims(&self, processes: usize, each: usize) -> (Vec<String>, Tries, f64) {
        let started = Instant::now();
        let handles: Vec<_> = (0..processes)
            .map(|p| {
                let mut cmd = Command::new("sh");
                self.env(&mut cmd);
                // -v logs each write's tries (`attempts=N`) on stderr.
                let script = format!(
                    "for i in $(seq {each}); do {BIN} -v --agent racer{p} task claim --next --json || exit 1; done"
                );
                cmd.args(["-c", &script]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("sh runs")
            })
            .collect();
        let (claimed, tries) = claims_of(handles);
        (claimed, tries, started.elapsed().as_secs_f64())
    }

    /// Tool calls through one long-lived `git coord mcp` process: `task_claim` of open tasks and
    /// `send`, each timed from request to answer by a small JSON-RPC client on its stdio. As many
    /// tasks as calls are added first, so that the claims leave the race below its tasks.
    fn mcp_calls(&self, calls: usize) {
        for n in 0..calls {
            self.coord(&["task", "new", &format!("For the MCP session, {n}")]);
        }
        let open = self.coord(&["ready", "--json"]);
        let ids: Vec<String> = serde_json::from_str::<serde_json::Value>(&open)
            .expect("json")
            .as_array()
            .expect("a list")
            .iter()
            .filter_map(|t| t["id"].as_str().map(str::to_string))
            .take(calls)
            .collect();
        // The in-process floor before and after the session, in the same moments of the machine.
        let before = self.floor_in_process(calls);
        let mut cmd = Command::new(BIN);
        self.env(&mut cmd);
        let mut child = cmd
            .args(["--agent", "mcp-bench", "mcp"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("git coord mcp starts");
        let mut stdin = child.stdin.take().expect("stdin");
        let mut stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
        let mut next_id = 0u64;
        let mut call = |method: &str, params: serde_json::Value, answer: bool| -> Duration {
            use std::io::BufRead;
            next_id += 1;
            let mut msg =
                serde_json::json!({ "jsonrpc": "2.0", "method": method, "params": params });
            if answer {
                msg["id"] = next_id.into();
            }
            let started = Instant::now();
            writeln!(stdin, "{msg}").expect("write a request");
            stdin.flush().expect("flush");
            if answer {
                let mut line = String::new();
                stdout.read_line(&mut line).expect("an answer");
                assert!(!line.contains("\"isError\":true"), "tool error: {line}");
            }
            started.elapsed()
        };
        call(
            "initialize",
            serde_json::json!({ "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": { "name": "bench", "version": "1" } }),
            true,
        );
        call("notifications/initialized", serde_json::json!({}), false);
        // The first call opens the repository; what a session pays from then on is measured.
        call(
            "tools/call",
            serde_json::json!({ "name": "status", "arguments": {} }),
            true,
        );
        let claims: Vec<Duration> = ids
            .iter()
            .map(|id| {
                call(
                    "tools/call",
                    serde_json::json!({ "name": "task_claim", "arguments": { "id": id } }),
                    true,
                )
            })
            .collect();
        let sends: Vec<Duration> = (0..calls)
            .map(|n| {
                call(
                    "tools/call",
                    serde_json::json!({ "name": "send", "arguments": { "to": "reader", "subject": format!("note {n}"), "text": "from the benchmark" } }),
                    true,
                )
            })
            .collect();
        drop(stdin);
        let _ = child.wait();
        let after = self.floor_in_process(calls);
        let floor: Vec<Duration> = before.into_iter().chain(after).collect();
        report("mcp task_claim (per call)", &claims);
        report("mcp send (per call)", &sends);
        report("floor: one write, in one process", &floor);
        for (what, samples) in [("task_claim", &claims), ("send", &sends)] {
            println!(
                "  {:<34} {:>8.2}x  ({what} {:.2} ms / in-process floor {:.2} ms)",
                format!("mcp {what} / floor"),
                median_ms(samples) / median_ms(&floor),
                median_ms(samples),
                median_ms(&floor),
            );
        }
    }

    /// `writes` timed writes of the in-process floor ([`floor_writes_in_process`]).
    fn floor_in_process(&self, writes: usize) -> Vec<Duration> {
        let me = std::env::current_exe().expect("the benchmark's own path");
        let mut cmd = Command::new(me);
        self.env(&mut cmd);
        let out = cmd
            .arg("--floor-writes-in-process")
            .arg(&self.dir)
            .arg(writes.to_string())
            .output()
            .expect("the in-process floor runs");
        assert!(out.status.success(), "the in-process floor failed");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|ns| Duration::from_nanos(ns.parse().expect("nanoseconds")))
            .collect()
    }

    /// Online claims from `clones` clones of one bare remote, `each` `claim --next` per clone, all
    /// at once: each claim is confirmed at the remote before it reports success.
    /// A new bare repository `<root>/<name>-remote.git` holding this store's refs/coord/tasks;
    /// its path, as a URL.
    fn bare_remote_of_tasks(&self, root: &Path, name: &str) -> String {
        let remote = root.join(format!("{name}-remote.git"));
        let _ = std::fs::remove_dir_all(&remote);
        self.git(&["init", "-q", "--bare", remote.to_str().expect("utf-8")]);
        let url = remote.to_str().expect("utf-8").to_string();
        let _ = self.git_status(&["remote", "remove", name]);
        self.git(&["remote", "add", name, &url]);
        self.git(&["push", "-q", name, "refs/coord/tasks:refs/coord/tasks"]);
        self.git(&["remote", "remove", name]);
        url
    }

    /// A clone of `url` at `dir` (made anew) with its refs/coord/tasks fetched; `dir`.
    fn clone_with_tasks(&self, url: &str, dir: &Path) -> PathBuf {
        let _ = std::fs::remove_dir_all(dir);
        self.git(&[
            "clone",
            "-q",
            "--no-checkout",
            url,
            dir.to_str().expect("utf-8"),
        ]);
        let mut cmd = Command::new("git");
        self.env(&mut cmd);
        cmd.current_dir(dir)
            .args(["fetch", "-q", "origin", "refs/coord/tasks:refs/coord/tasks"])
            .stdout(Stdio::null())
            .status()
            .expect("git fetch");
        dir.to_path_buf()
    }

    fn online_claims(&self, root: &Path, clones: usize, each: usize) {
        let url = self.bare_remote_of_tasks(root, "online");
        let dirs: Vec<PathBuf> = (0..clones)
            .map(|c| self.clone_with_tasks(&url, &root.join(format!("online-clone{c}"))))
            .collect();
        let started = Instant::now();
        let handles: Vec<_> = dirs
            .iter()
            .enumerate()
            .map(|(c, dir)| {
                let mut cmd = Command::new("sh");
                self.env(&mut cmd);
                cmd.current_dir(dir);
                let script = format!(
                    "for i in $(seq {each}); do {BIN} -v --agent clone{c} task claim --next --json || exit 1; done"
                );
                cmd.args(["-c", &script])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("sh runs")
            })
            .collect();
        let (claimed, tries) = claims_of(handles);
        let elapsed = started.elapsed().as_secs_f64();
        let total = claimed.len();
        let doubles = doubles(claimed);
        println!(
            "  {:<34} {:>8.1} claims/s   ({total} claims by {clones} clones through one bare remote in {elapsed:.2} s, {:.2} tries per claim, {} double claims)",
            format!("online claim --next x{clones} clones"),
            total as f64 / elapsed,
            tries.attempts as f64 / total.max(1) as f64,
            doubles
        );
    }

    /// One uncontended online claim (`task claim ID` in a clone that has fetched before, so the
    /// claim is one push) against one `git push` of one small commit, both through a `git daemon`
    /// on loopback, by turns: medians and their ratio. Claims the last `runs` of `open` in a
    /// clone of a remote made for it, so the store's own tasks stay open.
    fn online_write_against_push(&self, root: &Path, open: &[String], runs: usize) {
        let name = "daemon";
        self.bare_remote_of_tasks(root, name);
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let exec_path = self.git(&["--exec-path"]);
        let mut daemon = Command::new(Path::new(&exec_path).join("git-daemon"));
        self.env(&mut daemon);
        let daemon = daemon
            .args([
                "--reuseaddr",
                "--listen=127.0.0.1",
                &format!("--port={port}"),
                "--export-all",
                "--enable=receive-pack",
                &format!("--base-path={}", root.display()),
            ])
            .arg(root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("git daemon starts");
        // Stopped when this returns or panics: a daemon left listening outlives the benchmark.
        struct Stop(std::process::Child);
        impl Drop for Stop {
            fn drop(&mut self) {
                let _ = self.0.kill();
                let _ = self.0.wait();
            }
        }
        let _daemon = Stop(daemon);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "git daemon did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        let url = format!("git://127.0.0.1:{port}/{name}-remote.git");
        let claimer = self.clone_with_tasks(&url, &root.join("daemon-claimer"));
        let pusher = self.clone_with_tasks(&url, &root.join("daemon-pusher"));
        let in_dir = |dir: &Path, program: &str, args: &[&str]| self.run_in(dir, program, args);
        // The first contact stages the remote's tip; from then on a claim is a push.
        in_dir(&claimer, BIN, &["fetch"]);
        let mut parent = in_dir(&pusher, "git", &["rev-parse", "refs/coord/tasks"]);
        // Only tasks still open there: the MCP session and the online claims before this took
        // some of the store's open tasks.
        let listed = in_dir(
            &claimer,
            BIN,
            &["task", "list", "--state", "open", "--json"],
        );
        let still_open: std::collections::HashSet<String> =
            serde_json::from_str::<serde_json::Value>(&listed)
                .expect("json")
                .as_array()
                .expect("a list")
                .iter()
                .filter_map(|t| t["id"].as_str().map(str::to_string))
                .collect();
        let (mut claims, mut pushes) = (Vec::new(), Vec::new());
        for id in open
            .iter()
            .rev()
            .filter(|id| still_open.contains(*id))
            .take(runs)
        {
            let started = Instant::now();
            in_dir(&claimer, BIN, &["--agent", "bench", "task", "claim", id]);
            claims.push(started.elapsed());
            let blob = in_dir(
                &pusher,
                "sh",
                &["-c", "date +%s%N | git hash-object -w --stdin"],
            );
            let tree = in_dir(
                &pusher,
                "sh",
                &[
                    "-c",
                    &format!("printf '100644 blob {blob}\\tnote\\n' | git mktree"),
                ],
            );
            parent = in_dir(
                &pusher,
                "git",
                &[
                    "-c",
                    "user.name=Bench",
                    "-c",
                    "user.email=bench@example.com",
                    "commit-tree",
                    &tree,
                    "-p",
                    &parent,
                    "-m",
                    "one small commit",
                ],
            );
            let started = Instant::now();
            in_dir(
                &pusher,
                "git",
                &[
                    "push",
                    "-q",
                    "origin",
                    &format!("{parent}:refs/heads/floor"),
                ],
            );
            pushes.push(started.elapsed());
        }
        report("online claim ID (uncontended)", &claims);
        report("floor: git push, one commit", &pushes);
        println!(
            "  {:<34} {:>8.2}x   (through git daemon on loopback; target <= 1.2x)",
            "online write / git push",
            median_ms(&claims) / median_ms(&pushes)
        );
    }

    /// Claim latency under load: one clone of a bare remote holding this store's tasks, 16
    /// processes claiming (confirmed at the remote), filing and leasing in it while a sync loop
    /// runs, for `secs` seconds (git's own gc settings; tests/concurrency.rs makes gc run often).
    /// Prints the claims' median and longest wall time, and how many commands exited 1.
    fn claims_under_load(&self, root: &Path, secs: u64) {
        let url = self.bare_remote_of_tasks(root, "load");
        let dir = self.clone_with_tasks(&url, &root.join("load-clone"));
        let until = Instant::now() + Duration::from_secs(secs);
        let claims = std::sync::Mutex::new(Vec::<Duration>::new());
        let failed = std::sync::atomic::AtomicUsize::new(0);
        let commands = std::sync::atomic::AtomicUsize::new(0);
        let home = self.home.clone();
        let run = |args: &[&str]| {
            let mut cmd = Command::new(BIN);
            cmd.env("HOME", &home)
                .env("GIT_CONFIG_GLOBAL", "/dev/null")
                .env("GIT_CONFIG_NOSYSTEM", "1")
                .env_remove("GIT_COORD_AGENT");
            let started = Instant::now();
            let out = cmd
                .current_dir(&dir)
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("git-coord runs");
            commands.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if out.code() == Some(1) {
                failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            (out.code(), started.elapsed())
        };
        std::thread::scope(|scope| {
            scope.spawn(|| {
                while Instant::now() < until {
                    run(&["sync"]);
                }
            });
            for w in 0..16 {
                let (run, claims) = (&run, &claims);
                scope.spawn(move || {
                    let agent = format!("load{w}");
                    let mut n = 0u32;
                    while Instant::now() < until {
                        n += 1;
                        let path = format!("src/{agent}/f{n}");
                        match n % 3 {
                            0 => {
                                let (code, took) =
                                    run(&["--agent", &agent, "task", "claim", "--next"]);
                                if code == Some(0) {
                                    claims.lock().expect("lock").push(took);
                                }
                            }
                            1 => {
                                run(&["--agent", &agent, "task", "new", "filed under load"]);
                            }
                            _ => {
                                run(&["--agent", &agent, "lease", "acquire", &path, "--ttl", "1m"]);
                            }
                        }
                    }
                });
            }
        });
        let mut claims = claims.into_inner().expect("lock");
        claims.sort();
        let longest = claims.last().copied().unwrap_or_default();
        let p90 = claims
            .get(claims.len() * 9 / 10)
            .copied()
            .unwrap_or_default();
        println!(
            "  {:<34} {:>8.2} s median   (p90 {:.2} s, max {:.2} s; {} claims; {} of {} commands exited 1; 16 writers and a sync loop in one clone, {secs} s)",
            "claim --next under load",
            median_ms(&claims) / 1000.0,
            p90.as_secs_f64(),
            longest.as_secs_f64(),
            claims.len(),
            failed.into_inner(),
            commands.into_inner(),
        );
    }

    fn git_status(&self, args: &[&str]) -> bool {
        let mut cmd = Command::new("git");
        self.env(&mut cmd);
        cmd.args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// One fresh process doing the floor of one write, `runs` times: `which` is
    /// `--floor-write-gix` (`floor_write_gix`) or `--floor-write` (`floor_write`).
    fn time_floor(&self, which: &str, runs: usize) -> Vec<Duration> {
        let me = std::env::current_exe().expect("the benchmark's own path");
        (0..runs)
            .map(|_| {
                let mut cmd = Command::new(&me);
                self.env(&mut cmd);
                cmd.arg(which).arg(&self.dir);
                let started = Instant::now();
                let (code, _) = run_measured(&mut cmd);
                assert_eq!(code, Some(0), "the floor write failed");
                started.elapsed()
            })
            .collect()
    }
}

/// What racing writers logged with `-v`: their tries (`attempts=N`) and the writes that a second
/// pick under the ref lock made (`repicked=true`) instead of another try.
#[derive(Default)]
struct Tries {
    attempts: u64,
    repicked: u64,
}

/// What the racers printed: the id of every claim (one per claim, so a double claim shows twice),
/// and their tries.
fn claims_of(racers: Vec<std::process::Child>) -> (Vec<String>, Tries) {
    let mut claimed = Vec::new();
    let mut tries = Tries::default();
    for racer in racers {
        let out = racer.wait_with_output().expect("racer finishes");
        let log = String::from_utf8_lossy(&out.stderr);
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let v: serde_json::Value = serde_json::from_str(line).expect("json");
            let Some(id) = v["id"].as_str() else {
                panic!("a racer's claim failed: {line}\n{log}");
            };
            claimed.push(id.to_string());
        }
        tries.attempts += attempts_logged(&log);
        tries.repicked += log.matches("repicked=true").count() as u64;
    }
    (claimed, tries)
}

/// How many claims took a task another claim also took.
fn doubles(mut claimed: Vec<String>) -> usize {
    let total = claimed.len();
    claimed.sort();
    claimed.dedup();
    total - claimed.len()
}

/// The tries of every write logged with `-v` (`attempts=N`).
fn attempts_logged(log: &str) -> u64 {
    log.lines()
        .filter_map(|l| l.split("attempts=").nth(1))
        .filter_map(|n| n.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

impl Bench {
    /// Lease writes and checks: `lease acquire` with no other holder, then 1,000 leases of other
    /// agents written in one commit with fast-import, `lease acquire` beside them, and
    /// `lease check` of 1,000 paths against them.
    fn leases(&self, runs: usize) {
        let acquire = self.against_floor("lease acquire", runs, |n| {
            let path = format!("bench/own-{n}/**");
            ["lease", "acquire", &path, "--ttl", "1h"]
                .map(String::from)
                .to_vec()
        });
        report("lease acquire", &acquire);
        self.build_leases(1000);
        report(
            "lease acquire (1,000 leases held)",
            &self.time(runs, |n| {
                let path = format!("bench/more-{n}/**");
                ["lease", "acquire", &path, "--ttl", "1h"]
                    .map(String::from)
                    .to_vec()
            }),
        );
        // One path in four falls under some lease.
        let mut args: Vec<String> = vec!["lease".into(), "check".into()];
        args.extend((0..1000).map(|n| match n % 4 {
            0 => format!("area{n}/deep/file.rs"),
            1 => format!("src/free{n}/lib.rs"),
            2 => format!("docs/other{n}.md"),
            _ => format!("tests/case{n}.rs"),
        }));
        let samples = self.time_exit(runs, &args, 3);
        report("lease check 1,000 paths (1,000 leases)", &samples);
    }

    /// Writes `count` exclusive leases held by ten other agents, in one commit.
    fn build_leases(&self, count: usize) {
        let started = Instant::now();
        let mut files = Vec::with_capacity(count);
        for n in 0..count {
            let pattern = match n % 4 {
                0 => format!("area{n}/**"),
                1 => format!("/src/mod{n}/*.rs"),
                2 => format!("docs/page{n}.md"),
                _ => format!("build{n}/"),
            };
            let lease = Lease {
                format: LEASE_FORMAT,
                id: new_id(),
                agent: format!("holder{}", n % 10),
                human: "Bench <bench@example.com>".into(),
                patterns: vec![pattern],
                mode: Mode::Exclusive,
                task: None,
                reason: None,
                acquired: "2026-01-01T00:00:00.000Z".into(),
                expires: "2099-01-01T00:00:00.000Z".into(),
                released: None,
                revoked_by: None,
                extra: Default::default(),
            };
            files.push((Lease::path(&lease.id), lease.to_yaml().into_bytes()));
        }
        self.import("refs/coord/leases", &files);
        println!(
            "  (built {count} leases in {:.1} s)",
            started.elapsed().as_secs_f64()
        );
    }

    /// Adds `files` (path, bytes) to `refname` in one commit with `git fast-import`.
    fn import(&self, refname: &str, files: &[(String, Vec<u8>)]) {
        let mut stream = Vec::with_capacity(files.iter().map(|(_, b)| b.len() + 64).sum());
        for (n, (_, bytes)) in files.iter().enumerate() {
            stream.extend_from_slice(
                format!("blob\nmark :{}\ndata {}\n", n + 1, bytes.len()).as_bytes(),
            );
            stream.extend_from_slice(bytes);
            stream.push(b'\n');
        }
        let message = format!("bench: {} documents", files.len());
        stream.extend_from_slice(
            format!(
                "commit {refname}\ncommitter Bench <bench@example.com> 0 +0000\ndata {}\n{message}\nfrom {refname}^0\n",
                message.len() + 1
            )
            .as_bytes(),
        );
        for (n, (path, _)) in files.iter().enumerate() {
            stream.extend_from_slice(format!("M 100644 :{} {path}\n", n + 1).as_bytes());
        }
        stream.push(b'\n');
        self.git_stdin(&["fast-import", "--quiet"], &stream);
    }

    /// Messages: `send` (one write) with `size` messages in the store, and the inbox of an agent
    /// whose box holds a fifth of them (half of those read), warm and cold.
    fn messages(&self, size: usize, runs: usize) {
        let started = Instant::now();
        let mut files = Vec::with_capacity(size * 2);
        for n in 0..size {
            let id = new_id();
            let to = if n % 5 == 0 {
                "reader".to_string()
            } else {
                format!("agent{}", n % 7)
            };
            let msg = Message {
                format: MESSAGE_FORMAT,
                id: id.clone(),
                from: format!("agent{}", n % 11),
                human: "Bench <bench@example.com>".into(),
                from_project: None,
                target: to.clone(),
                to: vec![to.clone()],
                subject: format!("Benchmark message {n}"),
                thread: id.clone(),
                reply_to: None,
                task: None,
                about: None,
                importance: if n % 13 == 0 {
                    Importance::High
                } else {
                    Importance::Normal
                },
                created: format!("2026-01-01T00:{:02}:{:02}.000Z", (n / 60) % 60, n % 60),
                body: format!("Message number {n}.\nSecond line."),
                attachments: Vec::new(),
                extra: Default::default(),
            };
            let yaml = msg.to_yaml().into_bytes();
            files.push((Message::box_path(&to, &id), yaml.clone()));
            files.push((Message::thread_path(&id, &id), yaml.clone()));
            files.push((Message::path(&id), yaml));
            if n % 10 == 0 {
                let mark = Mark {
                    format: MESSAGE_FORMAT,
                    read: "2026-01-02T00:00:00.000Z".into(),
                    acked: None,
                };
                files.push((Mark::path("reader", &id), mark.to_yaml().into_bytes()));
            }
        }
        files.push((
            "people/reader.yaml".into(),
            b"format: 1\nname: reader\nhuman: Bench <bench@example.com>\nfirst_seen: \"2026-01-01T00:00:00Z\"\n".to_vec(),
        ));
        self.import("refs/coord/inbox", &files);
        println!(
            "  (built {size} messages in {:.1} s)",
            started.elapsed().as_secs_f64()
        );
        let send = self.against_floor("send", runs, |n| {
            ["send", "--to", "reader", &format!("bench note {n}")]
                .map(String::from)
                .to_vec()
        });
        report("send", &send);
        let inbox = |_| ["--agent", "reader", "inbox"].map(String::from).to_vec();
        self.time(1, inbox); // build the cache once
        report(
            &format!("inbox ({} in the box, warm)", size / 5),
            &self.time(runs, inbox),
        );
        let cold = self.time_with(runs.min(5), || self.drop_cache(), inbox);
        report(&format!("inbox ({} in the box, cold)", size / 5), &cold);
    }

    /// Sync through a local bare remote: 1,000 new operations from one clone reaching another
    /// that made 100 of its own (a merge), and a sync with nothing new next to a plain
    /// `git fetch` of the same refs.
    fn sync(&self, root: &Path, runs: usize) {
        let remote = root.join("sync-remote.git");
        let other = root.join("sync-other");
        let run = |dir: &Path, program: &str, args: &[&str]| {
            self.run_in(dir, program, args);
        };
        run(
            root,
            "git",
            &["init", "-q", "--bare", remote.to_str().expect("utf-8")],
        );
        self.git(&["remote", "add", "origin", remote.to_str().expect("utf-8")]);
        let started = Instant::now();
        self.coord(&["sync"]);
        report("sync: first push of the whole store", &[started.elapsed()]);
        run(
            root,
            "git",
            &[
                "clone",
                "-q",
                remote.to_str().expect("utf-8"),
                other.to_str().expect("utf-8"),
            ],
        );
        run(&other, "git", &["config", "user.name", "Other"]);
        run(
            &other,
            "git",
            &["config", "user.email", "other@example.com"],
        );
        let started = Instant::now();
        run(&other, BIN, &["sync"]);
        report("sync: first fetch of the whole store", &[started.elapsed()]);
        for n in 0..1000 {
            self.coord(&["task", "new", &format!("made on the first clone {n}")]);
        }
        for n in 0..100 {
            run(
                &other,
                BIN,
                &["task", "new", &format!("made on the second clone {n}")],
            );
        }
        // The floor: the same history pushed from a copy where `git repack -a -d` packed it, to
        // a copy of the remote as it is now.
        let floor_remote = root.join("sync-floor.git");
        let packed = root.join("sync-packed");
        let path = |p: &Path| p.to_str().expect("utf-8").to_string();
        run(root, "cp", &["-a", &path(&remote), &path(&floor_remote)]);
        run(root, "cp", &["-a", &path(&self.dir), &path(&packed)]);
        run(&packed, "git", &["repack", "-a", "-d", "-q"]);
        let started = Instant::now();
        run(
            &packed,
            "git",
            &[
                "push",
                "-q",
                "--no-verify",
                &path(&floor_remote),
                "refs/coord/*:refs/coord/*",
            ],
        );
        let floor = started.elapsed();
        let started = Instant::now();
        self.coord(&["sync"]);
        let pushed = started.elapsed();
        report("sync: push 1,000 new operations", &[pushed]);
        report("floor: git push of the same, packed", &[floor]);
        println!(
            "  {:<34} {:>8.2}x",
            "sync push / its floor",
            pushed.as_secs_f64() / floor.as_secs_f64()
        );
        let started = Instant::now();
        run(&other, BIN, &["sync"]);
        report("sync: 1,000 in, 100 out (a merge)", &[started.elapsed()]);
        let mut quiet = Vec::new();
        let mut fetches = Vec::new();
        for _ in 0..runs {
            let started = Instant::now();
            run(&other, BIN, &["sync"]);
            quiet.push(started.elapsed());
            let started = Instant::now();
            run(
                &other,
                "git",
                &[
                    "fetch",
                    "-q",
                    "origin",
                    "+refs/coord/*:refs/coord-sync/origin/*",
                ],
            );
            fetches.push(started.elapsed());
        }
        report("sync with nothing new", &quiet);
        report("plain git fetch of refs/coord/*", &fetches);
        println!(
            "  {:<34} {:>8.2}x",
            "sync pull / git fetch",
            median_ms(&quiet) / median_ms(&fetches)
        );
    }

    /// Times `git-coord ARGS`, which must exit with `code` every time.
    fn time_exit(&self, runs: usize, args: &[String], code: i32) -> Vec<Duration> {
        (0..runs)
            .map(|_| {
                let mut cmd = Command::new(BIN);
                self.env(&mut cmd);
                cmd.args(args).stdout(Stdio::null()).stderr(Stdio::null());
                let started = Instant::now();
                let (status, kib) = run_measured(&mut cmd);
                let elapsed = started.elapsed();
                self.peak_kib.set(self.peak_kib.get().max(kib));
                assert_eq!(status, Some(code), "git coord {} ...", args[..2].join(" "));
                elapsed
            })
            .collect()
    }
}

fn replace_entry(listing: &str, name: &str, entry: &str) -> String {
    let mut out: Vec<String> = listing
        .lines()
        .filter(|l| !l.ends_with(&format!("\t{name}")))
        .map(String::from)
        .collect();
    out.push(entry.to_string());
    out.join("\n") + "\n"
}
