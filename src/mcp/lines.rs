//! The line filter between stdio and rmcp. A request longer than [`MAX_REQUEST_BYTES`], or whose
//! id is neither a string nor an integer, is answered here with a JSON-RPC error (id null) and
//! never reaches rmcp, which would drop the one silently and answer the other without an id.
//! Every other line passes through unchanged. Every line written to stdout, ours or rmcp's, is
//! written whole, and an error without an id gets `"id": null`, as JSON-RPC requires.

use std::sync::Arc;

use serde_json::{Value, json};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::Mutex;

/// The longest request line served. A document is at most 1 MiB, so a legitimate request is far
/// shorter; a longer line is skipped (never buffered) and answered with an error.
pub const MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;

/// JSON-RPC's code for a message that is not a valid request.
const INVALID_REQUEST: i64 = -32600;

/// Where replies go: one writer, taken for one whole line at a time.
pub type Out<W> = Arc<Mutex<W>>;

enum Line {
    /// A whole line, without its newline.
    Whole(Vec<u8>),
    /// A line over the limit, of this many bytes; it was skipped.
    TooLong(usize),
    End,
}

/// Reads one line without ever holding more than `MAX_REQUEST_BYTES + 1` bytes of it.
async fn next_line<R: AsyncBufRead + Unpin>(input: &mut R) -> std::io::Result<Line> {
    let mut line = Vec::new();
    let mut skipped = 0usize;
    loop {
        let available = input.fill_buf().await?;
        if available.is_empty() {
            return Ok(match (skipped, line.is_empty()) {
                (0, true) => Line::End,
                (0, false) => Line::Whole(line),
                (n, _) => Line::TooLong(n),
            });
        }
        let end = available.iter().position(|&b| b == b'\n');
        let chunk = &available[..end.map_or(available.len(), |i| i + 1)];
        let taken = chunk.len();
        if skipped == 0 && line.len() + taken <= MAX_REQUEST_BYTES + 1 {
            line.extend_from_slice(chunk);
        } else {
            skipped += line.len() + taken;
            line = Vec::new();
        }
        input.consume(taken);
        if end.is_some() {
            if skipped > 0 {
                return Ok(Line::TooLong(skipped - 1));
            }
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            return Ok(Line::Whole(line));
        }
    }
}

/// Why a request cannot be served, when its id is not one JSON-RPC allows (a string or an
/// integer; a missing or null id is left to rmcp).
fn bad_id(line: &[u8]) -> Option<String> {
    let Ok(Value::Object(request)) = serde_json::from_slice::<Value>(line) else {
        return None;
    };
    let kind = match request.get("id")? {
        Value::Null | Value::String(_) => return None,
        Value::Number(n) if n.is_i64() || n.is_u64() => return None,
        Value::Number(_) => "a fractional number",
        Value::Bool(_) => "a boolean",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    };
    Some(format!(
        "Invalid Request: the id is {kind}; it must be a string or an integer"
    ))
}

fn error_line(message: String) -> Vec<u8> {
    let mut line = json!({
        "jsonrpc": "2.0",
        "id": null,
        "error": { "code": INVALID_REQUEST, "message": message },
    })
    .to_string()
    .into_bytes();
    line.push(b'\n');
    line
}

/// Standard output written in place, on the runtime's own thread. tokio's stdout hands every
/// write to a thread of its blocking pool and wakes the runtime when it is done: two switches
/// between threads for each reply, on a 2-core machine each as long as a small write. A reply is
/// a line of a few kilobytes to a pipe the client reads; a client that stops reading stops the
/// server either way (with tokio's stdout, once the replies waiting for it fill their buffer).
pub struct Stdout(pub std::io::Stdout);

impl AsyncWrite for Stdout {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::task::Poll::Ready(std::io::Write::write(&mut self.get_mut().0, buf))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(std::io::Write::flush(&mut self.get_mut().0))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        self.poll_flush(cx)
    }
}

async fn write_line<W: AsyncWrite + Unpin>(out: &Out<W>, line: &[u8]) -> std::io::Result<()> {
    let mut out = out.lock().await;
    out.write_all(line).await?;
    out.flush().await
}

/// Passes requests from `input` to the server, answering those it cannot serve on `out`. Closes
/// the server's input when `input` ends.
pub async fn pump_requests<R, S, W>(input: R, mut server: S, out: Out<W>) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    S: AsyncWrite + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut input = BufReader::with_capacity(64 * 1024, input);
    loop {
        match next_line(&mut input).await? {
            Line::End => break,
            Line::TooLong(n) => {
                let why = format!(
                    "Invalid Request: the request is {n} bytes, over the {MAX_REQUEST_BYTES}-byte limit"
                );
                write_line(&out, &error_line(why)).await?;
            }
            Line::Whole(line) => match bad_id(&line) {
                Some(why) => write_line(&out, &error_line(why)).await?,
                None => {
                    server.write_all(&line).await?;
                    server.write_all(b"\n").await?;
                    server.flush().await?;
                }
            },
        }
    }
    server.shutdown().await
}

/// Copies the server's replies to `out`, each line whole, giving an error without an id the
/// null id JSON-RPC requires. Runs `after_each` once each reply is written: what it does, the
/// client does not wait for.
pub async fn pump_replies<S, W>(
    server: S,
    out: Out<W>,
    after_each: impl Fn(),
) -> std::io::Result<()>
where
    S: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut server = BufReader::new(server);
    let mut line = Vec::new();
    loop {
        line.clear();
        if server.read_until(b'\n', &mut line).await? == 0 {
            return Ok(());
        }
        let line = match with_null_id(&line) {
            Some(fixed) => fixed,
            None => std::mem::take(&mut line),
        };
        write_line(&out, &line).await?;
        after_each();
    }
}

/// The reply with `"id": null` added, when it is an error that has no id.
fn with_null_id(line: &[u8]) -> Option<Vec<u8>> {
    if !line.windows(7).any(|w| w == b"\"error\"") {
        return None;
    }
    let Ok(Value::Object(mut reply)) = serde_json::from_slice::<Value>(line) else {
        return None;
    };
    if !reply.contains_key("error") || reply.contains_key("id") {
        return None;
    }
    reply.insert("id".into(), Value::Null);
    let mut fixed = Value::Object(reply).to_string().into_bytes();
    fixed.push(b'\n');
    Some(fixed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_json_rpc_does_not_allow_are_named() {
        assert!(bad_id(br#"{"id":{"a":1},"method":"x"}"#).is_some_and(|w| w.contains("object")));
        assert!(bad_id(br#"{"id":[1],"method":"x"}"#).is_some_and(|w| w.contains("array")));
        assert!(bad_id(br#"{"id":1.5,"method":"x"}"#).is_some());
        assert_eq!(bad_id(br#"{"id":7,"method":"x"}"#), None);
        assert_eq!(bad_id(br#"{"id":"a","method":"x"}"#), None);
        assert_eq!(bad_id(br#"{"method":"x"}"#), None);
        assert_eq!(bad_id(b"not json"), None);
    }

    #[test]
    fn an_error_without_an_id_gets_a_null_one() {
        let fixed = with_null_id(br#"{"jsonrpc":"2.0","error":{"code":-32600}}"#).expect("fixed");
        let value: Value = serde_json::from_slice(&fixed).expect("json");
        assert_eq!(value["id"], Value::Null);
        assert!(value.as_object().expect("object").contains_key("id"));
        assert_eq!(
            with_null_id(br#"{"jsonrpc":"2.0","id":3,"error":{}}"#),
            None
        );
        assert_eq!(
            with_null_id(br#"{"jsonrpc":"2.0","id":3,"result":{}}"#),
            None
        );
    }
}
