"""`sessionprof report FILE` on every trace dialect, on bad input, and on a trace without GenAI."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.helpers import agent_session, invoke, write_samples, write_trace
from tests.paths import DATA, REAL


@pytest.mark.skipif(not REAL.is_dir(), reason="shared/reference/real-traces is not here")
def test_the_collector_file_without_genai_reports_zero_model_calls_and_exits_0(tmp_path: Path) -> None:
    executable = shutil.which("sessionprof", path=str(Path(sys.executable).parent)) or "sessionprof"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIONPROF_")}
    done = subprocess.run([executable, "report", str(REAL / "collector_fileexporter_java_http_nogenai.jsonl"),
                           "--format", "json"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["totals"]["model_calls"] == 0 and report["totals"]["steps"] == 11
    assert report["totals"]["api_cost_usd"] is None


@pytest.mark.parametrize("name", ["jaeger_ui_download.json", "console_exporter_maf_style.jsonl"])
@pytest.mark.parametrize("fmt", ["table", "json", "markdown", "csv"])
def test_report_reads_jaeger_and_console_files(name: str, fmt: str) -> None:
    result = invoke("report", DATA / name, "--format", fmt)
    assert result.exit_code == 0, result.stderr
    assert "chat gpt-4o" in result.stdout
    if fmt == "json":
        assert json.loads(result.stdout)["totals"]["model_calls"] == 2


def test_report_reads_gzip(tmp_path: Path) -> None:
    plain = write_trace(tmp_path / "spans.jsonl", agent_session())
    packed = tmp_path / "spans.jsonl.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    result = invoke("report", packed, "-f", "json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["totals"]["input_tokens"] == 1500


def test_bad_input_is_one_line_naming_file_and_line(tmp_path: Path) -> None:
    path = write_trace(tmp_path / "spans.jsonl", agent_session())
    with path.open("a") as stream:
        stream.write('{"resourceSpans": [}\n{"resourceSpans": []}\n')
    result = invoke("report", path)
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"sessionprof: error: {path}:5: invalid JSON")
    assert "Traceback" not in result.stderr


def test_a_cut_short_last_line_is_a_warning_and_the_rest_is_reported(tmp_path: Path) -> None:
    path = write_trace(tmp_path / "spans.jsonl", agent_session())
    with path.open("a") as stream:
        stream.write('{"resourceSpans": [{"scopeSpans": [{"spa')
    result = invoke("report", path, "-f", "json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["totals"]["model_calls"] == 2
    assert any("incomplete" in w for w in report["checks"]["warnings"])


def test_policy_memory_splits_two_processes_sessions_by_the_memory_each_holds(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    write_trace(run_dir / "spans.jsonl", agent_session(conversation="a"), pid=100)
    other_trace = "4bf92f3577b34da6a3ce929d0e0e4737"
    write_trace(run_dir / "spans.jsonl", agent_session(conversation="b", trace=other_trace), pid=200,
                append=True)
    write_samples(run_dir / "samples.csv", 0.0, 10.0, watts=200.0, by_pid={100: 3 * 2**30, 200: 2**30})
    shares = {}
    for policy in ("equal", "memory"):
        result = invoke("report", run_dir, "--policy", policy, "--format", "json", "--by", "session")
        assert result.exit_code == 0, result.stderr
        document = json.loads(result.stdout)
        shares[policy] = {g["session"]: g["energy_j"] for g in document["groups"]}
    assert shares["equal"]["a"] == pytest.approx(1000.0) and shares["equal"]["b"] == pytest.approx(1000.0)
    assert shares["memory"]["a"] == pytest.approx(1500.0) and shares["memory"]["b"] == pytest.approx(500.0)
    assert document["run"]["policy"] == "memory" and document["run"]["policy_fallback"] == {}
    table = invoke("report", run_dir, "--policy", "memory")
    assert "policy: concurrent steps share each GPU by the memory their processes hold" in table.stdout
    wrong = invoke("report", run_dir, "--policy", "bytes")
    assert wrong.exit_code != 0 and "memory" in wrong.stderr
