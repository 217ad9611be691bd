//! The real agent CLIs, Claude Code, Codex CLI and Gemini CLI (pinned in tests/clients/package.json, installed
//! by tests/setup.sh), driven against a scripted model server (tests/model_server.py) on
//! loopback. Each session runs in an agent's worktree made by `git coord agent spawn`, with the
//! hooks and MCP server registered by `git coord hooks install`; the clients run with HOME in a
//! temporary folder and, where the machine allows it, in a network namespace with loopback only.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use serde_json::Value;

/// The folder the pinned CLIs are installed into.
fn clients_bin() -> PathBuf {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/node_modules/.bin");
    for name in ["claude", "codex", "gemini"] {
        assert!(
            bin.join(name).exists(),
            "the agent CLIs these tests drive are not installed ({} is missing): run tests/setup.sh, which installs the pinned versions with npm (it needs the npm registry)",
            bin.join(name).display()
        );
    }
    bin
}

/// Whether `unshare -n` works here (root, or user namespaces): then the clients see loopback only.
fn can_isolate_network() -> bool {
    Command::new("unshare")
        .args(["-n", "sh", "-c", "ip link set lo up"])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[derive(Clone, Copy, PartialEq)]
enum Client {
    Claude,
    Codex,
    Gemini,
}

/// A team with two ready tasks for role dev, an agent alice spawned for them, and the hooks of
/// both clients installed and committed on the integration branch.
struct Team {
    repo: TestRepo,
    alice: PathBuf,
    tasks: [String; 2],
}

fn team() -> Team {
    let repo = TestRepo::init();
    let first = repo.new_task("First job", &["--role", "dev"]);
    let second = repo.new_task("Second job", &["--role", "dev"]);
    let installed = repo.coord_ok(&INSTALL_ALL);
    for file in CLIENT_FILES {
        assert!(installed.contains(file), "{installed}");
    }
    repo.git_ok(&["add", "-A"]);
    repo.git_ok(&["commit", "-q", "-m", "git-coord hooks for the agent CLIs"]);
    let spawned = repo.coord_json(&["agent", "spawn", "alice", "--role", "dev"]);
    let alice = PathBuf::from(
        spawned["worktree"]
            .as_str()
            .expect("spawn names the worktree"),
    );
    assert!(alice.join(".codex/hooks.json").exists());
    Team {
        repo,
        alice,
        tasks: [first, second],
    }
}

/// What one session left behind.
struct Session {
    requests: Vec<Value>,
    output: String,
}

impl Session {
    /// The requests that asked the model for a turn of the agent (not side requests).
    fn turns(&self) -> Vec<&Value> {
        self.requests
            .iter()
            .filter(|r| {
                let path = r["path"].as_str().unwrap_or_default();
                let body = &r["body"];
                (path.starts_with("/v1/responses")
                    || path.contains(":streamGenerateContent")
                    || (path.starts_with("/v1/messages") && !path.contains("count_tokens")))
                    && body["tools"].as_array().is_some_and(|t| !t.is_empty())
            })
            .collect()
    }

    /// Whether any turn's request carries `needle` (in its messages, tools or instructions).
    fn sent(&self, needle: &str) -> bool {
        self.turns()
            .iter()
            .any(|r| r["body"].to_string().contains(needle))
    }
}

/// Runs one session of `client` in alice's worktree against the scripted model in `mode`.
fn run(team: &Team, client: Client, mode: &str) -> Session {
    run_in(team, client, mode, &team.alice, &[])
}

/// Runs one session of `client` in `dir`, with `env` added to its environment.
fn run_in(team: &Team, client: Client, mode: &str, dir: &Path, env: &[(&str, &str)]) -> Session {
    let bin = clients_bin();
    let tmp = team.repo.tmp();
    let home = tmp.join(format!("home-{mode}"));
    std::fs::create_dir_all(&home).unwrap();
    let log = tmp.join(format!("requests-{mode}.jsonl"));
    let port_file = tmp.join(format!("port-{mode}"));
    let out_file = tmp.join(format!("client-{mode}.out"));
    let mut path = vec![bin.clone()];
    path.extend(std::env::split_paths(&path_with_binary()));
    let path = std::env::join_paths(path).unwrap();
    // Codex runs the model's commands in a login shell, which takes PATH from /etc/profile: a
    // user's ~/.profile puts the tools back, as it would on their machine.
    std::fs::write(
        home.join(".profile"),
        format!("export PATH='{}'\n", path.to_string_lossy()),
    )
    .unwrap();
    let prompt = "Work on this team's tasks. Start: `git coord task claim --next --role dev`";
    let (setup, client_line) = match client {
        Client::Claude => (
            "",
            "claude -p \"$PROMPT\" --output-format stream-json --verbose --dangerously-skip-permissions",
        ),
        Client::Codex => (
            // The model provider: the scripted server, over the Responses API.
            "mkdir -p \"$HOME/.codex\"\n\
             printf 'model = \"scripted\"\\nmodel_provider = \"scripted\"\\n[model_providers.scripted]\\nname = \"scripted\"\\nbase_url = \"http://127.0.0.1:%s/v1\"\\nwire_api = \"responses\"\\nenv_key = \"SCRIPTED_MODEL_KEY\"\\n' \"$PORT\" > \"$HOME/.codex/config.toml\"\n",
            "codex exec --json --skip-git-repo-check --dangerously-bypass-approvals-and-sandbox --trust --dangerously-bypass-hook-trust \"$PROMPT\"",
        ),
        Client::Gemini => (
            // An API key rather than a Google login, the scripted server as the Gemini API's
            // base URL (GOOGLE_GEMINI_BASE_URL), and nothing sent anywhere else.
            "mkdir -p \"$HOME/.gemini\"\n\
             printf '{\"security\":{\"auth\":{\"selectedType\":\"gemini-api-key\"}},\"general\":{\"enableAutoUpdate\":false,\"enableAutoUpdateNotification\":false},\"privacy\":{\"usageStatisticsEnabled\":false}}\n' > \"$HOME/.gemini/settings.json\"\n\
             export GOOGLE_GEMINI_BASE_URL=\"http://127.0.0.1:$PORT\"\n",
            "gemini -p \"$PROMPT\" --yolo -m gemini-2.5-flash --output-format stream-json",
        ),
    };
    // The server and the client share the namespace; the client is bounded so that a broken
    // client fails the test rather than hanging it.
    let script = format!(
        "set -u\n\
         if [ \"$ISOLATED\" = 1 ]; then ip link set lo up || exit 90; fi\n\
         python3 \"$SERVER\" --mode \"$MODE\" --log \"$LOG\" --port-file \"$PORT_FILE\" &\n\
         server=$!\n\
         while [ ! -s \"$PORT_FILE\" ]; do kill -0 $server 2>/dev/null || exit 91; sleep 0.1; done\n\
         PORT=$(cat \"$PORT_FILE\")\n\
         export ANTHROPIC_BASE_URL=\"http://127.0.0.1:$PORT\"\n\
         {setup}\
         timeout -k 10 900 {client_line} > \"$OUT\" 2>&1 < /dev/null\n\
         rc=$?\n\
         kill $server\n\
         exit $rc\n"
    );
    let isolated = can_isolate_network();
    let mut cmd = if isolated {
        let mut c = team.repo.command("unshare", dir);
        c.args(["-n", "bash", "-c", &script]);
        c
    } else {
        eprintln!("note: `unshare -n` is not available here; the clients talk to 127.0.0.1 only");
        let mut c = team.repo.command("bash", dir);
        c.args(["-c", &script]);
        c
    };
    cmd.env("PATH", &path)
        .env("HOME", &home)
        .env("ISOLATED", if isolated { "1" } else { "0" })
        .env(
            "SERVER",
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/model_server.py"),
        )
        .env("MODE", mode)
        .env("LOG", &log)
        .env("PORT_FILE", &port_file)
        .env("OUT", &out_file)
        .env("PROMPT", prompt)
        .env("ANTHROPIC_API_KEY", "scripted-model-key")
        .env("SCRIPTED_MODEL_KEY", "scripted-model-key")
        .env("GEMINI_API_KEY", "scripted-model-key")
        .env("GEMINI_CLI_TRUST_WORKSPACE", "true")
        .env("IS_SANDBOX", "1")
        .env("DISABLE_AUTOUPDATER", "1")
        .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        .env("DISABLE_TELEMETRY", "1")
        .envs(env.iter().copied());
    let status = cmd.status().expect("bash runs");
    let output = std::fs::read_to_string(&out_file).unwrap_or_default();
    assert!(
        status.success(),
        "the client's session failed ({status}); its output:\n{output}"
    );
    let requests = std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .map(json)
        .collect();
    let session = Session { requests, output };
    assert!(
        !session.turns().is_empty(),
        "the client never asked the scripted model for a turn; its output:\n{}",
        session.output
    );
    session
}

/// Both tasks are done by alice, in git: the task documents and the audit log say so.
fn assert_both_done(team: &Team) {
    for id in &team.tasks {
        let task = team.repo.show(id);
        assert_eq!(task["state"], "done", "{task}");
        assert_eq!(task["assignee"], "alice", "{task}");
        assert_eq!(task["summary"], "finished by the scripted model", "{task}");
    }
    let log = team
        .repo
        .git_ok(&["log", "--format=%s", "refs/coord/tasks"]);
    for id in &team.tasks {
        assert!(log.contains(&format!("claim {id} by alice")), "{log}");
        assert!(log.contains(&format!("done {id} by alice")), "{log}");
    }
}

/// The stop hook's reasons reached the model as the next turn: after the first task was done,
/// the model was told of the second; while it held each, it was told how to finish it.
fn assert_reasons_reached_the_model(team: &Team, session: &Session) {
    let [first, second] = &team.tasks;
    assert!(
        session.sent(&format!("You hold task {first}: First job")),
        "the stop hook's reason for the first task never reached the model"
    );
    assert!(
        session.sent(&format!(
            "Ready work for role dev: {second} Second job. Claim it"
        )),
        "the stop hook's reason naming the second task never reached the model"
    );
    assert!(session.sent(&format!("You hold task {second}: Second job")));
}

/// The last turn the model was asked for answered the result of finishing the second task: the
/// hook then let the session end, and the client asked for nothing more.
fn assert_ended_when_nothing_was_left(team: &Team, session: &Session) {
    let turns = session.turns();
    let body = &turns.last().unwrap()["body"];
    let last = body["messages"]
        .as_array()
        .or_else(|| body["input"].as_array())
        .or_else(|| body["contents"].as_array())
        .and_then(|items| items.last())
        .expect("the last turn has a conversation");
    let text = last.to_string();
    assert!(
        text.contains("tool_result")
            || text.contains("function_call_output")
            || text.contains("functionResponse"),
        "the last turn should answer a tool's result: {text}"
    );
    assert!(
        text.contains(&team.tasks[1]) && text.contains("done"),
        "the last tool result should be the second task done: {text}"
    );
}

#[test]
fn claude_code_works_through_the_shell_tool_until_nothing_is_left() {
    let team = team();
    let session = run(&team, Client::Claude, "shell");
    assert_both_done(&team);
    assert_reasons_reached_the_model(&team, &session);
    // Claude Code says where the reason came from.
    assert!(session.sent("Stop hook"));
    // The work went through the shell tool: its results are the CLI's own words.
    assert!(session.sent(&format!("claimed {} First job", team.tasks[0])));
    assert_ended_when_nothing_was_left(&team, &session);
}

#[test]
fn claude_code_works_through_the_mcp_tools() {
    let team = team();
    let session = run(&team, Client::Claude, "mcp");
    assert_both_done(&team);
    assert_reasons_reached_the_model(&team, &session);
    // The client offered git-coord's tools to the model (Claude Code 2.1 lists MCP tools by name
    // and loads their schemas on demand).
    for tool in ["mcp__git-coord__task_claim", "mcp__git-coord__task_done"] {
        assert!(session.sent(tool), "{tool} was never offered to the model");
    }
    // ...and the calls went through them: their results are the MCP server's JSON.
    assert!(session.sent("\"tool_use_id\""));
    assert!(!session.sent(&format!("claimed {} First job", team.tasks[0])));
    assert_ended_when_nothing_was_left(&team, &session);
}

#[test]
fn codex_works_through_the_shell_tool_until_nothing_is_left() {
    let team = team();
    let session = run(&team, Client::Codex, "shell");
    assert_both_done(&team);
    assert_reasons_reached_the_model(&team, &session);
    assert!(session.sent(&format!("claimed {} First job", team.tasks[0])));
    assert!(session.sent("\"exec_command\""));
    assert_ended_when_nothing_was_left(&team, &session);
}

#[test]
fn codex_works_through_the_mcp_tools() {
    let team = team();
    let session = run(&team, Client::Codex, "mcp");
    assert_both_done(&team);
    assert_reasons_reached_the_model(&team, &session);
    // Codex offers an MCP server's tools as one namespace.
    let offered = session.turns()[0]["body"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "mcp__git_coord")
        .cloned()
        .expect("the git-coord MCP tools are offered to the model");
    let names: Vec<&str> = offered["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(names.contains(&"task_claim") && names.contains(&"task_done"));
    assert!(!session.sent(&format!("claimed {} First job", team.tasks[0])));
    assert_ended_when_nothing_was_left(&team, &session);
}

/// A model that never does anything: the stop hook tells it what to do a few times, then git-coord
/// lets it stop (`stop_max_blocks`), so the session ends by itself and the work stays open.
fn stuck(client: Client) {
    let team = team();
    let session = run(&team, client, "stuck");
    assert!(
        session.sent(&format!(
            "Ready work for role dev: {} First job",
            team.tasks[0]
        )),
        "the stop hook's reason never reached the model"
    );
    for id in &team.tasks {
        let task = team.repo.show(id);
        assert_eq!(task["state"], "open", "{task}");
    }
    // The model only ever answered with text: no tool ran.
    assert!(
        !session.sent("tool_result")
            && !session.sent("function_call_output")
            && !session.sent("functionResponse")
    );
    // git-coord's bound ended it: at most stop_max_blocks (3 by default) reasons reached the model,
    // fewer than Claude Code's own limit and where Codex and Gemini CLI have none.
    // Each block is one more turn: the first, then one per reason.
    let turns = session.turns().len();
    assert!(
        (2..=4).contains(&turns),
        "the model was asked for {turns} turns: the stop hook should have let it stop after 3 blocks"
    );
}

#[test]
fn claude_code_with_a_stuck_model_ends() {
    stuck(Client::Claude);
}

#[test]
fn codex_with_a_stuck_model_ends_within_the_bound_git_coord_sets() {
    // Codex has no limit of its own on repeated stop-hook blocks: only git-coord's ends this.
    stuck(Client::Codex);
}

#[test]
fn gemini_works_through_the_shell_tool_until_nothing_is_left() {
    let team = team();
    let session = run(&team, Client::Gemini, "shell");
    assert_both_done(&team);
    assert_reasons_reached_the_model(&team, &session);
    // Its shell tool is run_shell_command; its results are the CLI's own words.
    assert!(session.sent("\"run_shell_command\""));
    assert!(session.sent(&format!("claimed {} First job", team.tasks[0])));
    // The AfterAgent hook's reason comes back as a user turn of its own, the reason alone.
    let first = &team.tasks[0];
    let reason = format!("You hold task {first}: First job");
    assert!(
        session.turns().iter().any(|r| {
            r["body"]["contents"].as_array().is_some_and(|c| {
                c.iter().any(|turn| {
                    turn["role"] == "user"
                        && turn["parts"][0]["text"]
                            .as_str()
                            .is_some_and(|t| t.starts_with(&reason))
                })
            })
        }),
        "the reason never came back as a user turn"
    );
    assert_ended_when_nothing_was_left(&team, &session);
}

#[test]
fn gemini_works_through_the_mcp_tools() {
    let team = team();
    let session = run(&team, Client::Gemini, "mcp");
    assert_both_done(&team);
    assert_reasons_reached_the_model(&team, &session);
    // Gemini CLI offers an MCP server's tools as mcp_SERVER_TOOL.
    for tool in ["mcp_git-coord_task_claim", "mcp_git-coord_task_done"] {
        assert!(session.sent(tool), "{tool} was never offered to the model");
    }
    assert!(!session.sent(&format!("claimed {} First job", team.tasks[0])));
    assert_ended_when_nothing_was_left(&team, &session);
}

#[test]
fn gemini_with_a_stuck_model_ends_within_the_bound_git_coord_sets() {
    stuck(Client::Gemini);
}

/// The user parts of the last turn's conversation (Gemini's `contents`) that carry `needle`:
/// each reason the stop hook gave is one.
fn gemini_user_parts_with(session: &Session, needle: &str) -> usize {
    let turns = session.turns();
    let Some(last) = turns.last() else {
        return 0;
    };
    last["body"]["contents"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|turn| turn["role"] == "user")
        .flat_map(|turn| turn["parts"].as_array().cloned().unwrap_or_default())
        .filter(|part| part["text"].as_str().is_some_and(|t| t.contains(needle)))
        .count()
}

#[test]
fn gemini_gets_ready_through_mcp() {
    // Gemini CLI copies the parsed text of a tool result into structuredContent, which its MCP
    // SDK accepts only as an object: `ready` answers {"tasks": [...]}.
    let team = team();
    let session = run(&team, Client::Gemini, "ready");
    let answered = session
        .turns()
        .iter()
        .flat_map(|r| {
            r["body"]["contents"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .flat_map(|turn| turn["parts"].as_array().cloned().unwrap_or_default())
        .find(|part| part["functionResponse"]["name"] == "mcp_git-coord_ready")
        .expect("the ready tool's result went back to the model");
    let text = answered.to_string();
    assert!(
        text.contains(&team.tasks[0]) && text.contains(&team.tasks[1]),
        "ready's result should list both tasks: {text}"
    );
    assert!(!text.contains("expected record"), "{text}");
    // Then the work went on through the other tools, to the end.
    assert_both_done(&team);
    assert_ended_when_nothing_was_left(&team, &session);
}

#[test]
fn gemini_with_a_model_that_varies_a_read_only_call_ends_within_the_bound() {
    // Gemini CLI sends stop_hook_active: false after each retry turn that made tool calls; the
    // count is git-coord's own, per agent and session, so the bound holds all the same.
    let team = team();
    let session = run(&team, Client::Gemini, "varied");
    let first = format!("Ready work for role dev: {} First job", team.tasks[0]);
    let reasons = gemini_user_parts_with(&session, &first);
    assert!(
        (1..=3).contains(&reasons),
        "{reasons} reasons reached the model: the stop hook should have let it stop after 3 blocks"
    );
    // Each reason was followed by a read-only call (a brief), then the end of a turn.
    assert!(session.sent("functionResponse"));
    assert!(session.sent("git coord brief --max-chars"));
    for id in &team.tasks {
        assert_eq!(team.repo.show(id)["state"], "open");
    }
    // The prompt's turn and each reason's: two requests each (the call, then the text).
    let turns = session.turns().len();
    assert!(turns <= 2 * 4, "the model was asked for {turns} turns");
}

#[test]
fn codex_mcp_server_acts_as_the_agent_the_environment_names() {
    // Codex starts MCP servers with a reduced environment: GIT_COORD_AGENT reaches `git coord
    // mcp` through the env_vars line of the installed block. In the main checkout, with w1
    // named by the environment, the claim over MCP is w1's, as the hook's and the shell's are.
    let team = team();
    let main = team.repo.path.clone();
    let session = run_in(
        &team,
        Client::Codex,
        "mcp",
        &main,
        &[("GIT_COORD_AGENT", "w1")],
    );
    let first = &team.tasks[0];
    let task = team.repo.show(first);
    assert_eq!(task["assignee"], "w1", "{task}");
    assert_eq!(task["state"], "done", "{task}");
    let log = team
        .repo
        .git_ok(&["log", "--format=%s", "refs/coord/tasks"]);
    assert!(log.contains(&format!("claim {first} by w1")), "{log}");
    // The hook acted as w1 too: its reason named the task w1 held.
    assert!(session.sent(&format!("You hold task {first}: First job")));
    assert!(!session.sent(&format!("claimed {first} First job")));
}

/// HOOKS.md's table of what each client shows, does and skips names the tests that assert each
/// row: every test it names exists here, and every client test here is named by a row.
#[test]
fn hooks_md_names_the_tests_that_assert_its_table() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("docs/HOOKS.md")).expect("HOOKS.md");
    let source = std::fs::read_to_string(root.join("tests/real_clients.rs")).expect("the tests");
    let tests: Vec<&str> = source
        .split("#[test]\nfn ")
        .skip(1)
        .filter_map(|rest| rest.split('(').next())
        .filter(|name| *name != "hooks_md_names_the_tests_that_assert_its_table")
        .collect();
    let table = doc
        .split("## What each client shows, does and skips")
        .nth(1)
        .expect("the table's section")
        .split("\n## ")
        .next()
        .expect("its text");
    let rows: Vec<&str> = table
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| |"))
        .collect();
    assert!(rows.len() >= 9, "{rows:?}");
    let matches = |pattern: &str, name: &str| match pattern.split_once('*') {
        None => pattern == name,
        Some((before, after)) => {
            let after = after.trim_end_matches('*');
            ["claude_code", "codex", "gemini"]
                .iter()
                .any(|client| name.starts_with(&format!("{before}{client}{after}")))
        }
    };
    let mut named = Vec::new();
    for row in &rows {
        let last = row
            .trim_end_matches('|')
            .rsplit('|')
            .next()
            .expect("a last cell")
            .trim();
        if last.starts_with("not tested") {
            continue;
        }
        for pattern in last.split('`').skip(1).step_by(2) {
            let found: Vec<&&str> = tests.iter().filter(|t| matches(pattern, t)).collect();
            assert!(
                !found.is_empty(),
                "HOOKS.md names `{pattern}`, which no test is"
            );
            named.extend(found);
        }
    }
    for test in &tests {
        assert!(
            named.contains(&test),
            "{test} asserts something of a client that HOOKS.md's table does not name"
        );
    }
}

/// Mail mid-turn: the model's first tool call sends alice (whose session it is) an urgent message
/// from bob; the after-tool hook brings it up with that call's result, so the very next request
/// to the model carries it, once: no later call of the session repeats it.
fn hears_mail_mid_turn(client: Client) {
    let team = team();
    let prompt = "Work on this team's tasks. Start: `git coord --agent bob send --to alice --importance high --subject 'stop, the API changed' 'The login API takes a token now'`";
    let session = run_in(&team, client, "shell", &team.alice, &[("PROMPT", prompt)]);
    let inbox = json(
        &team
            .repo
            .coord_as_ok("alice", &["inbox", "--all", "--json"]),
    );
    let sent = inbox["messages"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["from"] == "bob"))
        .expect("bob's message reached alice's box")
        .clone();
    let id = sent["id"].as_str().expect("an id");
    let marker = format!("[high] {id} from bob");
    let turns = session.turns();
    let first = turns
        .iter()
        .position(|r| r["body"].to_string().contains(&marker))
        .unwrap_or_else(|| {
            panic!(
                "the message never reached the model; its output:\n{}",
                session.output
            )
        });
    assert!(first >= 1, "it arrived after the call that sent it");
    let header = "git-coord: 1 new message(s) for alice";
    assert!(turns[first]["body"].to_string().contains(header));
    // Once: the conversation the model was last sent holds it once, whatever calls followed.
    let last = turns.last().expect("a turn")["body"].to_string();
    assert_eq!(last.matches(header).count(), 1, "brought up more than once");
}

#[test]
fn claude_code_hears_mail_mid_turn() {
    hears_mail_mid_turn(Client::Claude);
}

#[test]
fn codex_hears_mail_mid_turn() {
    hears_mail_mid_turn(Client::Codex);
}

#[test]
fn gemini_hears_mail_mid_turn() {
    hears_mail_mid_turn(Client::Gemini);
}
