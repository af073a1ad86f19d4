"""Spatially varying convolution: one PSF per grid cell, blended smoothly between cells.

Each cell's PSF is applied by FFT to a window around the cell; the results are weighted by
blending weights that sum to one at every pixel, then overlap-added. The weights ramp linearly
across a band of ``band`` pixels centred on each cell boundary and are 1 elsewhere in the cell:
``band = cell`` (the default) is bilinear ("tent") blending between cell centres, with windows of
two cells; a narrower band keeps the PSF of a cell's interior unblended and shrinks every window
to ``cell + band`` pixels (less FFT work). Cost and memory grow linearly with the number of pixels.
"""

from __future__ import annotations

import functools
import itertools

import torch
import torch.nn.functional as F


@functools.lru_cache(maxsize=64)
def cell_weights(cells: int, cell: int, device=None, dtype=None, band: int | None = None) -> torch.Tensor:
    """1-D blending weights, shape (cells, cell + band): cell i's weight over the pixels
    [i * cell - band / 2, (i + 1) * cell + band / 2). They sum to 1 at every image pixel; the first
    and last cells keep weight 1 up to the image's edges. Cached per shape, device and dtype;
    callers must not write into it."""
    # Built outside inference mode: the cached tensor is also used in autograd graphs.
    with torch.inference_mode(False):
        band = cell if band is None else band
        centres = torch.arange(cells * cell, device=device, dtype=torch.float64) + 0.5
        index = torch.arange(cells, device=device, dtype=torch.float64)[:, None]
        rise = ((centres - index * cell + band / 2) / band).clamp(0, 1)
        fall = 1 - ((centres - (index + 1) * cell + band / 2) / band).clamp(0, 1)
        rise[0], fall[-1] = 1, 1
        full = F.pad(rise * fall, (band // 2, band // 2))  # windows start half a band before each cell
        windows = full.unfold(1, cell + band, cell)  # (cells, windows, cell + band): keep window i of cell i
        index = torch.arange(cells, device=device)
        return windows[index, index].to(dtype or torch.float32)


def _smooth(m: int) -> bool:
    for p in (2, 3, 5):
        while m % p == 0:
            m //= p
    return m == 1


def fast_fft_size(n: int) -> int:
    """A size >= n that the CPU's FFT transforms fast: the smallest even size whose only prime factors
    are 2, 3 and 5, or the next power of two when that is at most 1/8 larger (measured here: odd sizes
    cost twice as much per point, and 128 less in all than 120)."""
    n = max(n, 2)
    smooth = next(m for m in itertools.count(n + n % 2, 2) if _smooth(m))
    power = 1 << (n - 1).bit_length()
    return power if 8 * power <= 9 * smooth else smooth


def _blend_windows(windows: torch.Tensor, weights: torch.Tensor, cell: int, band: int,
                   out: torch.Tensor | None = None) -> torch.Tensor:
    """Weight windows (..., cells, cell + band) by ``weights`` (cells, cell + band), place them ``cell``
    apart along the last axis and sum: (..., cells * cell), starting half a band into the first window.

    With band <= cell only neighbours overlap: each output cell is its own window's middle ``cell``
    pixels plus the previous window's last and the next window's first ``band / 2``. What lies
    outside (half a band before the first cell and after the last) is never computed. ``out``
    (..., cells, cell), e.g. a view of a larger image, receives the cells instead of a new tensor.
    """
    half = band // 2
    middle, inner = windows[..., half:cell + half], weights[:, half:cell + half]
    if out is None:
        out = middle * inner
    elif middle.requires_grad:  # out= takes no part in autograd; a copy into the view does
        out.copy_(middle * inner)
    else:
        torch.mul(middle, inner, out=out)
    if windows.shape[-2] > 1:
        _add_bands(out[..., :-1, :], out[..., 1:, :], windows[..., :-1, :], windows[..., 1:, :],
                   weights[:-1], weights[1:], cell, half)
    return out.flatten(-2)


def _add_bands(left, right, left_window, right_window, left_weights, right_weights, cell: int, half: int) -> None:
    """Add across the boundary between neighbouring output cells ``left`` and ``right`` (..., cell):
    the left window's last ``half`` pixels into the right cell, the right window's first into the left."""
    right[..., :half].addcmul_(left_window[..., cell + half:], left_weights[..., cell + half:])
    left[..., cell - half:].addcmul_(right_window[..., :half], right_weights[..., :half])


#: Bytes of y-spectrum that nonuniform_blur processes at once when an image has more than twice as
#: much: columns of cells are taken in chunks that stay in cache. Measured on one thread
#: (2026-12-04, 47x47 PSFs): 720x1280 took 0.65x the time of one whole-image pass (41.8 vs 64.0 ms),
#: 512x512 the same; 256x256 images, one or two at a time, stay in one pass. Blending each chunk into
#: the image at once, instead of concatenating the chunks and blending the whole, then took the blur
#: of a 768x1280 image from 47.8 to 38.5 ms per megapixel (256x256: 35.6). CPU only: on a GPU the
#: whole batch goes in one pass.
CHUNK_BYTES = 4 << 20


def nonuniform_blur(image: torch.Tensor, psfs: torch.Tensor, cell: int, band: int | None = None) -> torch.Tensor:
    """Blur ``image`` (B, C, H, W) with per-cell PSFs ``psfs`` (B, H/cell, W/cell, K, K), K odd,
    blended across bands of ``band`` pixels (even, at most ``cell``; default ``cell``) at cell boundaries.

    Convolution (not correlation): a point of light at p becomes the PSF centred at p.
    Borders are extended by replication.

    Each cell's window (cell + band + the PSF's support, FFT size n) is transformed along x once per
    image row (the windows of one column of cells share their columns), then along y per window.
    After the product with the PSF spectrum and the inverse transform along y, the windows are
    weighted and overlap-added along y while still in x-frequency, so that the last inverse
    transform runs once per image row and cell column instead of once per window row. The
    overlap-adds compute only the image's own pixels (no border to crop). Every
    transform runs along the contiguous last axis: on the CPU a transform along a strided axis is
    several times slower than a transpose followed by one along the last axis. Columns of cells
    are independent up to the last overlap-add along x, so they go through the transforms in
    chunks of about :data:`CHUNK_BYTES` of spectrum on the CPU, each blended along x into the image
    while still in cache: the blur of a 768x1280 image then costs 1.08x per pixel what 256x256 does,
    instead of 1.9x with every stage streaming through main memory.
    """
    band = cell if band is None else band
    batch, channels, height, width = image.shape
    rows, cols, size = psfs.shape[1], psfs.shape[2], psfs.shape[-1]
    if rows * cell != height or cols * cell != width or cell % 2:
        raise ValueError(f"PSF grid {rows}x{cols} with cell {cell} does not tile a {height}x{width} image")
    if band % 2 or not 0 < band <= cell:
        raise ValueError(f"blending band must be even and in (0, cell = {cell}], got {band}")
    radius = size // 2
    window = cell + band + 2 * radius
    # Circular convolution of size n >= window is exact on the valid part [2 * radius, window) of a
    # window, whatever the window holds past its end: read n pixels instead of zero-padding.
    n = fast_fft_size(window)
    lead = band // 2 + radius
    tall, wide = (rows - 1) * cell + n, (cols - 1) * cell + n
    padded = F.pad(image, (lead, wide - width - lead, lead, tall - height - lead), mode="replicate")
    windows = padded.unfold(3, n, cell)                                      # B, C, tall, cols, n (a view)
    weights = cell_weights(rows, cell, image.device, image.dtype, band)
    column_bytes = batch * channels * (n // 2 + 1) * rows * n * 8             # complex64 y-spectrum
    small = cols * column_bytes <= 2 * CHUNK_BYTES or image.device.type != "cpu"  # GPUs: untuned, one pass
    step = cols if small else max(1, CHUNK_BYTES // column_bytes)
    across = cell_weights(cols, cell, image.device, image.dtype, band)
    out = cells = None
    half, previous = band // 2, None
    for first in range(0, cols, step):
        part = slice(first, min(cols, first + step))
        chunk = windows if step == cols else windows[:, :, :, part].contiguous()  # (faster than a strided slice)
        spectrum = torch.fft.rfft(chunk, dim=-1)                                 # B, C, tall, part, m (x)
        spectrum = spectrum.permute(0, 1, 3, 4, 2).unfold(4, n, cell).contiguous()  # B, C, part, m, rows, n
        spectrum = torch.fft.fft(spectrum, dim=-1)                           # (y)
        kernel = torch.fft.rfft(psfs[:, :, part].to(image.dtype), n=n, dim=-1)  # B, rows, part, K (y), m
        kernel = torch.fft.fft(kernel.permute(0, 2, 4, 1, 3), n=n, dim=-1)   # B, part, m, rows, n
        blurred = torch.fft.ifft(spectrum.mul_(kernel.unsqueeze(1)), dim=-1)[..., 2 * radius:window]
        blended = _blend_windows(blurred, weights, cell, band)               # B, C, part, m, H
        lines = torch.fft.irfft(blended.permute(0, 1, 4, 2, 3), n=n, dim=-1)[..., 2 * radius:window]
        if step == cols:                                                    # B, C, H, cols, cell + band
            return _blend_windows(lines, across, cell, band)
        # Chunks blend into the image while in cache; across a chunk boundary, each side's band is added after.
        if out is None:
            out = image.new_empty(batch, channels, height, width)
            cells = out.view(batch, channels, height, cols, cell)
        _blend_windows(lines, across[part], cell, band, out=cells[:, :, :, part])
        if previous is not None:
            _add_bands(cells[:, :, :, first - 1], cells[:, :, :, first], previous, lines[..., 0, :],
                       across[first - 1], across[first], cell, half)
        previous = lines[..., -1, :]
    return out


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
