"""A stand-in for `claude -p PROMPT`: two model requests to ANTHROPIC_BASE_URL, each reported as Claude Code does.

Claude Code sends one `claude_code.api_request` log event per model request over OTLP/HTTP, and only
when CLAUDE_CODE_ENABLE_TELEMETRY=1 and OTEL_LOGS_EXPORTER=otlp are set; this does the same, with the
usage the server answered (Claude Code's counts: input without the cache) and its price as cost_usd.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.request
import uuid
from typing import Any

from genai_prices import Usage, calc_price
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

MODEL = "claude-sonnet-4-5-20250929"


def ask(messages: list[dict[str, Any]]) -> tuple[dict[str, Any], float]:
    """One Messages API request; returns the answer and how long it took in ms."""
    request = urllib.request.Request(
        f"{os.environ['ANTHROPIC_BASE_URL']}/v1/messages", method="POST",
        data=json.dumps({"model": MODEL, "max_tokens": 256, "messages": messages}).encode(),
        headers={"content-type": "application/json", "x-api-key": os.environ["ANTHROPIC_API_KEY"]})
    started = time.monotonic()
    with urllib.request.urlopen(request, timeout=30) as response:  # the stub on 127.0.0.1
        return json.loads(response.read()), (time.monotonic() - started) * 1000


def report(records: list[tuple[dict[str, Any], float]], session_id: str) -> None:
    """Send the requests' events to the OTLP logs endpoint, if telemetry is on."""
    if os.environ.get("CLAUDE_CODE_ENABLE_TELEMETRY") != "1" or os.environ.get("OTEL_LOGS_EXPORTER") != "otlp":
        return
    endpoint = (os.environ.get("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT")
                or f"{os.environ['OTEL_EXPORTER_OTLP_ENDPOINT']}/v1/logs")
    payload = ExportLogsServiceRequest()
    resource = payload.resource_logs.add()
    resource.resource.attributes.add(key="service.name").value.string_value = "claude-code"
    scope = resource.scope_logs.add()
    scope.scope.name = "com.anthropic.claude_code.events"
    for sequence, (answer, duration_ms) in enumerate(records, 1):
        usage = answer["usage"]
        read, written = usage["cache_read_input_tokens"], usage["cache_creation_input_tokens"]
        price = calc_price(Usage(input_tokens=usage["input_tokens"] + read + written,
                                 output_tokens=usage["output_tokens"], cache_read_tokens=read or None,
                                 cache_write_tokens=written or None), MODEL, provider_id="anthropic")
        record = scope.log_records.add(time_unix_nano=time.time_ns())
        record.body.string_value = "claude_code.api_request"
        for key, value in {"event.name": "api_request", "event.sequence": str(sequence), "session.id": session_id,
                           "model": MODEL, "input_tokens": str(usage["input_tokens"]),
                           "output_tokens": str(usage["output_tokens"]), "cache_read_tokens": str(read),
                           "cache_creation_tokens": str(written), "cost_usd": str(price.total_price),
                           "duration_ms": str(round(duration_ms))}.items():
            record.attributes.add(key=key).value.string_value = value
    request = urllib.request.Request(endpoint, data=payload.SerializeToString(), method="POST",
                                     headers={"content-type": "application/x-protobuf"})
    with urllib.request.urlopen(request, timeout=30):  # the run's receiver on 127.0.0.1
        pass


def main(prompt: str) -> None:
    messages: list[dict[str, Any]] = [{"role": "user", "content": prompt}]
    first = ask(messages)
    messages += [{"role": "assistant", "content": first[0]["content"]},
                 {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "ok"}]}]
    second = ask(messages)
    report([first, second], str(uuid.uuid4()))
    print(second[0]["content"][0]["text"])


if __name__ == "__main__":
    main(sys.argv[sys.argv.index("-p") + 1])
