"""A folder for a child's PYTHONPATH holding a stand-in model SDK and OpenTelemetry instrumentors
registered as installed distributions are (a `.dist-info` with `entry_points.txt`), and a way to
run `sessionprof run` on a program in a subprocess, as a user would."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import profiler

#: What the stand-in SDK's `complete()` answers, as the OpenAI API reports usage.
INPUT_TOKENS = 1_200
OUTPUT_TOKENS = 80
CACHED_TOKENS = 1_000

FAKESDK = f'''
"""A stand-in model SDK: `complete` answers with fixed usage; `native` emits its own GenAI span."""
from opentelemetry import trace

activated = []


def complete(prompt):
    return {{"model": "gpt-4o-mini", "usage": {{"prompt_tokens": {INPUT_TOKENS}, "completion_tokens": {OUTPUT_TOKENS},
                                              "prompt_tokens_details": {{"cached_tokens": {CACHED_TOKENS}}}}}}}


def native(prompt):
    attributes = {{"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                  "gen_ai.request.model": "gpt-4o-mini", "gen_ai.usage.input_tokens": 10,
                  "gen_ai.usage.output_tokens": 1}}
    with trace.get_tracer("fakesdk").start_as_current_span("chat gpt-4o-mini", attributes=attributes):
        return "ok"
'''

# Built the way real instrumentors are: a tracer from the global provider at instrument() time, the
# SDK's function wrapped, and OTel's suppression key honoured.
INSTRUMENTOR = f'''
from opentelemetry import context, trace

import fakesdk


class Instrumentor:
    def instrument(self, **kwargs):
        fakesdk.activated.append({{name!r}})
        tracer = trace.get_tracer(__name__, tracer_provider=kwargs.get("tracer_provider"))
        original = fakesdk.complete

        def complete(prompt):
            if context.get_value(context._SUPPRESS_INSTRUMENTATION_KEY):
                return original(prompt)
            with tracer.start_as_current_span("chat gpt-4o-mini", kind=trace.SpanKind.CLIENT) as span:
                result = original(prompt)
                span.set_attributes({{"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                                     "gen_ai.request.model": "gpt-4o-mini",
                                     "gen_ai.usage.input_tokens": {INPUT_TOKENS},
                                     "gen_ai.usage.output_tokens": {OUTPUT_TOKENS},
                                     "gen_ai.usage.cache_read.input_tokens": {CACHED_TOKENS}}})
                return result

        fakesdk.complete = complete
'''


def _distribution(site: Path, dist: str, module: str, entry_name: str, source: str, requires: str = "") -> None:
    (site / module).mkdir()
    (site / module / "__init__.py").write_text(source)
    info = site / f"{dist.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n{requires}")
    (info / "entry_points.txt").write_text(f"[opentelemetry_instrumentor]\n{entry_name} = {module}:Instrumentor\n")


def write_site(site: Path, *, broken: bool = False) -> Path:
    """The stand-in SDK and three instrumentors: `fakesdk` (spans with usage), `other` (records that it
    was turned on), and `absent`, whose library is not installed (its module fails if imported).
    With `broken`, a fourth whose `instrument()` raises."""
    site.mkdir(parents=True, exist_ok=True)
    (site / "fakesdk").mkdir()
    (site / "fakesdk" / "__init__.py").write_text(FAKESDK)
    _distribution(site, "fake-instrumentation-fakesdk", "fakeinstr", "fakesdk",
                  INSTRUMENTOR.replace("{name!r}", repr("fakesdk")))
    _distribution(site, "fake-instrumentation-other", "otherinstr", "other",
                  "import fakesdk\n\n\nclass Instrumentor:\n    def instrument(self, **kwargs):\n"
                  "        fakesdk.activated.append('other')\n")
    _distribution(site, "fake-instrumentation-absent", "absentinstr", "absent",
                  "raise RuntimeError('imported although its library is not installed')\n",
                  requires='Requires-Dist: library-that-is-not-installed>=1; extra == "instruments"\n')
    if broken:
        _distribution(site, "fake-instrumentation-broken", "brokeninstr", "broken",
                      "class Instrumentor:\n    def instrument(self, **kwargs):\n"
                      "        raise RuntimeError('cannot patch')\n")
    return site


def program(body: str) -> str:
    """A child program: `body` with `facts` (a dict written as JSON to $FACTS at exit) in scope."""
    return textwrap.dedent('''
        import atexit, json, os
        facts = {}
        atexit.register(lambda: open(os.environ["FACTS"], "w").write(json.dumps(facts)))
    ''') + textwrap.dedent(body)


def sessionprof_run(tmp_path: Path, body: str, *args: str, pythonpath: list[Path] | None = None,
                    child_only_path: Path | None = None,
                    ) -> tuple[subprocess.CompletedProcess[str], Path, dict[str, Any]]:
    """Run `body` (see `program`) under `sessionprof run --no-report --gpu none ARGS` with `pythonpath`;
    `child_only_path` is added to the child's path only. Returns the finished process, the run
    directory and the facts the program wrote."""
    script = tmp_path / "agent.py"
    script.write_text(program(body))
    run_dir = tmp_path / "run"
    facts = tmp_path / "facts.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SESSIONPROF_", "OTEL_", "PYTHON"))}
    env.update(FACTS=str(facts), PYTHONPATH=os.pathsep.join(str(p) for p in pythonpath or []))
    command = [sys.executable, str(script)]
    if child_only_path is not None:
        command = ["sh", "-c", f'PYTHONPATH="$PYTHONPATH:{child_only_path}" exec "$0" "$@"', *command]
    executable = shutil.which("sessionprof", path=str(Path(sys.executable).parent)) or "sessionprof"
    done = subprocess.run([executable, "run", "--no-report", "--gpu", "none", "--run-dir", str(run_dir), *args, "--",
                           *command], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    return done, run_dir, json.loads(facts.read_text()) if facts.exists() else {}


def ledger_of(run_dir: Path) -> Any:
    """The attributed ledger of a run directory."""
    return profiler.attribute(profiler.load(run_dir))
