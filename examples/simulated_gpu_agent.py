"""A self-hosted model agent on a simulated GPU: see energy, GiB*s and idle hold without a GPU.

    python examples/simulated_gpu_agent.py

The "GPU" is `profiler.testing.FakeGpuBackend`, scripted by the agent itself: the model's weights
load into memory, each generation draws high power, and the KV cache grows turn by turn and stays
resident while the agent waits on tools, which is the stateful cost this profiler exists to show.
Every figure in the report is computed exactly as on a real GPU; only the sensor is simulated.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import profiler
from profiler.testing import FakeGpuBackend

GIB = 1024**3


@dataclass
class SimulatedGpu:
    """What the fake sensor reports, set by the simulated model as it works."""

    power_w: float = 70.0  # an idle H100 draws about 70 W
    util_pct: float = 0.0
    mem_used_bytes: float = 0.5 * GIB  # the driver's own reservation, before the model loads

    def backend(self) -> FakeGpuBackend:
        return FakeGpuBackend(power_w=lambda _t: self.power_w, util_pct=lambda _t: self.util_pct,
                              mem_used_bytes=lambda _t: self.mem_used_bytes,
                              gpu_name="NVIDIA H100 80GB HBM3 (simulated)")


gpu = SimulatedGpu()


class LocalModel:
    """A 8B-parameter model served on this GPU (simulated): weights plus a growing KV cache."""

    weights_bytes = 16 * GIB
    kv_bytes_per_token = 128 * 1024  # 32 layers x 8 KV heads x 128 dims x 2 (K, V) x 2 bytes (bf16)

    def __init__(self) -> None:
        self.context_tokens = 0

    @profiler.step("load model weights")
    def load(self) -> None:
        gpu.power_w, gpu.util_pct = 180.0, 40.0
        for _shard in range(4):  # the weights arrive shard by shard
            time.sleep(0.1)
            gpu.mem_used_bytes += self.weights_bytes / 4
        gpu.power_w, gpu.util_pct = 70.0, 0.0

    @profiler.llm(model="llama-3.1-8b-instruct", provider="vllm")
    def generate(self, new_prompt_tokens: int, output_tokens: int) -> dict:
        prefill = self.context_tokens + new_prompt_tokens
        gpu.power_w, gpu.util_pct = 620.0, 98.0
        time.sleep(0.05 + output_tokens * 0.0015)  # decode at about 650 tokens/s
        self.context_tokens = prefill + output_tokens
        gpu.mem_used_bytes = 0.5 * GIB + self.weights_bytes + self.context_tokens * self.kv_bytes_per_token
        gpu.power_w, gpu.util_pct = 70.0, 0.0  # done: the GPU idles, the KV cache stays resident
        return {"model": "llama-3.1-8b-instruct",
                "usage": {"prompt_tokens": prefill, "completion_tokens": output_tokens,
                          "prompt_tokens_details": {"cached_tokens": self.context_tokens - output_tokens
                                                    - new_prompt_tokens}}}


@profiler.tool
def run_tests() -> str:
    time.sleep(0.6)  # the GPU holds the model and its cache, idle, while this runs
    return "2 failed, 40 passed"


@profiler.tool
def read_file(path: str) -> str:
    time.sleep(0.15)
    return f"contents of {path}"


@profiler.agent(name="coding-agent")
def fix_the_tests(model: LocalModel) -> None:
    model.generate(new_prompt_tokens=3_000, output_tokens=120)
    read_file("src/app.py")
    for turn in range(3):
        model.generate(new_prompt_tokens=800, output_tokens=250 + 100 * turn)
        run_tests()


def main() -> None:
    print("simulated_gpu_agent: a simulated H100 (FakeGpuBackend); every figure is computed as on a real GPU")
    with profiler.session("simulated-gpu", gpu=gpu.backend(), sample_interval_s=0.05) as session:
        model = LocalModel()
        model.load()
        fix_the_tests(model)
    print(session.report())
    print(f"run directory: {session.path}")


if __name__ == "__main__":
    main()
