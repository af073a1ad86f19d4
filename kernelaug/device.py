"""Device names as users type them: ``auto`` picks CUDA when present."""

from __future__ import annotations

import os

import torch


def resolve_device(name: str | torch.device = "auto", world: int = 1) -> torch.device:
    """``name`` -> a ``torch.device``; with ``world > 1`` (under ``torchrun``) a bare ``cuda`` becomes
    this process's GPU, ``cuda:LOCAL_RANK`` (modulo the GPU count)."""
    if str(name) == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        try:
            device = torch.device(name)
        except RuntimeError as error:
            raise ValueError(f"unknown device {name!r}: {error}") from None
    if device.type == "cuda" and device.index is None and world > 1:
        local = int(os.environ.get("LOCAL_RANK", os.environ.get("RANK", "0")))
        device = torch.device("cuda", local % torch.cuda.device_count())
    return device
