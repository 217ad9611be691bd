//! Launched agents' output, stamped: `<common git dir>/coord/logs/<agent>.log`, one line of the
//! agent's output per line of the file, each after the time it was read
//! (`2025-05-01T09:30:00.123Z <text>`). The process that runs an agent's command writes it
//! (ops/launch.rs); it rotates the file once it would pass a size (10 MiB by default), keeping
//! one previous file, `<agent>.log.1`. Reading gathers several agents' files in time order and
//! follows them as they grow.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::model::time;
use crate::ops::context::Coord;

/// The size a log reaches before it is rotated.
pub const MAX_LOG_BYTES: u64 = 10 * 1024 * 1024;
/// The longest line kept whole: longer output is cut into lines of this size.
const MAX_LINE: usize = 64 * 1024;

pub fn logs_dir(coord: &Coord) -> PathBuf {
    coord.repo.common_dir().join("coord").join("logs")
}

pub fn log_file(coord: &Coord, agent: &str) -> PathBuf {
    logs_dir(coord).join(format!("{agent}.log"))
}

fn previous(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".1");
    PathBuf::from(name)
}

/// Appends stamped lines to one agent's log, rotating it at `max` bytes.
pub struct LogWriter {
    path: PathBuf,
    file: File,
    size: u64,
    max: u64,
}

impl LogWriter {
    pub fn open(path: &Path, max: u64) -> Result<LogWriter> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        let size = file.metadata()?.len();
        Ok(LogWriter {
            path: path.to_path_buf(),
            file,
            size,
            max,
        })
    }

    /// Writes `text` (without its newline) as one line stamped now.
    pub fn line(&mut self, text: &[u8]) -> Result<()> {
        let stamp = time::now();
        let len = (stamp.len() + 2 + text.len()) as u64;
        if self.size > 0 && self.size + len > self.max {
            // One previous file is kept; a reader that has the old one open reads it to its end.
            std::fs::rename(&self.path, previous(&self.path))?;
            *self = LogWriter::open(&self.path, self.max)?;
        }
        let mut buf = Vec::with_capacity(len as usize);
        buf.extend_from_slice(stamp.as_bytes());
        buf.push(b' ');
        buf.extend_from_slice(text);
        buf.push(b'\n');
        self.file.write_all(&buf)?;
        self.size += len;
        Ok(())
    }

    /// Copies `input` into the log line by line until it ends, stamping each line as it is read;
    /// a line longer than 64 KiB is cut, and a last line without a newline is kept.
    pub fn copy_lines(&mut self, mut input: impl Read) -> Result<()> {
        let mut pending: Vec<u8> = Vec::new();
        let mut chunk = vec![0u8; 16 * 1024];
        loop {
            let n = match input.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            };
            pending.extend_from_slice(&chunk[..n]);
            let mut start = 0;
            while let Some(end) = pending[start..].iter().position(|&b| b == b'\n') {
                self.line(&pending[start..start + end])?;
                start += end + 1;
            }
            pending.drain(..start);
            while pending.len() >= MAX_LINE {
                self.line(&pending[..MAX_LINE])?;
                pending.drain(..MAX_LINE);
            }
        }
        if !pending.is_empty() {
            self.line(&pending)?;
        }
        Ok(())
    }
}

/// One line of an agent's output.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LogLine {
    pub agent: String,
    /// When it was read (a line without a stamp, from an older build, takes its predecessor's).
    pub at: String,
    pub text: String,
}

/// Splits a stamped line; an unstamped one keeps `last` as its time.
fn parse_line(agent: &str, line: &str, last: &mut String) -> LogLine {
    let stamped = line
        .split_once(' ')
        .filter(|(stamp, _)| stamp.len() == 24 && time::parse(stamp).is_some());
    let text = match stamped {
        Some((stamp, text)) => {
            *last = stamp.to_string();
            text
        }
        None => line,
    };
    LogLine {
        agent: agent.to_string(),
        at: last.clone(),
        text: text.to_string(),
    }
}

/// The agents that have a log here, by name.
pub fn logged_agents(coord: &Coord) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(logs_dir(coord))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_suffix(".log").map(str::to_string)
        })
        .filter(|n| crate::model::name::validate("agent name", n).is_ok())
        .collect();
    names.sort();
    names
}

/// Keeps an offset into each agent's current log, to read what was added since.
pub struct LogFollower {
    agents: Vec<String>,
    all: bool,
    open: BTreeMap<String, Followed>,
    since: Option<String>,
}

struct Followed {
    file: File,
    inode: u64,
    partial: Vec<u8>,
    last: String,
}

impl LogFollower {
    /// Follows `agents` (every agent with a log, now and later, when empty), keeping only lines
    /// stamped at or after `since`.
    pub fn new(agents: Vec<String>, since: Option<String>) -> LogFollower {
        LogFollower {
            all: agents.is_empty(),
            agents,
            open: BTreeMap::new(),
            since,
        }
    }

    /// Every line written since the last call (the first call: the whole kept logs, the previous
    /// file first), in time order across agents.
    pub fn poll(&mut self, coord: &Coord) -> Result<Vec<LogLine>> {
        if self.all {
            self.agents = logged_agents(coord);
        }
        let mut lines = Vec::new();
        for agent in self.agents.clone() {
            let path = log_file(coord, &agent);
            if !self.open.contains_key(&agent) {
                let Ok(file) = File::open(&path) else {
                    continue;
                };
                let inode = file.metadata()?.ino();
                let mut last = String::new();
                if let Ok(old) = std::fs::read(previous(&path)) {
                    split_lines(&agent, &old, &mut last, &mut lines);
                }
                self.open.insert(
                    agent.clone(),
                    Followed {
                        file,
                        inode,
                        partial: Vec::new(),
                        last,
                    },
                );
            }
            let followed = self.open.get_mut(&agent).expect("opened above");
            followed.read_new(&agent, &mut lines)?;
            // Rotated (or replaced): the old file was read to its end above; go on in the new one.
            if let Ok(meta) = std::fs::metadata(&path)
                && meta.ino() != followed.inode
                && let Ok(file) = File::open(&path)
            {
                followed.file = file;
                followed.inode = meta.ino();
                followed.partial.clear();
                followed.read_new(&agent, &mut lines)?;
            }
        }
        if let Some(since) = &self.since {
            lines.retain(|l| l.at.as_str() >= since.as_str());
        }
        // Stable: one agent's lines keep their order when they share a millisecond.
        lines.sort_by(|a, b| a.at.cmp(&b.at));
        Ok(lines)
    }
}

impl Followed {
    fn read_new(&mut self, agent: &str, lines: &mut Vec<LogLine>) -> Result<()> {
        let pos = self.file.stream_position()?;
        if self.file.metadata()?.len() < pos {
            self.file.seek(SeekFrom::Start(0))?; // truncated by hand: start again
        }
        let mut added = Vec::new();
        self.file.read_to_end(&mut added)?;
        self.partial.extend_from_slice(&added);
        // Only whole lines: the writer may be in the middle of one.
        if let Some(end) = self.partial.iter().rposition(|&b| b == b'\n') {
            let whole: Vec<u8> = self.partial.drain(..=end).collect();
            split_lines(agent, &whole, &mut self.last, lines);
        }
        Ok(())
    }
}

/// The last `most` lines of every agent's current log, in time order: what the dashboard shows.
/// Only each log's last 64 KiB is read, so a large log costs no more than a small one.
pub fn tail(coord: &Coord, most: usize) -> Vec<LogLine> {
    const TAIL_BYTES: u64 = 64 * 1024;
    let mut lines = Vec::new();
    for agent in logged_agents(coord) {
        let Ok(mut file) = File::open(log_file(coord, &agent)) else {
            continue;
        };
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        let start = size.saturating_sub(TAIL_BYTES);
        let mut bytes = Vec::new();
        if file.seek(SeekFrom::Start(start)).is_err() || file.read_to_end(&mut bytes).is_err() {
            continue;
        }
        // A read that starts inside a line drops that line's start.
        if start > 0
            && let Some(cut) = bytes.iter().position(|b| *b == b'\n')
        {
            bytes.drain(..=cut);
        }
        let mut last = String::new();
        split_lines(&agent, &bytes, &mut last, &mut lines);
    }
    // Stable: an agent's own lines keep their order.
    lines.sort_by(|a, b| a.at.cmp(&b.at));
    let skip = lines.len().saturating_sub(most);
    lines.split_off(skip)
}

fn split_lines(agent: &str, bytes: &[u8], last: &mut String, out: &mut Vec<LogLine>) {
    let text = String::from_utf8_lossy(bytes);
    for line in text.lines() {
        out.push(parse_line(agent, line, last));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_is_rotated_once_it_would_pass_its_size_and_one_previous_file_is_kept() {
        let dir = tempfile::TempDir::new().expect("a folder");
        let path = dir.path().join("mia.log");
        let mut log = LogWriter::open(&path, 200).expect("opened");
        log.copy_lines(&b"first\nsecond\n"[..]).expect("written");
        for n in 0..20 {
            log.line(format!("line {n}").as_bytes()).expect("written");
        }
        let now = std::fs::read_to_string(&path).expect("the log");
        let before = std::fs::read_to_string(previous(&path)).expect("the previous log");
        assert!(now.len() <= 200 && before.len() <= 200, "{now}\n{before}");
        assert!(now.ends_with(" line 19\n"), "{now}");
        assert!(!before.contains("first"), "only one previous file is kept");
        let mut last = String::new();
        let line = parse_line("mia", now.lines().next().expect("a line"), &mut last);
        assert!(line.text.starts_with("line "), "{line:?}");
        assert_eq!(line.at.len(), 24);
    }

    #[test]
    fn long_output_without_newlines_is_cut_and_a_last_partial_line_kept() {
        let dir = tempfile::TempDir::new().expect("a folder");
        let path = dir.path().join("bo.log");
        let mut log = LogWriter::open(&path, MAX_LOG_BYTES).expect("opened");
        let mut input = vec![b'x'; MAX_LINE + 10];
        input.extend_from_slice(b"\nend");
        log.copy_lines(&input[..]).expect("written");
        let text = std::fs::read_to_string(&path).expect("the log");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{}", lines.len());
        assert!(lines[2].ends_with(" end"));
    }

    #[test]
    fn an_unstamped_line_takes_the_time_of_the_line_before() {
        let mut last = String::new();
        let a = parse_line("a", "2025-05-01T09:30:00.123Z hello world", &mut last);
        assert_eq!(
            (a.at.as_str(), a.text.as_str()),
            ("2025-05-01T09:30:00.123Z", "hello world")
        );
        let b = parse_line("a", "plain", &mut last);
        assert_eq!(
            (b.at.as_str(), b.text.as_str()),
            ("2025-05-01T09:30:00.123Z", "plain")
        );
    }
}
