"""`sessionprof run -- claude -p ...`: a coding agent that reports each model request as an OTLP log event."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.integrations.cases import AgentCase
from tests.integrations.helpers import (
    AGENTS,
    Finished,
    agent_env,
    assert_billed_as_answered,
    new_api_key,
    read_report,
    run_checked,
    sessionprof,
)
from tests.integrations.stub_server import StubModelServer

pytestmark = pytest.mark.slow
CLAUDE_CODE = AgentCase("claude-code", "fake_claude_code.py", tool_runs=0)


def test_run_bills_each_claude_code_request(stub: StubModelServer, tmp_path: Path) -> None:
    # `claude` on PATH is the stand-in, as the recipe in docs/integrations.md runs it.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    claude = bin_dir / "claude"
    claude.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{AGENTS / CLAUDE_CODE.script}" "$@"\n')
    claude.chmod(0o755)
    key = new_api_key()
    env = agent_env(stub, key)
    env["PATH"] = f"{bin_dir}:{env.get('PATH', '')}"
    done = run_checked([sessionprof(), "run", "--gpu", "none", "--no-html", "-f", "json", "-o", "report.json",
                        "--run-dir", "run", "--", "claude", "-p", "fix the failing test"], env=env, cwd=tmp_path)
    assert len(stub.calls(key)) == 2
    assert_billed_as_answered(Finished(key, read_report(tmp_path / "report.json"), done.stderr), stub.calls(key),
                              CLAUDE_CODE)
