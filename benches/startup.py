#!/usr/bin/env python3
"""Per-command cost of two git-coord binaries, run by turns on one throwaway repository.

    python3 benches/startup.py A B [--runs 300] [--tasks 2000]

e.g. A = target/release/git-coord, B = target/x86_64-unknown-linux-gnu/release/git-coord (built
with --config .cargo/static.toml). Prints, per command, each binary's median CPU (user + system
of the process, from wait4), wall time and minor page faults. docs/PERFORMANCE.md has figures.
"""

import argparse
import os
import statistics
import subprocess
import tempfile
import time


def run(argv):
    """One run: (wall ms, cpu ms, minor faults); fails loudly when the command fails."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    start = time.perf_counter()
    pid = os.posix_spawn(
        argv[0],
        argv,
        os.environ,
        file_actions=[(os.POSIX_SPAWN_DUP2, devnull, 1), (os.POSIX_SPAWN_DUP2, devnull, 2)],
    )
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - start
    os.close(devnull)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {status}")
    return wall * 1e3, (usage.ru_utime + usage.ru_stime) * 1e3, usage.ru_minflt


def make_repo(binary, tasks, at):
    git = ["git", "-C", at]
    subprocess.run(["git", "init", "-q", at], check=True)
    subprocess.run(git + ["config", "user.name", "bench"], check=True)
    subprocess.run(git + ["config", "user.email", "bench@example.com"], check=True)
    subprocess.run(git + ["commit", "-q", "--allow-empty", "-m", "init"], check=True)
    subprocess.run([binary, "-C", at, "init"], check=True, stdout=subprocess.DEVNULL)
    for i in range(tasks):
        subprocess.run(
            [binary, "-C", at, "task", "new", f"Task {i}", "--priority", str(i % 4)],
            check=True,
            stdout=subprocess.DEVNULL,
        )


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binaries", nargs=2)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--tasks", type=int, default=2000)
    opts = parser.parse_args()
    binaries = [os.path.abspath(b) for b in opts.binaries]
    # Every run of the claim takes one task, and each binary has a warm-up run.
    if opts.tasks < 2 * (opts.runs + 1):
        raise SystemExit("--tasks must be at least twice --runs + 2: each claim takes a task")
    with tempfile.TemporaryDirectory() as tmp:
        repo = os.path.join(tmp, "repo")
        make_repo(binaries[0], opts.tasks, repo)
        os.chdir(repo)
        cases = [
            ("--version", ["--version"]),
            (f"ready ({opts.tasks} tasks)", ["ready", "--any-role"]),
            ("task claim --next", ["--agent", "alice", "task", "claim", "--next", "--any-role",
                                   "--offline"]),
        ]
        for name, args in cases:
            seen = {b: [] for b in binaries}
            for b in binaries:
                run([b] + args)
            for i in range(opts.runs):
                # By turns, A B B A ..., so that both meet the machine in the same moments.
                for b in binaries if i % 2 == 0 else binaries[::-1]:
                    seen[b].append(run([b] + args))
            print(f"{name}, median of {opts.runs}:")
            for b in binaries:
                wall, cpu, faults = (statistics.median(r[k] for r in seen[b]) for k in range(3))
                print(f"  {b}: cpu {cpu:.2f} ms, wall {wall:.2f} ms, minor faults {faults:.0f}")


main()
