//! `git coord serve`: a read-only web dashboard of the team on 127.0.0.1, with a JSON endpoint
//! behind each view and server-sent events when refs/coord/* change, so the page updates without
//! a reload. Plain std networking, one thread per connection: it serves a handful of people.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::model::task::State;
use crate::ops::agents::Agents;
use crate::ops::checkpoints::Checkpoints;
use crate::ops::context::Coord;
use crate::ops::leases::Leases;
use crate::ops::messages::Messages;
use crate::ops::tasks::Tasks;
use crate::store::COORD_REFS;
use crate::views::status::agent_rows;

const PAGE: &str = include_str!("dashboard.html");
/// How often the event stream looks at the refs.
const POLL: Duration = Duration::from_millis(300);
/// A comment line now and then keeps proxies and browsers from closing an idle stream.
const KEEPALIVE: Duration = Duration::from_secs(15);
const MAX_REQUEST: usize = 16 * 1024;

/// Where and how to serve.
#[derive(Debug, Clone)]
pub struct Options {
    /// The repository directory every request opens.
    pub dir: PathBuf,
    pub bind: IpAddr,
    pub port: u16,
    /// Required (as `?token=` or `Authorization: Bearer`) when set; set it to bind beyond loopback.
    pub token: Option<String>,
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

/// Serves until the process is stopped.
pub fn run(listener: TcpListener, opts: Options) -> Result<()> {
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let opts = opts.clone();
        std::thread::spawn(move || {
            if let Err(e) = handle(stream, &opts) {
                tracing::debug!("request failed: {e}");
            }
        });
    }
    Ok(())
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

fn respond(stream: &mut TcpStream, status: &str, kind: &str, body: &[u8]) -> std::io::Result<()> {
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    stream.write_all(body)?;
    stream.flush()
}

fn handle(mut stream: TcpStream, opts: &Options) -> std::io::Result<()> {
    let Some((method, req)) = read_request(&mut stream)? else {
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
        if given.as_deref() != Some(token.as_str()) {
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
        "/events" => events(stream, opts),
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
                        "branch": v.agent.branch, "human": v.agent.human, "stale": v.stale,
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
fn events(mut stream: TcpStream, opts: &Options) -> std::io::Result<()> {
    stream.write_all(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\nConnection: keep-alive\r\n\r\nretry: 1000\n\n",
    )?;
    let mut last = Value::Null;
    let mut quiet_since = Instant::now();
    loop {
        let now = match Coord::open(&opts.dir, None) {
            Ok(coord) => tips(&coord),
            Err(_) => Value::Null,
        };
        if now != last {
            write!(stream, "event: change\ndata: {now}\n\n")?;
            stream.flush()?;
            last = now;
            quiet_since = Instant::now();
        } else if quiet_since.elapsed() > KEEPALIVE {
            stream.write_all(b": keep-alive\n\n")?;
            stream.flush()?;
            quiet_since = Instant::now();
        }
        std::thread::sleep(POLL);
    }
}
