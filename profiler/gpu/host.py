"""Facts about the machine a run was recorded on, for run.json."""

from __future__ import annotations

import os
import platform
import socket
import sys
from typing import Any


def host_info() -> dict[str, Any]:
    """Hostname, OS, Python and CPU count."""
    return {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "cpu_count": os.cpu_count(),
        "pid": os.getpid(),
    }


#: The inode of the initial (host) PID namespace, fixed by the kernel (PROC_PID_INIT_INO).
_HOST_PID_NAMESPACE = "pid:[4026531836]"


def pid_namespace() -> str | None:
    """`host` when this process sees the host's PIDs, `own` inside another PID namespace (a
    container), None where /proc does not say. NVML lists processes by host PID, so inside a
    container its PIDs do not match this run's."""
    try:
        link = os.readlink("/proc/self/ns/pid")
    except OSError:
        return None
    return "host" if link == _HOST_PID_NAMESPACE else "own"


def pid_exists(pid: int) -> bool:
    """Whether this PID namespace has a process `pid` (from /proc)."""
    return os.path.exists(f"/proc/{pid}")


def process_tree(root_pid: int) -> frozenset[int]:
    """`root_pid` and all its descendants, from /proc (just the root where /proc is absent)."""
    children: dict[int, list[int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return frozenset({root_pid})
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry))
        except (OSError, IndexError, ValueError):
            continue
    found, todo = {root_pid}, [root_pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return frozenset(found)
