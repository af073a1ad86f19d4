"""Spatially varying convolution: one PSF per grid cell, blended smoothly between cell centres.

Each cell's PSF is applied by FFT to a window twice the cell's size around it; the results are
weighted by bilinear ("tent") weights that peak at the cell's centre and sum to one at every pixel,
then overlap-added. Cost and memory grow linearly with the number of pixels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def cell_weights(cells: int, cell: int, device=None, dtype=None) -> torch.Tensor:
    """1-D blending weights, shape (cells, 2 * cell): cell i's weight over the pixels
    [(i - 0.5) * cell, (i + 1.5) * cell). Weights of all cells sum to 1 at every image pixel."""
    length = cells * cell
    t = (torch.arange(length, device=device, dtype=torch.float64) + 0.5) / cell - 0.5
    lower = torch.floor(t)
    frac = t - lower
    lower = lower.long()
    full = torch.zeros(cells, length, device=device, dtype=torch.float64)
    pixels = torch.arange(length, device=device)
    full.index_put_((lower.clamp(0, cells - 1), pixels), 1 - frac, accumulate=True)
    full.index_put_(((lower + 1).clamp(0, cells - 1), pixels), frac, accumulate=True)
    padded = F.pad(full, (cell // 2, cell // 2))  # windows start half a cell before each cell
    windows = padded.unfold(1, 2 * cell, cell)  # (cells, windows, 2 * cell): keep window i of cell i
    index = torch.arange(cells, device=device)
    return windows[index, index].to(dtype or torch.float32)


def fast_fft_size(n: int) -> int:
    """Smallest size >= n whose only prime factors are 2, 3 and 5 (FFTs of other sizes are slow)."""
    while True:
        m = n
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        if m == 1:
            return n
        n += 1


def nonuniform_blur(image: torch.Tensor, psfs: torch.Tensor, cell: int) -> torch.Tensor:
    """Blur ``image`` (B, C, H, W) with per-cell PSFs ``psfs`` (B, H/cell, W/cell, K, K), K odd.

    Convolution (not correlation): a point of light at p becomes the PSF centred at p.
    Borders are extended by replication.

    Each cell's window (2 cells + the PSF's support, FFT size n) is transformed along x once per
    image row (the windows of one column of cells share their columns), then along y per window.
    After the product with the PSF spectrum and the inverse transform along y, the windows are
    weighted and overlap-added along y while still in x-frequency, so that the last inverse
    transform runs once per output row and cell column instead of once per window row. Every
    transform runs along the contiguous last axis: on the CPU a transform along a strided axis is
    several times slower than a transpose followed by one along the last axis.
    """
    batch, channels, height, width = image.shape
    rows, cols, size = psfs.shape[1], psfs.shape[2], psfs.shape[-1]
    if rows * cell != height or cols * cell != width or cell % 2:
        raise ValueError(f"PSF grid {rows}x{cols} with cell {cell} does not tile a {height}x{width} image")
    radius = size // 2
    window = 2 * cell + 2 * radius
    # Circular convolution of size n >= window is exact on the valid part [2 * radius, window) of a
    # window, whatever the window holds past its end: read n pixels instead of zero-padding.
    n = fast_fft_size(window)
    lead = cell // 2 + radius
    tall, wide = (rows - 1) * cell + n, (cols - 1) * cell + n
    padded = F.pad(image, (lead, wide - width - lead, lead, tall - height - lead), mode="replicate")
    spectrum = torch.fft.rfft(padded.unfold(3, n, cell), dim=-1)             # B, C, tall, cols, m (x)
    freqs = spectrum.shape[-1]
    spectrum = spectrum.permute(0, 1, 3, 4, 2).contiguous()                  # B, C, cols, m, tall
    spectrum = torch.fft.fft(spectrum.unfold(4, n, cell), dim=-1)           # B, C, cols, m, rows, n (y)
    kernel = torch.fft.rfft(psfs.to(image.dtype), n=n, dim=-1)               # B, rows, cols, K (y), m
    kernel = torch.fft.fft(kernel.permute(0, 2, 4, 1, 3), n=n, dim=-1)       # B, cols, m, rows, n
    blurred = torch.fft.ifft(spectrum.mul_(kernel.unsqueeze(1)), dim=-1)[..., 2 * radius:window]
    blurred = blurred * cell_weights(rows, cell, image.device, image.dtype)
    # Overlap-add along y: the top half of window i and the bottom half of window i - 1 cover cell row i.
    halves = blurred.view(batch, channels, cols, freqs, rows, 2, cell)
    lines = blurred.new_zeros(batch, channels, cols, freqs, rows + 1, cell)
    lines[..., :rows, :] += halves[..., 0, :]
    lines[..., 1:, :] += halves[..., 1, :]
    lines = lines.view(batch, channels, cols, freqs, (rows + 1) * cell).permute(0, 1, 4, 2, 3)
    lines = torch.fft.irfft(lines, n=n, dim=-1)[..., 2 * radius:window]     # B, C, (rows+1) cell, cols, 2cell
    lines = lines * cell_weights(cols, cell, image.device, image.dtype)
    halves = lines.view(batch, channels, (rows + 1) * cell, cols, 2, cell)
    out = lines.new_zeros(batch, channels, (rows + 1) * cell, cols + 1, cell)
    out[:, :, :, :cols] += halves[..., 0, :]
    out[:, :, :, 1:] += halves[..., 1, :]
    out = out.view(batch, channels, (rows + 1) * cell, (cols + 1) * cell)
    half = cell // 2
    return out[..., half:half + height, half:half + width]


def estimate_psfs(sharp: torch.Tensor, blurry: torch.Tensor, cell: int, size: int,
                  regularisation: float = 1e-2) -> torch.Tensor:
    """Least-squares PSF of each cell, (B, H/cell, W/cell, size, size): the closed-form deconvolution
    K = sum conj(X) Y / (sum |X|^2 + lambda) on image gradients, in Hann-tapered windows of 2 cells.

    A noisy but direct measurement of the blur that G refines into a code.
    """
    def gradients(image):
        dx = image[..., :, 1:] - image[..., :, :-1]
        dy = image[..., 1:, :] - image[..., :-1, :]
        return torch.cat((F.pad(dx, (0, 1)), F.pad(dy, (0, 0, 0, 1))), dim=1)

    window = 2 * cell
    pad = cell // 2
    taper = torch.hann_window(window, periodic=False, device=sharp.device, dtype=sharp.dtype)
    taper = taper[:, None] * taper[None, :]

    def windows(image):
        padded = F.pad(gradients(image), (pad, pad, pad, pad), mode="replicate")
        return padded.unfold(2, window, cell).unfold(3, window, cell) * taper

    x_spec = torch.fft.rfft2(windows(sharp))
    y_spec = torch.fft.rfft2(windows(blurry))
    numerator = (x_spec.conj() * y_spec).sum(1)
    power = (x_spec.abs() ** 2).sum(1)
    floor = regularisation * power.mean(dim=(-2, -1), keepdim=True) + 1e-8
    kernel = torch.fft.irfft2(numerator / (power + floor), s=(window, window))
    radius = size // 2
    kernel = torch.roll(kernel, shifts=(radius, radius), dims=(-2, -1))
    return kernel[..., :size, :size]
