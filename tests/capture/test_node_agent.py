"""A real Node.js agent on the OpenTelemetry JS SDK, exporting OTLP/HTTP protobuf, recorded by
`sessionprof run -- node agent.js` with its exact calls, tokens, cache tokens and dollars."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from genai_prices import Usage, calc_price

from tests.cli.helpers import invoke
from tests.paths import REPO

pytestmark = pytest.mark.slow  # installs the JS SDK once (about 5 s), then starts Node

SOURCE = Path(__file__).parent / "node_agent"
#: Where the pinned packages are installed, once per lock file (ignored by git).
CACHE = REPO / ".sessionprof-node" / "node_agent"
_UNREACHABLE = ("ENOTFOUND", "EAI_AGAIN", "ECONNREFUSED", "ETIMEDOUT", "ECONNRESET", "ENETUNREACH")


@pytest.fixture(scope="module")
def node_agent() -> Path:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node and npm are not installed")
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True).stdout.strip()
    major, minor = (int(part) for part in version.lstrip("v").split(".")[:2])
    if (major, minor) < (20, 6) and not (major == 18 and minor >= 19):
        pytest.skip(f"the pinned OpenTelemetry JS SDK needs Node 18.19+ or 20.6+, not {version}")
    CACHE.mkdir(parents=True, exist_ok=True)
    for name in ("package.json", "package-lock.json", "agent.js"):
        shutil.copyfile(SOURCE / name, CACHE / name)
    lock = (SOURCE / "package-lock.json").read_bytes()
    stamp = CACHE / ".installed-lock"
    if not ((CACHE / "node_modules").is_dir() and stamp.exists() and stamp.read_bytes() == lock):
        installed = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=CACHE, capture_output=True, text=True,
                                   timeout=300)
        if installed.returncode != 0:
            if any(code in installed.stderr for code in _UNREACHABLE):
                pytest.skip(f"the npm registry is unreachable: {installed.stderr.strip().splitlines()[-1]}")
            pytest.fail(f"npm ci failed:\n{installed.stderr}")
        stamp.write_bytes(lock)
    return CACHE / "agent.js"


def test_a_node_agent_is_recorded_over_otlp_protobuf(tmp_path: Path, node_agent: Path) -> None:
    report = tmp_path / "report.json"
    result = invoke("run", "--run-dir", tmp_path / "run", "--gpu", "none", "--no-html", "-f", "json", "-o", report,
                    "--", shutil.which("node"), node_agent)
    assert result.exit_code == 0, result.output
    document = json.loads(report.read_text())
    totals = document["totals"]
    assert (totals["model_calls"], totals["tool_calls"], totals["sessions"]) == (2, 1, 1)
    assert (totals["input_tokens"], totals["output_tokens"], totals["cache_read_tokens"]) == (2700, 120, 2200)
    expected = sum(float(calc_price(Usage(input_tokens=i, output_tokens=o, cache_read_tokens=c), "gpt-4o-mini",
                                    provider_id="openai").total_price) for i, o, c in ((1200, 80, 1000),
                                                                                       (1500, 40, 1200)))
    assert totals["api_cost_usd"] == pytest.approx(expected, rel=1e-12)
    steps = {s["span_id"]: s for s in document["steps"]}
    agent = next(s for s in steps.values() if s["kind"] == "invoke_agent")
    children = sorted(s["name"] for s in steps.values() if s["parent_span_id"] == agent["span_id"])
    assert children == ["chat gpt-4o-mini", "chat gpt-4o-mini", "execute_tool search"]
    assert agent["session_id"] == "node-conversation-1"
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    assert meta["otlp_receiver"]["spans"] == 4 and meta["otlp_receiver"]["refused_requests"] == 0
