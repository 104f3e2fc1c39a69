"""A small research agent, profiled: several turns of model calls and tool calls, one tool async.

    sessionprof run -- python examples/quickstart.py

With no model configured it uses a stand-in model (labelled so in its output) and never touches
the network. To use a real one, set OPENAI_BASE_URL (a local vLLM or Ollama server, say) or
OPENAI_API_KEY, or ANTHROPIC_API_KEY; SESSIONPROF_EXAMPLE_MODEL picks the model.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from opentelemetry import trace

sys.path.insert(0, str(Path(__file__).resolve().parent))

from stand_in_model import StandInModel  # noqa: E402

import profiler  # noqa: E402

TOOLS = ["web_search", "read_page", "calculator"]
SYSTEM = "You are a research assistant. Use the tools to answer, then summarise with numbers."


# --- tools: what the agent can do between model calls ------------------------------------------------

@profiler.tool
async def web_search(query: str) -> str:
    """Async tool: waits on the (simulated) network."""
    await asyncio.sleep(0.30)
    results = [{"title": f"Result {i} for {query}", "url": f"https://example.org/report/{i}",
                "snippet": "Measured GPU power, memory held between turns and the price per million tokens. " * 3}
               for i in range(5)]
    return json.dumps(results)


@profiler.tool
def read_page(url: str) -> str:
    """Sync tool: fetches and parses a page (simulated)."""
    time.sleep(0.20)
    return f"{url}: GPUs draw 300-700 W under load; an idle H100 holds its memory at about 70 W."


@profiler.tool(name="calculator")
def calculate(expression: str) -> str:
    """Sync tool: pure CPU work."""
    total = sum(i * i for i in range(200_000))  # some real work, so the step has a cost of its own
    return f"{expression} = {eval(expression, {'__builtins__': {}}) + 0 * total:.2f}"  # noqa: S307 - fixed input


# --- the model -----------------------------------------------------------------------------------------

class Model:
    """A real OpenAI-compatible or Anthropic model when configured, else the stand-in."""

    def __init__(self, force_stand_in: bool) -> None:
        self.kind, self.client = "stand-in", StandInModel()
        self.model = os.environ.get("SESSIONPROF_EXAMPLE_MODEL", "gpt-4o-mini")
        if force_stand_in:
            return
        if os.environ.get("OPENAI_BASE_URL") or os.environ.get("OPENAI_API_KEY"):
            from openai import OpenAI

            self.kind, self.client = "openai", OpenAI()
        elif os.environ.get("ANTHROPIC_API_KEY"):
            from anthropic import Anthropic

            self.kind, self.client = "anthropic", Anthropic()
            self.model = os.environ.get("SESSIONPROF_EXAMPLE_MODEL", "claude-haiku-4-5")

    @profiler.llm
    def complete(self, messages: list[dict[str, Any]]) -> Any:
        """One model call; the decorator reads usage from the response it returns."""
        if self.kind == "stand-in":
            trace.get_current_span().set_attribute("sessionprof.model.stand_in", True)
            return self.client.complete(messages, TOOLS)
        if self.kind == "openai":
            tools = [{"type": "function", "function": {"name": n, "parameters": {"type": "object"}}} for n in TOOLS]
            return self.client.chat.completions.create(model=self.model, messages=messages, tools=tools)
        return self.client.messages.create(model=self.model, max_tokens=512, system=SYSTEM,
                                           messages=[m for m in messages if m["role"] in ("user", "assistant")])


def _message(response: Any) -> dict[str, Any]:
    """The assistant message of a response, as a dict (OpenAI object, Anthropic object or dict)."""
    if isinstance(response, dict):
        return response["choices"][0]["message"]
    if hasattr(response, "choices"):
        return response.choices[0].message.model_dump(exclude_none=True)
    text = "".join(getattr(block, "text", "") for block in response.content)
    return {"role": "assistant", "content": text}


# --- the agent loop ------------------------------------------------------------------------------------

async def run_tool(call: dict[str, Any]) -> dict[str, Any]:
    name, arguments = call["function"]["name"], json.loads(call["function"]["arguments"] or "{}")
    if name == "web_search":
        result = await web_search(**arguments)
    elif name == "read_page":
        result = read_page(**arguments)
    else:
        result = calculate(**arguments)
    return {"role": "tool", "tool_call_id": call["id"], "content": result}


@profiler.agent(name="research-assistant")
async def research(question: str, model: Model, max_turns: int = 6) -> str:
    messages: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]
    for _turn in range(max_turns):
        message = _message(model.complete(messages))
        messages.append(message)
        calls = message.get("tool_calls") or []
        if not calls:
            return message.get("content") or ""
        # Independent tool calls run concurrently, as real agents do.
        messages.extend(await asyncio.gather(*(run_tool(call) for call in calls)))
    return "(stopped after max_turns)"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stand-in", action="store_true", help="use the stand-in model even if one is configured")
    parser.add_argument("--question", default="What does it cost to keep an agent's model warm on a GPU?")
    args = parser.parse_args()
    model = Model(force_stand_in=args.stand_in)
    label = "stand-in model (no network; realistic usage)" if model.kind == "stand-in" else model.kind
    print(f"quickstart: model = {model.model} via {label}")
    # Under `sessionprof run`, the session joins the run that command started; run alone, it makes its own.
    with profiler.session("quickstart") as session:
        answer = await research(args.question, model)
    print(f"quickstart: answer = {answer[:100]}")
    if os.environ.get("SESSIONPROF_RUN_DIR") is None:
        print(session.report())
        print(f"run directory: {session.path}")


if __name__ == "__main__":
    asyncio.run(main())
