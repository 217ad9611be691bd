//! `git coord serve`: a read-only web dashboard of the team on 127.0.0.1, with a JSON endpoint
//! behind each view and server-sent events when refs/coord/* change, so the page updates without
//! a reload. Plain std networking, one thread per connection, with a cap on connections and a
//! smaller one on event streams so that a crowd of streams cannot starve the JSON views. One
//! watcher thread reads the ref tips for every stream.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::model::task::State;
use crate::ops::agents::Agents;
use crate::ops::checkpoints::Checkpoints;
use crate::ops::context::Coord;
use crate::ops::leases::Leases;
use crate::ops::messages::Messages;
use crate::ops::online::Fetched;
use crate::ops::tasks::Tasks;
use crate::store::COORD_REFS;
use crate::views::status::agent_rows;

const PAGE: &str = include_str!("dashboard.html");
/// How often the event stream looks at the refs.
const POLL: Duration = Duration::from_millis(300);
/// A comment line now and then keeps proxies and browsers from closing an idle stream.
const KEEPALIVE: Duration = Duration::from_secs(15);
const MAX_REQUEST: usize = 16 * 1024;
/// The launched agents' log lines the page shows, the newest.
const LOG_LINES: usize = 200;
/// Event streams served at once; one more is refused with 503.
pub const MAX_EVENT_STREAMS: usize = 64;
/// Connections served at once, streams included; one more is refused with 503 unread. The gap
/// between the two caps is kept for the page and the JSON views.
pub const MAX_CONNECTIONS: usize = 256;
/// How often a quiet stream checks that its client is still there.
const CLIENT_CHECK: Duration = Duration::from_secs(1);
/// A client that does not take what it is sent within this long is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where and how to serve.
#[derive(Debug, Clone)]
pub struct Options {
    /// The repository directory every request opens.
    pub dir: PathBuf,
    pub bind: IpAddr,
    pub port: u16,
    /// Required (as `?token=` or `Authorization: Bearer`) when set; set it to bind beyond loopback.
    pub token: Option<String>,
    /// Fetch the coordination remote this often (read-only), so the page shows every machine.
    pub fetch: Option<Duration>,
}

/// Binds the listener, refusing a non-loopback address without a token.
pub fn bind(opts: &Options) -> Result<TcpListener> {
    if !opts.bind.is_loopback() && opts.token.as_deref().is_none_or(str::is_empty) {
        return Err(Error::invalid(
            "address",
            opts.bind.to_string(),
            "serving beyond this machine exposes the team's state: add --token SECRET (clients then pass ?token=SECRET)",
        ));
    }
    TcpListener::bind(SocketAddr::new(opts.bind, opts.port))
        .map_err(|e| Error::Other(format!("cannot listen on {}:{}: {e}", opts.bind, opts.port)))
}

/// What every connection shares: the counts behind the caps and the tips the watcher last saw.
struct Shared {
    opts: Options,
    connections: AtomicUsize,
    streams: AtomicUsize,
    /// (generation, tips): the generation grows each time the tips change.
    tips: Mutex<(u64, Value)>,
    changed: Condvar,
}

/// Takes a place under `cap` if one is free.
fn take(count: &AtomicUsize, cap: usize) -> bool {
    count
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < cap).then_some(n + 1)
        })
        .is_ok()
}

/// A place taken under a cap, given back when dropped.
struct Slot<'a>(&'a AtomicUsize);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Serves until the process is stopped.
pub fn run(listener: TcpListener, opts: Options) -> Result<()> {
    let shared = Arc::new(Shared {
        opts,
        connections: AtomicUsize::new(0),
        streams: AtomicUsize::new(0),
        tips: Mutex::new((0, Value::Null)),
        changed: Condvar::new(),
    });
    let watcher = Arc::clone(&shared);
    std::thread::spawn(move || watch(&watcher));
    if let Some(every) = shared.opts.fetch {
        let dir = shared.opts.dir.clone();
        // The refs it merges move the tips, which the watcher turns into events for the page.
        std::thread::spawn(move || {
            loop {
                match Coord::open(&dir, None).and_then(|c| crate::ops::online::fetch_for_view(&c)) {
                    Ok(Some(Fetched { error: Some(e), .. })) => tracing::debug!("fetch: {e}"),
                    Err(e) => tracing::debug!("fetch: {e}"),
                    _ => {}
                }
                std::thread::sleep(every);
            }
        });
    }
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
        if !take(&shared.connections, MAX_CONNECTIONS) {
            refuse_unread(&mut stream);
            continue;
        }
        let shared = Arc::clone(&shared);
        std::thread::spawn(move || {
            let _slot = Slot(&shared.connections);
            if let Err(e) = handle(stream, &shared) {
                tracing::debug!("request failed: {e}");
            }
        });
    }
    Ok(())
}

/// Answers 503 to a connection over the cap without reading its request (what has already
/// arrived is drained, so closing does not reset the connection before the answer is read).
fn refuse_unread(stream: &mut TcpStream) {
    if stream.set_nonblocking(true).is_ok() {
        let mut buf = [0u8; 4096];
        while matches!(stream.read(&mut buf), Ok(n) if n > 0) {}
        let _ = stream.set_nonblocking(false);
    }
    let body = format!("busy: {MAX_CONNECTIONS} connections are being served; try again\n");
    let _ = respond(
        stream,
        "503 Service Unavailable",
        "text/plain",
        body.as_bytes(),
    );
    let _ = stream.shutdown(Shutdown::Write);
}

/// Reads the ref tips every `POLL` while any stream is open and wakes the streams when they move.
fn watch(shared: &Shared) {
    loop {
        if shared.streams.load(Ordering::Acquire) > 0 {
            let now = match Coord::open(&shared.opts.dir, None) {
                Ok(coord) => tips(&coord),
                Err(_) => Value::Null,
            };
            let mut tips = shared.tips.lock().unwrap_or_else(|e| e.into_inner());
            if tips.1 != now {
                *tips = (tips.0 + 1, now);
                shared.changed.notify_all();
            }
        }
        std::thread::sleep(POLL);
    }
}

struct Request {
    path: String,
    query: Vec<(String, String)>,
    host: Option<String>,
    bearer: Option<String>,
}

fn read_request(stream: &mut TcpStream) -> std::io::Result<Option<(String, Request)>> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.take(MAX_REQUEST as u64));
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    // A line cut short ran into the limit (or the client left): no request to answer.
    let too_large = || std::io::Error::new(std::io::ErrorKind::InvalidData, "request too large");
    if !line.ends_with('\n') {
        return Err(too_large());
    }
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return Ok(None);
    };
    let (mut host, mut bearer) = (None, None);
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
            break;
        }
        if !header.ends_with('\n') {
            return Err(too_large());
        }
        if let Some((name, value)) = header.split_once(':') {
            let value = value.trim().to_string();
            match name.trim().to_ascii_lowercase().as_str() {
                "host" => host = Some(value),
                "authorization" => bearer = value.strip_prefix("Bearer ").map(str::to_string),
                _ => {}
            }
        }
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let query = query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Ok(Some((
        method.to_string(),
        Request {
            path: path.to_string(),
            query,
            host,
            bearer,
        },
    )))
}

/// Whether the token a client gave is the server's, in a time that depends on the server token's
/// length alone: a comparison that stopped at the first wrong byte would let a client find the
/// token byte by byte by timing its refusals.
fn token_matches(given: &[u8], expected: &[u8]) -> bool {
    let mut diff = u8::from(given.len() != expected.len());
    for (i, want) in expected.iter().enumerate() {
        diff |= given.get(i).copied().unwrap_or(0) ^ want;
        // Keeps the optimiser from turning the loop into one that stops at the first difference.
        diff = std::hint::black_box(diff);
    }
    diff == 0
}

fn respond(stream: &mut TcpStream, status: &str, kind: &str, body: &[u8]) -> std::io::Result<()> {
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    stream.write_all(body)?;
    stream.flush()
}

fn handle(mut stream: TcpStream, shared: &Shared) -> std::io::Result<()> {
    let opts = &shared.opts;
    let read = match read_request(&mut stream) {
        // Past MAX_REQUEST, or not UTF-8: refused without reading more.
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
            respond(
                &mut stream,
                "400 Bad Request",
                "text/plain",
                b"bad request: its head is over 16 KiB or not UTF-8\n",
            )?;
            // Closing with unread bytes would reset the connection and could lose the answer:
            // read a bounded rest first.
            stream.shutdown(std::net::Shutdown::Write)?;
            let _ = std::io::copy(&mut (&stream).take(1 << 16), &mut std::io::sink());
            return Ok(());
        }
        read => read?,
    };
    let Some((method, req)) = read else {
        return Ok(());
    };
    if method != "GET" {
        return respond(
            &mut stream,
            "405 Method Not Allowed",
            "text/plain",
            b"read-only: GET only\n",
        );
    }
    // On loopback, only local host names: a page from elsewhere cannot rebind a name to us.
    if opts.bind.is_loopback() {
        let host = req.host.as_deref().unwrap_or_default();
        let name = host.rsplit_once(':').map_or(host, |(n, _)| n);
        if !matches!(name, "127.0.0.1" | "localhost" | "[::1]") {
            return respond(
                &mut stream,
                "403 Forbidden",
                "text/plain",
                b"unexpected Host\n",
            );
        }
    }
    if let Some(token) = &opts.token {
        let given = req
            .query
            .iter()
            .find(|(k, _)| k == "token")
            .map(|(_, v)| v.clone())
            .or(req.bearer.clone());
        if !given.is_some_and(|given| token_matches(given.as_bytes(), token.as_bytes())) {
            return respond(
                &mut stream,
                "401 Unauthorized",
                "text/plain",
                b"token required\n",
            );
        }
    }
    match req.path.as_str() {
        "/" | "/index.html" => respond(
            &mut stream,
            "200 OK",
            "text/html; charset=utf-8",
            PAGE.as_bytes(),
        ),
        "/events" if take(&shared.streams, MAX_EVENT_STREAMS) => {
            let _slot = Slot(&shared.streams);
            events(stream, shared)
        }
        "/events" => respond(
                &mut stream,
                "503 Service Unavailable",
                "text/plain",
                format!(
                    "busy: {MAX_EVENT_STREAMS} event streams are open; close a dashboard tab or try again later\n"
                )
                .as_bytes(),
        ),
        path if path.starts_with("/api/") => {
            let result = Coord::open(&opts.dir, None).and_then(|coord| api(&coord, &path[5..]));
            match result {
                Ok(Some(value)) => respond(
                    &mut stream,
                    "200 OK",
                    "application/json",
                    value.to_string().as_bytes(),
                ),
                Ok(None) => respond(
                    &mut stream,
                    "404 Not Found",
                    "application/json",
                    br#"{"error":"no such endpoint"}"#,
                ),
                Err(e) => {
                    let body = json!({ "error": e.to_string() }).to_string();
                    respond(
                        &mut stream,
                        "500 Internal Server Error",
                        "application/json",
                        body.as_bytes(),
                    )
                }
            }
        }
        _ => respond(&mut stream, "404 Not Found", "text/plain", b"not found\n"),
    }
}

/// The JSON behind each view (docs/FORMAT.md, "The dashboard").
pub fn api(coord: &Coord, endpoint: &str) -> Result<Option<Value>> {
    let tasks = Tasks::new(coord);
    Ok(Some(match endpoint {
        "tasks" => {
            let index = tasks.load_index()?;
            let mut all: Vec<_> = index.tasks().collect();
            all.sort_by_key(|t| t.urgency_key());
            serde_json::to_value(&all)?
        }
        "graph" => {
            let index = tasks.load_index()?;
            let nodes: Vec<Value> = index
                .tasks()
                .map(|t| json!({ "id": t.id(), "title": t.title(), "state": t.state().as_str(), "assignee": t.assignee() }))
                .collect();
            let edges: Vec<Value> = index
                .tasks()
                .flat_map(|t| {
                    t.deps()
                        .filter(|d| index.get(d).is_some())
                        .map(move |d| json!([d, t.id()]))
                        .collect::<Vec<_>>()
                })
                .collect();
            json!({ "nodes": nodes, "edges": edges })
        }
        "agents" => {
            let (views, _) = Agents::new(coord)?.list(true)?;
            let rows = agent_rows(&tasks.load_index()?, views);
            let rows: Vec<Value> = rows
                .iter()
                .map(|r| {
                    let v = &r.view;
                    let claimed: Vec<&str> = r.claimed.iter().map(|(id, _)| id.as_str()).collect();
                    json!({
                        "name": v.agent.name, "role": v.agent.role, "status": v.agent.status,
                        "branch": v.agent.branch, "human": v.agent.human, "stale": v.stale, "presence": r.presence(),
                        "last_seen": v.last_seen, "claimed": claimed,
                    })
                })
                .collect();
            Value::Array(rows)
        }
        "leases" => {
            let (views, _) = Leases::new(coord).list(true)?;
            let rows: Vec<Value> = views
                .iter()
                .map(|v| {
                    let l = &v.lease;
                    json!({
                        "id": l.id, "agent": l.agent, "patterns": l.patterns, "mode": l.mode.as_str(),
                        "task": l.task, "reason": l.reason, "acquired": l.acquired, "expires": l.expires,
                        "status": v.status.as_str(),
                    })
                })
                .collect();
            Value::Array(rows)
        }
        "threads" => {
            let newest = Messages::new(coord).newest(200)?;
            let mut threads: Vec<(String, Vec<Value>)> = Vec::new();
            for m in newest.iter().rev() {
                let item = serde_json::to_value(m)?;
                match threads.iter_mut().find(|(t, _)| *t == m.thread) {
                    Some((_, items)) => items.push(item),
                    None => threads.push((m.thread.clone(), vec![item])),
                }
            }
            threads.reverse();
            Value::Array(
                threads
                    .into_iter()
                    .map(|(t, items)| json!({ "thread": t, "messages": items }))
                    .collect(),
            )
        }
        "checkpoints" => serde_json::to_value(Checkpoints::new(coord).list()?.0)?,
        "activity" => serde_json::to_value(crate::ops::history::activity(coord, 100)?)?,
        "logs" => serde_json::to_value(crate::ops::agent_logs::tail(coord, LOG_LINES))?,
        "status" => {
            let index = tasks.load_index()?;
            let mut counts = serde_json::Map::new();
            for s in [State::Open, State::Claimed, State::Blocked, State::Done] {
                counts.insert(
                    s.as_str().into(),
                    json!(index.tasks().filter(|t| t.state() == s).count()),
                );
            }
            json!({
                "team": crate::ops::team::get(coord)?.state.as_str(),
                "fetched": crate::ops::online::last_fetch(coord),
                "tasks": counts,
                "tips": tips(coord),
            })
        }
        _ => return Ok(None),
    }))
}

/// The tip of each coordination ref (none: the ref does not exist).
fn tips(coord: &Coord) -> Value {
    let mut map = serde_json::Map::new();
    for r in COORD_REFS {
        let tip = coord.repo.ref_tip(r).ok().flatten().map(|o| o.to_string());
        map.insert(r.into(), json!(tip));
    }
    Value::Object(map)
}

/// Server-sent events: `change` with the ref tips whenever one moves, a comment line to keep the
/// stream open, until the client goes away.
fn events(mut stream: TcpStream, shared: &Shared) -> std::io::Result<()> {
    stream.write_all(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\nConnection: keep-alive\r\n\r\nretry: 1000\n\n",
    )?;
    stream.flush()?;
    let mut sent = 0;
    let mut quiet_since = Instant::now();
    loop {
        let (generation, now) = {
            let tips = shared.tips.lock().unwrap_or_else(|e| e.into_inner());
            let (tips, _) = shared
                .changed
                .wait_timeout_while(tips, CLIENT_CHECK, |t| t.0 == sent)
                .unwrap_or_else(|e| e.into_inner());
            tips.clone()
        };
        if generation != sent {
            if !now.is_null() {
                write!(stream, "event: change\ndata: {now}\n\n")?;
                stream.flush()?;
            }
            sent = generation;
            quiet_since = Instant::now();
        } else if quiet_since.elapsed() > KEEPALIVE {
            stream.write_all(b": keep-alive\n\n")?;
            stream.flush()?;
            quiet_since = Instant::now();
        }
        if client_left(&stream) {
            return Ok(());
        }
    }
}

/// Whether the client closed its end: a stream's client never sends anything after its request.
fn client_left(stream: &TcpStream) -> bool {
    let mut byte = [0u8; 1];
    if stream.set_nonblocking(true).is_err() {
        return true;
    }
    let left = match stream.peek(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
    };
    left || stream.set_nonblocking(false).is_err()
}

#[cfg(test)]
mod tests {
    use super::token_matches;

    #[test]
    fn a_token_matches_only_itself() {
        assert!(token_matches(b"s3cret-token", b"s3cret-token"));
        assert!(!token_matches(b"s3cret-tokem", b"s3cret-token"));
        assert!(!token_matches(b"x3cret-token", b"s3cret-token"));
        assert!(!token_matches(b"s3cret", b"s3cret-token"));
        assert!(!token_matches(b"s3cret-token-and-more", b"s3cret-token"));
        assert!(!token_matches(b"s3cret-token\0", b"s3cret-token"));
        assert!(!token_matches(b"", b"s3cret-token"));
    }
}
