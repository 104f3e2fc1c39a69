"""A stand-in chat model for the examples: no network, realistic usage, real response objects.

It answers like an OpenAI chat-completions endpoint: the returned object is an
`openai.types.chat.ChatCompletion` when the `openai` package is installed, else a dict of the
same shape. Usage grows with the conversation as a real model's does: the whole history is
re-sent each turn, and the prefix seen before is served from the prompt cache in 1024-token blocks.
"""

from __future__ import annotations

import json
import random
import time
from typing import Any

MODEL = "gpt-4o-mini"
CACHE_BLOCK_TOKENS = 1024
#: What a real agent sends before the conversation: instructions and the JSON schema of each tool.
SYSTEM_AND_TOOLS_TOKENS = 1_650
TOOL_SCHEMA_TOKENS = 180

try:  # imported here, not in the first call, so the first step is not charged for the import
    from openai.types.chat import ChatCompletion
except ImportError:  # the examples run without openai installed; responses are then plain dicts
    ChatCompletion = None  # type: ignore[assignment,misc]


def _tokens(text: str) -> int:
    return max(1, len(text) // 4)  # about four characters a token for English text


class StandInModel:
    """Decides the next step of the example agent from the conversation so far."""

    def __init__(self, seed: int = 7, seconds_per_output_token: float = 0.002) -> None:
        self.random = random.Random(seed)
        self.seconds_per_output_token = seconds_per_output_token
        self.previous_input_tokens = 0

    def complete(self, messages: list[dict[str, Any]], tools: list[str]) -> Any:
        prompt_tokens = (SYSTEM_AND_TOOLS_TOKENS + TOOL_SCHEMA_TOKENS * len(tools)
                         + sum(_tokens(json.dumps(m)) for m in messages))
        cached = (min(self.previous_input_tokens, prompt_tokens) // CACHE_BLOCK_TOKENS) * CACHE_BLOCK_TOKENS
        self.previous_input_tokens = prompt_tokens
        tool_results = sum(1 for m in messages if m["role"] == "tool")
        if tool_results < 4:
            calls = self._tool_calls(messages, tools, tool_results)
            content, finish = None, "tool_calls"
            completion_tokens = 40 + 25 * len(calls)
        else:
            calls, finish = [], "stop"
            content = "Summary: the stand-in model has gathered four tool results and writes its answer."
            completion_tokens = 180 + self.random.randint(0, 60)
        reasoning = self.random.randint(0, 64) if calls else 0
        time.sleep(0.05 + completion_tokens * self.seconds_per_output_token)
        return _response(content, calls, finish, prompt_tokens, completion_tokens + reasoning, cached, reasoning)

    def _tool_calls(self, messages: list[dict[str, Any]], tools: list[str], done: int) -> list[dict[str, Any]]:
        question = messages[1]["content"]
        if done == 0:
            # Two searches at once: the agent runs them concurrently.
            return [_call("web_search", {"query": question}), _call("web_search", {"query": question + " costs"})]
        if done == 2:
            return [_call("read_page", {"url": "https://example.org/report"})]
        return [_call("calculator", {"expression": "0.15 * 1200 + 3.2 * 40"})]


def _call(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {"id": f"call_{name}_{abs(hash(json.dumps(arguments))) % 10**8}", "type": "function",
            "function": {"name": name, "arguments": json.dumps(arguments)}}


def _response(content: str | None, calls: list[dict[str, Any]], finish: str, prompt_tokens: int,
              completion_tokens: int, cached: int, reasoning: int) -> Any:
    data = {
        "id": f"chatcmpl-standin-{time.time_ns()}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": MODEL,
        "choices": [{"index": 0, "finish_reason": finish,
                     "message": {"role": "assistant", "content": content, "tool_calls": calls or None}}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": cached},
            "completion_tokens_details": {"reasoning_tokens": reasoning},
        },
    }
    return data if ChatCompletion is None else ChatCompletion.model_validate(data)
