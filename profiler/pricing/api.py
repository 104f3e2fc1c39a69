"""API token prices: model calls priced with genai-prices' bundled snapshot (never fetched), exactly
equal to its Decimal arithmetic, a batch at a time."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd

from profiler.traces.genai import SELF_HOSTED_PROVIDERS


@dataclass(frozen=True)
class ApiPrice:
    """The API cost of one model call, with where it came from."""

    cost_usd: float
    """NaN when unpriced."""
    source: str
    """`computed:genai-prices`, `provider` (a cost the trace carried), `self-hosted` or `unpriced`."""
    detail: str = ""
    """The priced model (`anthropic/claude-opus-4-6`) or why it is unpriced."""


class ApiPricer:
    """Prices model calls with genai-prices' bundled snapshot; caches by call shape."""

    def __init__(self) -> None:
        """Create an empty cache. Nothing is downloaded, now or later."""
        self._cache: dict[tuple[Any, ...], ApiPrice] = {}
        self._linear: dict[tuple[Any, ...], _LinearPrice | None] = {}
        self._fits: dict[tuple[Any, ...], list[_LinearPrice]] = {}

    def price(
        self,
        *,
        model: str | None,
        provider: str | None,
        input_tokens: float,
        output_tokens: float,
        cache_read_tokens: float,
        cache_write_tokens: float,
        start_ns: int,
        reported_cost_usd: float = math.nan,
    ) -> ApiPrice:
        """Price one call; tokens follow the OTel convention (input inclusive of cache)."""
        if provider in SELF_HOSTED_PROVIDERS:
            return ApiPrice(0.0, "self-hosted", "no API bill: served on your own GPU")
        day = start_ns // 86_400_000_000_000
        # Counts as ints: NaN (absent) never equals itself, so it would miss the cache on every call.
        counts = (input_tokens, output_tokens, cache_read_tokens, cache_write_tokens)
        key = (model, provider, *map(_tokens, counts), day)
        cached = self._cache.get(key)
        if cached is None:
            cached = self._fast(key, start_ns) or self._lookup(key, start_ns)
            self._cache[key] = cached
        if cached.source == "unpriced" and math.isfinite(reported_cost_usd):
            return ApiPrice(reported_cost_usd, "provider", "cost recorded in the trace")
        return cached

    def price_many(
        self,
        *,
        model: np.ndarray,
        provider: np.ndarray,
        input_tokens: np.ndarray,
        output_tokens: np.ndarray,
        cache_read_tokens: np.ndarray,
        cache_write_tokens: np.ndarray,
        start_ns: np.ndarray,
        reported_cost_usd: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Price many calls: the very answers `price` gives call by call, in that order.

        Calls on a linear price are computed together, in integers (`_LinearPrice.scaled`); the
        rest (self-hosted, unpriced, past a tier threshold, unusual usage) go through `price`.

        Returns:
            (cost in USD, source, detail), one entry per call; the last two are object arrays.
        """
        model = np.asarray(model, dtype=object)
        provider = np.asarray(provider, dtype=object)
        floats = [np.asarray(c, dtype=np.float64)
                  for c in (input_tokens, output_tokens, cache_read_tokens, cache_write_tokens)]
        start_ns = np.asarray(start_ns, dtype=np.int64)
        n = len(model)
        cost = np.full(n, np.nan)
        source = np.full(n, None, dtype=object)
        detail = np.full(n, "", dtype=object)
        per_call = np.ones(n, dtype=bool)
        # Counts as `_tokens` makes them (absent is 0, fractions cut); past 2**53 they are left to `price`.
        ints = [np.trunc(np.nan_to_num(c, nan=0.0)) for c in floats]
        safe = np.logical_and.reduce([np.abs(c) < 2.0**53 for c in ints]) if n else np.zeros(0, dtype=bool)
        counts = [np.where(safe, c, 0).astype(np.int64) for c in ints]
        for rows, shape in _call_shapes(model, provider, start_ns):
            if not safe[rows].all():
                continue  # left to `price` whole: it then fits the shape on the call it would anyway
            inp, out, read, write = (c[rows] for c in counts)
            usual = read + write <= inp
            if not usual.any():
                continue
            linear = self._linear_for(*shape, int(start_ns[rows[np.argmax(usual)]]))
            scaled = linear.scaled() if linear is not None else None
            if scaled is None:
                continue
            fast = usual if linear.below_tokens is None else usual & (inp + out < linear.below_tokens)
            coefficients, exponent = scaled
            tokens = (inp, out, read, write)
            peaks = [1, *(int(np.abs(c).max()) for c in tokens)]
            if any(abs(k) * max(peak, 1) >= 2**53 for k, peak in zip(coefficients, peaks, strict=True)):
                continue  # a term could reach 2**53 (or overflow int64): leave the shape to `price`
            numerator = coefficients[0] + sum(k * c for k, c in zip(coefficients[1:], tokens, strict=True))
            # An integer below 2**53 and a power of ten up to 1e22 are exact doubles, so IEEE
            # division rounds the exact price once, as float(Decimal) does in `cost`.
            fast &= np.abs(numerator) <= 2**53
            done = rows[fast]
            cost[done] = numerator[fast].astype(np.float64) / float(10**exponent)
            source[done] = "computed:genai-prices"
            detail[done] = linear.detail
            per_call[done] = False
        rest = np.flatnonzero(per_call)
        reported = np.asarray(reported_cost_usd, dtype=np.float64)[rest].tolist()
        values = zip(rest.tolist(), model[rest], provider[rest], *(c[rest].tolist() for c in floats),
                     start_ns[rest].tolist(), reported, strict=True)
        for pos, m, p, inp_f, out_f, read_f, write_f, when, paid in values:
            price = self.price(model=m, provider=p, input_tokens=inp_f, output_tokens=out_f,
                               cache_read_tokens=read_f, cache_write_tokens=write_f, start_ns=when,
                               reported_cost_usd=paid)
            cost[pos], source[pos], detail[pos] = price.cost_usd, price.source, price.detail
        return cost, source, detail

    def _fast(self, key: tuple[Any, ...], start_ns: int) -> ApiPrice | None:
        """Price a call from the model's linear coefficients (exactly what genai-prices computes,
        in 1/13 of its time, `benchmarks/techniques.py`); None where the price is not linear (tiers)
        or the usage is unusual."""
        model, provider, inp, out, cache_read, cache_write, day = key
        if model is None or cache_read + cache_write > inp:
            return None
        linear = self._linear_for(model, provider, day, start_ns)
        if linear is None or (linear.below_tokens is not None and inp + out >= linear.below_tokens):
            return None  # not linear, or past the first tier of a tiered price
        cost = linear.cost(inp, out, cache_read, cache_write)
        return ApiPrice(cost, "computed:genai-prices", linear.detail)

    def _linear_for(self, model: Any, provider: Any, day: int, start_ns: int) -> _LinearPrice | None:
        """The linear price of a model on a day, fitted as of the first call that needs it."""
        shape = (model, provider, day)
        if shape not in self._linear:
            known = self._fits.setdefault((model, provider), [])
            timeless = next((fit for fit in known if fit.timeless), None)
            self._linear[shape] = timeless or _LinearPrice.fit(model, provider, start_ns, known)
        return self._linear[shape]

    def _lookup(self, key: tuple[Any, ...], start_ns: int) -> ApiPrice:
        model, provider, inp, out, cache_read, cache_write, _ = key
        if model is None:
            return ApiPrice(math.nan, "unpriced", "no model name in the trace")
        from genai_prices import Usage, calc_price  # deferred: loading the snapshot takes ~0.3 s

        usage = Usage(
            input_tokens=_tokens(inp),
            output_tokens=_tokens(out),
            cache_read_tokens=_tokens(cache_read) or None,
            cache_write_tokens=_tokens(cache_write) or None,
        )
        when = datetime.fromtimestamp(start_ns / 1e9, tz=timezone.utc)
        for provider_id in ([provider, None] if provider else [None]):
            try:
                result = calc_price(usage, model, provider_id=provider_id, genai_request_timestamp=when)
            except (LookupError, ValueError):
                continue
            return ApiPrice(float(result.total_price), "computed:genai-prices",
                            f"{result.provider.id}/{result.model.id}")
        return ApiPrice(math.nan, "unpriced", f"model {model!r} is not in genai-prices")


class _LinearPrice:
    """A model's API price as `base + sum(coefficient x tokens)`, with Decimal coefficients measured
    from genai-prices itself, so that the result is the very Decimal it would compute."""

    _UNIT_EXPONENT = 6
    _UNIT = 10**_UNIT_EXPONENT
    _TIERED_PROBE = 100_000

    def __init__(self, coefficients: tuple[Decimal, ...], detail: str, provider_id: str | None = None,
                 model_price: Any = None, below_tokens: int | None = None) -> None:
        self.base, self.inp, self.out, self.cache_read, self.cache_write = coefficients
        self.detail = detail
        self.provider_id, self.model_price = provider_id, model_price
        self.below_tokens = below_tokens
        """For a tiered price: the coefficients hold only for calls with fewer tokens than this."""
        self.timeless = False
        """The model has one price entry, with no dates: the coefficients hold on every day."""
        self._scaled: Any = _UNSET

    def cost(self, inp: int, out: int, cache_read: int, cache_write: int) -> float:
        """The price of one call in USD (ints: input inclusive of cache, as OTel writes it)."""
        total = self.inp * inp + self.out * out
        if cache_read:
            total += self.cache_read * cache_read
        if cache_write:
            total += self.cache_write * cache_write
        return float(self.base + total / self._UNIT)

    def scaled(self) -> tuple[tuple[int, ...], int] | None:
        """The price as integers: `cost` is `(k0 + k1*inp + k2*out + k3*cache_read + k4*cache_write)
        / 10**exponent` exactly, as `((k0, ..., k4), exponent)`; None where 10**exponent is not an
        exact double (exponent > 22).

        `cost` computes that very quotient in Decimal, without rounding while every term stays
        below 2**53 (17 digits, far within Decimal's 28), then rounds it once to a float.
        """
        if self._scaled is _UNSET:
            coefficients = (self.base, self.inp, self.out, self.cache_read, self.cache_write)
            if not all(c.is_finite() for c in coefficients):
                self._scaled = None
                return None
            places = max(0, *(-int(c.as_tuple().exponent) for c in coefficients))
            ints = [_scaled_integer(c, places) for c in coefficients]
            ints[0] *= self._UNIT
            exponent = places + self._UNIT_EXPONENT
            self._scaled = (tuple(ints), exponent) if exponent <= 22 else None
        return self._scaled

    @classmethod
    def fit(cls, model: str, provider: str | None, start_ns: int,
            known: list[_LinearPrice] | None = None) -> _LinearPrice | None:
        """Measure the coefficients, or None where the price does not behave linearly.

        A tiered price ("cliff" tiers: past a threshold every token pays the tier's rate) is linear
        below its lowest threshold; it is measured there, with `below_tokens` set to that threshold.

        `known` holds earlier fits of this model: one whose price entry is still in force on this
        day is reused (one genai-prices call instead of seven), and a new fit is added to it.
        """
        from genai_prices import Usage, calc_price
        from genai_prices.types import ModelPrice, TieredPrices

        when = datetime.fromtimestamp(start_ns / 1e9, tz=timezone.utc)
        unit = cls._UNIT

        def exact(provider_id: str | None, inp: int, out: int, read: int, write: int) -> Any:
            usage = Usage(input_tokens=inp, output_tokens=out, cache_read_tokens=read or None,
                          cache_write_tokens=write or None)
            return calc_price(usage, model, provider_id=provider_id, genai_request_timestamp=when)

        for provider_id in ([provider, None] if provider else [None]):
            try:
                zero = exact(provider_id, 0, 0, 0, 0)
                tiers = [tier.start for v in vars(zero.model_price).values() if isinstance(v, TieredPrices)
                         for tier in v.tiers]
                below = min(tiers) if tiers else None
                if below is not None and below <= cls._TIERED_PROBE + 50_000:
                    return None
                for earlier in known or ():
                    if earlier.provider_id == provider_id and earlier.model_price == zero.model_price:
                        return earlier
                # Probe with a million tokens, or 100k (times 10, exactly) under a tier threshold.
                probe = unit if below is None else cls._TIERED_PROBE
                scale = unit // probe
                base = zero.total_price
                inp = exact(provider_id, probe, 0, 0, 0).total_price
                output = exact(provider_id, 0, probe, 0, 0).total_price
                coefficients = (base, (inp - base) * scale, (output - base) * scale,
                                (exact(provider_id, probe, 0, probe, 0).total_price - inp) * scale,
                                (exact(provider_id, probe, 0, 0, probe).total_price - inp) * scale)
                linear = cls(coefficients, f"{zero.provider.id}/{zero.model.id}", provider_id, zero.model_price,
                             below)
                for probe in ((123_457, 6_789, 45_678, 1_234), (98_765, 4_321, 0, 0)):
                    if linear.cost(*probe) != float(exact(provider_id, *probe).total_price):
                        return None
            except (LookupError, ValueError, ArithmeticError):
                continue
            linear.timeless = isinstance(zero.model.prices, ModelPrice)
            if known is not None:
                known.append(linear)
            return linear
        return None


def _tokens(value: float) -> int:
    return 0 if value is None or math.isnan(value) else int(value)


_UNSET = object()


def _scaled_integer(value: Decimal, places: int) -> int:
    """`value * 10**places` as an int, from its digits (no Decimal context can round it)."""
    sign, digits, exponent = value.as_tuple()
    magnitude = int("".join(map(str, digits)) or "0") * 10 ** (int(exponent) + places)
    return -magnitude if sign else magnitude


def _call_shapes(model: np.ndarray, provider: np.ndarray,
                 start_ns: np.ndarray) -> list[tuple[np.ndarray, tuple[Any, Any, int]]]:
    """Group calls by (model, provider, UTC day): each group's rows in order, the groups in the
    order of their first rows. Only calls `_fast` could price are grouped: a model name, and a
    provider that is None or a name other than a self-hosted one."""
    model_code, models = pd.factorize(model)
    provider_code, providers = pd.factorize(provider)
    day_code, days = pd.factorize(start_ns // 86_400_000_000_000)
    named = [i for i, m in enumerate(models) if isinstance(m, str)]
    hosted = [i for i, p in enumerate(providers) if isinstance(p, str) and p not in SELF_HOSTED_PROVIDERS]
    no_provider = provider_code < 0
    # NaN (or pd.NA) is not None to `price`: only a None provider is no provider.
    no_provider[no_provider] = [p is None for p in provider[no_provider]]
    rows = np.flatnonzero(np.isin(model_code, named) & (np.isin(provider_code, hosted) | no_provider))
    if not len(rows):
        return []
    key = (model_code[rows] * (len(providers) + 1) + provider_code[rows] + 1) * len(days) + day_code[rows]
    _, inverse = np.unique(key, return_inverse=True)
    groups = np.split(rows[np.argsort(inverse, kind="stable")], np.cumsum(np.bincount(inverse))[:-1])
    shapes = []
    for group in sorted(groups, key=lambda g: int(g[0])):
        pos = group[0]
        name = providers[provider_code[pos]] if provider_code[pos] >= 0 else None
        shapes.append((group, (models[model_code[pos]], name, int(days[day_code[pos]]))))
    return shapes
