"""How many spans a second the OTLP/HTTP receiver takes, beside the OpenTelemetry SDK's own exporter
writing a file, with every span counted at the end (none may be dropped).

    python benchmarks/receiver_throughput.py [--spans 100000] [--repeat 3]

Rows:
- receiver, protobuf: pre-encoded `ExportTraceServiceRequest` bodies of 512 spans (the SDK's batch
  size) posted over 1 or 2 keep-alive connections, plain or gzip. The receiver runs in a process of
  its own, as under `sessionprof run`; the time is from the first request to the last answer, and
  the receiver's CPU time is its process's. This is what the receiver itself can take.
- OTel SDK -> OTLP/HTTP -> receiver: spans made by the SDK (BatchSpanProcessor with a queue that
  never drops, the official `OTLPSpanExporter`) in this process, sent to the receiver process; the
  time is from the first span to the end of `shutdown()`, when all are written.
- OTel SDK -> OTLP JSON file: the same spans through the same SDK into
  `opentelemetry-exporter-otlp-json-file` (the bench extra), no network: what an agent that writes
  its own file pays.

Each span is a model call with ten attributes. Spans are counted in the written files afterwards.
The median of `--repeat` runs is shown. Needs the test and bench extras.
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest  # noqa: E402

BATCH = 512
ATTRIBUTES: dict[str, Any] = {
    "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o",
    "gen_ai.response.model": "gpt-4o-2024-08-06", "gen_ai.response.id": "chatcmpl-0123456789",
    "gen_ai.conversation.id": "bench-conversation", "server.address": "api.openai.com",
    "gen_ai.usage.input_tokens": 1200, "gen_ai.usage.output_tokens": 80,
    "gen_ai.usage.cache_read.input_tokens": 1024,
}


# --- the receiver's process -------------------------------------------------------------------------
def serve_child(run_dir: str) -> None:
    """Run a receiver until stdin closes; print its endpoint, then its counts and CPU time as JSON."""
    from profiler.capture.receiver import OtlpReceiver

    receiver = OtlpReceiver(run_dir)
    print(receiver.start(), flush=True)
    sys.stdin.read()
    stats = receiver.stop()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"spans": stats.spans, "refused": stats.refused_requests,
                      "cpu_s": usage.ru_utime + usage.ru_stime}), flush=True)


class ReceiverProcess:
    """The receiver in a child process, as `sessionprof run` runs it beside the agent."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.proc = subprocess.Popen([sys.executable, __file__, "--serve-child", str(run_dir)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.endpoint = self.proc.stdout.readline().strip()

    def finish(self) -> dict[str, Any]:
        """Stop the receiver; its counts, CPU time and the spans found in its file."""
        out, _ = self.proc.communicate(timeout=600)
        result = json.loads(out.strip().splitlines()[-1])
        result["written"] = count_spans(self.run_dir / "spans.jsonl")
        return result


def count_spans(path: Path) -> int:
    """Spans in an OTLP JSON Lines file, counted by decoding every line."""
    total = 0
    if not path.exists():
        return 0
    with path.open(encoding="utf-8") as stream:
        for line in stream:
            if line.strip():
                for resource_spans in json.loads(line).get("resourceSpans", ()):
                    for scope in resource_spans.get("scopeSpans", ()):
                        total += len(scope.get("spans", ()))
    return total


# --- the three ways in ------------------------------------------------------------------------------
def protobuf_bodies(spans: int, *, compress: bool) -> list[bytes]:
    """`spans` model-call spans in requests of `BATCH`, serialized (and gzipped) ahead of the clock."""
    bodies = []
    start_ns = time.time_ns()
    for first in range(0, spans, BATCH):
        request = ExportTraceServiceRequest()
        resource_spans = request.resource_spans.add()
        resource_spans.resource.attributes.add(key="service.name").value.string_value = "bench-agent"
        scope = resource_spans.scope_spans.add()
        scope.scope.name = "bench"
        for n in range(first, min(first + BATCH, spans)):
            span = scope.spans.add(trace_id=(n // 64 + 1).to_bytes(16, "big"), span_id=(n + 1).to_bytes(8, "big"),
                                   parent_span_id=(10**12 + n // 64).to_bytes(8, "big"), name="chat gpt-4o", kind=3,
                                   start_time_unix_nano=start_ns + n, end_time_unix_nano=start_ns + n + 10**6)
            for key, value in ATTRIBUTES.items():
                item = span.attributes.add(key=key)
                if isinstance(value, int):
                    item.value.int_value = value
                else:
                    item.value.string_value = value
        body = request.SerializeToString()
        bodies.append(gzip.compress(body, compresslevel=1) if compress else body)
    return bodies


def post_all(endpoint: str, bodies: list[bytes], connections: int, *, compress: bool) -> float:
    """Post every body over `connections` keep-alive connections; seconds from first send to last answer."""
    host, port = endpoint.removeprefix("http://").rsplit(":", 1)
    headers = {"Content-Type": "application/x-protobuf", **({"Content-Encoding": "gzip"} if compress else {})}
    failures: list[int] = []

    def client(share: list[bytes]) -> None:
        connection = http.client.HTTPConnection(host, int(port), timeout=120)
        for body in share:
            connection.request("POST", "/v1/traces", body=body, headers=headers)
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                failures.append(response.status)
        connection.close()

    threads = [threading.Thread(target=client, args=(bodies[i::connections],)) for i in range(connections)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if failures:
        raise SystemExit(f"the receiver refused {len(failures)} request(s): {sorted(set(failures))}")
    return elapsed


def make_spans_with_sdk(spans: int, exporter: Any) -> float:
    """Make `spans` model-call spans with the OTel SDK into `exporter`; seconds until all are flushed."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(shutdown_on_exit=False)
    # A queue that holds every span: the point is what the exporter takes, not what the queue drops.
    provider.add_span_processor(BatchSpanProcessor(exporter, max_queue_size=spans + 1,
                                                   max_export_batch_size=BATCH, schedule_delay_millis=100))
    tracer = provider.get_tracer("bench")
    started = time.perf_counter()
    for _ in range(spans):
        tracer.start_span("chat gpt-4o", attributes=ATTRIBUTES).end()
    provider.shutdown()
    return time.perf_counter() - started


# --- rows ---------------------------------------------------------------------------------------------
def receiver_row(spans: int, connections: int, compress: bool, workdir: Path) -> dict[str, Any]:
    bodies = protobuf_bodies(spans, compress=compress)
    receiver = ReceiverProcess(workdir / "run")
    elapsed = post_all(receiver.endpoint, bodies, connections, compress=compress)
    result = receiver.finish()
    return {"wall_s": elapsed, "written": result["written"], "receiver_cpu_s": result["cpu_s"]}


def sdk_to_receiver_row(spans: int, workdir: Path) -> dict[str, Any]:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    receiver = ReceiverProcess(workdir / "run")
    elapsed = make_spans_with_sdk(spans, OTLPSpanExporter(endpoint=f"{receiver.endpoint}/v1/traces"))
    result = receiver.finish()
    return {"wall_s": elapsed, "written": result["written"], "receiver_cpu_s": result["cpu_s"]}


def sdk_to_file_row(spans: int, workdir: Path) -> dict[str, Any]:
    from opentelemetry.exporter.otlp.json.file.trace_exporter import FileSpanExporter

    path = workdir / "otel.jsonl"
    elapsed = make_spans_with_sdk(spans, FileSpanExporter(path))
    return {"wall_s": elapsed, "written": count_spans(path), "receiver_cpu_s": None}


ROWS: list[tuple[str, Callable[[int, Path], dict[str, Any]]]] = [
    ("receiver, protobuf, 1 connection", lambda n, d: receiver_row(n, 1, False, d)),
    ("receiver, protobuf, 2 connections", lambda n, d: receiver_row(n, 2, False, d)),
    ("receiver, protobuf + gzip, 1 connection", lambda n, d: receiver_row(n, 1, True, d)),
    ("OTel SDK -> OTLP/HTTP protobuf -> receiver", sdk_to_receiver_row),
    ("OTel SDK -> OTLP JSON file (no receiver)", sdk_to_file_row),
]


def main() -> None:
    """Measure every row `--repeat` times and print the table of medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--serve-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_child:
        serve_child(args.serve_child)
        return
    print(f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} CPUs, "
          f"{args.spans} spans a run, median of {args.repeat}")
    print(f"{'path':44} {'spans/s':>9} {'wall s':>7} {'receiver CPU s':>15} {'written':>8} {'dropped':>8}")
    for label, row in ROWS:
        runs = []
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory() as workdir:
                runs.append(row(args.spans, Path(workdir)))
        wall = statistics.median(r["wall_s"] for r in runs)
        written = min(r["written"] for r in runs)
        cpu = [r["receiver_cpu_s"] for r in runs if r["receiver_cpu_s"] is not None]
        cpu_text = f"{statistics.median(cpu):.2f}" if cpu else "-"
        print(f"{label:44} {args.spans / wall:9,.0f} {wall:7.2f} {cpu_text:>15} {written:8} "
              f"{args.spans - written:8}", flush=True)


if __name__ == "__main__":
    main()
