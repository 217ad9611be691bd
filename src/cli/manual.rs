//! The manual and the shell completions, generated from the clap definitions so they never drift
//! from the commands: `git coord --help` (git runs `man git-coord`), `git help coord`,
//! `man git-coord-task-claim`, and `git coord completions bash|zsh|fish`.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use clap::CommandFactory;

use super::Cli;

/// The command tree as the manual names it: `git-coord`, with `git coord` in the synopsis.
fn command() -> clap::Command {
    Cli::command().name("git-coord").bin_name("git coord")
}

/// Writes one page for git-coord and one for each subcommand (`git-coord-task-claim.1`) into
/// `DIR/man1`. Returns how many pages were written.
pub fn write_pages(dir: &Path) -> io::Result<usize> {
    let man1 = dir.join("man1");
    std::fs::create_dir_all(&man1)?;
    let mut cmd = command();
    cmd.build();
    let mut written = 0;
    write_tree(&cmd, "git-coord", &man1, &mut written)?;
    Ok(written)
}

fn write_tree(cmd: &clap::Command, name: &str, man1: &Path, written: &mut usize) -> io::Result<()> {
    let page = cmd.clone().name(name.to_string());
    let mut bytes = Vec::new();
    clap_mangen::Man::new(page)
        .title(name.to_uppercase())
        .section("1")
        .manual("Git Coord Manual")
        .source(format!("git-coord {}", env!("CARGO_PKG_VERSION")))
        .render(&mut bytes)?;
    // Write beside, then rename: a reader never sees half a page.
    let path = man1.join(format!("{name}.1"));
    let tmp = man1.join(format!(".{name}.1.tmp"));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, &path)?;
    *written += 1;
    for sub in cmd.get_subcommands() {
        if sub.get_name() == "help" {
            continue;
        }
        write_tree(sub, &format!("{name}-{}", sub.get_name()), man1, written)?;
    }
    Ok(())
}

/// Where `man` looks for the pages of a program installed in `PREFIX/bin`: man-db adds
/// `PREFIX/share/man` for each `PREFIX/bin` on PATH, when that folder exists (`~/.cargo/bin`
/// gives `~/.cargo/share/man`). None when the binary is not in a folder named `bin`.
pub fn default_dir() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let bin = exe.parent()?;
    if bin.file_name()? != "bin" {
        return None;
    }
    Some(bin.parent()?.join("share").join("man"))
}

/// Puts the manual where `man` finds it, the first time an installed binary runs (and after
/// each reinstall): one `stat` when it is already there. Never fails a command: a folder that
/// cannot be written is left alone.
pub fn ensure_installed() {
    let Some(dir) = default_dir() else {
        return;
    };
    let page = dir.join("man1").join("git-coord.1");
    let stale = match (std::fs::metadata(&page), std::env::current_exe()) {
        (Ok(page), Ok(exe)) => match (
            page.modified(),
            std::fs::metadata(exe).and_then(|m| m.modified()),
        ) {
            (Ok(page), Ok(exe)) => page < exe,
            _ => false,
        },
        (Err(_), _) => true,
        _ => false,
    };
    if stale {
        let _ = write_pages(&dir);
    }
}

/// The completion script for `shell`, for the command `git-coord` and for `git coord` (bash:
/// git's own completion hands `git coord ...` to `_git_coord`).
pub fn completions(shell: clap_complete::Shell, out: &mut dyn Write) -> io::Result<()> {
    let mut cmd = command().bin_name("git-coord");
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, "git-coord", &mut script);
    if shell == clap_complete::Shell::Bash {
        // The subcommands' usage names say `git coord`, which the generator spells
        // `git__subcmd__coord` in the names it dispatches on; the program is `git-coord`.
        let text = String::from_utf8_lossy(&script).replace("git__subcmd__coord", "git__coord");
        out.write_all(text.as_bytes())?;
        out.write_all(BASH_GIT_SHIM.as_bytes())?;
    } else {
        out.write_all(&script)?;
    }
    Ok(())
}

/// git's bash completion calls `_git_coord` for `git coord <TAB>`: it is handed to the
/// generated completion as if `git-coord` had been typed.
const BASH_GIT_SHIM: &str = r#"
# `git coord <TAB>`: git's completion (git-completion.bash) calls _git_coord.
_git_coord() {
    local COMP_WORDS=(git-coord "${words[@]:2}")
    local COMP_CWORD=$((cword - 1))
    _git__coord git-coord "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
}
"#;
