//! The project's configuration: `.coord.yaml`, a file committed at the top of the repository
//! (read from the working tree of the worktree a command runs in). Everything has a default, so
//! the file is optional.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::model::{name, parse_yaml};

pub const CONFIG_FILE: &str = ".coord.yaml";

/// A role agents can have, with what it is for.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Role {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub capabilities: Vec<String>,
    /// What `agent spawn --launch` starts in the agent's worktree (an agent CLI with its flags).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// The artifact kinds this role reads from earlier workflow stages.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<String>,
    /// The artifact kinds this role produces.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    integration_branch: Option<String>,
    #[serde(default)]
    stale_after: Option<String>,
    #[serde(default)]
    worktrees: Option<String>,
    #[serde(default)]
    roles: Option<Vec<Role>>,
    /// `5M`, `512K`, `1G` or a number of bytes.
    #[serde(default)]
    max_attachment_bytes: Option<String>,
    /// Commands a checkpoint runs on the merged result (tests, lint).
    #[serde(default)]
    gates: Option<Vec<String>>,
    /// How long the stop hook keeps an agent going with no progress before letting it stop.
    #[serde(default)]
    stop_idle: Option<String>,
    /// Gate failures or send-backs of one workflow stage that pause the team (0: never).
    #[serde(default)]
    breaker: Option<u32>,
    /// Related projects every clone knows: name -> git URL.
    #[serde(default)]
    projects: Option<std::collections::BTreeMap<String, String>>,
    /// How many times in a row the stop hook keeps an agent going while it makes no progress.
    #[serde(default)]
    stop_max_blocks: Option<u32>,
    /// Whether a task's creator gets a message when it is done or blocked (default true).
    #[serde(default)]
    notify_creator: Option<bool>,
    /// How long the stop hook keeps an agent with nothing to do available for work.
    #[serde(default)]
    idle_wait: Option<String>,
    /// Fruitless runs in a row after which `supervise` gives up on an agent.
    #[serde(default)]
    supervise_restarts: Option<u32>,
    /// The wait before `supervise` launches an agent again after a fruitless run (doubled after
    /// each one in a row).
    #[serde(default)]
    supervise_backoff: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Config {
    /// The branch agents start from and merge back into; None: the repository's default branch.
    pub integration_branch: Option<String>,
    /// An agent silent for longer than this shows as stale, and its claims can be taken over.
    pub stale_after: Duration,
    /// Where agent worktrees go, relative to the main worktree's parent; `{repo}` is replaced by
    /// the main worktree's directory name.
    pub worktrees: String,
    pub roles: Vec<Role>,
    /// The largest attachment a message may carry.
    pub max_attachment_bytes: u64,
    /// The gate commands of a checkpoint, run with `sh -c` in a throwaway worktree.
    pub gates: Vec<String>,
    pub stop_idle: Duration,
    /// Gate failures or send-backs of one workflow stage that trip the breaker (0: never).
    pub breaker: u32,
    /// Related projects (name, URL) from the committed file, in name order.
    pub projects: Vec<(String, String)>,
    pub stop_max_blocks: u32,
    /// Whether a task's creator gets a message when it is done or blocked.
    pub notify_creator: bool,
    /// How long the stop hook keeps an agent with nothing to do available for work (zero: it
    /// lets it stop at once).
    pub idle_wait: Duration,
    /// Fruitless runs in a row after which `supervise` gives up on an agent.
    pub supervise_restarts: u32,
    /// The first wait before a launch after a fruitless run; doubled after each one in a row.
    pub supervise_backoff: Duration,
}

/// The longest `idle_wait`: the stop hook holds its client that long at most, and the timeout
/// `hooks install` gives the clients is this plus a margin.
pub const MAX_IDLE_WAIT: Duration = Duration::from_secs(30 * 60);

pub const DEFAULT_SUPERVISE_RESTARTS: u32 = 5;
pub const DEFAULT_SUPERVISE_BACKOFF: Duration = Duration::from_secs(2);

pub const DEFAULT_BREAKER: u32 = 3;

pub const DEFAULT_STOP_IDLE: Duration = Duration::from_secs(10 * 60);
pub const DEFAULT_STOP_MAX_BLOCKS: u32 = 3;

pub const DEFAULT_MAX_ATTACHMENT_BYTES: u64 = 5 * 1024 * 1024;

/// Reads a size: a number of bytes, or a number with K, M or G (binary units).
pub fn parse_size(text: &str) -> Result<u64> {
    let t = text.trim();
    let (digits, unit) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((at, _)) => t.split_at(at),
        None => (t, ""),
    };
    let scale: u64 = match unit.trim().trim_end_matches(['B', 'b', 'i']) {
        "" => 1,
        "K" | "k" => 1024,
        "M" | "m" => 1024 * 1024,
        "G" | "g" => 1024 * 1024 * 1024,
        _ => 0,
    };
    digits
        .parse::<u64>()
        .ok()
        .filter(|_| scale > 0)
        .and_then(|n| n.checked_mul(scale))
        .ok_or_else(|| {
            Error::invalid(
                "size",
                text,
                "write a number of bytes, or one with K, M or G (5M)",
            )
        })
}

pub const DEFAULT_STALE_AFTER: Duration = Duration::from_secs(30 * 60);
pub const DEFAULT_WORKTREES: &str = "{repo}.agents";

fn default_roles() -> Vec<Role> {
    let role = |name: &str, description: &str, caps: &[&str], io: (&[&str], &[&str])| Role {
        name: name.into(),
        description: description.into(),
        capabilities: caps.iter().map(|c| c.to_string()).collect(),
        command: None,
        inputs: io.0.iter().map(|c| c.to_string()).collect(),
        outputs: io.1.iter().map(|c| c.to_string()).collect(),
    };
    vec![
        role(
            "organiser",
            "splits goals into tasks, hands them out, merges finished work",
            &["plan", "merge"],
            (&["report"], &[]),
        ),
        role(
            "planner",
            "writes plans and designs for a task",
            &["plan", "write-docs"],
            (&[], &["plan"]),
        ),
        role(
            "dev",
            "implements tasks on its own branch",
            &["code", "test"],
            (&["plan", "review"], &[]),
        ),
        role(
            "reviewer",
            "reviews plans and code, sends work back",
            &["review"],
            (&["plan"], &["review"]),
        ),
        role(
            "docs",
            "writes and updates documentation",
            &["write-docs"],
            (&["plan"], &["doc"]),
        ),
        role(
            "tester",
            "writes and runs tests, reports failures",
            &["test"],
            (&["plan"], &["report"]),
        ),
    ]
}

impl Config {
    /// Reads `.coord.yaml` from `workdir` if it exists; a malformed file is an error that names it.
    pub fn load(workdir: Option<&Path>) -> Result<Config> {
        let path = workdir.map(|w| w.join(CONFIG_FILE)).filter(|p| p.exists());
        let in_file = |e: Error| match &path {
            Some(path) => Error::Other(format!("{}: {e}", path.display())),
            None => e,
        };
        let file = match &path {
            Some(path) => {
                let text = std::fs::read_to_string(path)?;
                parse_yaml::<ConfigFile>(&text)
                    .map_err(|why| Error::Other(format!("{}: {why}", path.display())))?
            }
            None => ConfigFile::default(),
        };
        let stale_after = match &file.stale_after {
            Some(text) => parse_duration(text).map_err(in_file)?,
            None => DEFAULT_STALE_AFTER,
        };
        let roles = file.roles.unwrap_or_else(default_roles);
        if roles.is_empty() {
            return Err(in_file(Error::invalid(
                "roles",
                "[]",
                "list at least one role",
            )));
        }
        for role in &roles {
            name::validate("role", &role.name).map_err(in_file)?;
            for kind in role.inputs.iter().chain(&role.outputs) {
                crate::model::artifact::ArtifactKind::parse(kind).map_err(|e| match e {
                    Error::Invalid { value, why, .. } => in_file(Error::invalid(
                        "artifact kind",
                        value,
                        format!("role {}: {why}", role.name),
                    )),
                    other => in_file(other),
                })?;
            }
        }
        if let Some(branch) = &file.integration_branch
            && (branch.trim().is_empty() || branch.starts_with('-') || branch.contains(".."))
        {
            return Err(in_file(Error::invalid(
                "integration_branch",
                branch,
                "not a branch name",
            )));
        }
        let max_attachment_bytes = match &file.max_attachment_bytes {
            Some(text) => parse_size(text).map_err(in_file)?,
            None => DEFAULT_MAX_ATTACHMENT_BYTES,
        };
        let stop_idle = match &file.stop_idle {
            Some(text) => parse_duration(text).map_err(in_file)?,
            None => DEFAULT_STOP_IDLE,
        };
        let projects: Vec<(String, String)> =
            file.projects.unwrap_or_default().into_iter().collect();
        for (project, url) in &projects {
            name::validate("project name", project).map_err(in_file)?;
            if url.trim().is_empty() || url.trim().starts_with('-') {
                return Err(in_file(Error::invalid(
                    "url",
                    crate::git::redact_url(url),
                    format!("give project {project}'s git URL or path"),
                )));
            }
        }
        let stop_max_blocks = file.stop_max_blocks.unwrap_or(DEFAULT_STOP_MAX_BLOCKS);
        if stop_max_blocks == 0 {
            return Err(in_file(Error::invalid(
                "stop_max_blocks",
                "0",
                "use 1 or more (how many times in a row an agent without progress is kept going)",
            )));
        }
        let idle_wait = match &file.idle_wait {
            Some(text) if text.trim() == "0" || text.trim() == "off" => Duration::ZERO,
            Some(text) => parse_duration(text).map_err(in_file)?,
            None => Duration::ZERO,
        };
        if idle_wait > MAX_IDLE_WAIT {
            return Err(in_file(Error::invalid(
                "idle_wait",
                file.idle_wait.clone().unwrap_or_default(),
                "at most 30m: the stop hook holds its client that long",
            )));
        }
        let supervise_restarts = file
            .supervise_restarts
            .unwrap_or(DEFAULT_SUPERVISE_RESTARTS);
        if supervise_restarts == 0 {
            return Err(in_file(Error::invalid(
                "supervise_restarts",
                "0",
                "use 1 or more (how many fruitless runs in a row supervise allows an agent)",
            )));
        }
        let supervise_backoff = match &file.supervise_backoff {
            Some(text) => parse_duration(text).map_err(in_file)?,
            None => DEFAULT_SUPERVISE_BACKOFF,
        };
        Ok(Config {
            notify_creator: file.notify_creator.unwrap_or(true),
            idle_wait,
            supervise_restarts,
            supervise_backoff,
            breaker: file.breaker.unwrap_or(DEFAULT_BREAKER),
            projects,
            gates: file.gates.unwrap_or_default(),
            stop_idle,
            stop_max_blocks,
            max_attachment_bytes,
            integration_branch: file.integration_branch,
            stale_after,
            worktrees: file.worktrees.unwrap_or_else(|| DEFAULT_WORKTREES.into()),
            roles,
        })
    }

    pub fn role(&self, name: &str) -> Result<&Role> {
        self.roles.iter().find(|r| r.name == name).ok_or_else(|| {
            let known: Vec<&str> = self.roles.iter().map(|r| r.name.as_str()).collect();
            Error::invalid(
                "role",
                name,
                format!(
                    "known roles are {}; add it to {CONFIG_FILE} to use it",
                    known.join(", ")
                ),
            )
        })
    }
}

/// Parses a duration of `.coord.yaml` or a flag (`90s`, `30m`, `1h30m`, `1d`): the one rule of
/// [`crate::model::time::parse_duration`].
pub fn parse_duration(text: &str) -> Result<Duration> {
    crate::model::time::parse_duration(text).map_err(|why| {
        Error::invalid(
            "duration",
            text,
            format!("{why}; use a number and a unit: 90s, 30m, 2h or 1d"),
        )
    })
}

/// The project's identity: its normalized remote URL, so every clone of one remote is one project
/// (`git@github.com:a/b.git`, `ssh://git@github.com/a/b`, `https://github.com/a/b.git` all give
/// `github.com/a/b`).
pub fn project_id(remote_url: Option<&str>, common_dir: &Path) -> String {
    match remote_url.and_then(normalize_remote_url) {
        Some(id) => id,
        None => {
            let dir = common_dir
                .canonicalize()
                .unwrap_or_else(|_| common_dir.to_path_buf());
            let top = if dir.file_name().is_some_and(|n| n == ".git") {
                dir.parent().unwrap_or(&dir)
            } else {
                &dir
            };
            format!("local:{}", top.display())
        }
    }
}

pub fn normalize_remote_url(url: &str) -> Option<String> {
    let url = url.trim();
    if url.is_empty() {
        return None;
    }
    let (host, path) = if let Some((scheme, rest)) = url.split_once("://") {
        if scheme == "file" {
            // `file://[user@]host/path`: the userinfo (and any password in it) is no identity.
            let rest = match rest.split_once('/') {
                Some((authority, _)) if authority.contains('@') => &rest[authority.len()..],
                _ => rest,
            };
            return Some(format!(
                "file:{}",
                rest.trim_end_matches('/').trim_end_matches(".git")
            ));
        }
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let host = match host.rsplit_once(':') {
            Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
            _ => host,
        };
        (host.to_string(), path.to_string())
    } else if let Some((authority, path)) = url.split_once(':').filter(|(a, _)| !a.contains('/')) {
        let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        (host.to_string(), path.to_string())
    } else {
        // A local path: the same directory is the same project.
        let path = Path::new(url);
        let path = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        return Some(format!(
            "file:{}",
            path.display().to_string().trim_end_matches(".git")
        ));
    };
    let path = path
        .trim_matches('/')
        .trim_end_matches(".git")
        .trim_end_matches('/');
    Some(format!("{}/{}", host.to_ascii_lowercase(), path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_of_one_remote_give_one_project() {
        let want = Some("github.com/acme/widget".to_string());
        for url in [
            "git@github.com:acme/widget.git",
            "git@github.com:acme/widget",
            "ssh://git@github.com/acme/widget.git",
            "ssh://git@github.com:22/acme/widget",
            "https://github.com/acme/widget.git",
            "https://user@GitHub.com/acme/widget/",
            "https://user:s3cret@github.com/acme/widget.git",
        ] {
            assert_eq!(normalize_remote_url(url), want, "{url}");
        }
        assert_ne!(normalize_remote_url("https://github.com/acme/other"), want);
        assert_eq!(
            normalize_remote_url("file://me:s3cret@/srv/widget.git").as_deref(),
            Some("file:/srv/widget")
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("30m").unwrap(), Duration::from_secs(1800));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(parse_duration("1d").unwrap(), Duration::from_secs(86400));
        for bad in ["", "m", "5", "5x", "0m", "-1m"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
