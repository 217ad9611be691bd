//! The wire: which remote, fetch into its staging namespace, push fast-forward only. Transport is
//! the user's own `git` binary, so ssh-agent, credential helpers, `insteadOf` and GIT_SSH_COMMAND
//! work as they do for `git push`.

use crate::error::{Error, Result};
use crate::git::{Oid, RemoteUrl, Repo, redact_urls};

/// Rounds of fetch, merge and push before a sync gives up on a remote that keeps moving.
pub const MAX_TRIES: u32 = 10;
/// Where fetched coordination refs wait: outside refs/coord/, so nothing ever pushes them.
const STAGING: &str = "refs/coord-sync";

/// A remote to sync with: what the user named, and where its refs are staged.
#[derive(Debug, Clone)]
pub struct Remote {
    /// A configured remote's name, or a URL (shown with its password redacted).
    pub name: RemoteUrl,
    /// `refs/coord-sync/<slug>/`: the staging namespace of this remote.
    pub staging: String,
}

impl Remote {
    /// Where `refname` of this remote is staged.
    pub fn staged(&self, refname: &str) -> String {
        format!("{}{}", self.staging, kind(refname))
    }
}

fn kind(refname: &str) -> &str {
    refname.rsplit('/').next().unwrap_or(refname)
}

/// The coordination remote: `coord.remote` in git's configuration, else `origin` if it exists.
pub fn default_remote(repo: &Repo) -> Option<String> {
    repo.config_string("coord.remote")
        .filter(|r| !r.trim().is_empty())
        .or_else(|| {
            repo.config_string("remote.origin.url")
                .map(|_| "origin".to_string())
        })
}

/// The remote `given` names (or the default one), checked.
pub fn resolve_remote(repo: &Repo, given: Option<&str>) -> Result<Remote> {
    let name = match given {
        Some(g) => g.trim().to_string(),
        None => default_remote(repo).ok_or_else(|| {
            Error::Other(
                "no remote to sync with: add one (`git remote add origin URL`), set `git config coord.remote NAME`, or name it: `git coord sync REMOTE`".into(),
            )
        })?,
    };
    if name.is_empty() || name.starts_with('-') {
        return Err(Error::invalid(
            "remote",
            crate::git::redact_url(&name),
            "give a remote's name or URL",
        ));
    }
    let configured = repo.config_string(&format!("remote.{name}.url")).is_some();
    let slug = if configured && crate::model::name::validate("remote", &name).is_ok() {
        name.clone()
    } else {
        let looks_like_url = name.contains(':') || name.contains('/');
        if !looks_like_url {
            return Err(Error::invalid(
                "remote",
                crate::git::redact_url(&name),
                "no such remote: `git remote -v` lists them",
            ));
        }
        // Named after the URL as shown: no password is written into the repository.
        let oid = repo.write_blob(crate::git::redact_url(&name).as_bytes())?;
        format!("url-{}", &oid.to_string()[..12])
    };
    Ok(Remote {
        name: RemoteUrl::new(name),
        staging: format!("{STAGING}/{slug}/"),
    })
}

/// How long a confirmed write or a fetch waits for its clone's turn at the remote before it
/// goes without one (and may race the holder there, as without turns).
const TURN_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

thread_local! {
    /// Whether this thread holds its clone's turn: a write inside another goes on in it.
    static IN_TURN: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// A clone's turn at the remote: the confirmed writes and the fetches of one clone take turns,
/// an advisory lock on `<common git dir>/coord/turn`, so that its own processes do not race
/// each other there (where each loser pays a fetch and another try, and an unlucky one loses
/// again and again) nor over the staging refs they all fetch into; in turns, each pushes once on
/// the tip the previous one brought home. Writers of other clones, and a sync's push, still
/// race (SEMANTICS.md, "Online claims and leases"). The lock is the kernel's (`flock`), so a
/// killed holder's turn ends with it.
pub struct Turn(Option<std::fs::File>);

impl Drop for Turn {
    fn drop(&mut self) {
        if self.0.take().is_some() {
            IN_TURN.with(|held| held.set(false));
        }
    }
}

/// Waits for this clone's turn, at most [`TURN_WAIT`]; a write already in the turn, or one that
/// cannot open the lock file, goes on without waiting.
pub fn take_turn(repo: &Repo) -> Turn {
    if IN_TURN.with(std::cell::Cell::get) {
        return Turn(None);
    }
    let path = repo.common_dir().join("coord").join("turn");
    let file = std::fs::create_dir_all(repo.common_dir().join("coord")).and_then(|()| {
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
    });
    let Ok(file) = file else {
        return Turn(None);
    };
    let file = match file.try_lock() {
        Ok(()) => Some(file),
        Err(std::fs::TryLockError::WouldBlock) => {
            // Blocking in a thread of its own, so that the wait has an end: a turn that comes
            // after it is dropped there, which releases it.
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                if file.lock().is_ok() {
                    let _ = tx.send(file);
                }
            });
            rx.recv_timeout(TURN_WAIT).ok()
        }
        Err(std::fs::TryLockError::Error(e)) => {
            tracing::debug!("no turn at the remote: {e}");
            None
        }
    };
    if file.is_some() {
        IN_TURN.with(|held| held.set(true));
    }
    Turn(file)
}

/// Fetches every coordination ref of `remote` into its staging namespace. Local refs are not
/// touched.
pub fn fetch(repo: &Repo, remote: &Remote, refs: &[&str]) -> Result<()> {
    let _turn = take_turn(repo);
    // The staging refs are git-coord's own: a lock a killed fetch left there is recovered by the
    // rule of every ref lock (older than the stale-lock age), never left to jam the clone.
    repo.recover_stale_locks_under(&remote.staging);
    // Worktrees of one clone share the staging refs: a sibling's fetch that moved one while this
    // one ran is a lost race for a local ref lock, not a failure of the remote. Fetch again; a
    // lock that stays is waited out until it is old enough to be a dead process's.
    let deadline = std::time::Instant::now() + crate::git::STALE_LOCK * 2;
    let mut tries = 0;
    loop {
        tries += 1;
        match noting_unreachable(repo, &remote.name, fetch_once(repo, remote, refs)) {
            Err(Error::Remote { why, .. })
                if LOCAL_REF_RACE.iter().any(|r| why.contains(r))
                    && (tries < MAX_TRIES || std::time::Instant::now() < deadline) =>
            {
                if tries < MAX_TRIES {
                    crate::store::backoff(tries + 2);
                } else {
                    std::thread::sleep(std::time::Duration::from_millis(250));
                }
                repo.recover_stale_locks_under(&remote.staging);
            }
            other => return other,
        }
    }
}

/// How git says a local ref moved or was locked under it during a fetch.
const LOCAL_REF_RACE: [&str; 3] = ["cannot lock ref", "but expected", "Unable to create"];

fn fetch_once(repo: &Repo, remote: &Remote, refs: &[&str]) -> Result<()> {
    // Several refs: every coordination ref the remote has (presence included, for the exchange
    // that follows a sync), in one connection whichever of them it lacks. Named one by one, a
    // ref the remote lacks fails the whole fetch, and each ref then cost a connection of its
    // own (a first filing into a project that never ran git-coord opened seven).
    let specs: Vec<String> = match refs.len() {
        1 => vec![format!("+{}:{}", refs[0], remote.staged(refs[0]))],
        _ => vec![format!("+refs/coord/*:{}*", remote.staging)],
    };
    // Without git's automatic maintenance: a process more on every sync, and a gc at random
    // moments of the user's repository. git-coord asks for it itself, when its own packs add up
    // (`git/packing.rs`).
    let mut args = vec![
        "-c",
        "maintenance.auto=false",
        "fetch",
        "--quiet",
        "--no-tags",
        "--no-write-fetch-head",
    ];
    if refs.len() > 1 {
        args.push("--prune");
        // Pruning deletes refs, for which git takes packed-refs.lock.
        repo.recover_stale_packed_refs_lock();
    }
    args.push(remote.name.as_git_arg());
    args.extend(specs.iter().map(String::as_str));
    let out = repo.git(&args)?;
    if !out.success {
        // A ref the remote lacks is not an error: it has no coordination state of that kind.
        // (Only a single ref is named; several are fetched by a glob, which never misses.)
        if out.stderr.contains("couldn't find remote ref") {
            if repo.ref_tip(&remote.staged(refs[0]))?.is_some() {
                repo.delete_ref(&remote.staged(refs[0]))?;
            }
            return Ok(());
        }
        return Err(remote_error(remote, "fetch from", &out.stderr));
    }
    Ok(())
}

fn remote_error(remote: &Remote, what: &str, stderr: &str) -> Error {
    let why = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    Error::Remote {
        remote: remote.name.to_string(),
        what: what.to_string(),
        why: redact_urls(&why).into_owned(),
    }
}

/// How a remote says it lost a race for its own ref (a refusal on purpose is anything else).
const RACED: [&str; 5] = [
    "failed to update ref",
    "failed to lock",
    "cannot lock ref",
    "incorrect old value",
    // --atomic: the whole push failed because one ref lost its race at the remote.
    "atomic transaction failed",
];

/// How a remote says it cannot write refs at all, whatever else its refusal says. (A lock file
/// that exists there is another push at work: a race.)
const BROKEN: [&str; 3] = [
    "Permission denied",
    "No space left on device",
    "Read-only file system",
];

/// The lock file a remote last named when it refused a push as a race, and since when it has
/// named it. A lock that stays past the stale-lock age is no race but a process killed at the
/// remote: the push fails then, naming it, instead of retrying to the end.
static REMOTE_LOCK: std::sync::Mutex<Option<(String, std::time::Instant)>> =
    std::sync::Mutex::new(None);

/// The lock file in git's words "Unable to create '<path>.lock': File exists".
fn named_lock(stderr: &str) -> Option<String> {
    let start = stderr.find("Unable to create '")? + "Unable to create '".len();
    let len = stderr[start..].find("': File exists")?;
    Some(stderr[start..start + len].replace("/./", "/"))
}

/// Remembers the lock `stderr` names (or that none was named); returns how long the remote has
/// named that same lock.
fn note_remote_lock(stderr: &str) -> Option<(String, std::time::Duration)> {
    let mut held = REMOTE_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let Some(lock) = named_lock(stderr) else {
        *held = None;
        return None;
    };
    match &*held {
        Some((same, since)) if *same == lock => Some((lock, since.elapsed())),
        _ => {
            *held = Some((lock.clone(), std::time::Instant::now()));
            Some((lock, std::time::Duration::ZERO))
        }
    }
}

fn remote_lock_error(remote: &RemoteUrl, lock: &str, held: std::time::Duration) -> Error {
    Error::Remote {
        remote: remote.to_string(),
        what: "push to".into(),
        why: format!(
            "the remote refused every push for {:.1} s {HELD_LOCK} {lock} exists: a git process killed there left it, or one is still writing; if none is running at the remote, remove that file there",
            held.as_secs_f64()
        ),
    }
}

/// Whether `e` is the remote refusing a push (a hook, a policy, permissions, a lock left there),
/// not a lost race nor a remote that could not be reached.
pub fn is_refusal(e: &Error) -> bool {
    matches!(e, Error::Remote { why, .. } if refuses(why))
}

/// Whether the words of a failed fetch or push are a refusal (see [`is_refusal`]), wherever
/// they were carried to.
pub fn refuses(why: &str) -> bool {
    why.contains("rejected]")
        || why.contains(HELD_LOCK)
        || REFUSING
            .iter()
            .chain(BROKEN.iter())
            .any(|w| why.contains(w))
}

/// How [`remote_lock_error`] names a lock left at the remote.
const HELD_LOCK: &str = "because its ref lock";

/// The error of a write that kept losing at `remote`: a lock the remote kept naming (left by a
/// process killed there), else a remote that kept moving.
pub fn gave_up(remote: &RemoteUrl, refname: String, attempts: u32) -> Error {
    let held = REMOTE_LOCK
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    if let Some((lock, since)) = held {
        return remote_lock_error(remote, &lock, since.elapsed());
    }
    match LAST_TRANSIENT
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
    {
        Some(words) => Error::Remote {
            remote: remote.to_string(),
            what: "push to".into(),
            why: format!("{attempts} attempts failed, the last with: {words}"),
        },
        None => Error::Contended { refname, attempts },
    }
}

/// How git says a push failed for a race inside git itself, not a refusal: objects the remote
/// was still moving into place while another push landed, or an object a concurrent repack was
/// moving when this side's pack was built. Retried as a lost race.
const TRANSIENT: [&str; 2] = [
    "unable to migrate objects to permanent storage",
    "could not parse commit",
];

/// Whether git's words are one of [`TRANSIENT`], or "Could not read <object id>" (an object a
/// concurrent repack moved), which is not "Could not read from remote repository".
fn transient(stderr: &str) -> bool {
    TRANSIENT.iter().any(|t| stderr.contains(t))
        || stderr.match_indices("Could not read ").any(|(at, found)| {
            let rest = &stderr[at + found.len()..];
            rest.len() >= 7 && rest.bytes().take(7).all(|b| b.is_ascii_hexdigit())
        })
}

/// Words of a server or a transport that will not let this push through, whatever is retried:
/// not a race, and not a remote that could not be reached.
const REFUSING: [&str; 5] = [
    "Permission denied",
    "denied",
    "not allowed",
    "read only",
    "read-only",
];

/// The last transient failure a push met, for the error of a write that gave up after it.
static LAST_TRANSIENT: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

/// The outcome of a push.
#[derive(Debug, PartialEq, Eq)]
pub enum Pushed {
    Accepted,
    /// Someone else moved a ref first: fetch, merge, push again.
    Rejected,
}

/// Pushes `updates` (ref, commit) fast-forward only, all or none. The caller owns the retry.
pub fn push(repo: &Repo, remote: &RemoteUrl, updates: &[(String, Oid)]) -> Result<Pushed> {
    if updates.is_empty() {
        return Ok(Pushed::Accepted);
    }
    let specs: Vec<String> = updates
        .iter()
        .map(|(r, oid)| format!("{oid}:{r}"))
        .collect();
    // --no-verify: the user's pre-push hook guards branches, and ours would recurse.
    let mut args = vec!["push", "--porcelain", "--no-verify"];
    if updates.len() > 1 {
        args.push("--atomic");
    }
    args.push(remote.as_git_arg());
    args.extend(specs.iter().map(String::as_str));
    let out = repo.git(&args)?;
    let refused: Vec<&str> = out.stdout.lines().filter(|l| l.starts_with('!')).collect();
    noting_unreachable(
        repo,
        remote,
        judge_push(remote, out.success, &refused, &out.stderr),
    )
}

/// A ref pushed along with a write, best effort: `new` to `refname`, leased on `lease` when it
/// replaces what is there (Some(None): the remote must not have it), fast-forward only if None.
pub struct Along<'a> {
    pub refname: &'a str,
    pub new: Oid,
    pub lease: Option<Option<Oid>>,
}

/// Pushes `refname` to `new` fast-forward only, in the same connection as `along`, each ref on
/// its own (not atomic). The outcome is the write's, judged by its own ref alone as [`push`]
/// judges; with it, whether `along` landed. The caller owns the retry.
pub fn push_with(
    repo: &Repo,
    remote: &RemoteUrl,
    (refname, new): (&str, Oid),
    along: &Along<'_>,
) -> Result<(Pushed, bool)> {
    let lease = along.lease.map(|expected| {
        format!(
            "--force-with-lease={}:{}",
            along.refname,
            expected.map(|o| o.to_string()).unwrap_or_default()
        )
    });
    let specs = [
        format!("{new}:{refname}"),
        format!("{}:{}", along.new, along.refname),
    ];
    let mut args = vec!["push", "--porcelain", "--no-verify"];
    args.extend(lease.as_deref());
    args.push(remote.as_git_arg());
    args.extend(specs.iter().map(String::as_str));
    let out = repo.git(&args)?;
    if out.success {
        return judge_push(remote, true, &[], &out.stderr).map(|p| (p, true));
    }
    // --porcelain: a line `<flag>\t<from>:<to>\t<summary>` for each ref; `!` when refused.
    let line_of = |name: &str| {
        let to = format!(":{name}\t");
        out.stdout
            .lines()
            .find(|l| l.contains(&to))
            .map(|l| !l.starts_with('!'))
    };
    let along_landed = line_of(along.refname) == Some(true);
    if line_of(refname) == Some(true) {
        return judge_push(remote, true, &[], "").map(|p| (p, along_landed));
    }
    let to = format!(":{refname}\t");
    let refused: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with('!') && l.contains(&to))
        .collect();
    noting_unreachable(
        repo,
        remote,
        judge_push(remote, false, &refused, &out.stderr),
    )
    .map(|p| (p, along_landed))
}

/// What a push's outcome means for the write: accepted, lost a race (`Rejected`), or an error
/// (a refusal on purpose, a remote that could not be reached), from whether git succeeded, the
/// refused refs' porcelain lines and git's stderr.
fn judge_push(remote: &RemoteUrl, success: bool, refused: &[&str], stderr: &str) -> Result<Pushed> {
    if success {
        note_remote_lock("");
        *LAST_TRANSIENT.lock().unwrap_or_else(|e| e.into_inner()) = None;
        return Ok(Pushed::Accepted);
    }
    // A remote that refuses on purpose (a hook, permissions) is an error; one that lost a race
    // for its own ref lock is a rejection like any other: fetch, merge, try again.
    let raced = |l: &&&str| RACED.iter().any(|why| l.contains(why));
    // The same words ("failed to update ref", "cannot lock ref") also come with a remote that
    // cannot write at all (permissions, a full disk): not a race.
    let broken = BROKEN.iter().find(|b| stderr.contains(*b));
    // Over smart HTTP the server's own words reach only the refused refs' porcelain lines
    // (`[remote rejected] (unable to migrate objects ...)`), never stderr: both are read.
    if broken.is_none() && (transient(stderr) || refused.iter().any(|l| transient(l))) {
        let words = redact_urls(stderr.trim()).replace('\n', "; ");
        tracing::debug!("push to {remote} failed for a race in git, retried: {words}");
        *LAST_TRANSIENT.lock().unwrap_or_else(|e| e.into_inner()) = Some(words);
        return Ok(Pushed::Rejected);
    }
    let hard = broken.is_some()
        || refused
            .iter()
            .any(|l| l.contains("[remote rejected]") && !raced(&l));
    if !refused.is_empty() && !hard {
        // A race: the last failure is this one, not a transient one before it.
        *LAST_TRANSIENT.lock().unwrap_or_else(|e| e.into_inner()) = None;
        if let Some((lock, held)) = note_remote_lock(stderr)
            && held > crate::git::STALE_LOCK
        {
            return Err(remote_lock_error(remote, &lock, held));
        }
        return Ok(Pushed::Rejected);
    }
    Err(push_error(remote, refused, stderr))
}

/// Pushes `new` to `refname`, replacing whatever is there only if it still is `expected` (as
/// fetched; None: the remote must not have the ref). For a ref whose commits replace each other
/// (presence) instead of growing a history. The caller owns the retry.
pub fn push_replacing(
    repo: &Repo,
    remote: &RemoteUrl,
    refname: &str,
    new: Oid,
    expected: Option<Oid>,
) -> Result<Pushed> {
    let lease = format!(
        "--force-with-lease={refname}:{}",
        expected.map(|o| o.to_string()).unwrap_or_default()
    );
    let spec = format!("{new}:{refname}");
    let out = repo.git(&[
        "push",
        "--porcelain",
        "--no-verify",
        &lease,
        remote.as_git_arg(),
        &spec,
    ])?;
    if out.success {
        return Ok(Pushed::Accepted);
    }
    let refused: Vec<&str> = out.stdout.lines().filter(|l| l.starts_with('!')).collect();
    if refused.iter().any(|l| {
        l.contains("stale info") || l.contains("fetch first") || RACED.iter().any(|r| l.contains(r))
    }) {
        return Ok(Pushed::Rejected);
    }
    Err(push_error(remote, &refused, &out.stderr))
}

/// A refused push, in the remote's words: the refused refs and what the remote's hooks printed
/// (its `remote:` lines: a policy's message), else what git said.
fn push_error(remote: &RemoteUrl, refused: &[&str], stderr: &str) -> Error {
    let said: Vec<&str> = stderr
        .lines()
        .filter_map(|l| l.strip_prefix("remote:"))
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let why = match refused.join("; ") {
        why if why.is_empty() => stderr.to_string(),
        why if said.is_empty() => why,
        why => format!("{why}; the remote said: {}", said.join(" / ")),
    };
    remote_error(
        &Remote {
            name: remote.clone(),
            staging: String::new(),
        },
        "push to",
        &why,
    )
}

/// How long a confirmed write keeps trying while other writers win at the remote. Contention
/// slows a write down; only a remote that keeps moving this long makes it give up.
pub const CONFIRM_TIME: std::time::Duration = std::time::Duration::from_secs(120);

/// The longest pause between two tries, whatever the round trip.
const MAX_PAUSE: std::time::Duration = std::time::Duration::from_secs(2);

/// Waits before another try after `losses` lost races: a random time below the round trip the
/// last push took, doubled for each loss up to eight round trips (at most [`MAX_PAUSE`]), so
/// writers that collided spread out on a remote of any latency.
pub fn pause(round_trip: std::time::Duration, losses: u32) {
    let ceiling = round_trip
        .saturating_mul(1 << losses.saturating_sub(1).min(3))
        .min(MAX_PAUSE);
    let mut bytes = [0u8; 4];
    let _ = getrandom::fill(&mut bytes);
    let fraction = f64::from(u32::from_le_bytes(bytes)) / f64::from(u32::MAX);
    std::thread::sleep(ceiling.mul_f64(fraction));
}

/// Where this clone marks when it last could not reach `remote` (the file's time).
fn unreachable_mark(repo: &Repo, remote: &RemoteUrl) -> std::path::PathBuf {
    let name: String = remote
        .redacted()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .take(100)
        .collect();
    repo.common_dir().join("coord/unreachable").join(name)
}

/// `outcome` as it is; a failure that is not the remote refusing on purpose (it could not be
/// reached, or broke) is marked first, for [`unreachable_within`].
fn noting_unreachable<T>(repo: &Repo, remote: &RemoteUrl, outcome: Result<T>) -> Result<T> {
    if let Err(e @ Error::Remote { .. }) = &outcome
        && !is_refusal(e)
    {
        let mark = unreachable_mark(repo, remote);
        if let Some(dir) = mark.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = std::fs::write(&mark, crate::model::time::now());
    }
    outcome
}

/// Whether this clone failed to reach `remote` within the last `window`.
pub fn unreachable_within(repo: &Repo, remote: &RemoteUrl, window: std::time::Duration) -> bool {
    std::fs::metadata(unreachable_mark(repo, remote))
        .and_then(|m| m.modified())
        .ok()
        .and_then(|at| at.elapsed().ok())
        .is_some_and(|age| age <= window)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_race_inside_git_is_told_apart_from_a_remote_that_cannot_be_read() {
        assert!(transient(
            "error: Could not read 0617c98a1b2c3d4e\nfatal: could not parse commit"
        ));
        assert!(transient(
            "remote: error: unable to migrate objects to permanent storage"
        ));
        assert!(!transient(
            "ERROR: Permission to x.git denied\nfatal: Could not read from remote repository."
        ));
        assert!(!transient("fatal: Could not read from remote repository."));
    }

    #[test]
    fn a_race_said_only_in_the_porcelain_lines_is_a_lost_race() {
        // Smart HTTP: git http-backend's stderr never reaches the client.
        let remote = RemoteUrl::new("http://127.0.0.1:1/x.git");
        let line = "!\trefs/coord/tasks:refs/coord/tasks\t[remote rejected] (unable to migrate objects to permanent storage)";
        let judged = judge_push(&remote, false, &[line], "error: failed to push some refs");
        assert_eq!(judged.expect("a race, not an error"), Pushed::Rejected);
        let hook =
            "!\trefs/coord/tasks:refs/coord/tasks\t[remote rejected] (pre-receive hook declined)";
        assert!(
            judge_push(&remote, false, &[hook], "").is_err(),
            "a hook's refusal"
        );
    }

    #[test]
    fn refusals_are_never_taken_for_an_unreachable_remote() {
        let remote = |why: &str| Error::Remote {
            remote: "origin".into(),
            what: "push to".into(),
            why: why.into(),
        };
        for why in [
            "! refs/coord/tasks [remote rejected] (pre-receive hook declined)",
            "ERROR: The key you are authenticating with has been marked as read only.",
            "git@host: Permission denied (publickey).; fatal: Could not read from remote repository.",
            "remote: GitLab: You are not allowed to push code to this project.",
            "the remote refused every push for 6.0 s because its ref lock x.lock exists",
        ] {
            assert!(is_refusal(&remote(why)), "{why}");
        }
        for why in [
            "ssh: connect to host h port 22: Connection refused; fatal: Could not read from remote repository.",
            "fatal: '/gone.git' does not appear to be a git repository",
            "fatal: unable to access 'http://h/': Failed to connect to h port 80",
        ] {
            assert!(!is_refusal(&remote(why)), "{why}");
        }
    }
}
