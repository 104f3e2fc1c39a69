"""Does each performance technique in the code earn its place? Each is timed beside the plain code
it stands in for, in CPU time, the two alternating round after round in one process.

    python benchmarks/techniques.py                              # 300,000 spans, 7 rounds
    python benchmarks/techniques.py --spans 1000000 --only huge-pages --repeat 3

A stage technique is timed on the stage it serves (`profiler.load`, `profiler.attribute`, or the
JSON report written as `sessionprof report -f json -o FILE` writes it) of a synthetic trace, as
`benchmarks/trace_reading.py` writes it; a function technique on that trace's own columns. Each
technique runs in a fresh process of its own, one untimed round first. numpy's huge-page advice is
set when numpy is imported, so its two sides are fresh processes, alternating. The table gives the
median CPU seconds (user + kernel) of each side, their range over the rounds, and plain / technique
in CPU and in user time: above 1, the technique saves time.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from importlib.metadata import version
from pathlib import Path
from typing import Any

from trace_reading import write_synthetic

REPO = Path(__file__).resolve().parents[1]
STAGES = ("load", "attribute", "render")


@contextmanager
def _patched(owner: Any, name: str, value: Any) -> Iterator[None]:
    before = getattr(owner, name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        setattr(owner, name, before)


@contextmanager
def _collector_paused() -> Iterator[None]:
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _collector_running() -> AbstractContextManager[None]:
    return _patched(gc, "disable", lambda: None)  # any pause in the code becomes a no-op


def _general_json_reader() -> AbstractContextManager[None]:
    from profiler.traces.readers import otlp_typed

    return _patched(otlp_typed, "batch_of_line", lambda data: None)  # the typed decoder declines every line


@contextmanager
def _text_span_ids() -> Iterator[None]:
    from profiler.attribution import tree
    from profiler.traces import load

    with _patched(tree, "hex_span_ids", lambda ids: None), _patched(load, "hex_span_ids", lambda ids: None):
        yield  # ids compared as text, as any other tool's are


def _default_read_buffer() -> AbstractContextManager[None]:
    from profiler.traces.readers import lines

    return _patched(lines, "_READ_BUFFER_BYTES", io.DEFAULT_BUFFER_SIZE)  # 8 kB


def _every_field_per_row() -> AbstractContextManager[None]:
    import msgspec

    from reports import json_report

    kept = json_report._column_values

    def no_constant_columns(column: Any) -> Any:
        values = kept(column)
        if isinstance(values, bytes):  # a constant column: its value, encoded in every row
            return [msgspec.json.decode(values)] * len(column)
        return values

    return _patched(json_report, "_column_values", no_constant_columns)


Side = Callable[[], AbstractContextManager[None]]
#: name -> (technique, plain version, stage, the technique's side, the plain side)
STAGE_TECHNIQUES: dict[str, tuple[str, str, str, Side, Side]] = {
    "gc-pause-load": ("cyclic GC paused while a trace is read", "the collector left running", "load",
                      _collector_paused, _collector_running),
    "gc-pause-render": ("cyclic GC paused while the JSON report is written", "the collector left running",
                        "render", _collector_paused, _collector_running),
    "typed-reader": ("OTLP lines decoded by msgspec into typed records", "json.loads and the general OTLP reader",
                     "load", nullcontext, _general_json_reader),
    "numeric-ids-load": ("OTLP span ids compared as 64-bit numbers (duplicate check)",
                         "span ids compared as text (pandas hashing)", "load", nullcontext, _text_span_ids),
    "numeric-ids-attribute": ("OTLP span ids compared as 64-bit numbers (parent lookup)",
                              "span ids compared as text (pandas hashing)", "attribute", nullcontext,
                              _text_span_ids),
    "read-buffer": ("trace file read 1 MB at a time", "io's default 8 kB buffer", "load", nullcontext,
                    _default_read_buffer),
    "constant-runs": ("report columns constant over a chunk spliced in once per row",
                      "every field encoded in every row", "render", nullcontext, _every_field_per_row),
}


def _usage() -> tuple[float, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


def _timed(call: Callable[[], Any]) -> tuple[float, float]:
    """(CPU s, user s) of one call."""
    user, kernel = _usage()
    call()
    after_user, after_kernel = _usage()
    return after_user - user + after_kernel - kernel, after_user - user


def _stage_call(stage: str, path: Path) -> Callable[[], Any]:
    import profiler
    from reports import render_encoded

    if stage == "load":
        return lambda: profiler.load(path)
    run = profiler.load(path)
    if stage == "attribute":
        return lambda: profiler.attribute(run)
    ledger = profiler.attribute(run)
    report = path.with_name(f"{path.name}.{os.getpid()}.report.json")

    def write_report() -> None:
        with report.open("wb") as stream:
            for part in render_encoded(ledger, "json"):
                stream.write(part)
        report.unlink()
    return write_report


def _alternate(pair: tuple[Callable[[], Any], Callable[[], Any]], repeat: int) -> dict[str, list[list[float]]]:
    """Time each side `repeat` times, alternating, after one untimed round."""
    times: dict[str, list[list[float]]] = {"technique": [], "plain": []}
    sides = [("technique", pair[0]), ("plain", pair[1])]
    for round_ in range(repeat + 1):
        for side, call in sides if round_ % 2 else sides[::-1]:
            figures = _timed(call)
            if round_:
                times[side].append(list(figures))
    return times


def _stage_child(name: str, path: Path, repeat: int) -> dict[str, Any]:
    what, plain_what, stage, technique, plain = STAGE_TECHNIQUES[name]
    call = _stage_call(stage, path)

    def under(side: Side) -> Callable[[], Any]:
        def run() -> Any:
            with side():
                return call()
        return run

    return {"what": [what, plain_what, stage], **_alternate((under(technique), under(plain)), repeat)}


def _function_pairs(path: Path) -> dict[str, tuple[str, str, Callable[[], Any], Callable[[], Any]]]:
    """name -> (technique, plain version, the technique's call, the plain call)."""
    import numpy as np

    import profiler
    from instrumentation import _tracer
    from profiler.arrays import unique_sorted
    from profiler.attribution import tree
    from profiler.attribution.engine import _price_calls
    from profiler.pricing import api
    from profiler.traces import load
    from profiler.traces.readers import lines

    run = profiler.load(path)
    spans = run.spans
    edges = np.concatenate([spans["start_ns"].to_numpy(), spans["end_ns"].to_numpy()])
    calls = spans[spans["kind"] == "chat"].head(5_000).assign(bills_usage=True)
    kinds = profiler.attribute(run).steps["kind"]

    def price_per_call(linear: bool) -> Callable[[], None]:
        return lambda: price_each(linear)

    def price_each(linear: bool) -> None:
        pricer = api.ApiPricer()
        if not linear:
            pricer._fast = lambda key, start_ns: None  # genai-prices' calc_price for every distinct call
        for row in calls.itertuples():
            pricer.price(model=row.model, provider=row.provider, input_tokens=row.input_tokens,
                         output_tokens=row.output_tokens, cache_read_tokens=row.cache_read_tokens,
                         cache_write_tokens=row.cache_write_tokens, start_ns=row.start_ns)

    @profiler.tool
    def step() -> None:
        pass

    def plain_fallback() -> Any:
        provider = _tracer.trace.get_tracer_provider()
        return provider.get_tracer(_tracer.SCOPE) if isinstance(provider, _tracer.TracerProvider) else None

    def decorated_calls(fallback: Callable[[], Any] | None) -> Callable[[], None]:
        def calls_() -> None:
            with _patched(_tracer, "_fallback_tracer", fallback or _tracer._fallback_tracer):
                for _ in range(200_000):
                    step()
        return calls_

    def keyed_parents() -> None:
        with _patched(tree, "_rows_of_unique_ids", lambda span_ids, parent_ids: None):
            tree.parent_positions(spans)

    def cut_lines(read_bytes: int) -> Callable[[], None]:
        def cut() -> None:
            with _patched(lines, "_READ_BUFFER_BYTES", read_bytes), path.open("rb", buffering=read_bytes) as stream:
                for _ in lines.lines(stream, lines.max_value_bytes()):
                    pass
        return cut

    def as_text(call: Callable[[], Any]) -> Callable[[], None]:
        def run_() -> None:
            with _text_span_ids():
                call()
        return run_

    def count_kinds(values: Any) -> list[int]:
        return [int(np.count_nonzero(values == kind)) for kind in ("execute_tool", "session", "unattributed")]

    return {
        "line-cutting": ("the trace file's lines cut out of 1 MB reads (`lines.lines`)",
                         "io's default 8 kB reads", cut_lines(lines._READ_BUFFER_BYTES),
                         cut_lines(io.DEFAULT_BUFFER_SIZE)),
        "duplicate-check": ("OTLP span ids as 64-bit numbers, sorted: the duplicate check (`load._dedupe`)",
                            "span ids compared as text (pandas hashing)", lambda: load._dedupe(spans),
                            as_text(lambda: load._dedupe(spans))),
        "parent-ids": ("OTLP span ids as 64-bit numbers, searched: the parent lookup (`tree.parent_positions`)",
                       "span ids compared as text (pandas hashing)", lambda: tree.parent_positions(spans),
                       as_text(lambda: tree.parent_positions(spans))),
        "unique-sorted": ("distinct span edges by sorting (`unique_sorted`)", "np.unique",
                          lambda: unique_sorted(edges), lambda: np.unique(edges)),
        "api-prices": ("API prices from linear Decimal coefficients, a batch in integers (5,000 calls)",
                       "genai-prices' calc_price per call", lambda: _price_calls(calls, api.ApiPricer()),
                       price_per_call(linear=False)),
        "api-price-one-call": ("`ApiPricer.price`: one call from linear Decimal coefficients (5,000 calls)",
                               "genai-prices' calc_price per call", price_per_call(linear=True),
                               price_per_call(linear=False)),
        "parent-lookup": ("parents found by span id alone, then the trace checked",
                          "trace:span keys in a dict", lambda: tree.parent_positions(spans),
                          keyed_parents),
        "tracer-lookup": ("no-provider check on OTel's module attribute (200,000 decorated calls, no session)",
                          "trace.get_tracer_provider() and isinstance per call",
                          decorated_calls(None), decorated_calls(plain_fallback)),
        "kinds-count": ("ledger totals count kinds on a numpy object array", "pandas Series ==",
                        lambda: count_kinds(kinds.to_numpy(dtype=object)), lambda: count_kinds(kinds)),
    }


def _function_child(name: str, path: Path, repeat: int) -> dict[str, Any]:
    what, plain_what, technique, plain = _function_pairs(path)[name]
    return {"what": [what, plain_what, "function"], **_alternate((technique, plain), repeat)}


def _huge_pages_child(path: Path) -> dict[str, list[float]]:
    import profiler
    from reports import render_encoded

    state: dict[str, Any] = {}
    report = path.with_name(f"{path.name}.{os.getpid()}.report.json")

    def write_report() -> None:
        with report.open("wb") as stream:
            for part in render_encoded(state["ledger"], "json"):
                stream.write(part)
        report.unlink()

    calls = {"load": lambda: state.__setitem__("run", profiler.load(path)),
             "attribute": lambda: state.__setitem__("ledger", profiler.attribute(state["run"])),
             "render": write_report}
    return {stage: list(_timed(calls[stage])) for stage in STAGES}


def _huge_pages(path: Path, repeat: int) -> dict[str, Any]:
    """numpy's advice off (the technique) against numpy's default, in fresh processes, alternating."""
    times: dict[str, list[list[float]]] = {"technique": [], "plain": []}
    for round_ in range(repeat):
        sides = (("technique", "0"), ("plain", "1"))
        for side, advice in sides if round_ % 2 else reversed(sides):
            figures = _child(["--huge-pages-child", "--file", str(path)], {"NUMPY_MADVISE_HUGEPAGE": advice})
            times[side].append([sum(figures[s][i] for s in STAGES) for i in (0, 1)])
    return {"what": ["numpy's huge-page advice turned off (NUMPY_MADVISE_HUGEPAGE=0)",
                     "numpy's default (advice on)", "load+attribute+render"], **times}


def _child(args: list[str], env: dict[str, str] | None = None) -> Any:
    done = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, **(env or {})}, check=False)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"child {args} failed with exit code {done.returncode}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _row(result: dict[str, Any]) -> str:
    what, plain_what, stage = result["what"]
    technique, plain = ([figures[0] for figures in result[side]] for side in ("technique", "plain"))
    cpu_t, cpu_p = statistics.median(technique), statistics.median(plain)
    user_t = statistics.median(f[1] for f in result["technique"])
    user_p = statistics.median(f[1] for f in result["plain"])
    return (f"| {what} | {plain_what} | {stage} | {cpu_p:.3f} ({min(plain):.3f}-{max(plain):.3f}) | "
            f"{cpu_t:.3f} ({min(technique):.3f}-{max(technique):.3f}) | {cpu_p / cpu_t:.2f} | {user_p / user_t:.2f} |")


FUNCTIONS = ("line-cutting", "duplicate-check", "parent-ids", "unique-sorted", "api-prices", "api-price-one-call",
             "parent-lookup", "tracer-lookup", "kinds-count")


def main() -> None:
    """Time the chosen techniques and print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spans", type=int, default=300_000, help="spans in the synthetic trace")
    parser.add_argument("--repeat", type=int, default=7, help="timed rounds, each side once a round")
    names = [*STAGE_TECHNIQUES, *FUNCTIONS, "huge-pages"]
    parser.add_argument("--only", nargs="+", choices=names, metavar="NAME", help="these only: " + ", ".join(names))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--huge-pages-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.huge_pages_child:
        print(json.dumps(_huge_pages_child(args.file)))
        return
    if args.child:
        child = _stage_child if args.child in STAGE_TECHNIQUES else _function_child
        print(json.dumps(child(args.child, args.file, args.repeat)))
        return

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="sessionprof-techniques-") as tmp:
        path = Path(tmp) / "spans.jsonl"
        written = write_synthetic(path, args.spans)
        rows = []
        for name in args.only or names:
            result = (_huge_pages(path, args.repeat) if name == "huge-pages" else
                      _child(["--child", name, "--file", str(path), "--repeat", str(args.repeat)]))
            rows.append(_row(result))
            print(rows[-1], file=sys.stderr)
    print(f"\n{written:,} spans; {args.repeat} rounds; {time.perf_counter() - started:.0f} s; "
          f"{platform.machine()}, {os.cpu_count()} CPUs, CPython {platform.python_version()}, "
          + ", ".join(f"{p} {version(p)}" for p in ("numpy", "pandas", "msgspec", "genai-prices",
                                                    "opentelemetry-sdk")) + "\n")
    print("| technique | plain version | timed | plain CPU s (range) | technique CPU s (range) | "
          "plain / technique, CPU | same, user |")
    print("|---|---|---|---:|---:|---:|---:|")
    print("\n".join(rows))


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        main()
