//! Faults and hostile remotes (SEMANTICS.md, "Faults and hostile input"): writers killed at any
//! instant, clones syncing at the same instant, and an attacker's clone pushing hand-made trees and
//! forged documents into the shared remote with git plumbing. Nothing locks up, no sync fails for
//! losing a race, and no document from the remote steers what git-coord does.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use common::cluster::Cluster;
use common::{BIN, Jitter, array, fails, json, ok, stderr, stdout};

/// Clones of one bare remote, with an agent (`worker`) registered for mail to reach.
fn net(clones: usize) -> Cluster {
    let net = Cluster::new(clones);
    net.ok(0, &["agent", "spawn", "worker", "--role", "dev"]);
    for n in 0..clones {
        net.ok(n, &["sync"]);
    }
    net
}

/// The attacker's clone: a plain clone of the remote where git-coord never runs.
fn attacker(net: &Cluster) -> Attacker<'_> {
    let dir = net.origin.tmp().join("attacker");
    if !dir.exists() {
        ok(
            net.origin
                .command("git", net.origin.tmp())
                .args(["clone", "-q", net.remote.to_str().expect("utf-8")])
                .arg(&dir)
                .output()
                .expect("git"),
            "the attacker clones",
        );
        for (key, value) in [("user.name", "Mallory"), ("user.email", "m@example.com")] {
            ok(net.origin.git_in(&dir, &["config", key, value]), "config");
        }
    }
    ok(
        net.origin.git_in(
            &dir,
            &["fetch", "-q", "origin", "+refs/coord/*:refs/coord/*"],
        ),
        "the attacker fetches refs/coord/*",
    );
    Attacker { net, dir }
}

/// Hand-made trees pushed with git plumbing, as a hostile or broken tool would.
struct Attacker<'n> {
    net: &'n Cluster,
    dir: PathBuf,
}

impl Attacker<'_> {
    fn git(&self, args: &[&str]) -> String {
        self.git_env(args, &[])
    }

    fn git_env(&self, args: &[&str], env: &[(&str, &Path)]) -> String {
        let mut cmd = self.net.origin.command("git", &self.dir);
        cmd.args(args).envs(env.iter().map(|(k, v)| (*k, *v)));
        let out = ok(
            cmd.output().expect("git"),
            &format!("git {}", args.join(" ")),
        );
        stdout(&out).trim().to_string()
    }

    fn blob(&self, bytes: &str) -> String {
        let path = self.dir.join(".attacker-blob");
        std::fs::write(&path, bytes).expect("a blob file");
        let oid = self.git(&["hash-object", "-w", path.to_str().expect("utf-8")]);
        std::fs::remove_file(&path).expect("removed");
        oid
    }

    /// A commit of its own, pushed to a branch so that the remote has it.
    fn own_commit(&self, file: &str) -> String {
        std::fs::write(self.dir.join(file), "the attacker's content\n").expect("a file");
        self.git(&["add", file]);
        self.git(&["commit", "-q", "-m", "the attacker's commit"]);
        self.git(&["rev-parse", "HEAD"])
    }

    /// Pushes a new commit on `refname` whose tree is the old one with `entries` put in
    /// (`git update-index --cacheinfo MODE,OID,PATH`), and `extra_parent` as a second parent.
    fn put(&self, refname: &str, entries: &[(&str, &str, &str)], extra_parent: Option<&str>) {
        let index = self.dir.join(".git/attacker-index");
        let _ = std::fs::remove_file(&index);
        let env = [("GIT_INDEX_FILE", index.as_path())];
        self.git_env(&["read-tree", refname], &env);
        for (mode, oid, path) in entries {
            self.git_env(
                &[
                    "update-index",
                    "--add",
                    "--cacheinfo",
                    &format!("{mode},{oid},{path}"),
                ],
                &env,
            );
        }
        let tree = self.git_env(&["write-tree"], &env);
        self.commit_tree(refname, &tree, extra_parent);
    }

    /// Pushes a new commit on `refname` whose tree is `tree`.
    fn commit_tree(&self, refname: &str, tree: &str, extra_parent: Option<&str>) {
        let old = self.git(&["rev-parse", refname]);
        let mut args = vec!["commit-tree", tree, "-p", &old, "-m", "hand-made"];
        if let Some(p) = extra_parent {
            args.extend(["-p", p]);
        }
        let new = self.git(&args);
        self.git(&["update-ref", refname, &new]);
        self.git(&["push", "-q", "origin", &format!("{refname}:{refname}")]);
    }
}

fn code(out: &Output) -> Option<i32> {
    out.status.code()
}

// 1. A killed writer locks up a clone.
#[test]
fn writers_killed_at_any_instant_in_a_clone_never_lock_it_up() {
    let net = net(2);
    let clone = net.dir(1).to_path_buf();
    net.ok(1, &["task", "new", "before the kills"]);
    net.git(1, &["pack-refs", "--all"]);
    let git_dir = clone.join(".git");
    let left = |dir: &Path| -> Vec<String> {
        let mut found = Vec::new();
        for d in [dir.to_path_buf(), dir.join("refs/coord")] {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.ends_with(".lock") {
                    found.push(name);
                }
            }
        }
        found
    };
    let mut jitter = Jitter::new();
    let mut kills = 0;
    while kills < 300 && left(&git_dir).is_empty() {
        let mut child = net
            .origin
            .command(BIN, &clone)
            .args(["task", "new", &format!("killed {kills}"), "--offline"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("git-coord starts");
        std::thread::sleep(Duration::from_micros(jitter.below(12_000)));
        let _ = child.kill(); // SIGKILL to git-coord itself
        let _ = child.wait();
        kills += 1;
    }
    let locks = left(&git_dir);
    assert!(
        !locks.contains(&"packed-refs.lock".to_string()),
        "a git-coord write took packed-refs.lock and was killed holding it"
    );
    // Whatever was left (at most a ref's own lock, cleared once stale), every later write works.
    let id = net.ok(1, &["task", "new", "after the kills", "--offline"]);
    net.ok(1, &["task", "claim", id.trim(), "--offline"]);
    net.ok(1, &["send", "--to", "worker", "still here"]);
    net.ok(1, &["lease", "acquire", "src/*", "--offline"]);
    // git itself killed while rewriting packed-refs: a stale packed-refs.lock. Writes never need
    // it; a sync, which deletes staging refs and so must take it, recovers it.
    let packed_lock = git_dir.join("packed-refs.lock");
    let stale = std::fs::File::create(&packed_lock).expect("a lock file");
    stale
        .set_modified(std::time::SystemTime::now() - Duration::from_secs(600))
        .expect("backdated");
    drop(stale);
    net.ok(1, &["task", "new", "with git's lock left", "--offline"]);
    net.ok(1, &["sync"]);
    assert!(
        !packed_lock.exists(),
        "the stale packed-refs.lock is still there"
    );
    let list = array(json(&net.ok(1, &["task", "list", "--json"])));
    assert!(list.iter().any(|t| t["title"] == "after the kills"));
    assert!(list.iter().any(|t| t["title"] == "with git's lock left"));
    let fsck = net
        .origin
        .git_in(&clone, &["fsck", "--no-dangling", "--no-progress"]);
    assert!(fsck.status.success(), "fsck: {}", stderr(&fsck));
}

/// `git coord ARGS` in `dir`, killed after `after` together with the git processes it started
/// (SIGKILL to each, children first found through /proc), as a crash of the whole command would.
fn kill_with_children_after(net: &Cluster, dir: &Path, args: &[&str], after: Duration) {
    let child = net
        .origin
        .command(BIN, dir)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("git-coord starts");
    common::kill_tree_after(child, after);
}

#[test]
fn syncs_killed_at_any_instant_never_jam_the_next_one() {
    let net = net(2);
    let clone = net.dir(1).to_path_buf();
    // What a fetch killed while it moved a staging ref leaves: that ref's lock, just made. The
    // next sync waits it out until it is stale, then recovers it.
    let lock = clone.join(".git/refs/coord-sync/origin/tasks.lock");
    std::fs::write(&lock, "").expect("a lock file");
    net.ok(0, &["task", "new", "before the kills"]);
    net.ok(0, &["sync"]);
    net.ok(1, &["sync"]);
    assert!(!lock.exists(), "the staging ref's lock is still there");

    // Syncs killed with their git processes at random instants, each after a new task elsewhere.
    let mut jitter = Jitter::new();
    for round in 0..20 {
        net.ok(0, &["task", "new", &format!("round {round}")]);
        net.ok(0, &["sync"]);
        let after = Duration::from_millis(jitter.below(150));
        kill_with_children_after(&net, &clone, &["sync"], after);
    }
    net.ok(1, &["sync"]);
    let titles: Vec<String> = array(json(&net.ok(1, &["task", "list", "--json"])))
        .iter()
        .filter_map(|t| t["title"].as_str().map(str::to_string))
        .collect();
    for round in 0..20 {
        assert!(titles.contains(&format!("round {round}")), "{titles:?}");
    }
    let fsck = net
        .origin
        .git_in(&clone, &["fsck", "--no-dangling", "--no-progress"]);
    assert!(fsck.status.success(), "fsck: {}", stderr(&fsck));
}

// 2. Simultaneous syncs fail.
#[test]
fn clones_syncing_at_the_same_instant_all_succeed() {
    let net = net(3);
    for round in 0..5 {
        for c in 0..3 {
            net.ok(c, &["task", "new", &format!("round {round} clone {c}")]);
            net.ok(
                c,
                &["send", "--to", "worker", &format!("hello {round} {c}")],
            );
            net.ok(
                c,
                &[
                    "lease",
                    "acquire",
                    &format!("dir{c}/{round}/*"),
                    "--offline",
                ],
            );
        }
        let racers: Vec<_> = (0..3)
            .map(|c| {
                net.origin
                    .command(BIN, net.dir(c))
                    .args(["sync"])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("sync starts")
            })
            .collect();
        for (c, racer) in racers.into_iter().enumerate() {
            let out = racer.wait_with_output().expect("sync ends");
            assert_eq!(
                code(&out),
                Some(0),
                "round {round}: clone {c}'s sync failed: {}",
                stderr(&out)
            );
        }
    }
    for c in 0..3 {
        net.ok(c, &["sync"]);
    }
    for c in 0..3 {
        let tasks = array(json(&net.ok(c, &["task", "list", "--json"])));
        assert_eq!(tasks.len(), 15, "clone {c} sees every task");
    }
}

/// Every listing and write that reads the refs, each expected to succeed.
fn everything_still_works(net: &Cluster, clone: usize) -> String {
    let mut warnings = String::new();
    for args in [
        &["sync"][..],
        &["task", "list"],
        &["ready"],
        &["status"],
        &["brief"],
        &["graph"],
        &["lease", "list"],
        &["checkpoint", "list"],
        &["agent", "list"],
        &["inbox"],
        &["task", "new", "written after the attack"],
        &["lease", "acquire", "after/*"],
        &["send", "--to", "worker", "after the attack"],
        &["task", "claim", "--next"],
    ] {
        let out = net.run(clone, args);
        assert_eq!(
            code(&out),
            Some(0),
            "`git coord {}` failed: {}",
            args.join(" "),
            stderr(&out)
        );
        warnings.push_str(&stderr(&out));
    }
    warnings
}

// 3. A gitlink entry where documents belong.
#[test]
fn a_gitlink_pushed_into_the_refs_is_skipped_and_named() {
    let net = net(2);
    net.ok(0, &["task", "new", "an honest task"]);
    net.ok(0, &["checkpoint", "--dry-run"]);
    net.ok(0, &["sync"]);
    let attacker = attacker(&net);
    let commit = attacker.own_commit("x.txt");
    attacker.put(
        "refs/coord/tasks",
        &[("160000", &commit, "tasks/ab/ab0123456789.yaml")],
        None,
    );
    attacker.put(
        "refs/coord/leases",
        &[("160000", &commit, "leases/evil.yaml")],
        None,
    );
    attacker.put(
        "refs/coord/checkpoints",
        &[("160000", &commit, "checkpoints/000007.yaml")],
        None,
    );
    let warnings = everything_still_works(&net, 1);
    assert!(
        warnings.contains("tasks/ab/ab0123456789.yaml") && warnings.contains("gitlink"),
        "the gitlink is named: {warnings}"
    );
    let tasks = array(json(&net.ok(1, &["task", "list", "--json"])));
    assert!(tasks.iter().any(|t| t["title"] == "an honest task"));
}

// 4. Entries named `..` or with a slash.
#[test]
fn entries_named_dot_dot_or_with_a_slash_never_block_a_write_or_a_sync() {
    let net = net(2);
    net.ok(0, &["task", "new", "an honest task"]);
    net.ok(0, &["sync"]);
    let attacker = attacker(&net);
    let agent = attacker.blob(
        "format: 1\nname: .\nrole: dev\nhuman: Mallory <m@example.com>\nstatus: active\ncreated: 2026-01-01T00:00:00Z\ncreated_by: mallory\n",
    );
    // `..` in the root of refs/coord/tasks and an agent stored as `agents/..yaml`.
    for (refname, extra) in [
        ("refs/coord/tasks", format!("100644 blob {agent}\t..\n")),
        (
            "refs/coord/agents",
            format!("100644 blob {agent}\t..yaml\n"),
        ),
    ] {
        let old_tree = attacker.git(&["rev-parse", &format!("{refname}^{{tree}}")]);
        let listing = attacker.git(&["ls-tree", &old_tree]);
        let dir = if refname.ends_with("agents") {
            "agents"
        } else {
            ""
        };
        let tree = if dir.is_empty() {
            let input = format!("{listing}\n{extra}");
            mktree(&attacker, &input)
        } else {
            // Put the bad entry inside agents/.
            let sub = attacker.git(&["rev-parse", &format!("{refname}:{dir}")]);
            let sub_listing = attacker.git(&["ls-tree", &sub]);
            let new_sub = mktree(&attacker, &format!("{sub_listing}\n{extra}"));
            let root: Vec<String> = listing
                .lines()
                .map(|l| {
                    if l.ends_with(&format!("\t{dir}")) {
                        format!("040000 tree {new_sub}\t{dir}")
                    } else {
                        l.to_string()
                    }
                })
                .collect();
            mktree(&attacker, &(root.join("\n") + "\n"))
        };
        attacker.commit_tree(refname, &tree, None);
    }
    // A name with a slash cannot come from mktree: write the tree object byte by byte.
    let blob_hex = agent.clone();
    let mut raw = b"100644 a/b.yaml\0".to_vec();
    raw.extend(hex_bytes(&blob_hex));
    let raw_file = attacker.dir.join(".raw-tree");
    std::fs::write(&raw_file, &raw).expect("raw tree");
    let slashed = attacker.git(&[
        "hash-object",
        "-t",
        "tree",
        "-w",
        "--literally",
        raw_file.to_str().expect("utf-8"),
    ]);
    let leases_tree = attacker.git(&["rev-parse", "refs/coord/leases^{tree}"]);
    let leases_listing = attacker.git(&["ls-tree", &leases_tree]);
    let tree = mktree(
        &attacker,
        &format!("{leases_listing}\n040000 tree {slashed}\tleases\n"),
    );
    attacker.commit_tree("refs/coord/leases", &tree, None);

    everything_still_works(&net, 1);
    let agents = array(json(&net.ok(1, &["agent", "list", "--json"])));
    let names: Vec<&str> = agents.iter().filter_map(|a| a["name"].as_str()).collect();
    assert_eq!(names, ["worker"], "only real agents are listed");
    // The clone's own writes reached the remote: the bad entries did not block them.
    net.ok(0, &["sync"]);
    let tasks = array(json(&net.ok(0, &["task", "list", "--json"])));
    assert!(
        tasks
            .iter()
            .any(|t| t["title"] == "written after the attack")
    );
}

fn mktree(attacker: &Attacker<'_>, listing: &str) -> String {
    let file = attacker.dir.join(".listing");
    std::fs::write(&file, listing.trim_start_matches('\n')).expect("a listing");
    let mut cmd = attacker.net.origin.command("git", &attacker.dir);
    cmd.args(["mktree"])
        .stdin(std::fs::File::open(&file).expect("the listing"));
    let out = ok(cmd.output().expect("git mktree"), "git mktree");
    stdout(&out).trim().to_string()
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect()
}

// 5. An agent document that names a private branch.
#[test]
fn a_checkpoint_merges_only_agent_branches_whatever_a_document_says() {
    let net = net(2);
    net.ok(1, &["sync"]);
    // The victim's private work, on a branch of its own that no agent owns.
    net.git(1, &["checkout", "-q", "-b", "secret-wip"]);
    std::fs::write(net.dir(1).join("secret.txt"), "private\n").expect("a file");
    net.git(1, &["add", "secret.txt"]);
    net.git(1, &["commit", "-q", "-m", "private work"]);
    net.git(1, &["checkout", "-q", "main"]);
    let main_before = net.git(1, &["rev-parse", "main"]);

    let attacker = attacker(&net);
    let doc = attacker.blob(
        "format: 1\nname: evil\nrole: dev\nbranch: secret-wip\nhuman: Mallory <m@example.com>\nstatus: active\ncreated: 2026-01-01T00:00:00Z\ncreated_by: mallory\n",
    );
    attacker.put(
        "refs/coord/agents",
        &[("100644", &doc, "agents/evil.yaml")],
        None,
    );
    net.ok(1, &["sync"]);
    let out = net.run(1, &["checkpoint"]);
    let _ = out; // nothing to merge is fine; what matters is what main holds
    assert_eq!(
        net.git(1, &["rev-parse", "main"]),
        main_before,
        "main moved: a document steered the checkpoint"
    );
    let listed = net.run(1, &["agent", "list"]);
    assert!(
        stderr(&listed).contains("agents/evil.yaml") && stderr(&listed).contains("secret-wip"),
        "the forged document is named: {}",
        stderr(&listed)
    );
}

// 6. A forged checkpoint record.
#[test]
fn rollback_refuses_a_state_the_integration_branch_never_held() {
    let net = net(2);
    net.ok(1, &["sync"]);
    let main_before = net.git(1, &["rev-parse", "main"]);
    let attacker = attacker(&net);
    let evil = attacker.own_commit("payload.sh");
    let record = attacker.blob(&format!(
        "format: 1\nseq: 1\ninto: main\noutcome: moved\nbefore: {main_before}\nafter: {evil}\nat: 2026-01-01T00:00:00Z\nby: mallory\n"
    ));
    // The attacker's commit rides along as a parent, so the victim's sync fetches it.
    attacker.put(
        "refs/coord/checkpoints",
        &[("100644", &record, "checkpoints/000001.yaml")],
        Some(&evil),
    );
    net.ok(1, &["sync"]);
    let out = net.run(1, &["checkpoint", "rollback", "1"]);
    assert_ne!(code(&out), Some(0), "the forged rollback was accepted");
    assert!(
        stderr(&out).contains("never held"),
        "the refusal says why: {}",
        stderr(&out)
    );
    assert_eq!(
        net.git(1, &["rev-parse", "main"]),
        main_before,
        "main moved"
    );
    assert!(!net.dir(1).join("payload.sh").exists());
}

// 7. A worktree path taken from a remote document.
#[test]
fn refresh_runs_nothing_in_a_path_a_remote_document_names() {
    let net = net(2);
    net.ok(1, &["sync"]);
    // A repository the attacker's document points at, whose own config runs a command.
    let trap = net.origin.tmp().join("trap");
    let marker = net.origin.tmp().join("PWNED");
    std::fs::create_dir(&trap).expect("trap dir");
    ok(net.origin.git_in(&trap, &["init", "-q"]), "git init trap");
    ok(
        net.origin.git_in(
            &trap,
            &[
                "config",
                "filter.x.clean",
                &format!("touch {}; cat", marker.display()),
            ],
        ),
        "a filter",
    );
    std::fs::write(trap.join(".gitattributes"), "* filter=x\n").expect("attributes");
    std::fs::write(trap.join("file"), "x\n").expect("file");
    ok(net.origin.git_in(&trap, &["add", "."]), "add");
    ok(
        net.origin.git_in(
            &trap,
            &[
                "-c",
                "user.name=T",
                "-c",
                "user.email=t@example.com",
                "commit",
                "-q",
                "-m",
                "trap",
            ],
        ),
        "commit",
    );
    std::fs::write(trap.join("file"), "changed\n").expect("file");
    let _ = std::fs::remove_file(&marker);

    let attacker = attacker(&net);
    let doc = attacker.blob(&format!(
        "format: 1\nname: evil\nrole: dev\nbranch: agent/evil\nworktree: {}\nhuman: Mallory <m@example.com>\nstatus: active\ncreated: 2026-01-01T00:00:00Z\ncreated_by: mallory\n",
        trap.display()
    ));
    attacker.put(
        "refs/coord/agents",
        &[("100644", &doc, "agents/evil.yaml")],
        None,
    );
    net.ok(1, &["sync"]);
    let out = net.run(1, &["agent", "refresh", "evil"]);
    let words = fails(&out, 1);
    assert!(words.contains("is not evil's worktree"), "{words}");
    assert!(!marker.exists(), "a command from the trap's config ran");
    let out = net.run(1, &["agent", "retire", "evil"]);
    assert_ne!(code(&out), Some(0));
    assert!(!marker.exists(), "a command from the trap's config ran");
    assert!(trap.join("file").exists(), "the trap was touched");
}

// Agents in worktrees of one clone share the staging refs of online claims.
#[test]
fn online_claims_from_worktrees_of_one_clone_racing_all_succeed() {
    let net = net(2);
    for n in 0..12 {
        net.ok(0, &["task", "new", &format!("task {n}")]);
    }
    net.ok(0, &["sync"]);
    let mut claimed = Vec::new();
    for round in 0..3 {
        let racers: Vec<_> = (0..4)
            .map(|a| {
                net.origin
                    .command(BIN, net.dir(0))
                    .args([
                        "--agent",
                        &format!("racer{a}"),
                        "task",
                        "claim",
                        "--next",
                        "--json",
                    ])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("a claim starts")
            })
            .collect();
        for racer in racers {
            let out = racer.wait_with_output().expect("a claim ends");
            assert_eq!(
                code(&out),
                Some(0),
                "round {round}: an online claim failed: {}",
                stderr(&out)
            );
            claimed.push(
                json(&stdout(&out))["id"]
                    .as_str()
                    .expect("an id")
                    .to_string(),
            );
        }
    }
    let total = claimed.len();
    claimed.sort();
    claimed.dedup();
    assert_eq!(claimed.len(), total, "a task was given twice");
    // Every claim is at the remote: the other clone sees all twelve.
    net.ok(1, &["sync"]);
    let tasks = array(json(&net.ok(1, &["task", "list", "--json"])));
    let held = tasks.iter().filter(|t| t["state"] == "claimed").count();
    assert_eq!(held, 12);
}

/// Writes an executable hook into the bare remote.
fn remote_hook(net: &Cluster, name: &str, script: &str) {
    use std::os::unix::fs::PermissionsExt;
    let hook = net.remote.join("hooks").join(name);
    std::fs::write(&hook, script).expect("the hook");
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

#[test]
fn a_lock_left_in_the_remote_fails_sync_and_an_online_claim_naming_it() {
    let net = net(2);
    let task = net.ok(0, &["task", "new", "to claim"]).trim().to_string();
    net.ok(0, &["sync"]);
    net.ok(1, &["sync"]);
    net.ok(1, &["task", "new", "made here"]);
    // What a receive-pack killed while it moved refs/coord/tasks leaves at the remote.
    std::fs::write(net.remote.join("refs/coord/tasks.lock"), "").expect("a lock file");

    let err = fails(&net.run(1, &["sync"]), 1);
    assert!(err.contains("refs/coord/tasks.lock"), "{err}");
    assert!(!err.contains("other writers kept moving"), "{err}");
    let err = fails(&net.run(1, &["task", "claim", &task]), 1);
    assert!(err.contains("refs/coord/tasks.lock"), "{err}");
    assert!(!err.contains("other writers kept moving"), "{err}");

    // Removed at the remote, everything goes through.
    std::fs::remove_file(net.remote.join("refs/coord/tasks.lock")).expect("removed");
    net.ok(1, &["task", "claim", &task]);
    net.ok(1, &["sync"]);
}

#[test]
fn a_policy_hooks_own_words_reach_the_user() {
    let net = net(2);
    remote_hook(
        &net,
        "pre-receive",
        "#!/bin/sh\necho 'policy: coordination refs are frozen until Monday' >&2\nexit 1\n",
    );
    net.ok(1, &["task", "new", "made here"]);
    let err = fails(&net.run(1, &["sync"]), 1);
    assert!(err.contains("frozen until Monday"), "{err}");
    let task = net.ok(1, &["task", "new", "another"]).trim().to_string();
    let err = fails(&net.run(1, &["task", "claim", &task]), 1);
    assert!(err.contains("frozen until Monday"), "{err}");
}
