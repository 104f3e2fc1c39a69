"""Trace files in, a `Run` out: the readers, the GenAI meaning of spans, the span table, span ids and `load`."""
