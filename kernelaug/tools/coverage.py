"""How well a model's code space covers given blur kernels: the protocol of the paper's Table 1.

For every kernel (a PNG, one kernel per file, normalised to sum to one) and every sharp image x:
blur x with the kernel (in linear light or in display gamma) into y, extract a code k = G(x, y),
re-apply it, and score PSNR(F(x, k), y) -- how well the code space reproduces that blur -- beside
PSNR(x, y), the blurry-vs-sharp baseline. Results per kernel (mean over the images), as JSON and as
a markdown table.

:func:`shake_kernel` renders uniform kernels from the camera-shake family of
:mod:`kernelaug.data.synthetic` (the PSF at one point of a shaken frame), so that a model trained on that
family can be checked on kernels of its own kind; ``kernelaug make-kernels`` writes them as PNGs.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from ..metrics import psnr
from ..models import BlurModel
from .transfer import extract_pair_code, transfer_blur

__all__ = ["SPACES", "read_kernel", "write_kernel", "blur_with_kernel", "shake_kernel", "coverage",
           "coverage_markdown"]

SPACES = ("linear", "display")
KERNEL_SUFFIXES = (".png",)
MAX_KERNEL_SIDE = 255


def read_kernel(path) -> np.ndarray:
    """A kernel PNG (8- or 16-bit, grey or colour: channels averaged) -> float32 (h, w) summing to 1."""
    path = Path(path)
    data = np.fromfile(path, dtype=np.uint8)
    kernel = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if kernel is None:
        raise ValueError(f"cannot read kernel {path}: empty, truncated or not an image")
    if kernel.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"kernel {path} has pixel type {kernel.dtype}; expected 8- or 16-bit")
    kernel = kernel.astype(np.float64)
    if kernel.ndim == 3:
        kernel = kernel[..., :3].mean(-1)
    if max(kernel.shape) > MAX_KERNEL_SIDE:
        raise ValueError(f"kernel {path} is {kernel.shape[1]}x{kernel.shape[0]}: larger than "
                         f"{MAX_KERNEL_SIDE} px (is it an image rather than a kernel?)")
    total = kernel.sum()
    if total <= 0:
        raise ValueError(f"kernel {path} is all zeros: nothing to normalise")
    return (kernel / total).astype(np.float32)


def write_kernel(path, kernel: np.ndarray) -> Path:
    """Write a kernel as a 16-bit grey PNG scaled to its peak (read it back with :func:`read_kernel`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    scaled = np.rint(kernel / max(float(kernel.max()), 1e-30) * 65535).astype(np.uint16)
    ok, data = cv2.imencode(".png", scaled)
    if not ok:
        raise ValueError(f"PNG encoding failed for {path}")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data.tobytes())
    os.replace(tmp, path)
    return path


def blur_with_kernel(image: np.ndarray, kernel: np.ndarray, space: str = "linear", gamma: float = 2.2) -> np.ndarray:
    """Convolve a float32 HWC image in [0, 1] with ``kernel`` (borders reflected), in linear light
    (``x ** gamma``, blur, back) or directly on the display values. The kernel's centre is its
    pixel (K // 2, K // 2): a point of light at p becomes the kernel placed there."""
    if space not in SPACES:
        raise ValueError(f"space must be one of {SPACES}, got {space!r}")
    if kernel.ndim != 2:
        raise ValueError(f"kernel must be 2-D, got shape {kernel.shape}")
    # Odd sides, so the kernel has a centre pixel (zeros appended at the bottom / right).
    kernel = np.pad(kernel, ((0, 1 - kernel.shape[0] % 2), (0, 1 - kernel.shape[1] % 2)))
    flipped = np.ascontiguousarray(kernel[::-1, ::-1], np.float32)  # filter2D correlates
    work = np.power(image, gamma, dtype=np.float32) if space == "linear" else image.astype(np.float32)
    blurred = cv2.filter2D(work, -1, flipped, borderType=cv2.BORDER_REFLECT_101).clip(0, 1)
    return np.power(blurred, 1 / gamma, dtype=np.float32) if space == "linear" else blurred


def shake_kernel(rng: np.random.Generator, extent: float | None = None, frame: int = 256) -> np.ndarray:
    """A uniform kernel from the synthetic camera-shake family: the path of one point of a
    ``frame`` x ``frame`` shaken frame (uniform in its central 60 %) over the exposure, splatted
    bilinearly and centred on the middle sub-frame's position. ``extent``: blur size in px (default
    drawn as the family draws it). Returns float32 (K, K), K odd, summing to 1."""
    from ..data.synthetic import camera_trajectory

    trajectory = camera_trajectory(rng, frame, extent)
    point = np.array([*rng.uniform(0.2 * frame, 0.8 * frame, 2), 1.0])
    # Each homography maps an output pixel to the scene pixel it sees: the point is seen at H^-1 p.
    seen = np.linalg.solve(trajectory, np.broadcast_to(point, (len(trajectory), 3))[..., None])[..., 0]
    offsets = seen[:, :2] / seen[:, 2:] - point[:2]
    radius = int(math.ceil(np.abs(offsets).max())) + 1
    size = 2 * radius + 1
    kernel = np.zeros((size, size), np.float64)
    for dx, dy in offsets + radius:
        x0, y0 = int(math.floor(dx)), int(math.floor(dy))
        fx, fy = dx - x0, dy - y0
        kernel[y0, x0] += (1 - fx) * (1 - fy)
        kernel[y0, x0 + 1] += fx * (1 - fy)
        kernel[y0 + 1, x0] += (1 - fx) * fy
        kernel[y0 + 1, x0 + 1] += fx * fy
    return (kernel / kernel.sum()).astype(np.float32)


def _crop(image: np.ndarray, crop: int, cell: int, name: str) -> np.ndarray:
    height = min(crop, image.shape[0]) // cell * cell
    width = min(crop, image.shape[1]) // cell * cell
    if height == 0 or width == 0:
        raise ValueError(f"image {name} ({image.shape[1]}x{image.shape[0]}) is smaller than one code cell ({cell} px)")
    top, left = (image.shape[0] - height) // 2, (image.shape[1] - width) // 2
    return np.ascontiguousarray(image[top:top + height, left:left + width])


def coverage(model: BlurModel, kernels: dict[str, np.ndarray], images: dict[str, np.ndarray], space: str = "linear",
             gamma: float = 2.2, crop: int = 256, progress: bool = True) -> dict:
    """Per-kernel re-blur PSNR and blurry-vs-sharp PSNR (means over ``images``, float32 HWC in
    [0, 1], centre-cropped to ``crop`` rounded down to the cell). See the module docstring."""
    if not kernels:
        raise ValueError("coverage needs at least one kernel")
    if not images:
        raise ValueError("coverage needs at least one sharp image")
    if space not in SPACES:
        raise ValueError(f"space must be one of {SPACES}, got {space!r}")
    sharps = {name: _crop(image, crop, model.cell, name) for name, image in images.items()}
    rows = []
    bar = tqdm(total=len(kernels) * len(sharps), desc="coverage", unit="pair", disable=not progress)
    for kernel_name, kernel in kernels.items():
        recon, baseline = [], []
        for image in sharps.values():
            blurry = blur_with_kernel(image, kernel, space, gamma)
            x = torch.from_numpy(image).permute(2, 0, 1)[None]
            y = torch.from_numpy(blurry).permute(2, 0, 1)[None]
            code = extract_pair_code(model, x, y)
            reblurred = transfer_blur(model, code, x)
            recon.append(float(psnr(reblurred, y)))
            baseline.append(float(psnr(x, y)))
            bar.update()
        rows.append({"kernel": kernel_name, "size": [int(s) for s in kernel.shape],
                     "recon_psnr": float(np.mean(recon)), "blurry_psnr": float(np.mean(baseline)),
                     "recon_psnr_per_image": recon, "blurry_psnr_per_image": baseline})
    bar.close()
    return {"space": space, "gamma": gamma if space == "linear" else None, "crop": crop,
            "images": list(sharps), "kernels": rows,
            "mean_recon_psnr": float(np.mean([r["recon_psnr"] for r in rows])),
            "mean_blurry_psnr": float(np.mean([r["blurry_psnr"] for r in rows]))}


def coverage_markdown(result: dict) -> str:
    """The table of :func:`coverage`'s result, one row per kernel and a mean row."""
    space = "linear light, gamma {:g}".format(result["gamma"]) if result["space"] == "linear" else "display gamma"
    lines = [f"Blurred in {space}; {len(result['images'])} image(s), centre crops of at most {result['crop']} px.",
             "",
             "| kernel | size | re-blurred vs blurred (dB) | blurry vs sharp (dB) | gain (dB) |",
             "|---|---|---|---|---|"]
    for row in result["kernels"]:
        lines.append(f"| {row['kernel']} | {row['size'][1]}x{row['size'][0]} | {row['recon_psnr']:.2f} | "
                     f"{row['blurry_psnr']:.2f} | {row['recon_psnr'] - row['blurry_psnr']:+.2f} |")
    lines.append(f"| **mean** | | **{result['mean_recon_psnr']:.2f}** | {result['mean_blurry_psnr']:.2f} | "
                 f"{result['mean_recon_psnr'] - result['mean_blurry_psnr']:+.2f} |")
    return "\n".join(lines) + "\n"
