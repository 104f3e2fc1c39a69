"""`sessionprof whatif RUN`: another model, other prices, another GPU rate; self-hosted break-even."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import pytest

import profiler
from profiler.analysis.whatif import check_model, what_if
from profiler.errors import ConfigError
from profiler.pricing.prices import Prices
from tests.cli.helpers import agent_session, chat, invoke, otlp_span, write_samples, write_trace


def _fingerprint(directory: Path) -> dict[str, tuple[str, int]]:
    return {p.name: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(directory.iterdir())}


@pytest.fixture
def api_trace(tmp_path: Path) -> Path:
    return write_trace(tmp_path / "spans.jsonl", agent_session())


@pytest.fixture
def self_hosted_run(tmp_path: Path) -> Path:
    """A run directory: a vLLM-served agent on one GPU, sampled for 10 s at 200 W."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    spans = [otlp_span("a000000000000001", None, "invoke_agent local", 0, 10, gen_ai__operation__name="invoke_agent",
                       gen_ai__conversation__id="local"),
             chat("c000000000000001", "a000000000000001", 1, 4, model="meta-llama/Llama-3.1-8B-Instruct",
                  provider="vllm", inp=200_000, out=20_000, conversation="local"),
             chat("c000000000000002", "a000000000000001", 5, 9, model="meta-llama/Llama-3.1-8B-Instruct",
                  provider="vllm", inp=300_000, out=30_000, conversation="local")]
    write_trace(run_dir / "spans.jsonl", spans)
    write_samples(run_dir / "samples.csv", 0.0, 10.0, watts=200.0)
    (run_dir / "run.json").write_text(json.dumps({"status": "complete", "run_id": "local-run"}))
    return run_dir


def test_another_model_reprices_every_call(api_trace: Path) -> None:
    result = invoke("whatif", api_trace, "--model", "gpt-4o-mini", "-f", "json")
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    comparison = {row["component"]: row for row in document["comparison"]}
    api = comparison["api_cost_usd"]
    assert 0 < api["what_if"] < api["original"]  # gpt-4o-mini is cheaper than gpt-4o
    assert api["delta"] == pytest.approx(api["what_if"] - api["original"])
    (model,) = document["by_model"]
    assert model["model"] == "gpt-4o" and model["calls"] == 2 and model["what_if_model"] == "openai/gpt-4o-mini"
    assert document["changes"]["priced_as"] == "openai/gpt-4o-mini"
    assert document["break_even"] is None


def test_what_if_prices_agree_with_a_run_recorded_with_that_model(tmp_path: Path) -> None:
    original = profiler.load(write_trace(tmp_path / "a.jsonl", agent_session()))
    recorded = write_trace(tmp_path / "b.jsonl", [
        {**span, "attributes": [a if a["key"] != "gen_ai.request.model" else
                                {"key": a["key"], "value": {"stringValue": "claude-sonnet-4-5"}}
                                for a in span["attributes"]]} for span in agent_session()])
    result = what_if(original, model="claude-sonnet-4-5")
    assert result.scenario.totals["api_cost_usd"] == pytest.approx(
        profiler.attribute(profiler.load(recorded)).totals["api_cost_usd"])


def test_an_unknown_model_is_a_one_line_error(api_trace: Path) -> None:
    result = invoke("whatif", api_trace, "--model", "gpt-9-imaginary")
    assert result.exit_code == 1
    assert result.stderr.startswith("sessionprof: error: unknown model 'gpt-9-imaginary'")
    assert result.stderr.count("\n") == 1
    with pytest.raises(ConfigError, match="at provider 'nobody'"):
        check_model("gpt-4o", "nobody")
    assert check_model("gpt-4o") == "openai/gpt-4o"


def test_other_prices_change_only_what_they_price(self_hosted_run: Path) -> None:
    run = profiler.load(self_hosted_run)
    base = Prices(gpu_usd_per_hour=2.0)
    result = what_if(run, prices=Prices(gpu_usd_per_hour=4.0, energy_usd_per_kwh=0.26, region="fr"),
                     base_prices=base)
    rows = result.comparison.set_index("component")
    assert rows.loc["gpu_cost_usd", "what_if"] == pytest.approx(2 * rows.loc["gpu_cost_usd", "original"])
    assert rows.loc["energy_cost_usd", "what_if"] == pytest.approx(2 * rows.loc["energy_cost_usd", "original"])
    assert rows.loc["co2_g", "what_if"] < rows.loc["co2_g", "original"]  # France's grid
    assert rows.loc["api_cost_usd", "original"] == 0 and rows.loc["api_cost_usd", "what_if"] == 0
    assert set(result.changes) == {"gpu_usd_per_hour", "energy_usd_per_kwh", "carbon_intensity_g_per_kwh", "region"}


def test_self_hosted_calls_priced_at_the_api_show_the_break_even(self_hosted_run: Path) -> None:
    run = profiler.load(self_hosted_run)
    result = what_if(run, model="gpt-4o-mini", base_prices=Prices(gpu_usd_per_hour=2.0))
    even = result.break_even
    assert even is not None and even["self_hosted_calls"] == 2
    assert even["input_tokens"] == 500_000 and even["output_tokens"] == 50_000
    # gpt-4o-mini: $0.15 / $0.60 per million tokens
    assert even["api_equivalent_usd"] == pytest.approx(0.5 * 0.15 + 0.05 * 0.60)
    assert even["gpu_hours"] == pytest.approx(10 / 3600)
    assert even["self_hosted_gpu_usd"] == pytest.approx(2.0 * 10 / 3600)
    energy_usd = 2000 / 3.6e6 * 0.13  # 200 W for 10 s at $0.13/kWh
    assert even["self_hosted_energy_usd"] == pytest.approx(energy_usd)
    assert even["break_even_gpu_usd_per_hour"] == pytest.approx((even["api_equivalent_usd"] - energy_usd) * 360)
    assert even["cheaper"] == "self-hosted"
    rows = result.comparison.set_index("component")
    assert rows.loc["api_cost_usd", "original"] == 0
    assert rows.loc["api_cost_usd", "what_if"] == pytest.approx(even["api_equivalent_usd"])
    assert rows.loc["gpu_cost_usd", "what_if"] == rows.loc["gpu_cost_usd", "original"]


def test_whatif_never_modifies_the_run_directory(self_hosted_run: Path) -> None:
    before = _fingerprint(self_hosted_run)
    for args in (("--model", "gpt-4o"), ("--gpu-usd-per-hour", "9"), ("--model", "claude-sonnet-4-5", "-f", "json"),
                 ("--model", "gpt-4o", "-f", "markdown")):
        result = invoke("whatif", self_hosted_run, *args)
        assert result.exit_code == 0, result.stderr
    assert _fingerprint(self_hosted_run) == before


def test_the_table_names_the_break_even(self_hosted_run: Path) -> None:
    result = invoke("whatif", self_hosted_run, "--model", "gpt-4o", "--gpu-usd-per-hour", "2.5")
    assert result.exit_code == 0, result.stderr
    assert "break-even" in result.stdout and "meta-llama/Llama-3.1-8B-Instruct" in result.stdout
    assert "openai/gpt-4o" in result.stdout


def test_without_gpu_samples_the_break_even_says_what_is_missing(tmp_path: Path) -> None:
    path = write_trace(tmp_path / "spans.jsonl", [chat("c000000000000001", "", 0, 1, provider="ollama",
                                                       model="llama3.1:8b")])
    result = what_if(profiler.load(path), model="gpt-4o-mini")
    assert result.break_even is not None
    assert result.break_even["break_even_gpu_usd_per_hour"] is None
    assert "no GPU measurements" in result.break_even["note"]
    assert not math.isnan(result.break_even["api_equivalent_usd"])


def test_provider_without_model_and_nothing_to_change(api_trace: Path) -> None:
    result = invoke("whatif", api_trace, "--provider", "openai")
    assert result.exit_code == 1 and "--provider needs --model" in result.stderr
    result = invoke("whatif", api_trace)
    assert result.exit_code == 0 and "nothing changed" in result.stdout
