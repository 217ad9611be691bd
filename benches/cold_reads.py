#!/usr/bin/env python3
"""Cold and warm reads of a task store: the index against none, the fast summary reader against
serde-saphyr (docs/PERFORMANCE.md). Usage: cold_reads.py BINARY TASKS RUNS. Stores are made
once under $TMPDIR (git fast-import), one as git-coord writes documents, one with a comment
line on top of each, which sends every document to the YAML parser."""
import os, subprocess, sys, time, shutil, statistics
BIN = os.path.abspath(sys.argv[1]); N = int(sys.argv[2]); RUNS = int(sys.argv[3])
def doc(n, comment):
    id_ = "%02x%010x" % ((n * 37) % 256, n)
    state = ["open", "claimed", "done", "blocked"][n % 4]
    d = ("# written by hand\n" if comment else "") + \
        f"format: 1\nid: {id_}\ntitle: Task number {n}\ntype: task\nstate: {state}\npriority: {n%5}\nrole: dev\nlabels:\n- l{n%3}\n"
    if state != "open": d += f"assignee: agent{n%7}\n"
    d += 'created: "2026-01-01T00:00:00.000Z"\ncreated_by: olga\nupdated: "2026-01-02T00:00:00.000Z"\n'
    d += "description: |\n  Some words about the task.\n  Another line.\nhistory:\n- at: \"2026-01-01T00:00:00.000Z\"\n  agent: olga\n  op: new\n"
    return id_, d
def make(path, comment):
    if os.path.exists(path): return
    os.makedirs(path)
    env = dict(os.environ, GIT_CONFIG_GLOBAL="/dev/null", GIT_CONFIG_NOSYSTEM="1")
    subprocess.run(["git", "init", "-q", path], check=True, env=env)
    subprocess.run(["git", "-C", path, "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-q", "--allow-empty", "-m", "i"], check=True, env=env)
    out = bytearray()
    docs = [doc(n, comment) for n in range(N)]
    for i, (_, d) in enumerate(docs):
        b = d.encode(); out += b"blob\nmark :%d\ndata %d\n" % (i + 1, len(b)) + b + b"\n"
    out += b"commit refs/coord/tasks\ncommitter T <t@e> 0 +0000\ndata 5\nbulk\n"
    fmt = b"format: 1\nkind: tasks\n"
    out += b"M 100644 inline coord.yaml\ndata %d\n" % len(fmt) + fmt
    for i, (id_, _) in enumerate(docs):
        out += b"M 100644 :%d tasks/%s/%s.yaml\n" % (i + 1, id_[:2].encode(), id_.encode())
    subprocess.run(["git", "-C", path, "fast-import", "--quiet"], input=bytes(out), check=True, env=env)
    subprocess.run(["git", "-C", path, "repack", "-adq"], check=True, env=env)
def timed(path, args, cold):
    ts = []
    env = dict(os.environ, GIT_CONFIG_GLOBAL="/dev/null", GIT_CONFIG_NOSYSTEM="1", GIT_COORD_AGENT="olga")
    subprocess.run([BIN] + args, cwd=path, env=env, stdout=subprocess.DEVNULL, check=True)
    for _ in range(RUNS):
        if cold: shutil.rmtree(os.path.join(path, ".git/coord/cache"), ignore_errors=True)
        t = time.perf_counter()
        subprocess.run([BIN] + args, cwd=path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        ts.append(time.perf_counter() - t)
    return statistics.median(ts) * 1000
base = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"coord-cold-reads-{N}")
make(base + "-fast", False); make(base + "-parser", True)
for cmd in (["ready"], ["task", "list"]):
    for cold in (False, True):
        f = timed(base + "-fast", cmd, cold)
        p = timed(base + "-parser", cmd, cold) if cold else None
        print(f"{N} {' '.join(cmd):10} {'cold (no index)' if cold else 'warm (index)':16} fast reader {f:8.1f} ms" + (f"   parser {p:8.1f} ms" if p else ""))
