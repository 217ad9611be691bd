//! Mail mid-turn: what the after-tool hook of agent CLIs (Claude Code's and Codex's PostToolUse,
//! Gemini CLI's AfterTool) adds to the model's context. The agent's unread messages not brought
//! up yet in this session, most important first, within a character budget; what does not fit is
//! counted and pointed to (`git coord inbox`). Each message is brought up once per agent and
//! session (remembered in `<common dir>/coord/injected/<agent>`, local to the clone), and stays
//! unread. Any fault brings up nothing: the tool call goes on as if there were no hook.

use std::collections::HashSet;
use std::io::{Read, Seek, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::model::message::MessageSummary;
use crate::ops::context::Coord;
use crate::ops::messages::{INBOX_REF, InboxFilter, Messages, clip};
use crate::views::stop::{Asked, session_key};

/// The most characters added to the model's context by one call.
pub const BUDGET: usize = 1500;
/// The most of a message's body shown.
const BODY_CHARS: usize = 400;
/// Messages whose bodies are read for one call: more could not fit in the budget.
const MOST_SHOWN: usize = 12;
/// The most of the hook's input parsed. The tool's whole output comes with it: a larger input is
/// read to its end (so the client's write never fails) but not parsed, and nothing is added.
pub const MAX_INPUT: usize = 1024 * 1024;
/// How long a call waits for another hook of the same agent (a parallel tool call) to finish.
const LOCK_WAIT: Duration = Duration::from_millis(200);
/// Sessions whose brought-up messages are remembered, the current one included.
const SESSIONS_KEPT: usize = 8;

/// The hook events whose output may carry `hookSpecificOutput.additionalContext`, and which the
/// answer must name as the input did (Claude Code refuses another name).
const EVENTS: [&str; 4] = [
    "PostToolUse",
    "AfterTool",
    "UserPromptSubmit",
    "BeforeAgent",
];

/// What to add to the model's context, for the event the client named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Injection {
    pub event: String,
    pub context: String,
}

#[derive(Deserialize)]
struct HookInput {
    cwd: Option<String>,
    session_id: Option<String>,
    hook_event_name: Option<String>,
}

/// Decides from the hook's JSON input what to add: None when there is nothing new, and on any
/// fault (bad input, no repository, an unreadable inbox).
pub fn inject(input: &str, asked: Asked<'_>) -> Option<Injection> {
    // An object only (a derived struct would also take a JSON array).
    if input.len() > MAX_INPUT || !input.trim_start().starts_with('{') {
        return None;
    }
    let input: HookInput = serde_json::from_str(input).ok()?;
    let event = input.hook_event_name.as_deref().unwrap_or("PostToolUse");
    if !EVENTS.contains(&event) {
        return None;
    }
    let cwd = match &input.cwd {
        Some(dir) => asked.dir.join(dir),
        None => asked.dir.to_path_buf(),
    };
    let session = match &input.session_id {
        Some(id) => session_key(id),
        None => session_key(""),
    };
    let coord = Coord::open(&cwd, asked.agent.map(str::to_string)).ok()?;
    let context = new_mail(&coord, &session).ok()??;
    Some(Injection {
        event: event.to_string(),
        context,
    })
}

/// The text for the unread messages not brought up yet in `session`, recording them as brought
/// up; None when there are none.
fn new_mail(coord: &Coord, session: &str) -> crate::error::Result<Option<String>> {
    if coord.repo.ref_tip(INBOX_REF)?.is_none() {
        return Ok(None); // no mail here at all
    }
    let agent = coord.actor()?.agent;
    let Some(mut ledger) = Ledger::open(ledger_file(coord, &agent)) else {
        return Ok(None);
    };
    let messages = Messages::new(coord);
    // Unread only, in the inbox's order: most important first, then the newest.
    let inbox = messages.inbox(&agent, &InboxFilter::default())?;
    let told = ledger.told(session);
    let fresh: Vec<&MessageSummary> = inbox
        .messages
        .iter()
        .map(|item| &item.message)
        .filter(|m| !told.contains(m.id.as_str()))
        .collect();
    if fresh.is_empty() {
        return Ok(None);
    }
    let ids: Vec<&str> = fresh
        .iter()
        .take(MOST_SHOWN)
        .map(|m| m.id.as_str())
        .collect();
    let bodies = messages.open_many(&ids)?;
    let text = compose(&agent, &fresh, |id| {
        bodies.iter().find(|m| m.id == id).map(|m| m.body.as_str())
    });
    // Every message counted is brought up: shown, or named in the count of those left out.
    let unread: HashSet<&str> = inbox
        .messages
        .iter()
        .map(|i| i.message.id.as_str())
        .collect();
    ledger.record(session, fresh.iter().map(|m| m.id.as_str()), &unread);
    Ok(Some(text))
}

/// The context for `fresh` (in order), within `BUDGET` characters: a line that says what this is,
/// then each message that fits (its importance, id, sender, subject and the start of its body),
/// then how many were left out and how to see them.
fn compose<'a>(
    agent: &str,
    fresh: &[&MessageSummary],
    body_of: impl Fn(&str) -> Option<&'a str>,
) -> String {
    let mut text = format!(
        "git-coord: {} new message(s) for {agent}, most important first. They stay unread: `git coord read ID` opens one and marks it read; `git coord inbox` lists them all.\n",
        fresh.len()
    );
    // Room kept for the line that counts what was left out.
    const TAIL: usize = 120;
    let mut shown = 0;
    for m in fresh.iter().take(MOST_SHOWN) {
        let left = BUDGET.saturating_sub(text.chars().count() + TAIL);
        let head = format!(
            "[{}] {} from {}: \"{}\"\n",
            m.importance.as_str(),
            m.id,
            m.from,
            clip(&m.subject, 120)
        );
        let head_chars = head.chars().count();
        if head_chars + 20 > left && shown > 0 {
            break;
        }
        let body = body_of(&m.id).unwrap_or(&m.first_line).trim();
        let room = BODY_CHARS.min(left.saturating_sub(head_chars + 3));
        // A one-line message's subject is its text (send's default): said once.
        let entry = match body == m.subject {
            true => head,
            false => format!("{head}{}\n", indented(&clip(body, room.max(20)))),
        };
        if entry.chars().count() > left && shown > 0 {
            break;
        }
        text.push_str(&entry);
        shown += 1;
    }
    let more = fresh.len() - shown;
    if more > 0 {
        text.push_str(&format!(
            "{more} more not shown here (they will not be repeated): see them with `git coord inbox`.\n"
        ));
    }
    text.truncate(text.trim_end().len());
    text
}

/// The body's lines, each indented by two spaces, blank lines dropped.
fn indented(body: &str) -> String {
    body.lines()
        .map(str::trim_end)
        .filter(|l| !l.trim().is_empty())
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn ledger_file(coord: &Coord, agent: &str) -> PathBuf {
    coord
        .repo
        .common_dir()
        .join("coord")
        .join("injected")
        .join(agent)
}

/// Which messages were brought up, in which session: `SESSION ID` a line, the current session's
/// first. Held locked (flock, released when the process ends, even by a crash) from before the
/// inbox is read until the new lines are written, so parallel tool calls bring up each message
/// once.
struct Ledger {
    file: std::fs::File,
    lines: Vec<(String, String)>,
}

impl Ledger {
    /// Opens and locks the ledger; None when it cannot (then nothing is brought up).
    fn open(path: PathBuf) -> Option<Ledger> {
        std::fs::create_dir_all(path.parent()?).ok()?;
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .ok()?;
        let started = Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) if started.elapsed() < LOCK_WAIT => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(_) => return None,
            }
        }
        let mut text = String::new();
        // Bounded: a damaged or huge file reads as what fits, and is rewritten pruned.
        (&mut file)
            .take(4 * 1024 * 1024)
            .read_to_string(&mut text)
            .ok()?;
        let lines = text
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(s, id)| (s.to_string(), id.to_string()))
            .collect();
        Some(Ledger { file, lines })
    }

    fn told(&self, session: &str) -> HashSet<&str> {
        self.lines
            .iter()
            .filter(|(s, _)| s == session)
            .map(|(_, id)| id.as_str())
            .collect()
    }

    /// Adds `ids` to `session`, and keeps of the rest only the messages still unread (a read one
    /// is never brought up again) and the latest sessions.
    fn record<'a>(
        &mut self,
        session: &str,
        ids: impl Iterator<Item = &'a str>,
        unread: &HashSet<&str>,
    ) {
        let mut out = String::new();
        for id in ids {
            out.push_str(&format!("{session} {id}\n"));
        }
        let mut sessions = vec![session];
        for (s, id) in &self.lines {
            if !unread.contains(id.as_str()) {
                continue;
            }
            if !sessions.contains(&s.as_str()) {
                if sessions.len() >= SESSIONS_KEPT {
                    continue;
                }
                sessions.push(s);
            }
            out.push_str(&format!("{s} {id}\n"));
        }
        // A failed write costs only a message brought up again.
        let _ = self.file.set_len(0);
        let _ = self.file.rewind();
        let _ = self.file.write_all(out.as_bytes());
    }
}
