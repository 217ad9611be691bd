#!/usr/bin/env python3
"""A scripted model server for the tests that drive real agent CLIs (tests/real_clients.rs).

It speaks the three wire formats the CLIs use: Anthropic Messages (POST /v1/messages, streamed as
server-sent events; Claude Code), OpenAI Responses (POST /v1/responses, SSE; Codex CLI) and the
Gemini API (POST /v1beta/models/MODEL:streamGenerateContent?alt=sse, SSE; Gemini CLI). It is
deterministic: it reads the conversation and answers with the next step of a fixed script, and it
logs every request (one JSON object a line) so a test can assert on what the client sent.

The script, by --mode:
  shell  After a tool result, end the turn. Otherwise run, through the client's shell tool, the
         first `git coord ...` command quoted in the latest user text (the prompt, or the stop
         hook's reason), with `<what you did>` filled in.
  mcp    The same, but claims and finishes through git-coord's MCP tools (task_claim, task_done).
  stuck  Never calls a tool: every turn ends with the same text.
  varied Stuck too, but varies a read-only call between stops: after the prompt or a reason, it
         runs `git coord brief --max-chars N` (N different each time) through the shell tool,
         then ends the turn.
  ready  As mcp, but first calls git-coord's MCP `ready` tool (its list comes back in an object).

Usage: model_server.py --mode MODE --log FILE --port-file FILE. It listens on 127.0.0.1 (a free
port, written to --port-file once it listens) and runs until it is killed.
"""

import argparse
import html
import http.server
import json
import os
import re
import shlex
import threading

SUMMARY = "finished by the scripted model"
END_TEXT = "Done for now."
STUCK_TEXT = "I am still thinking about it."


class Script:
    def __init__(self, mode):
        self.mode = mode
        self.lock = threading.Lock()
        self.calls = 0
        self.asked_ready = False

    def next_call_id(self):
        with self.lock:
            self.calls += 1
            return self.calls

    def decide(self, last_is_tool_result, text, tools):
        """The next step: ("text", TEXT) or ("tool", NAME, ARGS) where NAME is a logical tool:
        shell (ARGS: the command) or an MCP tool name (ARGS: a dict)."""
        if self.mode == "stuck":
            return ("text", STUCK_TEXT)
        if last_is_tool_result:
            return ("text", END_TEXT)
        if self.mode == "varied":
            return ("tool", "shell", "git coord brief --max-chars %d" % (500 + self.next_call_id()))
        if self.mode == "ready" and not self.asked_ready:
            self.asked_ready = True
            return ("tool", "ready", {})
        command = first_command(text)
        if command is None:
            return ("text", END_TEXT)
        if self.mode in ("mcp", "ready"):
            call = as_mcp(command)
            if call is not None:
                return ("tool", call[0], call[1])
            return ("text", END_TEXT)
        return ("tool", "shell", command)


def first_command(text):
    """The first `git coord ...` command quoted in backticks, filled in."""
    # Codex CLI quotes the stop hook's reason as HTML (`&lt;what you did&gt;`).
    for m in re.finditer(r"`(git coord [^`]+)`", html.unescape(text or "")):
        return m.group(1).replace("<what you did>", SUMMARY)
    return None


def as_mcp(command):
    """A claim or done command as an MCP call: (tool, arguments), or None."""
    try:
        words = shlex.split(command)
    except ValueError:
        return None
    if words[2:5] == ["task", "claim", "--next"]:
        args = {}
        if "--role" in words:
            args["role"] = words[words.index("--role") + 1]
        return ("task_claim", args)
    if words[2:4] == ["task", "done"] and len(words) > 4:
        args = {"id": words[4]}
        if "--summary" in words:
            args["summary"] = words[words.index("--summary") + 1]
        return ("task_done", args)
    return None


def text_of(content):
    if isinstance(content, str):
        return content
    out = []
    for block in content or []:
        if isinstance(block, dict):
            if block.get("type") in ("text", "input_text", "output_text"):
                out.append(block.get("text", ""))
    return "\n".join(out)


# ---- Anthropic Messages ------------------------------------------------------------------------


def anthropic_step(script, body):
    tools = [t.get("name", "") for t in body.get("tools") or []]
    messages = body.get("messages") or []
    last = messages[-1] if messages else {"role": "user", "content": ""}
    content = last.get("content")
    tool_result = isinstance(content, list) and any(
        isinstance(b, dict) and b.get("type") == "tool_result" for b in content
    )
    if "Bash" not in tools:
        # A side request (a title, a summary): no tools to call, a short answer.
        return ("text", "git-coord test session")
    # What was said since the model last spoke: the prompt, or the stop hook's feedback (Claude
    # Code 2.1 sends it as a message of its own, user or system), newest first.
    text = ""
    for message in reversed(messages):
        if message.get("role") == "assistant":
            break
        said = text_of(message.get("content"))
        if first_command(said) is not None:
            text = said
            break
    step = script.decide(tool_result, text, tools)
    if step[0] == "tool":
        if step[1] == "shell":
            return ("tool", "Bash", {"command": step[2], "description": "run a git-coord command"})
        return ("tool", "mcp__git-coord__" + step[1], step[2])
    return step


def anthropic_sse(step, model, n):
    events = []

    def ev(kind, data):
        events.append("event: %s\ndata: %s\n\n" % (kind, json.dumps(data)))

    ev("message_start", {"type": "message_start", "message": {
        "id": "msg_%d" % n, "type": "message", "role": "assistant", "model": model,
        "content": [], "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 1}}})
    if step[0] == "text":
        ev("content_block_start", {"type": "content_block_start", "index": 0,
                                   "content_block": {"type": "text", "text": ""}})
        ev("content_block_delta", {"type": "content_block_delta", "index": 0,
                                   "delta": {"type": "text_delta", "text": step[1]}})
        stop = "end_turn"
    else:
        ev("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {
            "type": "tool_use", "id": "toolu_%d" % n, "name": step[1], "input": {}}})
        ev("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {
            "type": "input_json_delta", "partial_json": json.dumps(step[2])}})
        stop = "tool_use"
    ev("content_block_stop", {"type": "content_block_stop", "index": 0})
    ev("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                         "usage": {"output_tokens": 5}})
    ev("message_stop", {"type": "message_stop"})
    return "".join(events)


def anthropic_json(step, model, n):
    if step[0] == "text":
        content = [{"type": "text", "text": step[1]}]
        stop = "end_turn"
    else:
        content = [{"type": "tool_use", "id": "toolu_%d" % n, "name": step[1], "input": step[2]}]
        stop = "tool_use"
    return {"id": "msg_%d" % n, "type": "message", "role": "assistant", "model": model,
            "content": content, "stop_reason": stop, "stop_sequence": None,
            "usage": {"input_tokens": 10, "output_tokens": 5}}


# ---- OpenAI Responses --------------------------------------------------------------------------


def responses_tools(body):
    """Tool names offered, with MCP namespaces flattened as NAMESPACE/TOOL."""
    names = []
    for t in body.get("tools") or []:
        name = t.get("name") or t.get("type", "")
        names.append(name)
        for inner in t.get("tools") or []:
            names.append("%s/%s" % (name, inner.get("name", "")))
    return names


def responses_step(script, body):
    items = body.get("input") or []
    if isinstance(items, str):
        items = [{"type": "message", "role": "user", "content": items}]
    last = items[-1] if items else {}
    tool_result = last.get("type", "").endswith("_output")
    text = ""
    for item in reversed(items):
        if item.get("type", "message") == "message" and item.get("role") == "user":
            text = text_of(item.get("content"))
            break
    tools = responses_tools(body)
    step = script.decide(tool_result, text, tools)
    if step[0] != "tool":
        return step
    if step[1] == "shell":
        if "exec_command" in tools:
            return ("tool", "exec_command", {"cmd": step[2]}, None)
        return ("tool", "shell", {"command": ["bash", "-lc", step[2]]}, None)
    namespace = next((n.split("/")[0] for n in tools if n.endswith("/" + step[1])), None)
    if namespace is not None:
        return ("tool", step[1], step[2], namespace)
    flat = next((n for n in tools if n.endswith("__" + step[1])), step[1])
    return ("tool", flat, step[2], None)


def responses_sse(step, model, n):
    events = []

    def ev(kind, data):
        data["type"] = kind
        events.append("event: %s\ndata: %s\n\n" % (kind, json.dumps(data)))

    rid = "resp_%d" % n
    ev("response.created", {"response": {"id": rid, "object": "response", "model": model,
                                          "status": "in_progress", "output": []}})
    if step[0] == "text":
        item = {"type": "message", "id": "msg_%d" % n, "role": "assistant", "status": "completed",
                "content": [{"type": "output_text", "text": step[1], "annotations": []}]}
    else:
        item = {"type": "function_call", "id": "fc_%d" % n, "call_id": "call_%d" % n,
                "name": step[1], "arguments": json.dumps(step[2]), "status": "completed"}
        if step[3] is not None:
            item["namespace"] = step[3]
    ev("response.output_item.added", {"output_index": 0, "item": item})
    ev("response.output_item.done", {"output_index": 0, "item": item})
    ev("response.completed", {"response": {
        "id": rid, "object": "response", "model": model, "status": "completed", "output": [item],
        "usage": {"input_tokens": 10, "input_tokens_details": {"cached_tokens": 0},
                  "output_tokens": 5, "output_tokens_details": {"reasoning_tokens": 0},
                  "total_tokens": 15}}})
    return "".join(events)


# ---- Gemini API (generateContent) --------------------------------------------------------------


def gemini_tools(body):
    return [d.get("name", "") for t in body.get("tools") or []
            for d in (t.get("functionDeclarations") or [])]


def gemini_step(script, body):
    tools = gemini_tools(body)
    if "run_shell_command" not in tools:
        # A side request (a summary, a check): no tools to call, a short answer.
        return ("text", "git-coord test session")
    contents = body.get("contents") or []
    last = contents[-1] if contents else {}
    tool_result = any("functionResponse" in p for p in last.get("parts") or [])
    # What was said since the model last spoke: the prompt, or the stop hook's reason.
    text = ""
    for content in reversed(contents):
        if content.get("role") == "model":
            break
        said = "\n".join(p.get("text", "") for p in content.get("parts") or [] if "text" in p)
        if first_command(said) is not None:
            text = said
            break
    step = script.decide(tool_result, text, tools)
    if step[0] != "tool":
        return step
    if step[1] == "shell":
        return ("tool", "run_shell_command",
                {"command": step[2], "description": "run a git-coord command"})
    name = next((n for n in tools if n.endswith(step[1])), step[1])
    return ("tool", name, step[2])


def gemini_response(step, model):
    if step[0] == "text":
        part = {"text": step[1]}
    else:
        part = {"functionCall": {"name": step[1], "args": step[2]}}
    return {"candidates": [{"content": {"role": "model", "parts": [part]},
                            "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 5,
                              "totalTokenCount": 15},
            "modelVersion": model}


# ---- The server --------------------------------------------------------------------------------


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "scripted-model/1"

    def log_message(self, *args):
        pass

    def record(self, body):
        entry = {"method": self.command, "path": self.path, "body": body}
        with self.server.log_lock:
            with open(self.server.log_path, "a") as f:
                f.write(json.dumps(entry) + "\n")

    def send(self, status, ctype, payload):
        data = payload.encode()
        self.send_response(status)
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.record(None)
        path = self.path.split("?")[0]
        if path.endswith("/models"):
            self.send(200, "application/json", json.dumps({"object": "list", "data": [], "models": []}))
        else:
            self.send(404, "application/json", json.dumps({"error": {"message": "not here"}}))

    def do_HEAD(self):
        self.record(None)
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def do_POST(self):
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {"unparsed": raw.decode(errors="replace")}
        self.record(body)
        path = self.path.split("?")[0]
        script = self.server.script
        n = script.next_call_id()
        model = body.get("model", "scripted") if isinstance(body, dict) else "scripted"
        if path.endswith("/messages/count_tokens"):
            self.send(200, "application/json", json.dumps({"input_tokens": 10}))
        elif path.endswith("/messages"):
            step = anthropic_step(script, body)
            if body.get("stream"):
                self.send(200, "text/event-stream", anthropic_sse(step, model, n))
            else:
                self.send(200, "application/json", json.dumps(anthropic_json(step, model, n)))
        elif ":streamGenerateContent" in path or ":generateContent" in path:
            model = path.rsplit("/", 1)[-1].split(":")[0]
            answer = gemini_response(gemini_step(script, body), model)
            if ":streamGenerateContent" in path:
                self.send(200, "text/event-stream", "data: %s\r\n\r\n" % json.dumps(answer))
            else:
                self.send(200, "application/json", json.dumps(answer))
        elif path.endswith(":countTokens"):
            self.send(200, "application/json", json.dumps({"totalTokens": 10}))
        elif path.endswith("/responses"):
            self.send(200, "text/event-stream", responses_sse(responses_step(script, body), model, n))
        else:
            self.send(404, "application/json", json.dumps({"error": {"message": "not here"}}))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=["shell", "mcp", "stuck", "varied", "ready"], required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--port-file", required=True)
    args = parser.parse_args()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.script = Script(args.mode)
    server.log_path = args.log
    server.log_lock = threading.Lock()
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(server.server_address[1]))
    os.rename(tmp, args.port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
