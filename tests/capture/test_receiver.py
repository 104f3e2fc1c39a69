"""The OTLP/HTTP receiver: protobuf and JSON, gzip, answers as the OTLP spec says, concurrency, limits."""

from __future__ import annotations

import base64
import gzip
import http.client
import json
import socket
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

import profiler
from profiler.attribution.engine import attribute
from profiler.capture.receiver import OtlpReceiver
from profiler.errors import ReceiverError
from tests.capture.otlp_helpers import BASE_NS, TRACE_ID, agent_turn, all_spans, chat_attrs, post, span_request
from tests.paths import REPO


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[OtlpReceiver]:
    with OtlpReceiver(tmp_path / "run") as running:
        yield running


def _status(body: bytes) -> tuple[int, str]:
    """Decode a google.rpc.Status (code, message) as the receiver encodes it: fields 1 and 2."""
    assert body[0] == 0x08 and body[2] == 0x12
    length, offset = 0, 3
    for shift in range(0, 35, 7):
        length |= (body[offset] & 0x7F) << shift
        offset += 1
        if not body[offset - 1] & 0x80:
            break
    assert len(body) == offset + length
    return body[1], body[offset:].decode()


def test_protobuf_spans_become_otlp_json_lines_that_load_with_their_usage(receiver: OtlpReceiver) -> None:
    status, headers, body = post(receiver.endpoint, "/v1/traces", agent_turn().SerializeToString())
    assert status == 200 and headers["content-type"] == "application/x-protobuf"
    assert not ExportTraceServiceResponse.FromString(body).HasField("partial_success")
    receiver.stop()
    run_dir = receiver.spans_path.parent
    spans = all_spans(run_dir)
    chat = next(s for s in spans if s["spanId"] == "0000000000000002")
    # The OTLP JSON rules: hex ids, 64-bit integers as strings, camelCase keys, enums as integers.
    assert chat["traceId"] == TRACE_ID.hex() and chat["parentSpanId"] == "0000000000000001"
    assert chat["startTimeUnixNano"] == str(BASE_NS + 1_000_000_000) and chat["kind"] == 3
    assert {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "1000"}} in chat["attributes"]
    ledger = attribute(profiler.load(run_dir))
    assert ledger.totals["model_calls"] == 2 and ledger.totals["tool_calls"] == 1
    assert ledger.totals["input_tokens"] == 3500 and ledger.totals["output_tokens"] == 150
    assert receiver.stats.spans == 4 and receiver.stats.requests == 1


def _otlp_json(request: ExportTraceServiceRequest) -> dict[str, Any]:
    """A request as OTLP JSON: hex ids (here in upper case, which is accepted too), enums by name."""
    document = json_format.MessageToDict(request)
    for resource_spans in document["resourceSpans"]:
        for span in resource_spans["scopeSpans"][0]["spans"]:
            for key in ("traceId", "spanId", "parentSpanId"):
                if key in span:
                    span[key] = base64.b64decode(span[key]).hex().upper()
            span["kind"] = "SPAN_KIND_CLIENT"
    return document


def test_json_and_gzip_bodies_are_taken_as_the_same_spans(receiver: OtlpReceiver) -> None:
    document = _otlp_json(agent_turn(first_id=11))
    text = json.dumps(document).encode()
    status, headers, body = post(receiver.endpoint, "/v1/traces", text, "application/json; charset=utf-8")
    assert (status, headers["content-type"], json.loads(body)) == (200, "application/json", {})
    gzipped = gzip.compress(agent_turn(first_id=21).SerializeToString())
    status, _, _ = post(receiver.endpoint, "/v1/traces", gzipped, headers={"Content-Encoding": "gzip"})
    assert status == 200
    status, _, _ = post(receiver.endpoint, "/v1/traces", gzip.compress(text), "application/json",
                        headers={"Content-Encoding": "gzip"})
    assert status == 200
    receiver.stop()
    ids = [s["spanId"] for s in all_spans(receiver.spans_path.parent)]
    assert ids.count("000000000000000b") == 2 and "0000000000000015" in ids and len(ids) == 12
    assert {s["kind"] for s in all_spans(receiver.spans_path.parent) if s["spanId"] == "000000000000000b"} == {3}


def test_some_bad_spans_are_a_partial_success_naming_the_first(receiver: OtlpReceiver) -> None:
    request = span_request([
        {"span_id": 1, "parent": None, "name": "chat good", "start": 0, "end": 1, "attrs": chat_attrs()},
        {"span_id": 2, "parent": None, "name": "no trace", "start": 0, "end": 1, "trace_id": bytes(16)},
        {"span_id": 3, "parent": None, "name": "backwards", "start": 2, "end": 1},
    ])
    status, _, body = post(receiver.endpoint, "/v1/traces", request.SerializeToString())
    partial = ExportTraceServiceResponse.FromString(body).partial_success
    assert status == 200 and partial.rejected_spans == 2
    assert partial.error_message == "2 span(s) rejected; the first: span 'no trace': its trace id is not 16 bytes, " \
                                    "or is all zero"
    bad_hex = {"resourceSpans": [{"scopeSpans": [{"spans": [
        {"traceId": "zz" * 16, "spanId": "00000000000000aa", "name": "x", "startTimeUnixNano": "1",
         "endTimeUnixNano": "2"}]}]}]}
    status, _, body = post(receiver.endpoint, "/v1/traces", json.dumps(bad_hex).encode(), "application/json")
    assert status == 200 and json.loads(body)["partialSuccess"]["rejectedSpans"] == "1"
    receiver.stop()
    assert [s["name"] for s in all_spans(receiver.spans_path.parent)] == ["chat good"]
    assert receiver.stats.rejected_spans == 3


@pytest.mark.parametrize(("body", "content_type", "headers", "status", "says"), [
    (b"\x0a\xff\xff\xff", "application/x-protobuf", {}, 400, "not a protobuf ExportTraceServiceRequest"),
    (b"{not json", "application/json", {}, 400, "the body is not JSON"),
    (b"[1, 2]", "application/json", {}, 400, "not a JSON ExportTraceServiceRequest object"),
    (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"name": 5}]}]}]}', "application/json", {}, 400,
     "not an OTLP JSON ExportTraceServiceRequest"),
    (b"{}", "text/plain", {}, 415, "unsupported content type 'text/plain'"),
    (b"{}", "application/json", {"Content-Encoding": "br"}, 415, "unsupported content encoding 'br'"),
    (b"not gzip at all", "application/x-protobuf", {"Content-Encoding": "gzip"}, 400,
     "the gzip body cannot be inflated"),
    (gzip.compress(b"x" * 100)[:-12], "application/x-protobuf", {"Content-Encoding": "gzip"}, 400,
     "the gzip body is cut short"),
])
def test_bad_payloads_get_a_4xx_with_a_one_line_status(receiver: OtlpReceiver, body: bytes, content_type: str,
                                                       headers: dict[str, str], status: int, says: str) -> None:
    got, answer_headers, answer = post(receiver.endpoint, "/v1/traces", body, content_type, headers=headers)
    assert got == status
    if "json" in content_type:
        assert answer_headers["content-type"] == "application/json"
        code, message = json.loads(answer)["code"], json.loads(answer)["message"]
    else:
        code, message = _status(answer)
    assert code == 3 and says in message and "\n" not in message and "Traceback" not in message
    # The receiver goes on taking spans.
    assert post(receiver.endpoint, "/v1/traces", agent_turn().SerializeToString())[0] == 200


def test_wrong_paths_methods_and_lengths_are_refused(receiver: OtlpReceiver, tmp_path: Path) -> None:
    assert post(receiver.endpoint, "/v1/profiles", b"")[0] == 404
    small = OtlpReceiver(tmp_path / "small", max_body_bytes=1000)
    with small:
        status, headers, _ = post(small.endpoint, "/v1/traces", b"\x00" * 5000)
        assert status == 413 and headers["connection"] == "close"
        chunked = post(small.endpoint, "/v1/traces", b"\x00" * 5000, chunked=True)
        assert chunked[0] == 413
    connection = http.client.HTTPConnection("127.0.0.1", receiver.port, timeout=10)
    connection.request("GET", "/v1/traces")
    assert connection.getresponse().status == 405
    connection.close()
    connection = http.client.HTTPConnection("127.0.0.1", receiver.port, timeout=10)
    connection.putrequest("POST", "/v1/traces")  # no Content-Length, not chunked
    connection.putheader("Content-Type", "application/x-protobuf")
    connection.endheaders()
    assert connection.getresponse().status == 411
    connection.close()
    assert post(receiver.endpoint, "/v1/traces", agent_turn().SerializeToString(), chunked=True)[0] == 200


def _gzip_zeros(mib: int) -> bytes:
    compressor = zlib.compressobj(1, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    chunk = bytes(1024 * 1024)
    return b"".join(compressor.compress(chunk) for _ in range(mib)) + compressor.flush()


#: A receiver in a process of its own, so that its peak memory is its own: it prints its endpoint,
#: serves until its stdin closes, then prints its peak resident memory in KiB. (VmHWM, not
#: ru_maxrss, which a child inherits from the parent it was forked from: pytest's own peak.)
RECEIVER_PROCESS = """
import re, sys
from pathlib import Path
from profiler.capture.receiver import OtlpReceiver
receiver = OtlpReceiver(sys.argv[1], max_inflated_bytes=8 * 1024 * 1024)
print(receiver.start(), flush=True)
sys.stdin.read()
receiver.stop()
print(re.search(r"VmHWM:\\s+(\\d+) kB", Path("/proc/self/status").read_text()).group(1), flush=True)
"""


@pytest.mark.parametrize("members", [1, 16])
def test_a_gzip_bomb_is_cut_off_at_the_limit_without_eating_memory(tmp_path: Path, members: int) -> None:
    # 512 MiB of zeros in about half a megabyte: one gzip member, or several one after another.
    bomb = _gzip_zeros(512 // members) * members
    assert len(bomb) < 4 * 1024 * 1024
    proc = subprocess.Popen([sys.executable, "-c", RECEIVER_PROCESS, str(tmp_path / "run")], cwd=REPO,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        endpoint = proc.stdout.readline().strip()
        status, _, body = post(endpoint, "/v1/traces", bomb, headers={"Content-Encoding": "gzip"})
        peak_kib = int(proc.communicate(timeout=60)[0].strip())
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert status == 413 and _status(body)[1] == "the body inflates to more than 8388608 bytes"
    assert peak_kib < 200 * 1024, f"the receiver's peak memory was {peak_kib / 1024:.0f} MiB"


def test_concurrent_posts_all_land_whole_and_once(receiver: OtlpReceiver) -> None:
    threads, posts, spans_each = 8, 10, 50
    failures: list[int] = []

    def client(worker: int) -> None:
        for batch in range(posts):
            first = (worker * posts + batch) * spans_each + 1
            request = span_request([{"span_id": first + i, "parent": None, "name": f"step {first + i}",
                                     "start": 0, "end": 1} for i in range(spans_each)])
            status = post(receiver.endpoint, "/v1/traces", request.SerializeToString())[0]
            if status != 200:
                failures.append(status)

    workers = [threading.Thread(target=client, args=(w,)) for w in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    receiver.stop()
    ids = [int(s["spanId"], 16) for s in all_spans(receiver.spans_path.parent)]  # every line is whole JSON
    assert not failures and sorted(ids) == list(range(1, threads * posts * spans_each + 1))
    assert receiver.stats.spans == threads * posts * spans_each


def test_the_official_python_exporter_sends_here_plain_and_gzipped(receiver: OtlpReceiver) -> None:
    for compression in (Compression.NoCompression, Compression.Gzip):
        exporter = OTLPSpanExporter(endpoint=f"{receiver.endpoint}/v1/traces", compression=compression)
        provider = TracerProvider(shutdown_on_exit=False)
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        with provider.get_tracer("t").start_as_current_span("chat gpt-4o", attributes=chat_attrs()):
            pass
        provider.shutdown()
    receiver.stop()
    assert [s["name"] for s in all_spans(receiver.spans_path.parent)] == ["chat gpt-4o"] * 2
    assert receiver.stats.refused_requests == 0


def test_logs_without_model_events_and_metrics_are_counted_and_answered(receiver: OtlpReceiver) -> None:
    metrics = ExportMetricsServiceRequest()
    metric = metrics.resource_metrics.add().scope_metrics.add().metrics.add(name="claude_code.token.usage")
    metric.sum.data_points.add(as_int=5)
    metric.sum.data_points.add(as_int=7)
    status, _, body = post(receiver.endpoint, "/v1/metrics", metrics.SerializeToString())
    assert status == 200 and body == b""
    logs = {"resourceLogs": [{"scopeLogs": [{"logRecords": [{"body": {"stringValue": "hello"}, "spanId": "bad"}]}]}]}
    status, _, body = post(receiver.endpoint, "/v1/logs", json.dumps(logs).encode(), "application/json")
    assert status == 200 and json.loads(body) == {}
    assert json_format.Parse(body, ExportLogsServiceResponse()) == ExportLogsServiceResponse()
    receiver.stop()
    assert (receiver.stats.metric_points, receiver.stats.log_records, receiver.stats.spans) == (2, 1, 0)
    assert not receiver.spans_path.exists()


def test_stop_returns_promptly_with_an_idle_keep_alive_connection(receiver: OtlpReceiver) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", receiver.port, timeout=30)
    connection.request("POST", "/v1/traces", body=agent_turn().SerializeToString(),
                       headers={"Content-Type": "application/x-protobuf"})
    assert connection.getresponse().read() == b""  # kept alive: HTTP/1.1
    started = time.monotonic()
    receiver.stop()
    assert time.monotonic() - started < 3
    assert not any(t.name == "sessionprof-otlp-receiver" and t.is_alive() for t in threading.enumerate())
    connection.close()


def test_a_port_in_use_is_a_one_line_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ReceiverError) as caught:
            OtlpReceiver(tmp_path, port=port).start()
    assert str(caught.value) == (f"port {port} on 127.0.0.1 is in use (another OTLP collector or sessionprof "
                                 "serve?): choose another with --port")


def test_a_write_failure_is_a_500_not_a_crash(tmp_path: Path) -> None:
    blocked = tmp_path / "file-not-dir"
    blocked.write_text("")
    with OtlpReceiver(blocked / "run") as receiver:
        status, _, body = post(receiver.endpoint, "/v1/traces", agent_turn().SerializeToString())
        assert status == 500 and _status(body)[1].startswith(f"could not write {blocked / 'run' / 'spans.jsonl'}")
        assert post(receiver.endpoint, "/v1/metrics", b"")[0] == 200


def test_spans_that_name_no_session_join_the_runs(tmp_path: Path) -> None:
    plain = span_request([{"span_id": 1, "parent": None, "name": "chat a", "start": 0, "end": 1,
                           "attrs": chat_attrs()},
                          {"span_id": 2, "parent": None, "name": "chat b", "start": 1, "end": 2,
                           "trace_id": bytes.fromhex("1" * 32), "attrs": chat_attrs(**{"session.id": "own"})}])
    named = span_request([{"span_id": 3, "parent": None, "name": "chat c", "start": 2, "end": 3,
                           "trace_id": bytes.fromhex("2" * 32), "attrs": chat_attrs()}])
    named.resource_spans[0].resource.attributes.add(key="session.id").value.string_value = "their-service"
    with OtlpReceiver(tmp_path / "run", session_id="run-session") as receiver:
        for request in (plain, named):
            assert post(receiver.endpoint, "/v1/traces", request.SerializeToString())[0] == 200
    steps = attribute(profiler.load(tmp_path / "run")).steps.set_index("name")
    assert steps.loc["chat a", "session_id"] == "run-session"  # across traces, one session
    assert steps.loc["chat b", "session_id"] == "own" and steps.loc["chat c", "session_id"] == "their-service"
