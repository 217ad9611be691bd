//! Git hooks: installing the shims (chained with hooks already there), and the lease guards the
//! shims call (`git coord hook pre-commit`, `git coord hook pre-push`).

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::git;
use crate::ops::context::Coord;
use crate::ops::leases::{LeaseConflict, Leases};

/// The hooks git-coord installs, with their shims (the files in hooks/).
const SHIMS: [(&str, &str); 3] = [
    ("pre-commit", include_str!("../../hooks/pre-commit")),
    (
        "prepare-commit-msg",
        include_str!("../../hooks/prepare-commit-msg"),
    ),
    ("pre-push", include_str!("../../hooks/pre-push")),
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

/// The shims `hooks install` will write, checked before anything is: a hook already there is kept
/// and chained after the shim; installing twice changes nothing.
pub struct ShimPlan {
    dir: PathBuf,
    steps: Vec<(&'static str, &'static str, &'static str)>,
}

/// Checks that the shims can be installed, changing nothing: refused when a hook is there and so
/// is the file it would be chained to, or when a hook cannot be read.
pub fn plan_shims(coord: &Coord) -> Result<ShimPlan> {
    let dir = git::hooks_dir(&workdir(coord)?)?;
    let mut steps = Vec::new();
    for (hook, shim) in SHIMS {
        let path = dir.join(hook);
        let chained = dir.join(format!("{hook}{CHAINED}"));
        let action = match std::fs::read_to_string(&path).ok() {
            Some(text) if text.contains(MARKER) => "unchanged",
            Some(_) if chained.exists() => {
                return Err(Error::Other(format!(
                    "{} exists and so does {}: move one of them away, then run `git coord hooks install` again (nothing was changed)",
                    path.display(),
                    chained.display()
                )));
            }
            Some(_) => "chained",
            None if path.symlink_metadata().is_ok() => {
                return Err(Error::Other(format!(
                    "{} exists but cannot be read; move it away first (nothing was changed)",
                    path.display()
                )));
            }
            None => "installed",
        };
        steps.push((hook, shim, action));
    }
    Ok(ShimPlan { dir, steps })
}

impl ShimPlan {
    /// Writes the shims, moving each hook already there aside to be chained.
    pub fn install(self) -> Result<Vec<HookChange>> {
        std::fs::create_dir_all(&self.dir)?;
        let mut changes = Vec::new();
        for (hook, shim, action) in self.steps {
            let path = self.dir.join(hook);
            if action == "chained" {
                std::fs::rename(&path, self.dir.join(format!("{hook}{CHAINED}")))?;
            }
            if action != "unchanged" {
                write_shim(&path, shim)?;
            }
            changes.push(HookChange {
                hook: hook.into(),
                path: path.display().to_string(),
                action,
            });
        }
        Ok(changes)
    }
}

/// Removes the shims and puts back the hooks they chained. Refused, changing nothing, when other
/// worktrees share these hooks (they would lose their guards too), unless `all`.
pub fn uninstall(coord: &Coord, all: bool) -> Result<Vec<HookChange>> {
    let dir = git::hooks_dir(&workdir(coord)?)?;
    let sharing = worktrees_sharing(coord, &dir)?;
    if !all && !sharing.is_empty() {
        let shown: Vec<String> = sharing
            .iter()
            .take(3)
            .map(|p| p.display().to_string())
            .collect();
        let more = match sharing.len() {
            n if n > shown.len() => format!(" and {} more", n - shown.len()),
            _ => String::new(),
        };
        return Err(Error::Refused {
            why: format!(
                "the git hooks in {} are shared by every worktree of this repository: uninstalling them here would remove the lease guards of all of them (also {}{more}); nothing was changed",
                dir.display(),
                shown.join(", ")
            ),
            hint: "run `git coord hooks uninstall --all` to remove them from every worktree".into(),
        });
    }
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

/// The other worktrees that run the hooks in `dir`: every other worktree, unless `dir` lies in
/// this worktree's own files (a relative core.hooksPath, such as a committed `.githooks`).
fn worktrees_sharing(coord: &Coord, dir: &Path) -> Result<Vec<PathBuf>> {
    let canonical = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    let here = canonical(&workdir(coord)?);
    let dir = canonical(dir);
    if dir.starts_with(&here) && !dir.starts_with(canonical(&coord.repo.common_dir())) {
        return Ok(Vec::new());
    }
    Ok(coord
        .repo
        .worktrees()?
        .into_iter()
        .map(|w| canonical(&w.path))
        .filter(|p| *p != here && p.exists())
        .collect())
}

fn write_shim(path: &Path, shim: &str) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, shim)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// The agent CLIs' files one `hooks install` or `hooks uninstall` changes, edited in memory first
/// and written only once every one of them was: a file refused (one it cannot parse, a server it
/// did not write) leaves every file as it was. Two edits of one file see each other.
#[derive(Debug, Default)]
pub struct PlannedFiles {
    /// Each file edited, in order, with its new text (None: removed).
    planned: Vec<(PathBuf, Option<String>)>,
}

impl PlannedFiles {
    /// The text of the file at `path` as planned so far (None: there is none).
    fn text(&self, path: &Path) -> Result<Option<String>> {
        if let Some((_, text)) = self.planned.iter().find(|(p, _)| p == path) {
            return Ok(text.clone());
        }
        match std::fs::read_to_string(path) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::Other(format!("cannot read {}: {e}", path.display()))),
        }
    }

    fn plan(&mut self, path: &Path, text: Option<String>) {
        match self.planned.iter_mut().find(|(p, _)| p == path) {
            Some(slot) => slot.1 = text,
            None => self.planned.push((path.to_path_buf(), text)),
        }
    }

    /// The JSON object in the file at `path`, or an empty one when there is no file.
    fn settings(&self, path: &Path) -> Result<serde_json::Value> {
        let Some(text) = self.text(path)? else {
            return Ok(serde_json::json!({}));
        };
        serde_json::from_str(&text).map_err(|e| {
            Error::Other(format!(
                "{} is not valid JSON ({e}): fix it, then run this again (nothing was changed)",
                path.display()
            ))
        })
    }

    /// Plans `settings` as the file's text: sorted keys, two-space indentation.
    fn put_settings(&mut self, path: &Path, settings: &serde_json::Value) -> Result<()> {
        let mut text = serde_json::to_string_pretty(settings)?;
        text.push('\n');
        self.plan(path, Some(text));
        Ok(())
    }

    /// Plans the settings, or the file's removal when nothing is left in it: uninstalling what
    /// git-coord alone put there leaves no empty file behind.
    fn put_or_remove(&mut self, path: &Path, settings: &serde_json::Value) -> Result<()> {
        if settings.as_object().is_some_and(|o| o.is_empty()) {
            self.plan(path, None);
            Ok(())
        } else {
            self.put_settings(path, settings)
        }
    }

    /// Writes every file as planned, and removes the ones planned away (and their folders, if
    /// that leaves them empty).
    pub fn write(self) -> Result<()> {
        for (path, text) in self.planned {
            match text {
                Some(text) => write_text(&path, &text)?,
                None => remove_file_and_dir(&path)?,
            }
        }
        Ok(())
    }
}

/// The hook entries git-coord adds to `.claude/settings.json` (templates/claude-settings.json).
const CLAUDE_SETTINGS: &str = include_str!("../../templates/claude-settings.json");
const STOP_COMMAND: &str = "git coord hook stop";
/// Mail mid-turn: run after every tool call (docs/HOOKS.md, "Mail mid-turn").
const AFTER_TOOL_COMMAND: &str = "git coord hook after-tool";

/// Merges the Stop and PostToolUse hooks into `.claude/settings.json` of this worktree, creating
/// it if missing and keeping everything already there. Installing twice changes nothing.
pub fn install_claude(coord: &Coord, files: &mut PlannedFiles) -> Result<Vec<HookChange>> {
    let path = workdir(coord)?.join(".claude").join("settings.json");
    Ok(vec![
        install_hook_entry(
            files,
            &path,
            "Stop",
            "claude Stop",
            claude_stop_entry(coord),
        )?,
        install_hook_entry(
            files,
            &path,
            "PostToolUse",
            "claude PostToolUse",
            claude_entry("PostToolUse"),
        )?,
    ])
}

/// Removes the hook entries git-coord added, keeping everything else. What it leaves empty
/// (the lists, `hooks`, the file, `.claude/`) goes too.
pub fn uninstall_claude(coord: &Coord, files: &mut PlannedFiles) -> Result<Vec<HookChange>> {
    let path = workdir(coord)?.join(".claude").join("settings.json");
    Ok(vec![
        uninstall_hook_entry(files, &path, "Stop", "claude Stop", STOP_COMMAND)?,
        uninstall_hook_entry(
            files,
            &path,
            "PostToolUse",
            "claude PostToolUse",
            AFTER_TOOL_COMMAND,
        )?,
    ])
}

/// Codex CLI: the Stop and PostToolUse hooks in `.codex/hooks.json` (Claude Code's shape) and
/// `git coord mcp` as the `git-coord` MCP server in `.codex/config.toml`, each merged with what
/// is there.
pub fn install_codex(coord: &Coord, files: &mut PlannedFiles) -> Result<Vec<HookChange>> {
    let dir = workdir(coord)?.join(".codex");
    let hooks = dir.join("hooks.json");
    Ok(vec![
        install_hook_entry(
            files,
            &hooks,
            "Stop",
            "codex Stop",
            claude_stop_entry(coord),
        )?,
        install_hook_entry(
            files,
            &hooks,
            "PostToolUse",
            "codex PostToolUse",
            claude_entry("PostToolUse"),
        )?,
        install_toml_block(files, &dir.join("config.toml"))?,
    ])
}

/// Removes what `install_codex` added, and the files and folder it leaves empty.
pub fn uninstall_codex(coord: &Coord, files: &mut PlannedFiles) -> Result<Vec<HookChange>> {
    let dir = workdir(coord)?.join(".codex");
    let hooks = dir.join("hooks.json");
    Ok(vec![
        uninstall_hook_entry(files, &hooks, "Stop", "codex Stop", STOP_COMMAND)?,
        uninstall_hook_entry(
            files,
            &hooks,
            "PostToolUse",
            "codex PostToolUse",
            AFTER_TOOL_COMMAND,
        )?,
        uninstall_toml_block(files, &dir.join("config.toml"))?,
    ])
}

/// The time limit the clients give the stop hook, in seconds: 30, plus `idle_wait` when the
/// hook waits for work (`.coord.yaml`), so that the client never kills a hook that waits.
fn stop_timeout(coord: &Coord) -> u64 {
    let idle = coord.config().map(|c| c.idle_wait.as_secs()).unwrap_or(0);
    STOP_TIMEOUT + idle
}

/// The stop hook's time limit when it does not wait for work.
const STOP_TIMEOUT: u64 = 30;

/// The entry for `event` (Stop, PostToolUse) of templates/claude-settings.json (Claude Code and
/// Codex CLI share its shape).
fn claude_entry(event: &str) -> serde_json::Value {
    let ours: serde_json::Value =
        serde_json::from_str(CLAUDE_SETTINGS).expect("the template is JSON");
    ours["hooks"][event][0].clone()
}

/// The Stop entry, with the time limit `idle_wait` needs.
fn claude_stop_entry(coord: &Coord) -> serde_json::Value {
    let mut entry = claude_entry("Stop");
    entry["hooks"][0]["timeout"] = serde_json::json!(stop_timeout(coord));
    entry
}

/// Gemini CLI's entries: its hook timeout is in milliseconds, and a named hook shows by its
/// name in its `/hooks` panel.
fn gemini_entry(name: &str, command: &str, timeout_ms: u64) -> serde_json::Value {
    serde_json::json!({ "hooks": [{
        "type": "command",
        "name": name,
        "command": command,
        "timeout": timeout_ms,
    }] })
}

/// Adds `entry` to the list of hooks for `event`, unless an entry there runs its command already.
fn install_hook_entry(
    files: &mut PlannedFiles,
    path: &Path,
    event: &str,
    hook: &str,
    entry: serde_json::Value,
) -> Result<HookChange> {
    let command = entry["hooks"][0]["command"]
        .as_str()
        .expect("git-coord's entries name their command")
        .to_string();
    let mut settings = files.settings(path)?;
    let Some(root) = settings.as_object_mut() else {
        return Err(not_an_object(path));
    };
    let hooks = root.entry("hooks").or_insert_with(|| serde_json::json!({}));
    let Some(hooks) = hooks.as_object_mut() else {
        return Err(not_an_object(path));
    };
    let stop = hooks.entry(event).or_insert_with(|| serde_json::json!([]));
    let Some(stop) = stop.as_array_mut() else {
        return Err(not_an_object(path));
    };
    let timeout = entry["hooks"][0]["timeout"].clone();
    // Our hook already there: only its time limit may need to follow (`idle_wait`).
    let ours = stop
        .iter_mut()
        .filter_map(|e| e["hooks"].as_array_mut())
        .flatten()
        .find(|h| h["command"] == command.as_str());
    let action = match ours {
        Some(hook) if hook["timeout"] == timeout => "unchanged",
        Some(hook) => {
            hook["timeout"] = timeout;
            files.put_settings(path, &settings)?;
            "updated"
        }
        None => {
            stop.push(entry);
            files.put_settings(path, &settings)?;
            "installed"
        }
    };
    Ok(HookChange {
        hook: hook.into(),
        path: path.display().to_string(),
        action,
    })
}

/// Removes every entry for `event` that runs `command`.
fn uninstall_hook_entry(
    files: &mut PlannedFiles,
    path: &Path,
    event: &str,
    hook: &str,
    command: &str,
) -> Result<HookChange> {
    let mut action = "unchanged";
    // No file reads as an empty object: nothing to remove.
    let mut settings = files.settings(path)?;
    if let Some(hooks) = settings.get_mut("hooks").and_then(|h| h.as_object_mut())
        && let Some(stop) = hooks.get_mut(event).and_then(|s| s.as_array_mut())
    {
        let before = stop.len();
        stop.retain(|e| !has_command(e, command));
        if stop.len() != before {
            if stop.is_empty() {
                hooks.remove(event);
            }
            if hooks.is_empty()
                && let Some(root) = settings.as_object_mut()
            {
                root.remove("hooks");
            }
            files.put_or_remove(path, &settings)?;
            action = "removed";
        }
    }
    Ok(HookChange {
        hook: hook.into(),
        path: path.display().to_string(),
        action,
    })
}

/// Registers `git coord mcp` as the `git-coord` server in `.mcp.json` of this worktree (where
/// Claude Code reads project MCP servers), keeping every other server there.
pub fn install_mcp(coord: &Coord, files: &mut PlannedFiles) -> Result<HookChange> {
    install_mcp_server(files, &workdir(coord)?.join(".mcp.json"), "mcp server")
}

/// Removes the `git-coord` server from `.mcp.json`, keeping the others; a file left with no
/// server at all is removed.
pub fn uninstall_mcp(coord: &Coord, files: &mut PlannedFiles) -> Result<HookChange> {
    uninstall_mcp_server(files, &workdir(coord)?.join(".mcp.json"), "mcp server")
}

/// Gemini CLI: the stop hook under `AfterAgent` (its event for the end of an agent turn), the
/// after-tool hook under `AfterTool` and `git coord mcp` under `mcpServers`, all in
/// `.gemini/settings.json`, merged with what is there.
pub fn install_gemini(coord: &Coord, files: &mut PlannedFiles) -> Result<Vec<HookChange>> {
    let path = workdir(coord)?.join(".gemini").join("settings.json");
    Ok(vec![
        install_hook_entry(
            files,
            &path,
            "AfterAgent",
            "gemini AfterAgent",
            gemini_entry("git-coord", STOP_COMMAND, stop_timeout(coord) * 1000),
        )?,
        install_hook_entry(
            files,
            &path,
            "AfterTool",
            "gemini AfterTool",
            gemini_entry("git-coord-mail", AFTER_TOOL_COMMAND, 10000),
        )?,
        install_mcp_server(files, &path, "gemini mcp server")?,
    ])
}

/// Gemini CLI's shell runs every git command with `GIT_CONFIG_GLOBAL=/dev/null`, so a commit
/// made there has no identity when it lives only in `~/.gitconfig`: the identity git sees here
/// is written into the repository's own configuration, where that shell reads it. Nothing is
/// written when the repository has one, or when there is none to copy. (Its shell also runs no
/// git hooks: that cannot be set from here; checkpoint's lease check at merge-back still guards.)
pub fn gemini_identity(coord: &Coord) -> Result<Option<HookChange>> {
    let local = |key: &str| {
        coord
            .repo
            .git(&["config", "--local", "--get", key])
            .ok()
            .filter(|o| o.success)
            .map(|o| o.stdout.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let mut set = Vec::new();
    for key in ["user.name", "user.email"] {
        if local(key).is_some() {
            continue;
        }
        let Some(value) = coord
            .repo
            .config_string(key)
            .filter(|v| !v.trim().is_empty())
        else {
            continue;
        };
        coord.repo.git_ok(&["config", "--local", key, &value])?;
        set.push(key);
    }
    Ok((!set.is_empty()).then(|| HookChange {
        hook: format!("gemini identity ({})", set.join(", ")),
        path: coord.repo.common_dir().join("config").display().to_string(),
        action: "installed",
    }))
}

/// Removes what `install_gemini` added; a file and folder left holding nothing go too.
pub fn uninstall_gemini(coord: &Coord, files: &mut PlannedFiles) -> Result<Vec<HookChange>> {
    let path = workdir(coord)?.join(".gemini").join("settings.json");
    Ok(vec![
        uninstall_hook_entry(
            files,
            &path,
            "AfterAgent",
            "gemini AfterAgent",
            STOP_COMMAND,
        )?,
        uninstall_hook_entry(
            files,
            &path,
            "AfterTool",
            "gemini AfterTool",
            AFTER_TOOL_COMMAND,
        )?,
        uninstall_mcp_server(files, &path, "gemini mcp server")?,
    ])
}

/// Registers `git coord mcp` as the `git-coord` entry of `mcpServers` in the JSON file at `path`
/// (replacing a `git-coord` entry that says otherwise).
fn install_mcp_server(files: &mut PlannedFiles, path: &Path, hook: &str) -> Result<HookChange> {
    let mut config = files.settings(path)?;
    let ours = serde_json::json!({ "command": "git", "args": ["coord", "mcp"] });
    let servers = config
        .as_object_mut()
        .ok_or_else(|| not_an_object(path))?
        .entry("mcpServers")
        .or_insert_with(|| serde_json::json!({}));
    let servers = servers.as_object_mut().ok_or_else(|| not_an_object(path))?;
    let action = if servers.get("git-coord") == Some(&ours) {
        "unchanged"
    } else {
        servers.insert("git-coord".into(), ours);
        files.put_settings(path, &config)?;
        "installed"
    };
    Ok(HookChange {
        hook: hook.into(),
        path: path.display().to_string(),
        action,
    })
}

/// Removes the `git-coord` entry of `mcpServers` from the JSON file at `path`, keeping the others.
fn uninstall_mcp_server(files: &mut PlannedFiles, path: &Path, hook: &str) -> Result<HookChange> {
    let mut action = "unchanged";
    // No file reads as an empty object: nothing to remove.
    let mut config = files.settings(path)?;
    if let Some(servers) = config.get_mut("mcpServers").and_then(|s| s.as_object_mut())
        && servers.remove("git-coord").is_some()
    {
        if servers.is_empty()
            && let Some(root) = config.as_object_mut()
        {
            root.remove("mcpServers");
        }
        files.put_or_remove(path, &config)?;
        action = "removed";
    }
    Ok(HookChange {
        hook: hook.into(),
        path: path.display().to_string(),
        action,
    })
}

/// The block git-coord appends to `.codex/config.toml`, between these marker lines. A table
/// appended at the end of a TOML file never changes the meaning of what is above it. Codex
/// starts MCP servers with a reduced environment: `env_vars` passes on the variable that names
/// the agent, so the server acts as the agent the hook and the shell act as.
const TOML_BEGIN: &str = "# >>> git-coord: `git coord hooks uninstall --codex` removes this block";
const TOML_END: &str = "# <<< git-coord";
const TOML_BLOCK: &str = "[mcp_servers.git-coord]\ncommand = \"git\"\nargs = [\"coord\", \"mcp\"]\nenv_vars = [\"GIT_COORD_AGENT\"]\n";

/// Parses `text` as TOML, or says what is wrong with it and where.
fn parse_toml(text: &str) -> std::result::Result<toml_edit::DocumentMut, String> {
    text.parse::<toml_edit::DocumentMut>().map_err(|e| {
        let why = e.message().trim().to_string();
        match e.span() {
            Some(span) => format!("{why}, line {}", text[..span.start].lines().count().max(1)),
            None => why,
        }
    })
}

fn install_toml_block(files: &mut PlannedFiles, path: &Path) -> Result<HookChange> {
    let text = files.text(path)?.unwrap_or_default();
    let change = |action| HookChange {
        hook: "codex mcp server".into(),
        path: path.display().to_string(),
        action,
    };
    // A block of an earlier git-coord is taken out and the current one appended.
    let (theirs, had_block) = match without_toml_block(path, &text)? {
        Some(rest) => (rest, true),
        None => (text.clone(), false),
    };
    let doc = parse_toml(&theirs).map_err(|why| {
        Error::Other(format!(
            "{} is not valid TOML ({why}): fix it, then run this again (nothing was changed)",
            path.display()
        ))
    })?;
    if doc
        .get("mcp_servers")
        .and_then(|servers| servers.get("git-coord"))
        .is_some()
    {
        return Err(Error::Other(format!(
            "{} already defines an MCP server named git-coord: remove that table (git-coord adds its own), then run this again (nothing was changed)",
            path.display()
        )));
    }
    let mut out = theirs;
    if !out.is_empty() {
        if !out.ends_with('\n') {
            out.push('\n');
        }
        out.push('\n');
    }
    out.push_str(&format!("{TOML_BEGIN}\n{TOML_BLOCK}{TOML_END}\n"));
    if had_block && out == text {
        return Ok(change("unchanged"));
    }
    // What is there may make git-coord's table invalid (`mcp_servers` as an inline table).
    if parse_toml(&out).is_err() {
        return Err(Error::Other(format!(
            "{}: git-coord's [mcp_servers.git-coord] table cannot be added to it: its mcp_servers is an inline table or not a table; write each server as a table of its own ([mcp_servers.NAME]), then run this again (nothing was changed)",
            path.display()
        )));
    }
    files.plan(path, Some(out));
    Ok(change("installed"))
}

/// The text without git-coord's block (and the blank line install put before it); None when
/// there is no block. A block with no end line is refused.
fn without_toml_block(path: &Path, text: &str) -> Result<Option<String>> {
    let lines: Vec<&str> = text.lines().collect();
    let Some(begin) = lines.iter().position(|l| l.trim_end() == TOML_BEGIN) else {
        return Ok(None);
    };
    let end = lines[begin..]
        .iter()
        .position(|l| l.trim_end() == TOML_END)
        .map(|i| begin + i)
        .ok_or_else(|| {
            Error::Other(format!(
                "{}: the git-coord block has no end line `{TOML_END}`; remove the block by hand (nothing was changed)",
                path.display()
            ))
        })?;
    let from = if begin > 0 && lines[begin - 1].trim().is_empty() {
        begin - 1
    } else {
        begin
    };
    let mut kept: Vec<&str> = lines[..from].to_vec();
    kept.extend_from_slice(&lines[end + 1..]);
    Ok(Some(match kept.iter().all(|l| l.trim().is_empty()) {
        true => String::new(),
        false => kept.join("\n") + "\n",
    }))
}

fn uninstall_toml_block(files: &mut PlannedFiles, path: &Path) -> Result<HookChange> {
    let mut change = HookChange {
        hook: "codex mcp server".into(),
        path: path.display().to_string(),
        action: "unchanged",
    };
    let Some(text) = files.text(path)? else {
        return Ok(change);
    };
    let Some(left) = without_toml_block(path, &text)? else {
        return Ok(change);
    };
    files.plan(path, (!left.is_empty()).then_some(left));
    change.action = "removed";
    Ok(change)
}

fn has_command(entry: &serde_json::Value, command: &str) -> bool {
    entry["hooks"]
        .as_array()
        .is_some_and(|hooks| hooks.iter().any(|h| h["command"] == command))
}

fn remove_file_and_dir(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        removed => removed?,
    }
    if let Some(dir) = path.parent() {
        // Only an empty folder goes; the worktree root is never empty.
        let _ = std::fs::remove_dir(dir);
    }
    Ok(())
}

fn write_text(path: &Path, text: &str) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".git-coord-tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

fn not_an_object(path: &Path) -> Error {
    Error::Other(format!(
        "{}: `hooks` must be an object and each of its events (`hooks.Stop`, `hooks.PostToolUse`...) an array; fix it, then run this again (nothing was changed)",
        path.display()
    ))
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
    let remote = crate::remote::resolve_remote(&coord.repo, Some(remote))?;
    crate::remote::sync(
        &coord.repo,
        &remote,
        &crate::ops::notices::Notices::new(coord),
    )?;
    let presence =
        crate::ops::presence::Presence::new(coord, crate::ops::presence::stale_after(coord));
    if let Err(e) = presence.share_with(&remote, true) {
        tracing::debug!("presence not shared on push: {e}");
    }
    Ok(Some(remote.name.to_string()))
}

/// A repository git-coord manages has refs/coord/leases; elsewhere the hooks do nothing.
fn managed(coord: &Coord) -> Result<bool> {
    Ok(coord
        .repo
        .ref_tip(crate::ops::leases::LEASES_REF)?
        .is_some())
}

fn quiet() -> GuardReport {
    GuardReport {
        conflicts: Vec::new(),
        warn_only: false,
    }
}
