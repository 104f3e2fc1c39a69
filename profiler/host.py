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
