//! A bare remote and clones of it, all in one throwaway directory with one isolated config: what
//! the tests across machines share.

use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};

use serde_json::Value;

use super::{BIN, GitDaemon, TestRepo, free_port, json, ok, stdout};

pub struct Cluster {
    /// The first clone; also owns the temporary directory and the environment.
    pub origin: TestRepo,
    pub remote: PathBuf,
    pub clones: Vec<PathBuf>,
}

impl Cluster {
    /// `clones` clones of a new bare remote (the first is the origin repository), each synced.
    pub fn new(clones: usize) -> Cluster {
        Cluster::named(clones, &[])
    }

    /// As [`Cluster::new`], with `coord.clone` set to `names[n]` in clone `n` where given.
    pub fn named(clones: usize, names: &[&str]) -> Cluster {
        let origin = TestRepo::init();
        let remote = origin.tmp().join("remote.git");
        ok(
            origin
                .command("git", origin.tmp())
                .args(["init", "-q", "--bare", "-b", "main"])
                .arg(&remote)
                .output()
                .expect("git"),
            "a bare remote",
        );
        let url = remote.to_str().expect("utf-8").to_string();
        ok(origin.git(&["remote", "add", "origin", &url]), "remote add");
        ok(origin.git(&["push", "-q", "origin", "main"]), "push main");
        if let Some(name) = names.first() {
            origin.git_ok(&["config", "coord.clone", name]);
        }
        origin.coord_ok(&["sync"]);
        let mut paths = vec![origin.path.clone()];
        for n in 1..clones {
            let dir = origin.tmp().join(format!("clone{n}"));
            ok(
                origin
                    .command("git", origin.tmp())
                    .args(["clone", "-q", &url])
                    .arg(&dir)
                    .output()
                    .expect("git"),
                "clone",
            );
            let mut config = vec![
                ("user.name", format!("Human {n}")),
                ("user.email", "h@example.com".to_string()),
            ];
            if let Some(name) = names.get(n) {
                config.push(("coord.clone", name.to_string()));
            }
            for (key, value) in config {
                ok(origin.git_in(&dir, &["config", key, &value]), "config");
            }
            paths.push(dir);
        }
        let cluster = Cluster {
            origin,
            remote,
            clones: paths,
        };
        for n in 1..clones {
            cluster.ok(n, &["sync"]);
        }
        cluster
    }

    /// Serves the remote through a `git daemon` on loopback that logs its connections, and
    /// points every clone's `origin` at it (`git://127.0.0.1:PORT/remote.git`).
    pub fn through_git_daemon(&self) -> GitDaemon {
        let port = free_port();
        let base = self.origin.tmp();
        let log = base.join("git-daemon.log");
        let daemon = GitDaemon::start_logged(&self.origin, base, port, &log);
        let url = format!("git://127.0.0.1:{port}/remote.git");
        for clone in 0..self.clones.len() {
            self.git(clone, &["remote", "set-url", "origin", &url]);
        }
        daemon
    }

    pub fn dir(&self, clone: usize) -> &Path {
        &self.clones[clone]
    }

    /// `git coord ARGS` in a clone.
    pub fn run(&self, clone: usize, args: &[&str]) -> Output {
        self.origin
            .command(BIN, &self.clones[clone])
            .args(args)
            .output()
            .expect("git-coord runs")
    }

    /// As [`Cluster::run`], insisting on success; its stdout.
    pub fn ok(&self, clone: usize, args: &[&str]) -> String {
        stdout(&ok(
            self.run(clone, args),
            &format!("[clone {clone}] {}", args.join(" ")),
        ))
    }

    /// As [`Cluster::ok`], with `--json`, parsed.
    pub fn json(&self, clone: usize, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        json(&self.ok(clone, &all))
    }

    /// `git coord ARGS` in a clone, started and left running.
    pub fn spawn(&self, clone: usize, args: &[&str]) -> Child {
        self.origin
            .command(BIN, &self.clones[clone])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("git-coord starts")
    }

    /// Plain git in a clone, insisting on success; its trimmed stdout.
    pub fn git(&self, clone: usize, args: &[&str]) -> String {
        let out = ok(
            self.origin.git_in(&self.clones[clone], args),
            &format!("[clone {clone}] git {}", args.join(" ")),
        );
        stdout(&out).trim().to_string()
    }
}
