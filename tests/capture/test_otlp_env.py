"""The OTLP variables `sessionprof run` gives its command, and the user's own settings winning."""

from __future__ import annotations

from profiler.capture.otlp_env import otlp_environment

ENDPOINT = "http://127.0.0.1:43210"


def test_a_clean_environment_points_every_signal_and_claude_code_at_the_receiver() -> None:
    child = otlp_environment(ENDPOINT, {"PATH": "/bin"})
    assert child.added == {
        "OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{ENDPOINT}/v1/traces",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": f"{ENDPOINT}/v1/logs",
        "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": f"{ENDPOINT}/v1/metrics",
        "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "http/protobuf",
        "CLAUDE_CODE_ENABLE_TELEMETRY": "1",
        "OTEL_LOGS_EXPORTER": "otlp",
        "OTEL_METRICS_EXPORTER": "otlp",
    }
    assert child.note() is None


def test_the_users_own_destination_wins_whole_with_a_note() -> None:
    child = otlp_environment(ENDPOINT, {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"})
    assert child.added == {}
    assert child.note() == ("your OTLP settings win (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://collector:4318/"
                            "v1/traces): spans the command exports over OTLP go there, not to this run; unset them "
                            "to record those spans here")
    # A protocol alone is a choice too: grpc to our HTTP port would fail.
    assert otlp_environment(ENDPOINT, {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}).added == {}


def test_claude_code_switches_the_user_set_are_left_alone() -> None:
    child = otlp_environment(ENDPOINT, {"CLAUDE_CODE_ENABLE_TELEMETRY": "0", "OTEL_METRICS_EXPORTER": "none",
                                        "OTEL_EXPORTER_OTLP_ENDPOINT": ""})
    assert "CLAUDE_CODE_ENABLE_TELEMETRY" not in child.added and "OTEL_METRICS_EXPORTER" not in child.added
    assert child.added["OTEL_LOGS_EXPORTER"] == "otlp"
    assert child.added["OTEL_EXPORTER_OTLP_ENDPOINT"] == ENDPOINT  # set but empty counts as unset
