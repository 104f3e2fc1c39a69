"""`OtlpReceiver`: an OTLP/HTTP endpoint on a thread that appends what agents export to the run's spans.jsonl.

Any OpenTelemetry SDK (Node, Go, Java, Python, a coding agent) exports here with its standard
`OTEL_EXPORTER_OTLP_*` settings. Answers follow the OTLP/HTTP spec: 200 with an Export*ServiceResponse
(with `partial_success` when some spans were rejected), 400 for a body that cannot be decoded, 413
when it is too big, 415 for another content type or encoding; never a traceback to the client.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import socket
import socketserver
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from instrumentation.exporter import RunDirExporter
from instrumentation.semconv import CONVERSATION_ID, SESSION_KEYS
from profiler.capture.coding_agents import spans_from_logs
from profiler.capture.http_body import ClientGone, read_body
from profiler.capture.otlp_codec import (
    RESPONSE_TYPES,
    BodyFormat,
    PayloadError,
    body_format,
    count_metric_points,
    drop_invalid_spans,
    encode_message,
    encode_status,
    inflate,
    parse_request,
    traces_document,
)
from profiler.errors import ReceiverError

logger = logging.getLogger(__name__)

THREAD_NAME = "sessionprof-otlp-receiver"
LOOPBACK = "127.0.0.1"
DEFAULT_PORT = 4318  # the OTLP/HTTP port
#: The largest body taken as sent (the OpenTelemetry Collector's default limit is 20 MiB).
MAX_BODY_BYTES = 16 * 1024**2
#: The largest body once gzip is undone: a gzip bomb stops here.
MAX_INFLATED_BYTES = 32 * 1024**2
#: Requests decoded at once. Each may hold MAX_INFLATED_BYTES and its decoded form, so this bounds
#: memory however many exporters post together; the rest wait their turn.
DECODE_SLOTS = 4
#: A keep-alive connection with no request for this long is closed (seconds).
IDLE_TIMEOUT_S = 30.0


@dataclass
class ReceiverStats:
    """What the receiver took in, recorded in run.json and shown on the live line."""

    requests: int = 0
    spans: int = 0
    """Spans accepted and written to spans.jsonl."""
    rejected_spans: int = 0
    log_records: int = 0
    model_calls_from_logs: int = 0
    tool_calls_from_logs: int = 0
    metric_points: int = 0
    """Metric data points received and counted; nothing is taken from them."""
    refused_requests: int = 0
    """Requests answered with a 4xx or 5xx status."""
    last_refusal: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The counts as a dict for run.json."""
        return asdict(self)


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: SDK exporters reuse one connection
    server_version = "sessionprof-otlp"
    timeout = IDLE_TIMEOUT_S
    server: _Server

    def do_POST(self) -> None:
        self.server.receiver.handle_post(self)

    def do_GET(self) -> None:
        self.server.receiver.refuse_method(self)

    do_PUT = do_DELETE = do_PATCH = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("otlp receiver: %s", format % args)


class _Server(ThreadingHTTPServer):
    """A threaded HTTP server that knows its open connections, so that stopping can close idle ones."""

    daemon_threads = True
    block_on_close = False  # the receiver waits for requests in flight itself, not for idle connections

    def __init__(self, address: tuple[str, int], receiver: OtlpReceiver) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.receiver = receiver
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _RequestHandler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks up the host's FQDN, a DNS query that can stall for seconds.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.connections_lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.debug("otlp receiver: connection from %s failed", client_address, exc_info=True)


class OtlpReceiver:
    """OTLP/HTTP on `host:port` (port 0: a free one), writing into `<run_dir>/spans.jsonl`.

    Traces are written as they come; log records that carry one model request (Claude Code's
    `claude_code.api_request`) become model-call spans; metrics are counted. Use as a context
    manager, or `start()` and `stop()`.
    """

    def __init__(self, run_dir: str | Path, *, host: str = LOOPBACK, port: int = 0,
                 max_body_bytes: int = MAX_BODY_BYTES, max_inflated_bytes: int = MAX_INFLATED_BYTES,
                 clock: Callable[[], int] = time.time_ns, session_id: str | None = None) -> None:
        """Record the settings; nothing listens until `start()`.

        `session_id`: the session of spans that name none (on their resource, as
        `gen_ai.conversation.id`), so that everything a `sessionprof run` receives is one session.
        """
        if not 0 <= port <= 65535:
            raise ValueError(f"port must be 0-65535, not {port}")
        if max_body_bytes <= 0 or max_inflated_bytes <= 0:
            raise ValueError("body limits must be positive")
        self.host, self.port = host, port
        self.max_body_bytes, self.max_inflated_bytes = max_body_bytes, max_inflated_bytes
        self.clock = clock
        self.session_id = session_id
        self.stats = ReceiverStats()
        self._writer = RunDirExporter(run_dir)
        self._lock = threading.Lock()
        self._decode_slots = threading.BoundedSemaphore(DECODE_SLOTS)
        self._in_flight = 0
        self._last_request = 0.0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def spans_path(self) -> Path:
        """The file the receiver appends to."""
        return self._writer.path

    @property
    def endpoint(self) -> str:
        """The base URL an exporter is given (`http://127.0.0.1:PORT`); `/v1/traces` and friends follow."""
        host = {"0.0.0.0": LOOPBACK, "::": "::1", "": LOOPBACK}.get(self.host, self.host)
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    def start(self) -> str:
        """Listen, and serve on a daemon thread; returns the endpoint.

        Raises:
            ReceiverError: the port is taken or the address cannot be listened on.
        """
        try:
            self._server = _Server((self.host, self.port), self)
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                raise ReceiverError(f"port {self.port} on {self.host} is in use (another OTLP collector or "
                                    "sessionprof serve?): choose another with --port") from None
            raise ReceiverError(f"cannot listen on {self.host}:{self.port}: {err.strerror or err}") from None
        self.port = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=THREAD_NAME, daemon=True)
        self._thread.start()
        return self.endpoint

    def __enter__(self) -> OtlpReceiver:
        """Start listening."""
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        """Stop, after the requests in flight are answered."""
        self.stop()

    def drain(self, quiet_s: float = 0.2, timeout_s: float = 5.0) -> bool:
        """Wait until no request is in flight and none has begun for `quiet_s` seconds.

        Returns:
            False when `timeout_s` passed first (an exporter still sending).
        """
        deadline = time.monotonic() + timeout_s
        while True:
            with self._lock:
                busy = self._in_flight > 0 or time.monotonic() - self._last_request < quiet_s
            if not busy:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)

    def stop(self, timeout_s: float = 5.0) -> ReceiverStats:
        """Let the requests in flight finish, stop listening, close idle connections. Idempotent."""
        server, self._server = self._server, None
        if server is None:
            return self.stats
        self.drain(timeout_s=timeout_s)
        server.shutdown()
        if self._thread is not None:
            self._thread.join(timeout_s)
        # What is left open is idle keep-alive connections (or one that raced in: drained below).
        with server.connections_lock:
            connections = list(server.connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        self.drain(quiet_s=0.0, timeout_s=timeout_s)
        server.server_close()
        self._writer.shutdown()
        return self.stats

    # --- requests (on the server's threads) ---------------------------------------------------------
    def handle_post(self, handler: BaseHTTPRequestHandler) -> None:
        """Answer one POST. Never raises: every failure becomes an OTLP error answer."""
        with self._lock:
            self._in_flight += 1
            self._last_request = time.monotonic()
            self.stats.requests += 1
        # Errors are answered in the request's own format where it names one we speak.
        fmt: BodyFormat = "json" if "json" in handler.headers.get("Content-Type", "").lower() else "protobuf"
        try:
            body = read_body(handler, self.max_body_bytes)
            accept = _SIGNALS.get(urlsplit(handler.path).path)
            if accept is None:
                raise PayloadError(404, f"no OTLP endpoint at {urlsplit(handler.path).path}: "
                                        "POST to /v1/traces, /v1/logs or /v1/metrics")
            fmt = body_format(handler.headers.get("Content-Type"))
            data = inflate(body, handler.headers.get("Content-Encoding"), self.max_inflated_bytes)
            with self._decode_slots:
                response = accept(self, data, fmt)
            self._send(handler, 200, fmt, encode_message(response, fmt))
        except ClientGone:
            handler.close_connection = True
        except PayloadError as err:
            self._refuse(handler, err.status, str(err), fmt)
        except OSError as err:  # the run's file, not the socket (that is ClientGone)
            self._refuse(handler, 500, f"could not write {self._writer.path}: {err.strerror or err}", fmt)
        except Exception as err:  # noqa: BLE001 - no request may take the receiver down
            logger.debug("otlp receiver: request failed", exc_info=True)
            self._refuse(handler, 500, f"internal error ({type(err).__name__})", fmt)
        finally:
            with self._lock:
                self._in_flight -= 1

    def refuse_method(self, handler: BaseHTTPRequestHandler) -> None:
        """Answer a method other than POST."""
        handler.close_connection = True  # a body, if any, is left unread
        with contextlib.suppress(OSError):
            self._refuse(handler, 405, f"{handler.command} is not supported: OTLP/HTTP takes POST", "json")

    def _refuse(self, handler: BaseHTTPRequestHandler, status: int, message: str, fmt: BodyFormat) -> None:
        with self._lock:
            self.stats.refused_requests += 1
            self.stats.last_refusal = f"{status}: {message}"
        logger.debug("otlp receiver: refused a request: %s %s", status, message)
        self._send(handler, status, fmt, encode_status(status, message, fmt))

    def _send(self, handler: BaseHTTPRequestHandler, status: int, fmt: BodyFormat, body: bytes) -> None:
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", RESPONSE_TYPES[fmt])
            handler.send_header("Content-Length", str(len(body)))
            if handler.close_connection:
                handler.send_header("Connection", "close")
            handler.end_headers()
            handler.wfile.write(body)
        except OSError:
            handler.close_connection = True  # the client left before its answer

    # --- the three signals --------------------------------------------------------------------------
    def _accept_traces(self, data: bytes, fmt: BodyFormat) -> Message:
        request = parse_request(data, fmt, ExportTraceServiceRequest)
        kept, rejected, first = drop_invalid_spans(request)
        if kept:
            if self.session_id is not None:
                for resource_spans in request.resource_spans:
                    _name_session(resource_spans.resource.attributes, self.session_id)
            self._writer.append_document(traces_document(request))
        with self._lock:
            self.stats.spans += kept
            self.stats.rejected_spans += rejected
        response = ExportTraceServiceResponse()
        if rejected:
            response.partial_success.rejected_spans = rejected
            response.partial_success.error_message = f"{rejected} span(s) rejected; the first: {first}"
        return response

    def _accept_logs(self, data: bytes, fmt: BodyFormat) -> Message:
        request = parse_request(data, fmt, ExportLogsServiceRequest)
        if self.session_id is not None:
            for resource_logs in request.resource_logs:
                _name_session(resource_logs.resource.attributes, self.session_id)
        harvest = spans_from_logs(request, self.clock())
        if harvest.document is not None:
            self._writer.append_document(harvest.document)
        with self._lock:
            self.stats.log_records += harvest.records
            self.stats.model_calls_from_logs += harvest.model_calls
            self.stats.tool_calls_from_logs += harvest.tool_calls
        return ExportLogsServiceResponse()

    def _accept_metrics(self, data: bytes, fmt: BodyFormat) -> Message:
        points = count_metric_points(parse_request(data, fmt, ExportMetricsServiceRequest))
        with self._lock:
            self.stats.metric_points += points
        return ExportMetricsServiceResponse()


def _name_session(attributes: Any, session_id: str) -> None:
    """Give a resource the run's session, unless it names one: its spans that name none then belong
    to it (readers look at the span, then at its resource), and the others keep theirs."""
    if not any(item.key in SESSION_KEYS for item in attributes):
        attributes.add(key=CONVERSATION_ID).value.string_value = session_id


_SIGNALS: dict[str, Callable[[OtlpReceiver, bytes, BodyFormat], Message]] = {
    "/v1/traces": OtlpReceiver._accept_traces,
    "/v1/logs": OtlpReceiver._accept_logs,
    "/v1/metrics": OtlpReceiver._accept_metrics,
}
