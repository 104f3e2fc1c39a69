"""Many small sessions: does a run of 300,000 short agent sessions cost 100 times one of 3,000?

Writes an OTLP JSON Lines file of N sessions, each its own trace and conversation: an agent span
with two chat calls and a tool call beneath it (four spans a session). Then times, in a fresh
process per size (so that peak memory, ru_maxrss, is that size's own):

    load      : `profiler.load(file)`
    attribute : `profiler.attribute(run)`
    sessions  : what `sessionprof sessions FILE` adds: one summary row a session, the table written
    html      : what `sessionprof report FILE -f html` adds: the page, insights and turns included

The per-session column should stay flat as N grows: every stage linear in the sessions. (The HTML
page's insights took 7.7 s at 3k sessions, 119 s at 30k, over 10 minutes at 300k; `sessions` about
0.85 ms a session.)

    python benchmarks/many_sessions.py                      # 3,000, 30,000 and 300,000 sessions
    python benchmarks/many_sessions.py --sessions 3000 30000
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
T0_NS = 1_760_000_000_000_000_000
S = 1_000_000_000


def _kv(key: str, value: object) -> dict:
    return {"key": key, "value": {"intValue": str(value)} if isinstance(value, int) else {"stringValue": value}}


def _session(s: int) -> list[dict]:
    """Session `s`: an agent, then a chat call, a tool call and a chat call beneath it, 10 s apart."""
    trace, conversation, base = f"{s + 1:032x}", f"conv-{s:07d}", T0_NS + s * 10 * S
    chat = [_kv("gen_ai.operation.name", "chat"), _kv("gen_ai.provider.name", "openai"),
            _kv("gen_ai.request.model", "gpt-4o")]

    def span(i: int, parent: str | None, name: str, start_s: float, end_s: float, attrs: list[dict]) -> dict:
        encoded = {"traceId": trace, "spanId": f"{4 * s + i:016x}", "name": name,
                   "startTimeUnixNano": str(base + int(start_s * S)), "endTimeUnixNano": str(base + int(end_s * S)),
                   "attributes": [_kv("gen_ai.conversation.id", conversation), *attrs]}
        if parent:
            encoded["parentSpanId"] = parent
        return encoded

    agent = f"{4 * s + 1:016x}"
    return [span(1, None, "invoke_agent planner", 0, 8, [_kv("gen_ai.operation.name", "invoke_agent")]),
            span(2, agent, "chat gpt-4o", 1, 3, [*chat, _kv("gen_ai.usage.input_tokens", 1000),
                                                 _kv("gen_ai.usage.output_tokens", 100)]),
            span(3, agent, "execute_tool search", 3, 5, [_kv("gen_ai.operation.name", "execute_tool"),
                                                         _kv("gen_ai.tool.name", "search")]),
            span(4, agent, "chat gpt-4o", 5, 7, [*chat, _kv("gen_ai.usage.input_tokens", 1500),
                                                 _kv("gen_ai.usage.output_tokens", 50)])]


def write_sessions(path: Path, n_sessions: int, *, batch: int = 512) -> None:
    """Write `n_sessions` sessions as OTLP JSON Lines, `batch` spans a line."""
    with path.open("w", encoding="utf-8") as out:
        pending: list[dict] = []
        for s in range(n_sessions):
            pending.extend(_session(s))
            if len(pending) >= batch or s == n_sessions - 1:
                out.write(json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": pending}]}]},
                                     separators=(",", ":")) + "\n")
                pending = []


def _child(path: Path) -> dict:
    """Time each stage on `path` in this process; return seconds per stage and the peak memory."""
    sys.path.insert(0, str(REPO))
    import profiler
    from profiler.analysis.sessions import session_summaries
    from reports import render
    from reports.sessions_report import render_sessions

    times: dict[str, float] = {}
    began = time.perf_counter()
    run = profiler.load(path)
    times["load"] = time.perf_counter() - began
    began = time.perf_counter()
    ledger = profiler.attribute(run)
    times["attribute"] = time.perf_counter() - began
    began = time.perf_counter()
    table = render_sessions(session_summaries(ledger), "table", source=str(path))
    times["sessions"] = time.perf_counter() - began
    began = time.perf_counter()
    page = render(ledger, "html")
    times["html"] = time.perf_counter() - began
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"times": times, "peak_bytes": peak, "rows": table.count("\n") - 2, "page_bytes": len(page)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, nargs="+", default=[3_000, 30_000, 300_000])
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(args.child)))
        return
    print(f"{'sessions':>9} {'spans':>9} {'load s':>7} {'attr s':>7} {'sessions s':>10} {'html s':>7} "
          f"{'µs/session (sessions+html)':>27} {'peak GiB':>8}")
    with tempfile.TemporaryDirectory(prefix="sessionprof-bench-") as tmp:
        for n in args.sessions:
            path = Path(tmp) / f"sessions-{n}.jsonl"
            write_sessions(path, n)
            done = subprocess.run([sys.executable, __file__, "--child", str(path)], check=True, capture_output=True,
                                  text=True)
            result = json.loads(done.stdout.strip().splitlines()[-1])
            t = result["times"]
            assert result["rows"] == n, result["rows"]
            per_session_us = (t["sessions"] + t["html"]) / n * 1e6
            print(f"{n:>9,} {4 * n:>9,} {t['load']:>7.2f} {t['attribute']:>7.2f} {t['sessions']:>10.2f} "
                  f"{t['html']:>7.2f} {per_session_us:>27.1f} {result['peak_bytes'] / 2**30:>8.2f}", flush=True)
            path.unlink()


if __name__ == "__main__":
    main()
