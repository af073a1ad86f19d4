"""Losses and image-quality measures used in training and evaluation."""

from __future__ import annotations

import torch


def charbonnier(prediction: torch.Tensor, target: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """Charbonnier loss, the paper's rho: a smooth L1."""
    return torch.sqrt((prediction - target) ** 2 + eps * eps).mean()


def psnr(prediction: torch.Tensor, target: torch.Tensor, max_value: float = 1.0) -> torch.Tensor:
    """PSNR in dB per image of a (B, C, H, W) batch, after clamping the prediction to [0, max_value]."""
    mse = ((prediction.clamp(0, max_value) - target) ** 2).flatten(1).mean(1)
    return 10 * torch.log10(max_value**2 / mse.clamp_min(1e-12))
