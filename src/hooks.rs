//! Git hooks: installing the shims (chained with hooks already there), and the lease guards the
//! shims call (`git coord hook pre-commit`, `git coord hook pre-push`).

use std::path::{Path, PathBuf};

use crate::coord::Coord;
use crate::error::{Error, Result};
use crate::git;
use crate::leases::{LeaseConflict, Leases};

/// The hooks git-coord installs, with their shims (the files in hooks/).
const SHIMS: [(&str, &str); 2] = [
    ("pre-commit", include_str!("../hooks/pre-commit")),
    ("pre-push", include_str!("../hooks/pre-push")),
];
/// Marks a hook file as a git-coord shim.
const MARKER: &str = "# git-coord hook shim";
/// An existing hook is moved aside under this suffix and run by the shim after the guard.
const CHAINED: &str = ".coord-chained";
/// Set to `warn` to report lease conflicts without refusing.
pub const GUARD_ENV: &str = "GIT_COORD_GUARD";

/// What `hooks install` or `hooks uninstall` did to one hook.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HookChange {
    pub hook: String,
    pub path: String,
    /// installed, chained (installed, the old hook runs after it), unchanged, removed, restored.
    pub action: &'static str,
}

fn workdir(coord: &Coord) -> Result<PathBuf> {
    coord
        .repo
        .workdir()
        .ok_or_else(|| Error::Other("hooks need a worktree (this repository is bare)".into()))
}

/// Installs the shims. A hook already there is kept and chained; installing twice changes nothing.
pub fn install(coord: &Coord) -> Result<Vec<HookChange>> {
    let dir = git::hooks_dir(&workdir(coord)?)?;
    std::fs::create_dir_all(&dir)?;
    let mut changes = Vec::new();
    for (hook, shim) in SHIMS {
        let path = dir.join(hook);
        let chained = dir.join(format!("{hook}{CHAINED}"));
        let existing = std::fs::read_to_string(&path).ok();
        let action = match existing {
            Some(text) if text.contains(MARKER) => "unchanged",
            Some(_) if chained.exists() => {
                return Err(Error::Other(format!(
                    "{} exists and so does {}: move one of them away, then run `git coord hooks install` again",
                    path.display(),
                    chained.display()
                )));
            }
            Some(_) => {
                std::fs::rename(&path, &chained)?;
                write_shim(&path, shim)?;
                "chained"
            }
            None if path.symlink_metadata().is_ok() => {
                return Err(Error::Other(format!(
                    "{} exists but cannot be read; move it away first",
                    path.display()
                )));
            }
            None => {
                write_shim(&path, shim)?;
                "installed"
            }
        };
        changes.push(HookChange {
            hook: hook.into(),
            path: path.display().to_string(),
            action,
        });
    }
    Ok(changes)
}

/// Removes the shims and puts back the hooks they chained.
pub fn uninstall(coord: &Coord) -> Result<Vec<HookChange>> {
    let dir = git::hooks_dir(&workdir(coord)?)?;
    let mut changes = Vec::new();
    for (hook, _) in SHIMS {
        let path = dir.join(hook);
        let chained = dir.join(format!("{hook}{CHAINED}"));
        let ours = std::fs::read_to_string(&path).is_ok_and(|t| t.contains(MARKER));
        let action = if !ours {
            "unchanged"
        } else if chained.exists() {
            std::fs::rename(&chained, &path)?;
            "restored"
        } else {
            std::fs::remove_file(&path)?;
            "removed"
        };
        changes.push(HookChange {
            hook: hook.into(),
            path: path.display().to_string(),
            action,
        });
    }
    Ok(changes)
}

fn write_shim(path: &Path, shim: &str) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, shim)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// What a guard found: the conflicts, and whether it only warns.
#[derive(Debug)]
pub struct GuardReport {
    pub conflicts: Vec<LeaseConflict>,
    pub warn_only: bool,
}

/// The pre-commit guard: the staged paths against other agents' exclusive leases.
pub fn pre_commit(coord: &Coord) -> Result<GuardReport> {
    if !managed(coord)? {
        return Ok(quiet());
    }
    let paths = git::staged_paths(&workdir(coord)?)?;
    check(coord, &paths)
}

/// The pre-push guard: every path changed by the commits being pushed. `input` is what git gives
/// the hook on stdin: `<local ref> <local oid> <remote ref> <remote oid>` per line.
pub fn pre_push(coord: &Coord, remote: Option<&str>, input: &str) -> Result<GuardReport> {
    if !managed(coord)? {
        return Ok(quiet());
    }
    let dir = workdir(coord)?;
    let mut paths = Vec::new();
    for line in input.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [local_ref, local, _, remote_oid] = fields[..] else {
            continue;
        };
        if local_ref.starts_with("refs/coord/") {
            continue; // coordination state, not work: no lease covers it
        }
        if local.bytes().all(|b| b == b'0') {
            continue; // a deletion pushes no commits
        }
        let remotes = remote.map(|r| format!("--remotes={r}"));
        let mut exclude: Vec<&str> = Vec::new();
        if !remote_oid.bytes().all(|b| b == b'0') && git::has_object(&dir, remote_oid)? {
            exclude.push(remote_oid);
        }
        if let Some(remotes) = &remotes {
            exclude.push(remotes);
        }
        paths.extend(git::paths_changed(&dir, local, &exclude)?);
    }
    paths.sort();
    paths.dedup();
    check(coord, &paths)
}

fn check(coord: &Coord, paths: &[String]) -> Result<GuardReport> {
    let warn_only = std::env::var(GUARD_ENV).is_ok_and(|v| v == "warn");
    if paths.is_empty() {
        return Ok(GuardReport {
            conflicts: Vec::new(),
            warn_only,
        });
    }
    let agent = coord.actor()?.agent;
    let conflicts = Leases::new(coord).check(&agent, paths)?;
    Ok(GuardReport {
        conflicts,
        warn_only,
    })
}

/// Set to `0` to keep the pre-push hook from syncing refs/coord/* with the remote.
pub const PUSH_ENV: &str = "GIT_COORD_PUSH";

/// After the pre-push guard: share the coordination state with the remote the branches go to,
/// so agents that only ever `git push` still share it. Returns the remote synced with, if any.
pub fn share_on_push(coord: &Coord, remote: Option<&str>) -> Result<Option<String>> {
    if !managed(coord)? || std::env::var(PUSH_ENV).is_ok_and(|v| v == "0") {
        return Ok(None);
    }
    let Some(remote) = remote else {
        return Ok(None);
    };
    let remote = crate::sync::resolve_remote(&coord.repo, Some(remote))?;
    crate::sync::sync(coord, &remote)?;
    Ok(Some(remote.name))
}

/// A repository git-coord manages has refs/coord/leases; elsewhere the hooks do nothing.
fn managed(coord: &Coord) -> Result<bool> {
    Ok(coord.repo.ref_tip(crate::leases::LEASES_REF)?.is_some())
}

fn quiet() -> GuardReport {
    GuardReport {
        conflicts: Vec::new(),
        warn_only: false,
    }
}
