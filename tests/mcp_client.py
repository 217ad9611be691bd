"""An independent MCP client (the official Python SDK) for tests/mcp.rs: starts `git-coord mcp`
in the worktree given, lists the tools, calls several, and prints what it saw as JSON."""

import asyncio
import json
import os
import sys

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client


def text(result):
    return "".join(c.text for c in result.content if getattr(c, "type", "") == "text")


async def main(binary, worktree, task_id):
    params = StdioServerParameters(command=binary, args=["mcp"], cwd=worktree, env=dict(os.environ))
    seen = {}
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            seen["server"] = init.server_info.name
            tools = await session.list_tools()
            seen["tools"] = sorted(t.name for t in tools.tools)
            seen["claim_schema"] = next(t.input_schema for t in tools.tools if t.name == "task_claim")
            who = await session.call_tool("whoami", {})
            seen["whoami"] = json.loads(text(who))
            claimed = await session.call_tool("task_claim", {"id": task_id})
            seen["claimed"] = json.loads(text(claimed))
            lease = await session.call_tool("lease_acquire", {"globs": ["src/**"], "task": task_id})
            seen["lease"] = json.loads(text(lease))
            sent = await session.call_tool("send", {"to": "@all", "text": "working on it"})
            seen["sent"] = json.loads(text(sent))
            missing = await session.call_tool("task_show", {"id": "ffffffff"})
            seen["missing"] = {"is_error": missing.is_error, "text": text(missing)}
            bad = await session.call_tool("task_claim", {"id": "not-an-id!"})
            seen["bad"] = {"is_error": bad.is_error, "text": text(bad)}
            brief = await session.call_tool("brief", {"max_chars": 1500})
            seen["brief"] = json.loads(text(brief))
            done = await session.call_tool("task_done", {"id": task_id, "summary": "done over MCP"})
            seen["done"] = json.loads(text(done))
    print(json.dumps(seen))


asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3]))
