//! `git coord hooks install|uninstall` and `git coord hook NAME`: clap definitions and output.

use std::io::{Read, Write};

use clap::Subcommand;

use crate::error::{Error, Result};
use crate::ops::context::Coord;
use crate::ops::hooks::{self, GuardReport};

#[derive(Subcommand, Debug)]
pub enum HooksCommand {
    /// Install the pre-commit and pre-push lease guards (chained with the hooks already there)
    Install {
        /// Also merge the stop and after-tool hooks into .claude/settings.json (Claude Code)
        #[arg(long)]
        claude: bool,
        /// Also register `git coord mcp` in .mcp.json (project MCP servers)
        #[arg(long)]
        mcp: bool,
        /// Also merge the stop and after-tool hooks into .codex/hooks.json and `git coord mcp`
        /// into .codex/config.toml (Codex CLI)
        #[arg(long)]
        codex: bool,
        /// Also merge the stop hook (AfterAgent), the after-tool hook (AfterTool) and `git coord
        /// mcp` into .gemini/settings.json (Gemini CLI)
        #[arg(long)]
        gemini: bool,
    },
    /// Remove them and put back the hooks they chained
    Uninstall {
        /// Also remove the hooks install added to .claude/settings.json
        #[arg(long)]
        claude: bool,
        /// Also remove `git coord mcp` from .mcp.json
        #[arg(long)]
        mcp: bool,
        /// Also remove what `install --codex` added to .codex/
        #[arg(long)]
        codex: bool,
        /// Also remove what `install --gemini` added to .gemini/settings.json
        #[arg(long)]
        gemini: bool,
        /// Remove the git hooks even though other worktrees share them: they leave every worktree
        #[arg(long)]
        all: bool,
    },
}

pub fn run(coord: &Coord, cmd: HooksCommand, out: &mut dyn Write, json: bool) -> Result<()> {
    // Every agent CLI's file is edited in memory first and the shims checked: a refusal anywhere
    // leaves every file as it was.
    let mut files = hooks::PlannedFiles::default();
    let mut edited = Vec::new();
    let changes = match cmd {
        HooksCommand::Install {
            claude,
            mcp,
            codex,
            gemini,
        } => {
            let shims = hooks::plan_shims(coord)?;
            if claude {
                edited.extend(hooks::install_claude(coord, &mut files)?);
            }
            if mcp {
                edited.push(hooks::install_mcp(coord, &mut files)?);
            }
            if codex {
                edited.extend(hooks::install_codex(coord, &mut files)?);
            }
            if gemini {
                edited.extend(hooks::install_gemini(coord, &mut files)?);
            }
            shims.install()?
        }
        HooksCommand::Uninstall {
            claude,
            mcp,
            codex,
            gemini,
            all,
        } => {
            if claude {
                edited.extend(hooks::uninstall_claude(coord, &mut files)?);
            }
            if mcp {
                edited.push(hooks::uninstall_mcp(coord, &mut files)?);
            }
            if codex {
                edited.extend(hooks::uninstall_codex(coord, &mut files)?);
            }
            if gemini {
                edited.extend(hooks::uninstall_gemini(coord, &mut files)?);
            }
            hooks::uninstall(coord, all)?
        }
    };
    files.write()?;
    let gemini_installed = edited.iter().any(|c| c.hook.starts_with("gemini"))
        && edited
            .iter()
            .any(|c| c.action != "removed" && c.action != "restored");
    if gemini_installed {
        edited.extend(hooks::gemini_identity(coord)?);
    }
    let changes: Vec<_> = changes.into_iter().chain(edited).collect();
    if json {
        writeln!(out, "{}", serde_json::to_value(&changes)?)?;
        return Ok(());
    }
    for c in &changes {
        let what = match c.action {
            "installed" => "installed".to_string(),
            "chained" => format!(
                "installed; the hook that was there now runs after it ({}.coord-chained)",
                c.hook
            ),
            "restored" => "removed; the earlier hook is back".to_string(),
            "removed" => "removed".to_string(),
            "updated" => "updated (its time limit follows idle_wait)".to_string(),
            _ => "unchanged".to_string(),
        };
        writeln!(out, "{}: {what} ({})", c.hook, c.path)?;
    }
    if gemini_installed {
        writeln!(
            out,
            "note: Gemini CLI's shell runs git with no hooks and no ~/.gitconfig: the lease guards and commit trailers are skipped there (checkpoint still leaves out a branch that touches another agent's exclusive lease), and commits take the identity in this repository's own configuration"
        )?;
    }
    Ok(())
}

/// `git coord hook stop`: the agent CLI's stop hook. Reads its JSON on stdin; prints
/// `{"decision":"block","reason":...}` to keep the agent going, nothing to let it stop.
pub fn run_stop_hook(asked: crate::views::stop::Asked<'_>) -> Result<()> {
    let mut input = String::new();
    let decision = match std::io::stdin()
        .take(2 * 1024 * 1024)
        .read_to_string(&mut input)
    {
        Ok(_) => crate::views::stop::decide(&input, asked),
        Err(e) => crate::views::stop::Decision::Allow {
            why: format!("cannot read the hook input ({e}); letting the agent stop"),
        },
    };
    match decision {
        crate::views::stop::Decision::Block { reason } => {
            let mut out = std::io::stdout().lock();
            writeln!(
                out,
                "{}",
                serde_json::json!({ "decision": "block", "reason": reason })
            )?;
        }
        crate::views::stop::Decision::Allow { why } => {
            if !why.is_empty() {
                eprintln!("git-coord: {why}");
            }
        }
        crate::views::stop::Decision::Halt { reason } => {
            let mut out = std::io::stdout().lock();
            writeln!(
                out,
                "{}",
                serde_json::json!({ "continue": false, "stopReason": format!("git-coord: {reason}") })
            )?;
            eprintln!("git-coord: {reason}");
        }
    }
    Ok(())
}

/// `git coord hook after-tool`: the agent CLI's after-tool hook (mail mid-turn). Reads its JSON
/// on stdin; prints `{"hookSpecificOutput":{"hookEventName":...,"additionalContext":...}}` with
/// the messages to bring up, nothing when there are none. Never fails its client: whatever goes
/// wrong, it prints nothing and exits 0.
pub fn run_after_tool_hook(asked: crate::views::stop::Asked<'_>) -> Result<()> {
    use crate::views::midturn;
    let mut input = Vec::new();
    let mut stdin = std::io::stdin().lock();
    let read = (&mut stdin)
        .take(midturn::MAX_INPUT as u64 + 1)
        .read_to_end(&mut input);
    // The rest of a larger input (a tool's long output) is read and dropped, so the client's
    // write never fails on a closed pipe; only the first MiB is kept.
    let _ = std::io::copy(&mut stdin, &mut std::io::sink());
    let Ok(_) = read else { return Ok(()) };
    let Ok(input) = std::str::from_utf8(&input) else {
        return Ok(());
    };
    if let Some(injection) = midturn::inject(input, asked) {
        let answer = serde_json::json!({
            "hookSpecificOutput": {
                "hookEventName": injection.event,
                "additionalContext": injection.context,
            }
        });
        let _ = writeln!(std::io::stdout().lock(), "{answer}");
    }
    Ok(())
}

/// `pause`, `resume` and `cancel`.
pub fn team(
    coord: &Coord,
    what: &str,
    reason: Option<String>,
    workflow: Option<String>,
    out: &mut dyn Write,
    json: bool,
) -> Result<()> {
    use crate::ops::team::TeamState;
    let text = match (what, workflow) {
        ("pause", _) => {
            let t = crate::ops::team::set(coord, TeamState::Paused, reason)?;
            format!(
                "team paused by {}: no new claims; stop hooks let workers stop",
                t.by
            )
        }
        ("resume", _) => {
            crate::ops::team::set(coord, TeamState::Running, None)?;
            "team running: claims are open again".to_string()
        }
        (_, Some(epic)) => {
            let n = crate::ops::workflows::cancel(coord, &epic, reason.as_deref())?;
            format!("workflow {epic} cancelled: {n} claim(s) released, its agents told")
        }
        _ => {
            let done = crate::ops::workflows::cancel_all(coord, reason.as_deref())?;
            let stopped = match done.stopped.as_slice() {
                [] => String::new(),
                names => format!(", launched agent(s) stopped: {}", names.join(", ")),
            };
            format!(
                "team cancelled: {} claim(s) released{stopped}, every agent told",
                done.released
            )
        }
    };
    if json {
        writeln!(
            out,
            "{}",
            serde_json::json!({ "done": what, "message": text })
        )?;
    } else {
        writeln!(out, "{text}")?;
    }
    Ok(())
}

/// `git coord hook NAME [ARGS...]`: what the installed shims run.
pub fn run_hook(coord: &Coord, name: &str, args: &[String], json: bool) -> Result<()> {
    let report = match name {
        "pre-commit" => hooks::pre_commit(coord)?,
        "prepare-commit-msg" => {
            // Attribution must never stop a commit: a failure is a warning.
            let Some(file) = args.first() else {
                return Err(Error::invalid(
                    "hook",
                    name,
                    "git passes the commit message file as its first argument",
                ));
            };
            if let Err(e) =
                crate::ops::history::prepare_commit_msg(coord, &coord.start_dir.join(file))
            {
                eprintln!("warning: git-coord could not add the Coord-Agent trailers: {e}");
            }
            return Ok(());
        }
        "pre-push" => {
            let mut input = String::new();
            std::io::stdin().read_to_string(&mut input)?;
            let report = hooks::pre_push(coord, args.first().map(String::as_str), &input)?;
            report_guard(name, &report, json)?;
            // The push goes ahead: share refs/coord/* with the same remote. A failure here must
            // not stop the user's push; it is reported, and `git coord sync` settles it later.
            let mut err = std::io::stderr().lock();
            match hooks::share_on_push(coord, args.first().map(String::as_str)) {
                Ok(Some(remote)) => writeln!(err, "git-coord: refs/coord/* synced with {remote}")?,
                Ok(None) => {}
                Err(e) => writeln!(
                    err,
                    "warning: git-coord could not sync refs/coord/* with the remote: {e}; run `git coord sync` later"
                )?,
            }
            return Ok(());
        }
        other => {
            return Err(Error::invalid(
                "hook",
                other,
                "git-coord provides pre-commit, prepare-commit-msg, pre-push, stop and after-tool",
            ));
        }
    };
    report_guard(name, &report, json)
}

fn report_guard(name: &str, report: &GuardReport, json: bool) -> Result<()> {
    if report.conflicts.is_empty() {
        return Ok(());
    }
    let mut err = std::io::stderr().lock();
    if json {
        writeln!(err, "{}", serde_json::to_value(&report.conflicts)?)?;
    }
    let label = if report.warn_only {
        "warning"
    } else {
        "refused"
    };
    for c in &report.conflicts {
        writeln!(
            err,
            "{label}: {} is leased exclusively to {} (lease {}, pattern {}) until {}",
            c.path, c.holder, c.lease_id, c.pattern, c.expires
        )?;
    }
    if report.warn_only {
        return Ok(());
    }
    let what = if name == "pre-push" { "push" } else { "commit" };
    Err(Error::GuardRefused {
        what,
        count: report.conflicts.len(),
        lease: report.conflicts[0].lease_id.clone(),
    })
}
