"""In-process capture of every span: `profiler.instrument()`, and `profiler.session()` with spans
that other instrumentation makes. Each case runs in its own interpreter, since both set up
OpenTelemetry's global tracer provider, which can be set once per process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from tests.capture.fake_site import INPUT_TOKENS, ledger_of, write_site
from tests.paths import REPO


def _python(tmp_path: Path, body: str, *, env: dict[str, str] | None = None,
            site: bool = True) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """Run `body` in a fresh interpreter (the stand-in SDK and instrumentors importable); `facts`
    (a dict) is written as JSON at exit and returned."""
    facts = tmp_path / "facts.json"
    script = textwrap.dedent("""
        import atexit, json, os
        facts = {}
        atexit.register(lambda: open(os.environ["FACTS"], "w").write(json.dumps(facts)))
    """) + textwrap.dedent(body)
    paths = [str(REPO), *([str(write_site(tmp_path / "site"))] if site else [])]
    child_env = {k: v for k, v in os.environ.items() if not k.startswith(("SESSIONPROF_", "OTEL_", "PYTHON"))}
    child_env.update(FACTS=str(facts), PYTHONPATH=os.pathsep.join(paths), **(env or {}))
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=child_env, capture_output=True,
                          text=True, timeout=60)
    return done, json.loads(facts.read_text()) if facts.exists() else {}


def test_instrument_records_every_span_of_the_process_in_one_session(tmp_path: Path) -> None:
    done, facts = _python(tmp_path, f"""
        from opentelemetry import trace
        import fakesdk, profiler

        capture = profiler.instrument({str(tmp_path / "run")!r})
        facts.update(provider=capture.provider, instrumentors=capture.instrumentors,
                     skipped=capture.skipped, again=profiler.instrument() is capture)
        tracer = trace.get_tracer("agent")
        for turn in range(2):
            with tracer.start_as_current_span(f"turn {{turn}}"):
                fakesdk.complete("hello")

        @profiler.tool
        def search():
            return 1

        search()  # decorated, with no session: recorded too
    """)
    assert done.returncode == 0, done.stderr
    assert facts["provider"] == "installed" and facts["again"] is True
    # The real instrumentors the test extra installs (tests/integrations) are turned on beside the stand-ins.
    fake = "(fake-instrumentation-"
    assert [name for name in facts["instrumentors"] if fake in name] == [
        "fakesdk (fake-instrumentation-fakesdk)", "other (fake-instrumentation-other)"]
    assert {name: why for name, why in facts["skipped"].items() if fake in name} == {
        "absent (fake-instrumentation-absent)": "library-that-is-not-installed is not installed"}
    ledger = ledger_of(tmp_path / "run")
    assert ledger.totals["model_calls"] == 2 and ledger.totals["input_tokens"] == 2 * INPUT_TOKENS
    assert ledger.totals["tool_calls"] == 1
    assert ledger.totals["sessions"] == 1


def test_instrument_honours_the_run_directory_in_the_environment(tmp_path: Path) -> None:
    run_dir = tmp_path / "from-env"
    done, facts = _python(tmp_path, """
        from opentelemetry import trace
        import profiler

        facts["path"] = str(profiler.instrument(instrumentors="none").path)
        with trace.get_tracer("agent").start_as_current_span("turn"):
            pass
    """, env={"SESSIONPROF_RUN_DIR": str(run_dir)}, site=False)
    assert done.returncode == 0, done.stderr
    assert facts == {"path": str(run_dir)}
    assert "turn" in (run_dir / "spans.jsonl").read_text()


def test_instrument_rejects_a_malformed_selection(tmp_path: Path) -> None:
    done, facts = _python(tmp_path, """
        import profiler
        try:
            profiler.instrument(instrumentors="a,,b")
        except ValueError as err:
            facts["error"] = str(err)
    """, site=False)
    assert facts == {"error": "--instrument takes auto, none or a comma list of instrumentor names, not 'a,,b'"}


def test_instrument_adds_our_processor_to_the_provider_the_program_set_first(tmp_path: Path) -> None:
    done, facts = _python(tmp_path, f"""
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        import fakesdk, profiler

        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        facts["provider"] = profiler.instrument({str(tmp_path / "run")!r}, instrumentors="fakesdk").provider
        with trace.get_tracer("agent").start_as_current_span("turn"):
            fakesdk.complete("hello")
        facts["theirs"] = sorted(s.name for s in exporter.get_finished_spans())
        facts["global_is_theirs"] = trace.get_tracer_provider() is provider
    """)
    assert done.returncode == 0, done.stderr
    assert facts == {"provider": "attached", "theirs": ["chat gpt-4o-mini", "turn"], "global_is_theirs": True}
    assert ledger_of(tmp_path / "run").totals["input_tokens"] == INPUT_TOKENS


def test_a_session_records_the_plain_otel_spans_made_inside_it(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    done, facts = _python(tmp_path, f"""
        from opentelemetry import trace
        import profiler

        tracer = trace.get_tracer("some-sdk")  # the way instrumentors and SDKs get theirs
        chat = {{"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o", "gen_ai.provider.name": "openai",
                "gen_ai.usage.input_tokens": 500, "gen_ai.usage.output_tokens": 50}}
        with tracer.start_as_current_span("before"):
            pass
        with profiler.session("s", run_dir={str(run_dir)!r}, gpu="none") as session:
            with tracer.start_as_current_span("chat gpt-4o", attributes=chat):
                pass
        with tracer.start_as_current_span("after"):
            pass
        facts["session_id"] = session.session_id
    """, site=False)
    assert done.returncode == 0, done.stderr
    ledger = ledger_of(run_dir)
    steps = ledger.steps[ledger.steps["kind"] != "unattributed"]
    assert sorted(steps["name"]) == ["chat gpt-4o", "session s"]  # nothing from outside the session
    chat = steps[steps["kind"] == "chat"].iloc[0]
    assert chat["input_tokens"] == 500 and chat["api_cost_usd"] > 0
    assert chat["session_id"] == facts["session_id"] and ledger.totals["sessions"] == 1


def test_a_process_that_only_decorates_writes_its_spans_at_exit(tmp_path: Path) -> None:
    # What a child of `sessionprof run` with decorators and no session does: its last batch must
    # reach the file before the process ends, however short the agent.
    run_dir = tmp_path / "run"
    done, _ = _python(tmp_path, """
        import profiler

        @profiler.tool
        def search():
            return 1

        search()
    """, env={"SESSIONPROF_RUN_DIR": str(run_dir)}, site=False)
    assert done.returncode == 0, done.stderr
    assert "execute_tool search" in (run_dir / "spans.jsonl").read_text()
