"""The stub model server itself: scripted turns, usage in both providers' shapes, and a log of what it answered."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest

from tests.integrations.stub_server import ANTHROPIC_USAGE, FINAL_ANSWER, OPENAI_USAGE, StubModelServer

WEATHER = {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}}


def _post(stub: StubModelServer, path: str, body: dict[str, Any], key: str) -> dict[str, Any]:
    request = urllib.request.Request(f"{stub.url}{path}", data=json.dumps(body).encode(), method="POST",
                                     headers={"content-type": "application/json", "authorization": f"Bearer {key}"})
    with urllib.request.urlopen(request, timeout=10) as response:  # the stub on 127.0.0.1
        return json.loads(response.read())


def test_chat_completions_ask_for_the_tool_twice_then_answer_with_known_usage(stub: StubModelServer) -> None:
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER}}]
    messages: list[dict[str, Any]] = [{"role": "user", "content": "weather?"}]
    answers = []
    for _ in range(3):
        answer = _post(stub, "/v1/chat/completions", {"model": "gpt-4o-mini", "messages": messages, "tools": tools},
                       "chat-key")
        answers.append(answer)
        messages.append({"role": "tool", "tool_call_id": "x", "content": "sunny"})
    calls = [a["choices"][0]["message"].get("tool_calls") for a in answers]
    assert [c[0]["function"]["name"] if c else None for c in calls] == ["get_weather", "get_weather", None]
    assert json.loads(calls[0][0]["function"]["arguments"]) == {"city": "Paris", "days": 3}
    assert answers[2]["choices"][0]["message"]["content"] == FINAL_ANSWER
    usage = [(a["usage"]["prompt_tokens"], a["usage"]["prompt_tokens_details"]["cached_tokens"],
              a["usage"]["completion_tokens"]) for a in answers]
    assert tuple(usage) == OPENAI_USAGE
    logged = stub.calls("chat-key")
    assert [(c.input_tokens, c.cache_read_tokens, c.output_tokens) for c in logged] == list(OPENAI_USAGE)


def test_anthropic_messages_report_raw_usage_and_log_it_inclusive(stub: StubModelServer) -> None:
    answer = _post(stub, "/v1/messages", {"model": "claude-sonnet-4-20250514", "max_tokens": 64, "messages": [
        {"role": "user", "content": "weather?"},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "sunny"}]},
    ], "tools": [{"name": "get_weather", "input_schema": WEATHER}]}, "messages-key")
    uncached, cache_read, cache_write, output = ANTHROPIC_USAGE[1]
    assert answer["content"][0]["type"] == "tool_use" and answer["stop_reason"] == "tool_use"
    assert answer["usage"] == {"input_tokens": uncached, "output_tokens": output,
                               "cache_read_input_tokens": cache_read, "cache_creation_input_tokens": cache_write}
    [call] = stub.calls("messages-key")
    assert (call.input_tokens, call.cache_read_tokens, call.cache_write_tokens) == (
        uncached + cache_read + cache_write, cache_read, cache_write)


def test_anything_else_is_a_logged_stray(stub: StubModelServer) -> None:
    with pytest.raises(urllib.error.HTTPError) as error:
        _post(stub, "/v1/embeddings", {"model": "m"}, "k")
    error.value.close()
    assert error.value.code == 404
    assert stub.strays == ["POST /v1/embeddings"]
    stub.strays.clear()  # the autouse guard would fail this test for the stray it made on purpose
