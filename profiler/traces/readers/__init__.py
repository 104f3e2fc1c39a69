"""Readers of trace and telemetry files; each turns a file into rows of `Run.spans` or `Run.samples`."""
