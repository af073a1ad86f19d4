"""Losses and image-quality measures used in training and evaluation."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def charbonnier(prediction: torch.Tensor, target: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """Charbonnier loss, the paper's rho: a smooth L1."""
    return torch.sqrt((prediction - target) ** 2 + eps * eps).mean()


def psnr(prediction: torch.Tensor, target: torch.Tensor, max_value: float = 1.0) -> torch.Tensor:
    """PSNR in dB per image of a (B, C, H, W) batch, after clamping the prediction to [0, max_value]."""
    mse = ((prediction.clamp(0, max_value) - target) ** 2).flatten(1).mean(1)
    return 10 * torch.log10(max_value**2 / mse.clamp_min(1e-12))


def aligned_psnr(estimate: torch.Tensor, target: torch.Tensor, max_shift: int = 4) -> tuple[float, tuple[int, int]]:
    """PSNR of one image after its best integer shift (dy, dx) within +-max_shift px, on the interior
    every shift covers; returns (psnr, (dy, dx)). The protocol of blind-deconvolution benchmarks
    (Levin et al. 2009): a shifted image under an off-centre PSF explains the blurry input as well as
    the unshifted one, so the shift is not an error."""
    m = int(max_shift)
    height, width = target.shape[-2:]
    if m < 0 or min(height, width) <= 2 * m:
        raise ValueError(f"max_shift {max_shift} needs images larger than {2 * m} px, got {height}x{width}")
    inner = target[..., m:height - m, m:width - m]
    best = (-float("inf"), (0, 0))
    for dy in range(-m, m + 1):
        for dx in range(-m, m + 1):
            window = estimate[..., m + dy:height - m + dy, m + dx:width - m + dx]
            best = max(best, (float(psnr(window, inner).mean()), (dy, dx)))
    return best


def _gaussian_window(size: int, sigma: float, channels: int, device, dtype) -> torch.Tensor:
    t = torch.arange(size, device=device, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-t * t / (2 * sigma * sigma))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, size, size).contiguous()


def ssim(a: torch.Tensor, b: torch.Tensor, window: int = 11, sigma: float = 1.5, data_range: float = 1.0) -> torch.Tensor:
    """Mean SSIM of two (B, C, H, W) batches (Wang et al. 2004: Gaussian window 11, sigma 1.5, valid region
    only), differentiable. The one SSIM of every benchmark and of the deblurring objective; it equals
    scikit-image's ``structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False)``."""
    channels = a.shape[1]
    kernel = _gaussian_window(window, sigma, channels, a.device, a.dtype)

    def blur(t):
        return F.conv2d(t, kernel, groups=channels)

    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a ** 2
    var_b = blur(b * b) - mu_b ** 2
    cov = blur(a * b) - mu_a * mu_b
    value = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    return value.mean()
