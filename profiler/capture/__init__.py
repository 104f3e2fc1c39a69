"""Recording a run: `profiler.session()` in process and `sessionprof run` around a child."""
