"""Build the simulated NVML library and point the real `pynvml` bindings at it (see README.md).

Used by tests; imports nothing from the project. Typical use in a test module::

    lib = build_nvml_sim()                  # compiled once per test session
    with attach(lib, scenario_path) as nvml:  # nvml is the real pynvml module
        NvmlBackend(nvml).open()
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

SOURCE = Path(__file__).with_name("nvml_sim.c")
#: The file name pynvml loads on Linux, so that LD_LIBRARY_PATH=<its folder> also selects the simulation.
SONAME = "libnvidia-ml.so.1"


class CompilerNotFoundError(RuntimeError):
    """No C compiler on PATH: tests that need the simulated library skip."""


@functools.cache
def build_nvml_sim() -> Path:
    """Compile `nvml_sim.c` into a fresh temporary folder, once per process.

    Returns:
        The path of the shared library, named `libnvidia-ml.so.1`.

    Raises:
        CompilerNotFoundError: neither $CC nor cc, gcc or clang is on PATH.
        RuntimeError: the compiler failed; the message holds its output.
    """
    compiler = os.environ.get("CC") or next(
        (found for name in ("cc", "gcc", "clang") if (found := shutil.which(name))), None)
    if compiler is None:
        raise CompilerNotFoundError("no C compiler ($CC, cc, gcc or clang) to build "
                                    "tests/nvml_sim/nvml_sim.c")
    # A fresh folder per session: the library is tiny and builds in well under a second.
    out = Path(tempfile.mkdtemp(prefix="nvml-sim-")) / SONAME
    command = [compiler, "-shared", "-fPIC", "-O2", "-std=c11", "-Wall", "-Wextra",
               "-o", str(out), str(SOURCE), "-lm"]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"building the NVML simulation failed: {' '.join(command)}\n{result.stderr}")
    return out


@contextlib.contextmanager
def attach(lib: Path, scenario: Path) -> Iterator[ModuleType]:
    """Make the real `pynvml` module use the simulated library with `scenario`, then undo it.

    pynvml loads its library lazily into the module global `nvmlLib` and only when that is None,
    so setting it to our CDLL before `nvmlInit` is the whole injection. Function pointers are
    cached per name in `_nvmlGetFunctionPointer_cache`, which is swapped for an empty dict so that
    neither a real library's nor an earlier test's pointers leak in or out.

    Yields:
        The real `pynvml` module, ready for `nvmlInit`.
    """
    import pynvml

    cdll = ctypes.CDLL(str(lib))
    saved = (pynvml.nvmlLib, pynvml._nvmlGetFunctionPointer_cache, pynvml._nvmlLib_refcount,
             os.environ.get("NVML_SIM_SCENARIO"))
    os.environ["NVML_SIM_SCENARIO"] = str(scenario)  # read by the library's nvmlInit via getenv
    pynvml.nvmlLib, pynvml._nvmlGetFunctionPointer_cache, pynvml._nvmlLib_refcount = cdll, {}, 0
    try:
        yield pynvml
    finally:
        # Leave the simulation uninitialised whatever the test did, so the next nvmlInit re-reads
        # its scenario (like NVML, the library only loads on the first of nested inits).
        while cdll.nvmlShutdown() == 0:
            pass
        pynvml.nvmlLib, pynvml._nvmlGetFunctionPointer_cache, pynvml._nvmlLib_refcount = saved[:3]
        if saved[3] is None:
            os.environ.pop("NVML_SIM_SCENARIO", None)
        else:
            os.environ["NVML_SIM_SCENARIO"] = saved[3]
