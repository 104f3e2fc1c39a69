"""`sessionprof run -- python agent.py` records every span the child makes, with no code change: its
plain OpenTelemetry spans, its installed instrumentors' and its SDK's own, as one session."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.capture.fake_site import CACHED_TOKENS, INPUT_TOKENS, OUTPUT_TOKENS, ledger_of, sessionprof_run, write_site

TURNS = """
    import sys
    from opentelemetry import trace
    import fakesdk

    tracer = trace.get_tracer("agent")
    for turn in range(3):
        with tracer.start_as_current_span(f"turn {turn}"):  # each turn its own trace
            fakesdk.complete("hello")
    fakesdk.native("hello")
    facts["activated"] = sorted(fakesdk.activated)
    facts["absent_imported"] = "absentinstr" in sys.modules
    sys.exit(3)
"""


def _spans(run_dir: Path) -> list[dict]:
    return [span for line in (run_dir / "spans.jsonl").read_text().splitlines()
            for resource in json.loads(line)["resourceSpans"] for scope in resource["scopeSpans"]
            for span in scope["spans"]]


def test_a_plain_otel_program_with_an_installed_instrumentor_is_recorded_as_one_session(tmp_path: Path) -> None:
    done, run_dir, facts = sessionprof_run(tmp_path, TURNS, pythonpath=[write_site(tmp_path / "site")])

    assert done.returncode == 3, done.stderr  # the child's own exit code
    assert "Traceback" not in done.stderr and "sessionprof: instrumentor" not in done.stderr
    # Every installed instrumentor is on, except the one whose library is absent, which is never imported.
    assert facts == {"activated": ["fakesdk", "other"], "absent_imported": False}
    ledger = ledger_of(run_dir)
    steps = ledger.steps
    assert sorted(steps.loc[steps["kind"] == "step", "name"]) == ["turn 0", "turn 1", "turn 2"]
    assert ledger.totals["model_calls"] == 4  # three through the instrumentor, one the SDK made itself
    assert ledger.totals["input_tokens"] == 3 * INPUT_TOKENS + 10
    assert ledger.totals["output_tokens"] == 3 * OUTPUT_TOKENS + 1
    assert ledger.totals["cache_read_tokens"] == 3 * CACHED_TOKENS
    assert ledger.totals["api_cost_usd"] > 0
    # Three traces, one session: the run's, named in run.json.
    meta = json.loads((run_dir / "run.json").read_text())
    assert ledger.totals["sessions"] == 1
    assert set(steps.loc[steps["kind"] != "unattributed", "session_id"]) == {meta["sessions"][0]["id"]}
    assert meta["instrument"] == "auto"


def test_a_program_that_installs_its_own_provider_gets_it_and_we_record_too(tmp_path: Path) -> None:
    body = """
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        import fakesdk

        early = trace.get_tracer("early")  # handed out before the program's provider exists
        exporter = InMemorySpanExporter()
        provider = TracerProvider(resource=Resource.create({"service.name": "mine"}))
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        with trace.get_tracer("agent").start_as_current_span("turn"):
            fakesdk.complete("hello")  # the instrumentor was turned on before the provider was set
        with early.start_as_current_span("early"):
            pass
        facts["global_is_theirs"] = trace.get_tracer_provider() is provider
        facts["theirs"] = sorted(format(s.context.span_id, "016x") for s in exporter.get_finished_spans())
    """
    done, run_dir, facts = sessionprof_run(tmp_path, body, pythonpath=[write_site(tmp_path / "site")])

    assert done.returncode == 0, done.stderr
    assert "Overriding of current TracerProvider" not in done.stderr
    assert facts["global_is_theirs"] is True
    ours = _spans(run_dir)
    # The program's exporter saw every span, the instrumentor's and the early tracer's included, and so did we.
    assert len(facts["theirs"]) == 3 and sorted(s["spanId"] for s in ours) == facts["theirs"]
    resources = [r["resource"] for line in (run_dir / "spans.jsonl").read_text().splitlines()
                 for r in json.loads(line)["resourceSpans"]]
    assert all({"key": "service.name", "value": {"stringValue": "mine"}} in r["attributes"] for r in resources)
    assert ledger_of(run_dir).totals["input_tokens"] == INPUT_TOKENS


def test_the_users_own_sitecustomize_still_runs(tmp_path: Path) -> None:
    user = tmp_path / "user"
    user.mkdir()
    (user / "sitecustomize.py").write_text("import os\nos.environ['USER_SITECUSTOMIZE'] = 'ran'\n")
    body = """
        import os
        from opentelemetry import trace
        facts["user"] = os.environ.get("USER_SITECUSTOMIZE")
        with trace.get_tracer("agent").start_as_current_span("turn"):
            pass
    """
    done, run_dir, facts = sessionprof_run(tmp_path, body, pythonpath=[user])
    assert done.returncode == 0, done.stderr
    assert facts == {"user": "ran"}
    assert [s["name"] for s in _spans(run_dir)] == ["turn"]


def test_an_error_in_the_users_sitecustomize_is_reported_as_python_would_and_capture_goes_on(tmp_path: Path) -> None:
    user = tmp_path / "user"
    user.mkdir()
    (user / "sitecustomize.py").write_text("raise ValueError('bad user setup')\n")
    body = """
        from opentelemetry import trace
        with trace.get_tracer("agent").start_as_current_span("turn"):
            pass
    """
    done, run_dir, _ = sessionprof_run(tmp_path, body, pythonpath=[user])
    assert done.returncode == 0, done.stderr
    assert "Error in sitecustomize; set PYTHONVERBOSE for traceback:\nValueError: bad user setup" in done.stderr
    assert [s["name"] for s in _spans(run_dir)] == ["turn"]


@pytest.mark.parametrize(("selection", "activated", "instrumented"), [
    ("none", [], False),
    ("other", ["other"], False),
    ("fake-instrumentation-fakesdk", ["fakesdk"], True),  # a distribution's name works too
    ("fakesdk,other", ["fakesdk", "other"], True),
])
def test_instrument_chooses_the_instrumentors(tmp_path: Path, selection: str, activated: list[str],
                                              instrumented: bool) -> None:
    done, run_dir, facts = sessionprof_run(tmp_path, TURNS, "--instrument", selection,
                                           pythonpath=[write_site(tmp_path / "site")])
    assert done.returncode == 3, done.stderr
    assert facts["activated"] == activated
    ledger = ledger_of(run_dir)
    # The SDK's own span and the program's spans are recorded whatever the selection.
    assert ledger.totals["model_calls"] == (4 if instrumented else 1)
    assert (ledger.steps["kind"] == "step").sum() == 3
    assert json.loads((run_dir / "run.json").read_text())["instrument"] == selection


def test_a_name_no_instrumentor_has_is_one_line_and_the_program_runs(tmp_path: Path) -> None:
    done, _, facts = sessionprof_run(tmp_path, TURNS, "--instrument", "other,nosuch",
                                     pythonpath=[write_site(tmp_path / "site")])
    assert done.returncode == 3
    assert facts["activated"] == ["other"]
    assert "sessionprof: instrumentor nosuch: no installed instrumentor has this name\n" in done.stderr


def test_a_malformed_instrument_list_is_a_usage_error(tmp_path: Path) -> None:
    done, run_dir, facts = sessionprof_run(tmp_path, TURNS, "--instrument", "other,,x")
    assert done.returncode == 2 and facts == {} and not run_dir.exists()
    message = " ".join(line.strip("│ ") for line in done.stderr.splitlines())
    assert ("Invalid value for '--instrument': expected auto, none or a comma list of instrumentor names, "
            "not 'other,,x'") in message


def test_an_instrumentor_that_fails_leaves_the_others_on(tmp_path: Path) -> None:
    done, run_dir, facts = sessionprof_run(tmp_path, TURNS, pythonpath=[write_site(tmp_path / "site", broken=True)])
    assert done.returncode == 3
    assert facts["activated"] == ["fakesdk", "other"]
    assert ("sessionprof: instrumentor broken (fake-instrumentation-broken): failed: RuntimeError: cannot patch"
            in done.stderr)
    assert ledger_of(run_dir).totals["model_calls"] == 4


def test_a_run_directory_that_cannot_be_written_never_stops_the_child(tmp_path: Path) -> None:
    body = """
        import os, sys
        from opentelemetry import trace
        import fakesdk
        os.mkdir(os.path.join(os.environ["SESSIONPROF_RUN_DIR"], "spans.jsonl"))  # no file can go there now
        for turn in range(3):
            with trace.get_tracer("agent").start_as_current_span("turn"):
                fakesdk.complete("hello")
        print("agent finished")
        sys.exit(7)
    """
    done, _, _ = sessionprof_run(tmp_path, body, pythonpath=[write_site(tmp_path / "site")])
    assert done.returncode == 7
    assert "agent finished" in done.stdout
    assert "Traceback" not in done.stderr


def test_a_python_that_cannot_import_the_profiler_runs_uninstrumented(tmp_path: Path) -> None:
    shadow = tmp_path / "shadow" / "instrumentation"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('not this environment')\n")
    done, _, facts = sessionprof_run(tmp_path, "facts['ran'] = True\nraise SystemExit(5)\n",
                                     child_only_path=tmp_path / "shadow")
    assert done.returncode == 5 and facts == {"ran": True}
    notices = [line for line in done.stderr.splitlines() if "not recorded" in line]
    assert notices == ["sessionprof: spans of this Python process are not recorded: cannot import the profiler "
                       "here (ImportError: not this environment); install agent-session-profiler in the "
                       f"environment of {sys.executable}"]
    assert "Traceback" not in done.stderr


def test_decorated_steps_without_a_session_are_one_session_and_each_model_call_is_billed_once(
        tmp_path: Path) -> None:
    body = """
        import fakesdk
        import profiler

        @profiler.llm(model="gpt-4o-mini", provider="openai")
        def think(prompt):
            return fakesdk.complete(prompt)  # instrumented too: our span owns the call

        @profiler.agent
        def turn(prompt):
            return think(prompt)

        for _ in range(3):
            turn("hello")  # three top-level steps, three traces
    """
    done, run_dir, _ = sessionprof_run(tmp_path, body, pythonpath=[write_site(tmp_path / "site")])
    assert done.returncode == 0, done.stderr
    ledger = ledger_of(run_dir)
    assert ledger.totals["sessions"] == 1
    assert ledger.totals["model_calls"] == 3  # not 6: the instrumentor honoured the suppression key
    assert ledger.totals["input_tokens"] == 3 * INPUT_TOKENS
    assert set(ledger.steps.loc[ledger.steps["kind"] == "chat", "name"]) == {"chat gpt-4o-mini"}


def test_a_session_id_the_framework_gives_is_kept(tmp_path: Path) -> None:
    body = """
        from opentelemetry import trace
        tracer = trace.get_tracer("framework")
        with tracer.start_as_current_span("conversation", attributes={"session.id": "conv-42"}):
            pass
        with tracer.start_as_current_span("unnamed"):
            pass
    """
    done, run_dir, _ = sessionprof_run(tmp_path, body)
    assert done.returncode == 0, done.stderr
    meta = json.loads((run_dir / "run.json").read_text())
    sessions = profiler_sessions(run_dir)
    assert sessions == {"conversation": "conv-42", "unnamed": meta["sessions"][0]["id"]}


def profiler_sessions(run_dir: Path) -> dict[str, str]:
    """Each span's session, by span name, as the loader reads it."""
    import profiler

    spans = profiler.load(run_dir).spans
    return dict(zip(spans["name"], spans["session_id"], strict=True))
