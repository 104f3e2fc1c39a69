"""A loopback stand-in for the OpenAI and Anthropic APIs: scripted turns, known usage, a log of every answer.

The stub is stateless per request: a request's turn is the number of tool results its conversation
already holds. Turns below `TOOL_TURNS` ask for a tool (the first one the request offers, with
arguments made from its JSON schema); the next turn answers in text. Each turn has its own usage, so
a report that loses, doubles or mislabels a call is caught by its totals.

Every answer is logged under the API key it was sent with, so that each agent run (one key per run)
can be compared with exactly what the stub answered it. Requests for anything else (a path it does
not serve, or a proxied request to another host) are logged as strays and answered with an error.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

Api = Literal["chat.completions", "responses", "messages"]

#: How many model calls ask for a tool before the one that answers: 3 model calls and 2 tool runs.
TOOL_TURNS = 2

#: OpenAI usage per turn: (prompt tokens including cached ones, cached tokens, completion tokens).
OPENAI_USAGE: tuple[tuple[int, int, int], ...] = ((1210, 0, 21), (1530, 1024, 33), (1850, 1280, 57))

#: Anthropic usage per turn: (uncached input tokens, cache reads, cache writes, output tokens), raw
#: counts as Anthropic reports them (input excludes the cache).
ANTHROPIC_USAGE: tuple[tuple[int, int, int, int], ...] = ((310, 0, 1100, 45), (140, 1100, 260, 52),
                                                          (95, 1360, 180, 64))

FINAL_ANSWER = "It is sunny in Paris, 21 degrees."


@dataclass(frozen=True)
class AnsweredCall:
    """One model call the stub answered, with its usage in the OpenTelemetry convention.

    `input_tokens` includes cache reads and writes, as `gen_ai.usage.input_tokens` does.
    """

    api_key: str
    api: Api
    model: str
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    tool_name: str | None
    """The tool the answer asked for; None for the final answer."""


class StubModelServer:
    """An OpenAI- and Anthropic-compatible HTTP server on a free 127.0.0.1 port, in a thread."""

    def __init__(self) -> None:
        """Bind a free loopback port; nothing is served until `start()`."""
        self._lock = threading.Lock()
        self._calls: list[AnsweredCall] = []
        self.strays: list[str] = []
        """Requests the stub does not serve, as `METHOD target`."""
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="stub-model-server", daemon=True)

    @property
    def url(self) -> str:
        """The server's root URL, e.g. `http://127.0.0.1:40123` (Anthropic's base URL)."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def openai_base_url(self) -> str:
        """The base URL an OpenAI client is given (the root plus `/v1`)."""
        return f"{self.url}/v1"

    def start(self) -> StubModelServer:
        """Serve in a background thread; returns self."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def calls(self, api_key: str) -> list[AnsweredCall]:
        """The model calls answered for one API key, in the order they were answered."""
        with self._lock:
            return [call for call in self._calls if call.api_key == api_key]

    def record(self, call: AnsweredCall) -> None:
        """Log one answered call."""
        with self._lock:
            self._calls.append(call)

    def record_stray(self, what: str) -> None:
        """Log one request the stub does not serve."""
        with self._lock:
            self.strays.append(what)


def _handler_for(stub: StubModelServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            return  # keep pytest's output clean

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            route = {"/v1/chat/completions": _chat_completion, "/v1/responses": _response,
                     "/v1/messages": _message}.get(self.path.split("?")[0])
            if route is None:
                self._stray()
                return
            key = _api_key(self.headers)
            answer, call = route(body, key)
            stub.record(call)
            if body.get("stream"):
                self._send_events(_as_events(call.api, answer, body))
            else:
                self._send_json(200, answer)

        def do_GET(self) -> None:
            self._stray()

        def do_CONNECT(self) -> None:
            self._stray()

        def _stray(self) -> None:
            stub.record_stray(f"{self.command} {self.path}")
            self._send_json(404, {"error": {"type": "not_found", "message": f"the stub does not serve {self.path}"}})

        def _send_json(self, status: int, payload: Any) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _send_events(self, events: list[tuple[str | None, Any]]) -> None:
            lines = []
            for name, payload in events:
                if name:
                    lines.append(f"event: {name}\n")
                lines.append(f"data: {payload if isinstance(payload, str) else json.dumps(payload)}\n\n")
            data = "".join(lines).encode()
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


def _api_key(headers: Any) -> str:
    bearer = headers.get("authorization") or ""
    return headers.get("x-api-key") or bearer.removeprefix("Bearer ").strip()


def _arguments(schema: dict[str, Any]) -> dict[str, Any]:
    """Arguments that satisfy a tool's JSON schema well enough for the scripted agents."""
    samples = {"string": "Paris", "integer": 3, "number": 3.0, "boolean": True}
    properties = schema.get("properties") or {}
    return {name: samples.get(spec.get("type", "string"), "Paris") for name, spec in properties.items()}


def _ids(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:24]}"


def _chat_completion(body: dict[str, Any], key: str) -> tuple[dict[str, Any], AnsweredCall]:
    turn = sum(1 for message in body.get("messages", []) if message.get("role") == "tool")
    prompt, cached, completion = OPENAI_USAGE[min(turn, len(OPENAI_USAGE) - 1)]
    tools = [tool["function"] for tool in body.get("tools") or [] if tool.get("type") == "function"]
    tool = tools[turn % len(tools)] if tools and turn < TOOL_TURNS else None
    message: dict[str, Any] = {"role": "assistant", "content": None if tool else FINAL_ANSWER, "refusal": None}
    if tool:
        message["tool_calls"] = [{"id": _ids("call_"), "type": "function", "function": {
            "name": tool["name"], "arguments": json.dumps(_arguments(tool.get("parameters") or {}))}}]
    answer = {
        "id": _ids("chatcmpl-"), "object": "chat.completion", "created": int(time.time()), "model": body["model"],
        "choices": [{"index": 0, "message": message, "logprobs": None,
                     "finish_reason": "tool_calls" if tool else "stop"}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
                  "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
                  "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0}},
        "system_fingerprint": "fp_stub",
    }
    return answer, AnsweredCall(key, "chat.completions", body["model"], prompt, completion, cached, 0,
                                tool["name"] if tool else None)


def _response(body: dict[str, Any], key: str) -> tuple[dict[str, Any], AnsweredCall]:
    items = body.get("input") if isinstance(body.get("input"), list) else []
    turn = sum(1 for item in items if item.get("type") == "function_call_output")
    prompt, cached, completion = OPENAI_USAGE[min(turn, len(OPENAI_USAGE) - 1)]
    tools = [tool for tool in body.get("tools") or [] if tool.get("type") == "function"]
    tool = tools[turn % len(tools)] if tools and turn < TOOL_TURNS else None
    if tool:
        output = [{"type": "function_call", "id": _ids("fc_"), "call_id": _ids("call_"), "name": tool["name"],
                   "arguments": json.dumps(_arguments(tool.get("parameters") or {})), "status": "completed"}]
    else:
        output = [{"type": "message", "id": _ids("msg_"), "role": "assistant", "status": "completed",
                   "content": [{"type": "output_text", "text": FINAL_ANSWER, "annotations": []}]}]
    answer = {
        "id": _ids("resp_"), "object": "response", "created_at": time.time(), "status": "completed",
        "model": body["model"], "output": output, "parallel_tool_calls": True, "tool_choice": "auto",
        "tools": body.get("tools") or [], "error": None, "incomplete_details": None, "instructions": None,
        "metadata": {}, "temperature": 1.0, "top_p": 1.0,
        "usage": {"input_tokens": prompt, "input_tokens_details": {"cached_tokens": cached},
                  "output_tokens": completion, "output_tokens_details": {"reasoning_tokens": 0},
                  "total_tokens": prompt + completion},
    }
    return answer, AnsweredCall(key, "responses", body["model"], prompt, completion, cached, 0,
                                tool["name"] if tool else None)


def _message(body: dict[str, Any], key: str) -> tuple[dict[str, Any], AnsweredCall]:
    turn = sum(1 for message in body.get("messages", []) if isinstance(message.get("content"), list)
               for block in message["content"] if isinstance(block, dict) and block.get("type") == "tool_result")
    uncached, cache_read, cache_write, output = ANTHROPIC_USAGE[min(turn, len(ANTHROPIC_USAGE) - 1)]
    tools = [tool for tool in body.get("tools") or [] if "input_schema" in tool]
    tool = tools[turn % len(tools)] if tools and turn < TOOL_TURNS else None
    content: list[dict[str, Any]]
    if tool:
        content = [{"type": "tool_use", "id": _ids("toolu_"), "name": tool["name"],
                    "input": _arguments(tool["input_schema"])}]
    else:
        content = [{"type": "text", "text": FINAL_ANSWER}]
    answer = {
        "id": _ids("msg_"), "type": "message", "role": "assistant", "model": body["model"], "content": content,
        "stop_reason": "tool_use" if tool else "end_turn", "stop_sequence": None,
        "usage": {"input_tokens": uncached, "output_tokens": output, "cache_read_input_tokens": cache_read,
                  "cache_creation_input_tokens": cache_write},
    }
    return answer, AnsweredCall(key, "messages", body["model"], uncached + cache_read + cache_write, output,
                                cache_read, cache_write, tool["name"] if tool else None)


def _as_events(api: Api, answer: dict[str, Any], body: dict[str, Any]) -> list[tuple[str | None, Any]]:
    """The same answer as server-sent events, for clients that stream."""
    if api == "chat.completions":
        return _chat_completion_chunks(answer, body)
    raise NotImplementedError(f"the stub does not stream {api}")


def _chat_completion_chunks(answer: dict[str, Any], body: dict[str, Any]) -> list[tuple[str | None, Any]]:
    message = answer["choices"][0]["message"]
    base = {key: answer[key] for key in ("id", "created", "model", "system_fingerprint")}
    delta: dict[str, Any] = {"role": "assistant", "content": message["content"]}
    if message.get("tool_calls"):
        delta["tool_calls"] = [{"index": 0, **call} for call in message["tool_calls"]]
    chunks: list[tuple[str | None, Any]] = [
        (None, {**base, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta}]}),
        (None, {**base, "object": "chat.completion.chunk",
                "choices": [{"index": 0, "delta": {}, "finish_reason": answer["choices"][0]["finish_reason"]}]}),
    ]
    if (body.get("stream_options") or {}).get("include_usage"):
        chunks.append((None, {**base, "object": "chat.completion.chunk", "choices": [], "usage": answer["usage"]}))
    chunks.append((None, "[DONE]"))
    return chunks
