"""Device names as users type them: ``auto`` picks CUDA when present."""

from __future__ import annotations

import os

import torch


def check_device(name: str | torch.device) -> torch.device:
    """``name`` -> a ``torch.device`` this machine can compute on (cpu, an existing GPU, mps when
    present); a ValueError saying why otherwise (``meta``, a missing GPU, an unknown name)."""
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"unknown device {name!r}: {error} (use cpu, cuda, cuda:N or auto)") from None
    if device.type == "cpu":
        return device
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {str(name)!r}: CUDA is not available here (no GPU, or a CPU-only torch); "
                             f"use cpu or auto")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ValueError(f"device {str(name)!r}: this machine has {count} GPU(s), cuda:0 to cuda:{count - 1}")
        return device
    if device.type == "mps" and torch.backends.mps.is_available():
        return device
    raise ValueError(f"device {str(name)!r} cannot run a model here (use cpu, cuda, cuda:N or auto)")


def resolve_device(name: str | torch.device = "auto", world: int = 1) -> torch.device:
    """``name`` -> a ``torch.device`` (checked by :func:`check_device`); with ``world > 1`` (under
    ``torchrun``) a bare ``cuda`` becomes this process's GPU, ``cuda:LOCAL_RANK`` (modulo the GPU count)."""
    if str(name) == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = check_device(name)
    if device.type == "cuda" and device.index is None and world > 1:
        local = int(os.environ.get("LOCAL_RANK", os.environ.get("RANK", "0")))
        device = torch.device("cuda", local % torch.cuda.device_count())
    return device
