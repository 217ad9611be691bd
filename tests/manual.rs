//! The manual and the shell completions: generated from the command definitions, found by `man`,
//! `git help coord` and `git coord --help` for a binary installed in PREFIX/bin, and the
//! completion scripts that `git coord completions SHELL` prints.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// A copy of the binary installed as `cargo install` does: PREFIX/bin/git-coord, with nothing in
/// PREFIX/share yet. Returns the prefix.
fn installed(repo: &TestRepo) -> PathBuf {
    let prefix = repo.tmp().join("cargo");
    std::fs::create_dir_all(prefix.join("bin")).unwrap();
    // A hard link where it can be: a copy is a file this process has open for writing, and a
    // test thread that forks meanwhile keeps it open until its child execs, so running the copy
    // can fail with "Text file busy".
    let dest = prefix.join("bin/git-coord");
    if std::fs::hard_link(BIN, &dest).is_err() {
        std::fs::copy(BIN, &dest).unwrap();
    }
    prefix
}

const MAN_MISSING: &str = "this test needs `man` (man-db): run tests/setup.sh";

/// A command run with the installed copy first on PATH and no MANPATH, as in a user's shell.
fn with_prefix(repo: &TestRepo, prefix: &Path, program: &str) -> Command {
    let mut cmd = repo.command(program, &repo.path);
    let mut path = vec![prefix.join("bin")];
    path.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    cmd.env("PATH", std::env::join_paths(path).unwrap())
        .env("MANPAGER", "cat")
        .env("PAGER", "cat")
        .env("GIT_PAGER", "cat");
    cmd
}

#[test]
fn after_one_run_man_git_help_and_help_find_the_manual() {
    let repo = TestRepo::init();
    let prefix = installed(&repo);
    let page = prefix.join("share/man/man1/git-coord.1");
    assert!(!page.exists());
    // Any command at all puts the manual in place, even one that only prints the version.
    let version = with_prefix(&repo, &prefix, "git")
        .args(["coord", "--version"])
        .output()
        .unwrap();
    assert!(
        stdout(&version).starts_with("git-coord "),
        "{}",
        stdout(&version)
    );
    assert!(
        page.exists(),
        "the manual is written beside the binary's bin/"
    );
    // man finds it through PATH alone (man-db maps PREFIX/bin to PREFIX/share/man).
    let found = with_prefix(&repo, &prefix, "man")
        .args(["-w", "git-coord"])
        .output()
        .expect(MAN_MISSING);
    assert_eq!(
        stdout(&found).trim(),
        page.display().to_string(),
        "{}",
        stderr(&found)
    );
    for args in [&["coord", "--help"][..], &["help", "coord"][..]] {
        let out = with_prefix(&repo, &prefix, "git")
            .args(args)
            .output()
            .unwrap();
        // man justifies lines: compare with single spaces.
        let text = stdout(&out)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        assert!(out.status.success(), "git {args:?}: {}", stderr(&out));
        assert!(
            text.contains("SYNOPSIS") && text.contains("git coord"),
            "git {args:?}:\n{text}"
        );
        assert!(text.contains("Create, claim and finish tasks"), "{text}");
    }
    // One page for each command, from the same definitions as the command line.
    let claim = with_prefix(&repo, &prefix, "man")
        .arg("git-coord-task-claim")
        .output()
        .expect(MAN_MISSING);
    let text = stdout(&claim);
    assert!(
        text.contains("--next") && text.contains("Claim the most urgent ready task"),
        "{text}"
    );
}

#[test]
fn man_writes_the_pages_into_a_folder() {
    let repo = TestRepo::init();
    let dir = repo.tmp().join("manual");
    let out = json(&repo.coord_ok(&["man", "--dir", dir.to_str().unwrap(), "--json"]));
    let pages = out["pages"].as_u64().unwrap();
    let files = std::fs::read_dir(dir.join("man1")).unwrap().count() as u64;
    assert_eq!(pages, files);
    for name in [
        "git-coord.1",
        "git-coord-checkpoint.1",
        "git-coord-hooks-install.1",
    ] {
        assert!(dir.join("man1").join(name).exists(), "{name}");
    }
    let install = std::fs::read_to_string(dir.join("man1/git-coord-hooks-install.1")).unwrap();
    assert!(install.contains("codex"), "{install}");

    // A relative --dir is relative to -C, as every path on the command line is.
    let base = repo.tmp().display().to_string();
    repo.coord_ok(&["-C", &base, "man", "--dir", "pages"]);
    assert!(repo.tmp().join("pages/man1/git-coord.1").exists());
    // --agent is checked here too, though no repository is opened.
    let err = fails(&repo.coord(&["--agent", "no good", "man", "--dir", "x"]), 1);
    assert!(err.contains("agent name"), "{err}");
}

#[test]
fn bash_completes_git_coord_and_git_dash_coord() {
    let repo = TestRepo::init();
    let script = repo.coord_ok(&["completions", "bash"]);
    let file = repo.tmp().join("git-coord.bash");
    std::fs::write(&file, script).unwrap();
    let git_completion = "/usr/share/bash-completion/completions/git";
    assert!(
        Path::new(git_completion).exists(),
        "git's bash completion is missing: run tests/setup.sh"
    );
    let probe = format!(
        r#"source {git_completion}
source {file}
complete_line() {{
  COMP_LINE="$1"; COMP_POINT=${{#COMP_LINE}}
  read -ra COMP_WORDS <<< "$1"; COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); COMPREPLY=()
  "$2" "${{COMP_WORDS[0]}}" "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
  echo "${{COMPREPLY[*]}}"
}}
complete_line "git coord task cl" __git_wrap__git_main
complete_line "git-coord hooks ins" _git__coord
"#,
        file = file.display()
    );
    let out = repo
        .command("bash", &repo.path)
        .args(["-c", &probe])
        .output()
        .unwrap();
    assert_eq!(stdout(&out), "claim\ninstall\n", "{}", stderr(&out));
}

#[test]
fn zsh_and_fish_scripts_name_the_commands() {
    let repo = TestRepo::init();
    let zsh = repo.coord_ok(&["completions", "zsh"]);
    assert!(zsh.starts_with("#compdef git-coord"), "{zsh}");
    assert!(zsh.contains("'claim:Claim a task"), "{zsh}");
    let fish = repo.coord_ok(&["completions", "fish"]);
    assert!(fish.contains("complete -c git-coord"), "{fish}");
    let err = fails(&repo.coord(&["completions", "tcsh"]), 2);
    assert!(err.contains("possible values: bash"), "{err}");
}
