"""The OpenTelemetry variables `sessionprof run` gives its command, so that any OTLP exporter in it
(any language, and coding agents such as Claude Code) sends to the run's receiver.

The user's own settings win: when any OTLP endpoint or protocol variable is already set, none of
them is changed, and a note says where exported telemetry will go instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

_SIGNALS = ("TRACES", "LOGS", "METRICS")
#: The variables that say where OTLP goes; one set by the user means they chose a destination.
DESTINATION_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL",
                         *(f"OTEL_EXPORTER_OTLP_{s}_ENDPOINT" for s in _SIGNALS),
                         *(f"OTEL_EXPORTER_OTLP_{s}_PROTOCOL" for s in _SIGNALS))
PROTOCOL = "http/protobuf"
#: Claude Code sends its per-request events (model, tokens, cost) only with these set; each is set
#: only where the user has not set it.
CODING_AGENT_VARIABLES = {"CLAUDE_CODE_ENABLE_TELEMETRY": "1", "OTEL_LOGS_EXPORTER": "otlp",
                          "OTEL_METRICS_EXPORTER": "otlp"}


@dataclass(frozen=True)
class ChildOtlp:
    """What the child gets, and the user's own OTLP destination where it won."""

    added: dict[str, str]
    """Variables to add to the child's environment."""
    kept: dict[str, str] = field(default_factory=dict)
    """The user's OTLP destination settings, left as they are."""

    def note(self) -> str | None:
        """One line for stderr when the user's settings send OTLP elsewhere, else None."""
        if not self.kept:
            return None
        settings = ", ".join(f"{k}={v}" for k, v in sorted(self.kept.items()))
        return (f"your OTLP settings win ({settings}): spans the command exports over OTLP go there, not to "
                "this run; unset them to record those spans here")


def otlp_environment(endpoint: str, environ: Mapping[str, str]) -> ChildOtlp:
    """The variables that point a child's OTLP exporters at `endpoint` (`http://127.0.0.1:PORT`).

    Sets the general endpoint and protocol (read by every SDK and by Claude Code), each signal's own
    endpoint with its `/v1/...` path (what the specification has an exporter use when both are set),
    and Claude Code's telemetry switches. Sets nothing of the kind when the user set any OTLP
    destination variable, so a run never silently diverts telemetry meant for another collector.
    """
    kept = {name: environ[name] for name in DESTINATION_VARIABLES if environ.get(name)}
    if kept:
        return ChildOtlp(added={}, kept=kept)
    added = {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": PROTOCOL}
    for signal in _SIGNALS:
        added[f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT"] = f"{endpoint}/v1/{signal.lower()}"
        added[f"OTEL_EXPORTER_OTLP_{signal}_PROTOCOL"] = PROTOCOL
    added.update({name: value for name, value in CODING_AGENT_VARIABLES.items() if not environ.get(name)})
    return ChildOtlp(added=added)
