"""What every benchmark records beside its numbers: the machine it ran on."""

from __future__ import annotations

import os
import platform
from datetime import datetime, timezone

import torch


def machine_info() -> dict:
    """Platform, CPU count, torch threads and versions, and the UTC date."""
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(), "torch": torch.__version__,
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}
