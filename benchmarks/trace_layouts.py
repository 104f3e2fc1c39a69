"""Is reading a trace file linear in its size whatever its layout?

Writes the same kind of spans (agent sessions' chat and tool calls, 512 to an OTLP `TracesData`)
in five layouts, each about `--mb` MB, and times `profiler.load(file)` on each in a fresh process
(so that peak memory, ru_maxrss, is that file's own):

    lines          : JSON Lines, one compact TracesData a line (our run directory's spans.jsonl)
    indent=2       : the same documents pretty-printed with json.dumps(indent=2), one after another
    indent=0       : pretty-printed with indent=0: every bracket in column 0
    document       : one compact document holding every span (a Jaeger or collector export)
    document indent=0: that one document pretty-printed with indent=0

Run at two sizes, the MB/s column should stay flat: time linear in the size. (A single indent=0
document took quadratic time: 2,000 spans in 14.7 s, a 1.7 MB file in 178 s.)

    python benchmarks/trace_layouts.py             # 10 MB and 100 MB of each layout
    python benchmarks/trace_layouts.py --mb 100
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

REPO = Path(__file__).resolve().parents[1]
LAYOUTS = ("lines", "indent=2", "indent=0", "document", "document indent=0")
T0_NS = 1_760_000_000_000_000_000
BATCH = 512


def _kv(key: str, value: object) -> dict:
    return {"key": key, "value": {"intValue": str(value)} if isinstance(value, int) else {"stringValue": value}}


def resource_spans(first: int) -> dict:
    """One `ResourceSpans` of `BATCH` spans numbered from `first`: a session's chat and tool calls."""
    spans = []
    for i in range(first, first + BATCH):
        start = T0_NS + i * 1_000_000_000
        chat = i % 2 == 0
        attributes = [_kv("gen_ai.conversation.id", f"conv-{i // 50}"),
                      _kv("gen_ai.operation.name", "chat" if chat else "execute_tool")]
        attributes += ([_kv("gen_ai.provider.name", "openai"), _kv("gen_ai.request.model", "gpt-4o-mini"),
                        _kv("gen_ai.usage.input_tokens", 1000 + i % 977), _kv("gen_ai.usage.output_tokens", 80)]
                       if chat else [_kv("gen_ai.tool.name", "web_search")])
        spans.append({"traceId": f"{i // 50 + 1:032x}", "spanId": f"{i + 1:016x}",
                      "name": "chat gpt-4o-mini" if chat else "execute_tool web_search", "kind": 1,
                      "startTimeUnixNano": str(start), "endTimeUnixNano": str(start + 900_000_000),
                      "attributes": attributes, "status": {"code": 0}})
    return {"resource": {"attributes": [_kv("service.name", "synthetic-agent")]},
            "scopeSpans": [{"scope": {"name": "sessionprof"}, "spans": spans}]}


def write_layout(path: Path, layout: str, target_bytes: int) -> int:
    """Write about `target_bytes` of spans in `layout`; return the number of spans."""
    sample = resource_spans(0)
    pieces = {"lines": lambda rs: json.dumps({"resourceSpans": [rs]}, separators=(",", ":")) + "\n",
              "indent=2": lambda rs: json.dumps({"resourceSpans": [rs]}, indent=2) + "\n",
              "indent=0": lambda rs: json.dumps({"resourceSpans": [rs]}, indent=0) + "\n",
              "document": lambda rs: json.dumps(rs, separators=(",", ":")),
              "document indent=0": lambda rs: json.dumps(rs, indent=0)}
    piece = pieces[layout]
    batches = max(1, target_bytes // len(piece(sample)))
    texts = (piece(resource_spans(k * BATCH)) for k in range(batches))
    with path.open("w", encoding="utf-8") as out:
        if layout.startswith("document"):
            _write_document(out, layout, texts)
        else:
            out.writelines(texts)
    return batches * BATCH


def _write_document(out: IO[str], layout: str, pieces: Iterator[str]) -> None:
    """One `TracesData` around every `ResourceSpans`, written a piece at a time."""
    pretty = layout.endswith("indent=0")
    out.write('{\n"resourceSpans": [\n' if pretty else '{"resourceSpans":[')
    for k, text in enumerate(pieces):
        if k:
            out.write(",\n" if pretty else ",")
        out.write(text)
    out.write("\n]\n}\n" if pretty else "]}\n")


def _child(path: Path) -> dict:
    sys.path.insert(0, str(REPO))
    import profiler
    from profiler.traces import load  # noqa: F401  (its imports, pandas among them, are not the file's cost)

    began_cpu, began = time.process_time(), time.perf_counter()
    run = profiler.load(path)
    return {"seconds": time.perf_counter() - began, "cpu_s": time.process_time() - began_cpu,
            "spans": len(run.spans), "peak_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            "warnings": run.warnings}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=float, nargs="+", default=[10.0, 100.0], help="file sizes to write, in MB")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(args.child)))
        return
    print(f"{'layout':<18} {'MB':>6} {'spans':>9} {'load s':>7} {'CPU s':>6} {'MB/s':>6} {'peak GiB':>8}")
    with tempfile.TemporaryDirectory(prefix="sessionprof-bench-") as tmp:
        for mb in args.mb:
            for layout in LAYOUTS:
                path = Path(tmp) / f"trace-{layout.replace(' ', '-')}.json"
                spans = write_layout(path, layout, int(mb * 1e6))
                size_mb = path.stat().st_size / 1e6
                done = subprocess.run([sys.executable, __file__, "--child", str(path)], check=True,
                                      capture_output=True, text=True)
                result = json.loads(done.stdout.strip().splitlines()[-1])
                assert result["spans"] == spans and not result["warnings"], (layout, result)
                print(f"{layout:<18} {size_mb:>6.1f} {spans:>9,} {result['seconds']:>7.2f} {result['cpu_s']:>6.2f} "
                      f"{size_mb / result['seconds']:>6.1f} {result['peak_bytes'] / 2**30:>8.2f}", flush=True)
                path.unlink()


if __name__ == "__main__":
    main()
