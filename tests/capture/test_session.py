"""`profiler.session()`: run directory, GPU sampling, flushing, results, and the user-owned provider path."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

import profiler
from instrumentation import SessionSpanProcessor
from profiler.testing import FakeGpuBackend


def test_session_with_a_gpu_writes_a_conserved_ledger(tmp_path: Path) -> None:
    gpu = FakeGpuBackend(power_w=lambda t: 300.0 if t < 0.3 else 80.0, mem_used_bytes=8 * 1024**3)

    @profiler.llm(model="gpt-4o-mini", provider="openai")
    def think() -> dict:
        time.sleep(0.3)
        return {"model": "gpt-4o-mini", "usage": {"prompt_tokens": 2000, "completion_tokens": 100}}

    @profiler.tool
    def wait_on_tool() -> None:
        time.sleep(0.3)

    with profiler.session("gpu", run_dir=tmp_path, gpu=gpu, sample_interval_s=0.02) as session:
        think()
        wait_on_tool()

    meta = json.loads((tmp_path / "run.json").read_text())
    assert meta["status"] == "complete" and meta["gpus"][0]["uuid"] == "GPU-fake-0"
    assert meta["sampler"]["ticks"] > 10 and meta["dropped"]["spans"] == 0
    assert (tmp_path / "samples.csv").read_text().startswith("t_ns,gpu,")
    ledger = session.ledger
    assert ledger.checks["conservation_held"]
    steps = ledger.steps.set_index("name")
    # A remote API call takes no share of the local GPU while... here it is alone beside no local step,
    # so the session's GPU is charged to it as idle time; the tool also gets its share.
    assert steps.loc["execute_tool wait_on_tool", "self_energy_j"] > 0
    assert steps.loc["execute_tool wait_on_tool", "self_gpu_mem_gib_s"] == pytest.approx(0, abs=1e-9)
    assert steps.loc["chat gpt-4o-mini", "api_cost_source"] == "computed:genai-prices"
    assert ledger.totals["energy_j"] == pytest.approx(sum(g["measured"]["energy_j"] for g in ledger.totals["gpus"]))
    assert "execute_tool wait_on_tool" in session.report()


def test_spans_name_their_process_and_samples_its_memory(tmp_path: Path) -> None:
    gpu = FakeGpuBackend(proc_mem_bytes_by_pid={os.getpid(): 3 * 1024**3, 1: 5 * 1024**3}, temp_c=61.0)
    opened = profiler.session("pids", run_dir=tmp_path, gpu=gpu, sample_interval_s=0.02, policy="memory")
    with opened as session, profiler.step("work"):
        time.sleep(0.1)

    resources = [rs["resource"] for line in (tmp_path / "spans.jsonl").read_text().splitlines()
                 for rs in json.loads(line)["resourceSpans"]]
    pid = {"key": "process.pid", "value": {"intValue": str(os.getpid())}}
    assert resources and all(pid in resource["attributes"] for resource in resources)
    run = profiler.load(tmp_path)
    assert set(run.spans["pid"]) == {float(os.getpid())}
    # Only this run's processes are recorded: pid 1 holds memory on the GPU but is not ours.
    assert set(run.samples["proc_mem_bytes_by_pid"].dropna()) == {f"{os.getpid()}:{3 * 1024**3}"}
    assert session.ledger.run["policy"] == "memory" and session.ledger.run["policy_fallback"] == {}
    assert session.ledger.checks["conservation_held"]
    assert session.ledger.totals["gpus"][0]["readings"]["temp_c"]["max"] == 61.0


def test_run_directory_is_private(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    with profiler.session(run_dir=run_dir, gpu=FakeGpuBackend()), profiler.step("s"):
        pass
    assert stat.S_IMODE(run_dir.stat().st_mode) == 0o700
    for name in ("spans.jsonl", "samples.csv", "run.json"):
        assert stat.S_IMODE((run_dir / name).stat().st_mode) == 0o600, name


def test_no_gpu_is_one_notice_and_a_cpu_only_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import profiler.capture.session as session_module

    session_module._notified = False
    for index in range(2):
        with profiler.session(run_dir=tmp_path / str(index), gpu="auto") as session, profiler.tool("t"):
            pass
    notices = [line for line in capsys.readouterr().err.splitlines() if line.startswith("sessionprof:")]
    assert len(notices) == 1 and "CPU-only run" in notices[0]
    ledger = session.ledger
    assert ledger.steps["energy_j"].isna().all()  # not measured is not zero
    assert ledger.totals["energy_j"] is None


def test_no_gpu_asked_for_is_no_notice(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import profiler.capture.session as session_module

    session_module._notified = False
    with profiler.session(run_dir=tmp_path, gpu="none"), profiler.tool("t"):
        pass
    assert "sessionprof:" not in capsys.readouterr().err


def test_gpu_nvml_fails_fast_without_a_gpu(tmp_path: Path) -> None:
    from profiler.gpu.nvml import probe_gpus

    if probe_gpus()[0]:
        pytest.skip("this machine has a GPU")
    with pytest.raises(profiler.GpuUnavailableError), profiler.session(run_dir=tmp_path, gpu="nvml"):
        pass


def test_spans_reach_the_file_within_a_second(tmp_path: Path) -> None:
    with profiler.session(run_dir=tmp_path, gpu="none"):
        with profiler.tool("early"):
            pass
        time.sleep(1.1)
        assert "execute_tool early" in (tmp_path / "spans.jsonl").read_text()


def test_user_owned_provider_needs_only_the_processor(tmp_path: Path) -> None:
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SessionSpanProcessor(run_dir=tmp_path))
    tracer = provider.get_tracer("mine")
    with tracer.start_as_current_span("chat gpt-4o", attributes={"gen_ai.operation.name": "chat",
                                                                "gen_ai.request.model": "gpt-4o",
                                                                "gen_ai.usage.input_tokens": 100,
                                                                "gen_ai.usage.output_tokens": 10}):
        pass
    provider.shutdown()
    ledger = profiler.attribute(profiler.load(tmp_path))
    chat = ledger.steps[ledger.steps["kind"] == "chat"].iloc[0]
    assert chat["input_tokens"] == 100 and chat["api_cost_usd"] > 0


@pytest.mark.parametrize(("resource", "expected"), [({"service.name": "mine"}, os.getpid()),
                                                    ({"process.pid": 1234}, 1234)])
def test_the_exporter_names_the_process_unless_the_resource_does(tmp_path: Path, resource: dict,
                                                                  expected: int) -> None:
    provider = TracerProvider(resource=Resource.create(resource), shutdown_on_exit=False)
    provider.add_span_processor(SessionSpanProcessor(run_dir=tmp_path))
    with provider.get_tracer("mine").start_as_current_span("work"):
        pass
    provider.shutdown()
    assert profiler.load(tmp_path).spans["pid"].tolist() == [float(expected)]


def test_global_provider_is_used_by_decorators_without_a_session(tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from instrumentation import SessionSpanProcessor
        import profiler
        provider = TracerProvider()
        provider.add_span_processor(SessionSpanProcessor(run_dir={str(tmp_path)!r}))
        trace.set_tracer_provider(provider)

        @profiler.tool
        def search():
            return 1
        search()
        provider.shutdown()
    """)
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    assert "execute_tool search" in (tmp_path / "spans.jsonl").read_text()


def test_async_session(tmp_path: Path) -> None:
    import asyncio

    @profiler.tool
    async def fetch() -> int:
        await asyncio.sleep(0.01)
        return 1

    async def main() -> None:
        async with profiler.session("async", run_dir=tmp_path, gpu="none"):
            await asyncio.gather(fetch(), fetch())

    asyncio.run(main())
    ledger = profiler.attribute(profiler.load(tmp_path))
    assert ledger.totals["tool_calls"] == 2 and ledger.totals["sessions"] == 1
