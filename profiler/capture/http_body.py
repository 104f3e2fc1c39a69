"""An HTTP request body read within a byte limit, sent with a Content-Length or chunked."""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler

from profiler.capture.otlp_codec import PayloadError


class ClientGone(Exception):
    """The client closed the connection or stalled before its body arrived: nobody to answer."""


def read_body(handler: BaseHTTPRequestHandler, limit_bytes: int) -> bytes:
    """The request body, read only up to `limit_bytes` (the connection is closed on a refusal here,
    since the rest of the body is left unread).

    Raises:
        PayloadError: 411 without a length, 400 for a bad length or chunk, 413 past the limit.
        ClientGone: the body stopped short.
    """
    try:
        if handler.headers.get("Transfer-Encoding", "").strip().lower() == "chunked":
            return _read_chunked(handler, limit_bytes)
        length = handler.headers.get("Content-Length")
        if length is None:
            handler.close_connection = True
            raise PayloadError(411, "a Content-Length (or a chunked body) is required")
        if not length.strip().isdigit():
            handler.close_connection = True
            raise PayloadError(400, f"Content-Length {length!r} is not a byte count")
        size = int(length)
        if size > limit_bytes:
            handler.close_connection = True
            raise PayloadError(413, f"the body is {size} bytes; the limit is {limit_bytes}")
        body = handler.rfile.read(size)
    except OSError as err:
        raise ClientGone from err
    if len(body) < size:
        raise ClientGone
    return body


def _read_chunked(handler: BaseHTTPRequestHandler, limit_bytes: int) -> bytes:
    body = bytearray()
    while True:
        line = handler.rfile.readline(1026)
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            handler.close_connection = True
            raise PayloadError(400, "a malformed chunk in the chunked body") from None
        if size == 0:
            while handler.rfile.readline(1026).strip():
                pass  # trailers, unused
            return bytes(body)
        if len(body) + size > limit_bytes:
            handler.close_connection = True
            raise PayloadError(413, f"the chunked body passes the limit of {limit_bytes} bytes")
        chunk = handler.rfile.read(size)
        if len(chunk) < size:
            raise ClientGone
        body += chunk
        handler.rfile.readline(3)  # the CRLF after the chunk
