"""Shared helpers for the reliability tests: reading back what a run directory holds, and small
file systems mounted for a test."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


def raw_spans(run_dir: Path) -> list[dict[str, Any]]:
    """Every span in spans.jsonl as raw OTLP JSON (a partial last line is ignored)."""
    spans = []
    for line in (run_dir / "spans.jsonl").read_text().splitlines():
        try:
            document = json.loads(line)
        except json.JSONDecodeError:
            continue
        for resource_spans in document["resourceSpans"]:
            for scope_spans in resource_spans["scopeSpans"]:
                spans.extend(scope_spans["spans"])
    return spans


class DiskFillsOnce:
    """`os.write` to one file takes half of what it is given, then fails with ENOSPC, as a disk
    that fills mid-write does; writes before `armed` and after the failure go through. With
    `always`, every write to the file fails at once (a disk that stays full)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, name: str, *, always: bool = False) -> None:
        self.name, self.armed, self.always, self.state = name, always, always, "idle"
        real = os.write

        def write(fd: int, data: bytes) -> int:
            if self.armed and os.readlink(f"/proc/self/fd/{fd}").endswith(self.name):
                if self.state == "idle" and not self.always:
                    self.state = "short"
                    return real(fd, bytes(data)[: len(data) // 2])
                self.armed, self.state = self.always, "idle"
                raise OSError(errno.ENOSPC, "No space left on device")
            return real(fd, data)

        monkeypatch.setattr(os, "write", write)


@contextlib.contextmanager
def tmpfs(mount_point: Path, options: str) -> Iterator[Path]:
    """A tmpfs mounted at `mount_point` with `options` (`size=1m`, `ro,size=64k`) for the test, unmounted
    after; the test skips where mounting is not allowed."""
    mount_point.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a file system needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount_point)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)
