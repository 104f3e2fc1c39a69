"""Prices and factors: precedence of flag, environment, config file and default; clear errors;
GPU rates by name; API prices from genai-prices as of the request time, with a working cache."""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal
from pathlib import Path

import genai_prices
import numpy as np
import pytest

from profiler.errors import ConfigError
from profiler.pricing.api import ApiPricer, _LinearPrice
from profiler.pricing.prices import (
    CARBON_G_PER_KWH_BY_REGION,
    DEFAULT_GPU_USD_PER_HOUR,
    DEFAULT_SOURCES,
    Prices,
    load_prices,
    with_overrides,
)


def write_config(directory: Path, body: str, name: str = "sessionprof.toml") -> Path:
    path = directory / name
    path.write_text(body, encoding="utf-8")
    return path


def one_line_config_error(match: str, **kwargs) -> str:
    with pytest.raises(ConfigError, match=match or None) as caught:
        load_prices(**kwargs)
    message = str(caught.value)
    assert "\n" not in message
    assert isinstance(caught.value, ValueError)  # callers may catch ValueError
    return message


# ----------------------------------------------------------------------------------------------
# Precedence


def test_defaults_when_nothing_is_set(tmp_path: Path) -> None:
    prices = load_prices(environ={}, cwd=tmp_path)
    assert prices == Prices()
    assert prices.energy_usd_per_kwh == 0.13 and prices.pue == 1.0 and prices.gpu_usd_per_hour is None
    assert prices.carbon_intensity_g_per_kwh == CARBON_G_PER_KWH_BY_REGION["world"]
    assert prices.sources == DEFAULT_SOURCES


def test_flag_beats_environment_beats_config_file_beats_default(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        """
[prices]
pue = 1.2
energy_usd_per_kwh = 0.2
gpu_usd_per_hour = 3.0
region = "eu"
""",
    )
    environ = {"SESSIONPROF_PUE": "1.3", "SESSIONPROF_ENERGY_USD_PER_KWH": "0.25"}
    prices = load_prices(config=config, environ=environ, pue=1.4, carbon_g_per_kwh=None)
    assert prices.pue == 1.4 and prices.sources["pue"] == "command line"
    assert prices.energy_usd_per_kwh == 0.25
    assert prices.sources["energy_usd_per_kwh"] == "environment SESSIONPROF_ENERGY_USD_PER_KWH"
    assert prices.gpu_usd_per_hour == 3.0 and prices.sources["gpu_usd_per_hour"] == f"config file {config}"
    assert prices.region == "eu" and prices.carbon_intensity_g_per_kwh == CARBON_G_PER_KWH_BY_REGION["eu"]
    assert prices.sources["carbon_g_per_kwh"].startswith("region eu")
    # A flag given as None (not set on the command line) leaves the lower layers in force.
    assert load_prices(config=config, environ={}, pue=None).pue == 1.2
    # Without the flag, the environment wins over the file.
    assert load_prices(config=config, environ=environ).pue == 1.3


@pytest.mark.parametrize("name", ["sessionprof.toml", ".sessionprof.toml"])
def test_the_config_file_is_found_in_the_working_directory(tmp_path: Path, name: str) -> None:
    write_config(tmp_path, "[prices]\ncarbon_g_per_kwh = 100\n", name)
    prices = load_prices(environ={}, cwd=tmp_path)
    assert prices.carbon_intensity_g_per_kwh == 100.0
    assert prices.sources["carbon_g_per_kwh"] == f"config file {tmp_path / name}"


def test_an_explicit_carbon_figure_beats_the_region() -> None:
    prices = load_prices(
        environ={"SESSIONPROF_REGION": "FR", "SESSIONPROF_CARBON_G_PER_KWH": "10"},
        config=None,
        cwd=Path("/nonexistent"),
    )
    assert prices.carbon_intensity_g_per_kwh == 10.0


def test_blank_environment_values_are_ignored(tmp_path: Path) -> None:
    assert load_prices(environ={"SESSIONPROF_PUE": "  "}, cwd=tmp_path).pue == 1.0


# ----------------------------------------------------------------------------------------------
# Bad values: one line, naming the setting


def test_a_non_number_in_the_environment_names_the_variable(tmp_path: Path) -> None:
    message = one_line_config_error("SESSIONPROF_PUE", environ={"SESSIONPROF_PUE": "high"}, cwd=tmp_path)
    assert "pue must be a number" in message and "'high'" in message


@pytest.mark.parametrize(
    ("variable", "raw", "setting"),
    [
        ("SESSIONPROF_PUE", "0.5", "pue"),
        ("SESSIONPROF_PUE", "nan", "pue"),
        ("SESSIONPROF_GPU_USD_PER_HOUR", "-1", "gpu_usd_per_hour"),
        ("SESSIONPROF_ENERGY_USD_PER_KWH", "inf", "energy_usd_per_kwh"),
        ("SESSIONPROF_CARBON_G_PER_KWH", "-5", "carbon_g_per_kwh"),
    ],
)
def test_impossible_values_are_refused(tmp_path: Path, variable: str, raw: str, setting: str) -> None:
    one_line_config_error(setting, environ={variable: raw}, cwd=tmp_path)


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ('[prices]\nenergy_usd_per_kwh = "cheap"\n', "energy_usd_per_kwh must be a number"),
        ("[prices]\ngpu_usd_per_hour = -2.0\n", "gpu_usd_per_hour must be a non-negative number"),
        ("[prices]\npue = true\n", "pue must be a number"),
        ("[prices]\nwatts = 3\n", "unknown key(s) in [prices]: watts"),
        ("prices = 3\n", "[prices] must be a table"),
    ],
)
def test_bad_config_values_name_the_file_and_the_key(tmp_path: Path, body: str, fragment: str) -> None:
    config = write_config(tmp_path, body)
    message = one_line_config_error("", config=config, environ={})
    assert fragment in message


def test_a_toml_syntax_error_names_the_file(tmp_path: Path) -> None:
    config = write_config(tmp_path, "[prices]\npue = = 1.2\n")
    message = one_line_config_error("invalid TOML", config=config, environ={})
    assert str(config) in message


def test_a_missing_config_file_is_a_config_error(tmp_path: Path) -> None:
    one_line_config_error("cannot read config file", config=tmp_path / "absent.toml", environ={})


def test_an_unknown_region_lists_the_known_ones(tmp_path: Path) -> None:
    message = one_line_config_error(
        "unknown region 'mars'", environ={"SESSIONPROF_REGION": "mars"}, cwd=tmp_path
    )
    assert "eu" in message and "carbon_g_per_kwh" in message
    assert load_prices(environ={"SESSIONPROF_REGION": "EU"}, cwd=tmp_path).carbon_intensity_g_per_kwh == 244.0


def test_a_bad_flag_value_is_a_config_error_naming_the_flag(tmp_path: Path) -> None:
    one_line_config_error("pue", environ={}, cwd=tmp_path, pue="high")
    with pytest.raises(TypeError, match="unknown price setting 'watts'"):
        load_prices(environ={}, cwd=tmp_path, watts=3)


def test_a_flag_given_as_text_is_read_as_a_number(tmp_path: Path) -> None:
    assert load_prices(environ={}, cwd=tmp_path, gpu_usd_per_hour="2.5").gpu_usd_per_hour == 2.5


def test_with_overrides_replaces_only_what_is_given() -> None:
    base = Prices(pue=1.2)
    changed = with_overrides(base, energy_usd_per_kwh=0.3, pue=None)
    assert changed.pue == 1.2 and changed.energy_usd_per_kwh == 0.3
    assert changed.sources["energy_usd_per_kwh"] == "command line"
    with pytest.raises(ConfigError, match="pue"):
        with_overrides(base, pue=0.9)


def test_prices_serialise_with_the_intensity_in_force() -> None:
    data = Prices(region="fr").to_json()
    assert data["carbon_intensity_g_per_kwh"] == CARBON_G_PER_KWH_BY_REGION["fr"]
    assert data["region"] == "fr" and "sources" in data


# ----------------------------------------------------------------------------------------------
# GPU rates


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("NVIDIA H100 80GB HBM3", "H100"),
        ("NVIDIA H100 PCIe", "H100"),
        ("NVIDIA A100-SXM4-80GB", "A100"),
        ("NVIDIA L40S", "L40S"),
        ("NVIDIA GeForce RTX 4090", "RTX 4090"),
    ],
)
def test_gpu_rate_is_looked_up_by_name(name: str, key: str) -> None:
    rate, source = Prices().gpu_rate(name)
    assert rate == DEFAULT_GPU_USD_PER_HOUR[key]
    assert key in source


@pytest.mark.parametrize("name", ["Tesla T4", None, ""])
def test_a_gpu_without_a_default_is_unpriced(name: str | None) -> None:
    rate, source = Prices().gpu_rate(name)
    assert rate is None and "--gpu-usd-per-hour" in source


def test_a_user_rate_applies_to_every_gpu() -> None:
    prices = load_prices(environ={"SESSIONPROF_GPU_USD_PER_HOUR": "4"}, config=None, cwd=Path("/nonexistent"))
    assert prices.gpu_rate("Tesla T4") == (4.0, "environment SESSIONPROF_GPU_USD_PER_HOUR")
    assert prices.gpu_rate("NVIDIA H100 80GB HBM3")[0] == 4.0


# ----------------------------------------------------------------------------------------------
# API prices


def ns_at(when: dt.datetime) -> int:
    return int(when.timestamp()) * 1_000_000_000


def price(
    pricer: ApiPricer,
    model: str | None = "gpt-4o",
    provider: str | None = "openai",
    *,
    start_ns: int = ns_at(dt.datetime(2025, 1, 15, 12, tzinfo=dt.timezone.utc)),
    input_tokens: float = 1000.0,
    output_tokens: float = 100.0,
    cache_read_tokens: float = math.nan,
    cache_write_tokens: float = math.nan,
    reported_cost_usd: float = math.nan,
):
    return pricer.price(
        model=model,
        provider=provider,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read_tokens=cache_read_tokens,
        cache_write_tokens=cache_write_tokens,
        start_ns=start_ns,
        reported_cost_usd=reported_cost_usd,
    )


def test_a_known_model_is_priced_by_genai_prices_with_cache_reads_inside_the_input() -> None:
    pricer = ApiPricer()
    plain = price(pricer)
    assert plain.source == "computed:genai-prices" and plain.detail == "openai/gpt-4o"
    expected = genai_prices.calc_price(
        genai_prices.Usage(input_tokens=1000, output_tokens=100), "gpt-4o", provider_id="openai"
    ).total_price
    assert plain.cost_usd == pytest.approx(float(expected))
    cached = price(pricer, cache_read_tokens=800.0)
    assert cached.cost_usd < plain.cost_usd  # 800 of the 1000 input tokens are cheaper cache reads


def test_an_unknown_provider_falls_back_to_the_model_name() -> None:
    assert price(ApiPricer(), provider="some.gateway").detail.endswith("/gpt-4o")


def test_unknown_and_unnamed_models_are_unpriced_unless_the_trace_carries_a_cost() -> None:
    pricer = ApiPricer()
    unknown = price(pricer, model="no-such-model-xyz", provider=None)
    assert math.isnan(unknown.cost_usd) and unknown.source == "unpriced"
    assert price(pricer, model=None).source == "unpriced"
    reported = price(pricer, model="no-such-model-xyz", provider=None, reported_cost_usd=0.5)
    assert (reported.cost_usd, reported.source) == (0.5, "provider")


def test_a_self_hosted_provider_costs_nothing_without_a_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args, **kwargs):
        raise AssertionError("self-hosted calls must not be looked up")

    monkeypatch.setattr(genai_prices, "calc_price", fail)
    result = price(ApiPricer(), model="llama3", provider="ollama")
    assert (result.cost_usd, result.source) == (0.0, "self-hosted")


def test_prices_are_taken_as_of_the_request_time(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[dt.datetime] = []
    real = genai_prices.calc_price

    def recording(*args, **kwargs):
        seen.append(kwargs["genai_request_timestamp"])
        return real(*args, **kwargs)

    monkeypatch.setattr(genai_prices, "calc_price", recording)
    when = dt.datetime(2024, 3, 1, 8, 30, 15, tzinfo=dt.timezone.utc)
    price(ApiPricer(), start_ns=ns_at(when) + 250_000_000)
    assert seen and set(seen) == {when + dt.timedelta(milliseconds=250)}
    assert seen[0].tzinfo is not None


def _a_price_change() -> tuple[str, str, dt.datetime, dt.datetime]:
    """A model of the bundled snapshot whose price differs either side of a start date."""
    from genai_prices import data_snapshot
    from genai_prices.types import StartDateConstraint

    usage = genai_prices.Usage(input_tokens=1000, output_tokens=100)
    for provider in data_snapshot.get_snapshot().providers:
        if provider.id not in ("openai", "anthropic", "google", "deepseek"):
            continue
        for model in provider.models:
            for conditional in model.prices if isinstance(model.prices, list) else []:
                if not isinstance(conditional.constraint, StartDateConstraint):
                    continue
                change = dt.datetime.combine(conditional.constraint.start_date, dt.time(12), dt.timezone.utc)
                before, after = change - dt.timedelta(days=3), change + dt.timedelta(days=3)
                try:
                    old = genai_prices.calc_price(
                        usage, model.id, provider_id=provider.id, genai_request_timestamp=before
                    )
                    new = genai_prices.calc_price(
                        usage, model.id, provider_id=provider.id, genai_request_timestamp=after
                    )
                except LookupError:
                    continue
                if old.total_price != new.total_price:
                    return provider.id, model.id, before, after
    pytest.skip("the bundled genai-prices snapshot has no dated price change")


def test_a_price_change_in_the_snapshot_shows_in_calls_either_side_of_it() -> None:
    provider, model, before, after = _a_price_change()
    pricer = ApiPricer()
    old = price(pricer, model, provider, start_ns=ns_at(before))
    new = price(pricer, model, provider, start_ns=ns_at(after))
    usage = genai_prices.Usage(input_tokens=1000, output_tokens=100)
    for result, when in ((old, before), (new, after)):
        expected = genai_prices.calc_price(usage, model, provider_id=provider, genai_request_timestamp=when)
        assert result.cost_usd == pytest.approx(float(expected.total_price))
    assert old.cost_usd != new.cost_usd


def test_the_cache_reuses_lookups_for_the_same_call_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = genai_prices.calc_price

    def counting(*args, **kwargs):
        calls.append(args[1])
        return real(*args, **kwargs)

    monkeypatch.setattr(genai_prices, "calc_price", counting)
    pricer = ApiPricer()
    # No cache tokens: NaN, a fresh float object each time, as rows of a DataFrame give them.
    first = price(pricer, cache_read_tokens=float("nan"), cache_write_tokens=float("nan"))
    looked_up = len(calls)
    assert looked_up >= 1
    again = price(
        pricer,
        start_ns=ns_at(dt.datetime(2025, 1, 15, 18, tzinfo=dt.timezone.utc)),  # same day
        cache_read_tokens=float("nan"),
        cache_write_tokens=float("nan"),
    )
    assert again is first  # the very record from the cache, not a fresh computation
    assert len(calls) == looked_up
    next_day = price(pricer, start_ns=ns_at(dt.datetime(2025, 1, 16, 12, tzinfo=dt.timezone.utc)))
    # Another day: a new lookup where the model's prices have dates; gpt-4o has one undated price.
    assert len(calls) == looked_up and next_day.cost_usd == first.cost_usd
    # An unpriced lookup is cached too; a reported cost still applies on every hit.
    price(pricer, model="no-such-model-xyz", provider=None)
    unknown = calls.count("no-such-model-xyz")
    hit = price(pricer, model="no-such-model-xyz", provider=None, reported_cost_usd=0.1)
    assert hit.cost_usd == 0.1
    assert calls.count("no-such-model-xyz") == unknown
    provider, model, before, _ = _a_price_change()
    price(pricer, model, provider, start_ns=ns_at(before))
    looked_up = len(calls)
    price(pricer, model, provider, start_ns=ns_at(before + dt.timedelta(days=1)))
    assert len(calls) > looked_up


# ----------------------------------------------------------------------------------------------
# Many calls at once: the same answers as one call at a time

_SHAPES = [
    ("gpt-4o", "openai"), ("gpt-4o-mini", "openai"), ("gpt-4o", "some.gateway"), ("gpt-5", None),
    ("claude-sonnet-4-20250514", "anthropic"), ("claude-opus-4.6-1m", None), ("gemini-2.5-pro", "google"),
    ("no-such-model-xyz", None), (None, "openai"), ("llama3", "ollama"), ("qwen", "vllm"),
]


def random_calls(seed: int, n: int) -> dict[str, np.ndarray]:
    """Calls of known, unknown, tiered (some past their threshold), unnamed and self-hosted models,
    with absent (NaN), fractional, cache-heavy and huge token counts, on days years apart."""
    rng = np.random.default_rng(seed)
    shape = rng.integers(0, len(_SHAPES), n)
    size = rng.choice([1_000, 30_000, 400_000, 10**12], n, p=[0.4, 0.35, 0.2, 0.05])
    inp = np.floor(rng.random(n) * size) + rng.choice([0.0, 0.5], n, p=[0.9, 0.1])
    out = rng.integers(0, 5_000, n).astype(float)
    read = np.where(rng.random(n) < 0.5, np.floor(inp * rng.random(n) * 1.1), np.nan)  # now and then > input
    write = np.where(rng.random(n) < 0.2, np.floor(rng.random(n) * 2_000), np.nan)
    for column in (inp, out):
        column[rng.random(n) < 0.05] = np.nan
    day = rng.choice(np.arange(19_800, 20_500, 37), n)  # a few dozen days from 2024 to 2026
    return {
        "model": np.array([_SHAPES[i][0] for i in shape], dtype=object),
        "provider": np.array([_SHAPES[i][1] for i in shape], dtype=object),
        "input_tokens": inp, "output_tokens": out, "cache_read_tokens": read, "cache_write_tokens": write,
        "start_ns": day * 86_400_000_000_000 + rng.integers(0, 86_400, n) * 1_000_000_000,
        "reported_cost_usd": np.where(rng.random(n) < 0.3, rng.random(n), np.nan),
    }


class CountingPricer(ApiPricer):
    """Counts the calls priced one at a time."""

    def __init__(self) -> None:
        super().__init__()
        self.one_at_a_time = 0

    def price(self, **call):
        self.one_at_a_time += 1
        return super().price(**call)


def assert_same_as_one_at_a_time(calls: dict[str, np.ndarray], got: tuple[np.ndarray, ...],
                                 pricer: ApiPricer) -> None:
    cost, source, detail = got
    for i in range(len(cost)):
        want = pricer.price(**{name: values[i].item() if isinstance(values[i], np.generic) else values[i]
                               for name, values in calls.items()})
        # repr tells apart every float, 0.0 from -0.0 and any NaN from a number
        got_i = (repr(float(cost[i])), source[i], detail[i])
        assert got_i == (repr(want.cost_usd), want.source, want.detail), i


def test_pricing_many_calls_at_once_gives_exactly_the_per_call_answers() -> None:
    calls = random_calls(seed=11, n=3_000)
    pricer = CountingPricer()
    got = pricer.price_many(**calls)
    assert pricer.one_at_a_time < 2_000  # a thousand calls and more took the vectorised path
    assert set(got[1]) == {"computed:genai-prices", "provider", "self-hosted", "unpriced"}
    assert_same_as_one_at_a_time(calls, got, ApiPricer())


def test_pricing_many_calls_agrees_with_a_pricer_that_already_priced_some_of_them() -> None:
    calls = random_calls(seed=12, n=600)
    pricer = ApiPricer()
    first = {name: values[:200] for name, values in calls.items()}
    assert_same_as_one_at_a_time(first, pricer.price_many(**first), ApiPricer())
    assert_same_as_one_at_a_time(calls, pricer.price_many(**calls), ApiPricer())


def test_pricing_no_calls_at_once() -> None:
    none = {name: values[:0] for name, values in random_calls(1, 1).items()}
    cost, source, detail = ApiPricer().price_many(**none)
    assert (len(cost), len(source), len(detail)) == (0, 0, 0)


@pytest.mark.parametrize(("model", "provider"), [
    ("gpt-4o-mini", "openai"), ("claude-sonnet-4-20250514", "anthropic"), ("gemini-2.5-pro", "google"),
    ("claude-opus-4.6-1m", None),
])
def test_a_linear_price_in_integers_divides_to_the_decimal_price(model: str, provider: str | None) -> None:
    # The exactness of `price_many`: N / 10**m in binary floating point, N below 2**53 and m at most
    # 22, is the correctly rounded quotient, which is what float(Decimal) gives `_LinearPrice.cost`.
    linear = _LinearPrice.fit(model, provider, ns_at(dt.datetime(2025, 9, 1, tzinfo=dt.timezone.utc)))
    assert linear is not None and linear.scaled() is not None
    (base, *per_token), exponent = linear.scaled()
    rng = np.random.default_rng(5)
    for _ in range(20_000):
        size = int(rng.choice([10**3, 10**5, 10**7, 10**10]))
        inp = int(rng.integers(0, size))
        out, read, write = (int(rng.integers(0, high)) for high in (size, inp + 1, size // 10 + 1))
        tokens = (inp, out, read, write)
        numerator = base + sum(k * t for k, t in zip(per_token, tokens, strict=True))
        if abs(numerator) > 2**53:
            continue
        assert np.float64(numerator) / np.float64(10**exponent) == linear.cost(*tokens), tokens


@pytest.mark.parametrize(("calls", "one_at_a_time"), [
    # 250*input + 1000*output: the last sum passes 2**53 though each of its terms stays below it
    ([(10**6, 100), (3 * 10**13, 0), (3 * 10**13, 2 * 10**12)], 1),
    # 250 * 4e13 passes 2**53 on its own: the whole day of this model is priced call by call
    ([(10**6, 100), (4 * 10**13, 0)], 2),
])
def test_calls_past_exact_integers_are_priced_one_at_a_time(calls: list[tuple[int, int]],
                                                           one_at_a_time: int) -> None:
    per_million = (Decimal("0.00"), Decimal("2.50"), Decimal("10.00"), Decimal("-1.25"), Decimal("0.00"))
    linear = _LinearPrice(per_million, "test/model")
    day = 20_000

    def pricer() -> CountingPricer:
        fitted = CountingPricer()
        fitted._linear[("model", "provider", day)] = linear
        return fitted

    n = len(calls)
    columns = {
        "model": np.full(n, "model", dtype=object), "provider": np.full(n, "provider", dtype=object),
        "input_tokens": np.array([float(inp) for inp, _ in calls]),
        "output_tokens": np.array([float(out) for _, out in calls]),
        "cache_read_tokens": np.full(n, np.nan), "cache_write_tokens": np.full(n, np.nan),
        "start_ns": np.full(n, day * 86_400_000_000_000), "reported_cost_usd": np.full(n, np.nan),
    }
    many = pricer()
    got = many.price_many(**columns)
    assert many.one_at_a_time == one_at_a_time
    assert_same_as_one_at_a_time(columns, got, pricer())
    assert got[0][1] == calls[1][0] * 2.5 / 10**6
