"""What the agent says stays with the agent: no content unless opted in, redaction when it is,
private files, and no network connection unless asked."""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path
from typing import Any

import pytest

import profiler
from profiler.testing import FakeGpuBackend
from tests.cli.helpers import invoke
from tests.reliability.helpers import raw_spans

SECRET = "sk-live-SECRET-token-1234"


@profiler.tool
def lookup(account: str, password: str) -> str:
    return f"balance for {account}: 42 ({SECRET})"


@profiler.llm(model="gpt-4o-mini", provider="openai")
def ask(messages: list[dict[str, Any]]) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "usage": {"prompt_tokens": 10, "completion_tokens": 3},
            "choices": [{"message": {"role": "assistant", "content": f"the key is {SECRET}"}}]}


def _run(tmp_path: Path, **options: Any) -> str:
    with profiler.session(run_dir=tmp_path, gpu="none", **options):
        lookup("alice", password=SECRET)
        ask([{"role": "user", "content": f"remember {SECRET}"}])
    return (tmp_path / "spans.jsonl").read_text()


def test_content_is_not_recorded_by_default(tmp_path: Path) -> None:
    text = _run(tmp_path)
    assert SECRET not in text and "alice" not in text
    assert "gen_ai.tool.call.arguments" not in text and "gen_ai.input.messages" not in text


def test_the_otel_setting_opts_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
    _run(tmp_path)
    spans = {s["name"]: {a["key"]: a["value"].get("stringValue") for a in s["attributes"]}
             for s in raw_spans(tmp_path)}
    arguments = json.loads(spans["execute_tool lookup"]["gen_ai.tool.call.arguments"])
    assert arguments == {"account": "alice", "password": SECRET}
    assert SECRET in spans["execute_tool lookup"]["gen_ai.tool.call.result"]
    assert SECRET in spans["chat gpt-4o-mini"]["gen_ai.input.messages"]
    assert SECRET in spans["chat gpt-4o-mini"]["gen_ai.output.messages"]


def test_redaction_hook_changes_or_drops_values(tmp_path: Path) -> None:
    def redact(key: str, text: str) -> str | None:
        if key == "gen_ai.tool.call.result":
            return None
        return text.replace(SECRET, "[redacted]")

    text = _run(tmp_path, capture_content=True, redact=redact)
    assert SECRET not in text
    assert "[redacted]" in text and "gen_ai.tool.call.result" not in text


def test_session_setting_beats_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
    assert SECRET not in _run(tmp_path, capture_content=False)


def test_no_network_connection_is_opened(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    attempts: list[Any] = []

    def refuse(self: socket.socket, address: Any) -> None:
        attempts.append(address)
        raise OSError("network blocked by test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: refuse(None, a))  # type: ignore[arg-type]
    with profiler.session(run_dir=tmp_path, gpu=FakeGpuBackend()) as session:
        lookup("bob", password="x")
        ask([{"role": "user", "content": "hi"}])
    ledger = session.ledger
    assert ledger.steps["api_cost_usd"].notna().any()  # prices came from the bundled snapshot
    session.report()
    for fmt in ("json", "csv", "markdown"):
        session.report(fmt)
    assert attempts == []


API_KEY = "sk-proj-AbCdEfGhIjKlMnOpQrStUvWx0123"
PROMPT = "my bank PIN is 8841"


class BrokenResponse:
    """A response whose `.usage` raises an error quoting its input, as pydantic's validation errors do."""

    model = "gpt-4o"

    @property
    def usage(self) -> Any:
        raise ValueError(f"1 validation error for Usage: input_value={{'prompt': {PROMPT!r}, 'key': {API_KEY!r}}}")


def test_an_unreadable_response_keeps_its_span_and_leaks_nothing(tmp_path: Path) -> None:
    @profiler.llm(model="gpt-4o", provider="openai")
    def call() -> BrokenResponse:
        return BrokenResponse()

    with profiler.session(run_dir=tmp_path, gpu=FakeGpuBackend()) as session:
        assert isinstance(call(), BrokenResponse)  # the agent gets its response
    # The model call is kept with what could be read (before: 0 of 1 recorded).
    chats = [s for s in raw_spans(tmp_path) if s["name"] == "chat gpt-4o"]
    assert len(chats) == 1
    meta = json.loads((tmp_path / "run.json").read_text())
    assert meta["dropped"]["profiler_internal_errors"] == 1
    assert meta["dropped"]["profiler_last_internal_error"].startswith("ValueError in usage (test_secrets.py:")
    outputs = [(tmp_path / name).read_text() for name in ("run.json", "spans.jsonl")]
    outputs += [session.report(fmt) for fmt in ("table", "markdown", "json", "csv")]
    from reports import render

    outputs.append(str(render(session.ledger, "html")))
    for text in outputs:
        assert API_KEY not in text and PROMPT not in text


@pytest.mark.parametrize(("argv", "expected"), [
    (["agent.py", "--api-key", API_KEY, "--max-tokens", "100"],
     ["agent.py", "--api-key", "***", "--max-tokens", "100"]),
    (["agent.py", "--token=abc123", "--password", "hunter2"], ["agent.py", "--token=***", "--password", "***"]),
    (["agent.py", "--secret", "s3", "--author", "ann"], ["agent.py", "--secret", "***", "--author", "ann"]),
    (["env", "OPENAI_API_KEY=abc", "DB_PASSWORD=x", "MODEL=gpt-4o"],
     ["env", "OPENAI_API_KEY=***", "DB_PASSWORD=***", "MODEL=gpt-4o"]),
    (["agent.py", "--url", "https://bob:hunter2@example.com/x"], ["agent.py", "--url", "https://bob:***@example.com/x"]),
    (["agent.py", "-H", "Authorization: Bearer abcdefgh12345678"], ["agent.py", "-H", "Authorization: Bearer ***"]),
    (["agent.py", "sk-ant-api03-abcdefghijkl", "ghp_abcdefghijklmnopqrstuvwxyz0123", "AKIAIOSFODNN7EXAMPLE"],
     ["agent.py", "***", "***", "***"]),
])
def test_secrets_on_the_command_line_are_masked(argv: list[str], expected: list[str]) -> None:
    from profiler.capture.argv import mask_command

    assert mask_command(argv) == expected


def test_run_json_keeps_the_command_without_its_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.argv", ["agent.py", "--api-key", API_KEY, "--model", "gpt-4o"])
    with profiler.session(run_dir=tmp_path, gpu=FakeGpuBackend()):
        pass
    meta = json.loads((tmp_path / "run.json").read_text())
    assert meta["command"] == ["agent.py", "--api-key", "***", "--model", "gpt-4o"]  # before: the key itself
    assert API_KEY not in (tmp_path / "run.json").read_text()


def test_sessionprof_run_masks_the_command_it_records(tmp_path: Path) -> None:
    result = invoke("run", "--run-dir", str(tmp_path / "run"), "--gpu", "none", "--no-report", "--",
                    sys.executable, "-c", "import profiler\nwith profiler.step('work'):\n    pass", "--api-key",
                    API_KEY)
    assert result.exit_code == 0, result.stderr
    assert API_KEY not in (tmp_path / "run" / "run.json").read_text()
