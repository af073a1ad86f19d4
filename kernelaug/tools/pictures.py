"""Pictures of the kernel space: PSF grids, a 2-D map of a bank, and sample grids.

* :func:`code_psfs` -- the spatially varying blur of a code grid as one PSF per cell: the decoded
  PSFs for the structured ``psf`` architecture; for the paper architecture (a generic CNN with no
  PSFs inside), F's response to a grid of points of light, one at each cell centre.
* :func:`psf_mosaic` -- those PSFs drawn on the cell grid.
* :func:`bank_pca` / :func:`bank_map` -- a bank's codes projected on their first two principal
  components (numpy SVD), coloured by source, with a few PSFs drawn at their points.
* :func:`sample_grid` -- rows of sharp image | learned blurs | parametric blur.

All drawing uses OpenCV; images are uint8 RGB.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import torch

from .. import functional as KF
from ..models import BlurModel
from ..data.synthetic import point_lights

__all__ = ["code_psfs", "point_light_psfs", "psf_mosaic", "bank_pca", "source_groups", "bank_map",
           "psf_support", "manifest_sources", "spread_points", "square_crop", "sample_grid", "label", "write_picture"]

#: Categorical colours (RGB) for sources, after matplotlib's "tab20" (dark shades first).
PALETTE = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207), (174, 199, 232), (255, 187, 120),
           (152, 223, 138), (255, 152, 150), (197, 176, 213), (196, 156, 148), (247, 182, 210), (199, 199, 199),
           (219, 219, 141), (158, 218, 229))


def _as_code(code) -> torch.Tensor:
    code = torch.as_tensor(np.asarray(code, np.float32) if isinstance(code, np.ndarray) else code).float()
    if code.ndim == 3:
        code = code[None]
    if code.ndim != 4 or code.shape[0] != 1:
        raise ValueError(f"expected one code grid (C, h, w) or (1, C, h, w), got {tuple(code.shape)}")
    return code


def point_light_psfs(model: BlurModel, code, size: int = 31) -> np.ndarray:
    """F's response to one point of light at each cell centre -> (h, w, size, size), each summing to 1.

    The response of F to the black frame is subtracted first; negative values are clipped.
    """
    code = _as_code(code)
    rows, cols = code.shape[-2:]
    height, width, cell = rows * model.cell, cols * model.cell, model.cell
    if size % 2 == 0 or size > cell:
        raise ValueError(f"PSF window size must be odd and at most the cell ({cell} px), got {size}")
    lights = point_lights(max(height, width), spacing=cell)[:height, :width]
    frames = torch.from_numpy(np.stack([lights, np.zeros_like(lights)])).permute(0, 3, 1, 2)
    dtype, device = KF._model_dtype_device(model)
    with torch.inference_mode():
        response = model.apply(frames.to(device, dtype), code.to(device, dtype).expand(2, -1, -1, -1)).float().cpu()
    response = (response[0] - response[1]).mean(0).clamp_min(0).numpy()
    radius = size // 2
    psfs = np.zeros((rows, cols, size, size), np.float32)
    for r in range(rows):
        for c in range(cols):
            y, x = r * cell + cell // 2, c * cell + cell // 2
            patch = response[y - radius:y + radius + 1, x - radius:x + radius + 1]
            psfs[r, c] = patch / max(float(patch.sum()), 1e-8)
    return psfs


def code_psfs(model: BlurModel, code, size: int = 31) -> np.ndarray:
    """The PSF of every cell of ``code`` -> (h, w, K, K) float32: decoded for ``psf`` models (K their
    psf_size), measured with points of light for the others (K = ``size``)."""
    code = _as_code(code)
    if code.shape[1] != model.kernel_dim:
        raise ValueError(f"code has {code.shape[1]} channels, the model expects {model.kernel_dim}")
    if hasattr(model, "psf"):
        dtype, device = KF._model_dtype_device(model)
        with torch.inference_mode():
            return model.psf(code.to(device, dtype))[0].float().cpu().numpy()
    return point_light_psfs(model, code, size)


MAX_PICTURE_SIDE = 16384  # px: larger pictures are refused before anything is allocated


def _colormap(values: np.ndarray) -> np.ndarray:
    """[0, 1] float array -> uint8 RGB with OpenCV's inferno map."""
    grey = (values.clip(0, 1) * 255 + 0.5).astype(np.uint8)
    return cv2.applyColorMap(grey, cv2.COLORMAP_INFERNO)[..., ::-1]


def psf_mosaic(psfs: np.ndarray, scale: int = 4, gamma: float = 0.5, gap: int = 2) -> np.ndarray:
    """(h, w, K, K) PSFs -> uint8 RGB picture: each PSF scaled to its own peak, raised to ``gamma``
    (faint tails visible), enlarged ``scale`` x, on the cell grid with ``gap`` px between cells."""
    psfs = np.asarray(psfs, np.float32)
    if psfs.ndim != 4 or psfs.shape[-1] != psfs.shape[-2] or 0 in psfs.shape:
        raise ValueError(f"expected PSFs of shape (rows, cols, K, K), got {psfs.shape}")
    if isinstance(scale, bool) or not isinstance(scale, (int, np.integer)) or scale < 1:
        raise ValueError(f"scale must be a positive integer (pixels per PSF tap), got {scale!r}")
    rows, cols, size = psfs.shape[0], psfs.shape[1], psfs.shape[-1]
    tile = size * int(scale)
    side = max(rows, cols) * (tile + gap) + gap
    if side > MAX_PICTURE_SIDE:
        raise ValueError(f"a PSF mosaic of {rows}x{cols} PSFs of {size} px at scale {scale} would be {side} px "
                         f"wide, more than {MAX_PICTURE_SIDE}; lower the scale")
    canvas = np.full((rows * (tile + gap) + gap, cols * (tile + gap) + gap, 3), 255, np.uint8)
    for r in range(rows):
        for c in range(cols):
            psf = psfs[r, c] / max(float(psfs[r, c].max()), 1e-12)
            big = cv2.resize(_colormap(psf ** gamma), (tile, tile), interpolation=cv2.INTER_NEAREST)
            y, x = gap + r * (tile + gap), gap + c * (tile + gap)
            canvas[y:y + tile, x:x + tile] = big
    return canvas


def bank_pca(codes: np.ndarray, components: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Codes (N, ...) -> (coordinates (N, components), explained variance ratio (components,))."""
    data = np.asarray(codes, np.float64).reshape(len(codes), -1)
    if len(data) < 2:
        raise ValueError(f"need at least 2 codes for a PCA, got {len(data)}")
    data = data - data.mean(0)
    _, singular, vt = np.linalg.svd(data, full_matrices=False)
    variance = singular ** 2
    ratio = variance[:components] / max(float(variance.sum()), 1e-30)
    return data @ vt[:components].T, ratio


def source_groups(pair_ids) -> list[str]:
    """A source label per code from its pair id: the folders, sequence numbers stripped
    (``train/shake_0012/000034`` -> ``train/shake``; ``sharp_only`` -> ``sharp_only``)."""
    labels = []
    for pair_id in pair_ids:
        parts = str(pair_id).split("/")
        head = parts[:-1] if len(parts) > 1 else parts
        labels.append("/".join(re.sub(r"[_-]?\d+$", "", p) or p for p in head))
    return labels


def psf_support(psf: np.ndarray, energy: float = 0.99, minimum: int = 9) -> np.ndarray:
    """The centred square window of a (K, K) PSF that holds ``energy`` of its mass (at least
    ``minimum`` px): small blurs are drawn large, not as a dot in a wide frame."""
    size = psf.shape[-1]
    centre = size // 2
    total = max(float(psf.sum()), 1e-30)
    for radius in range(minimum // 2, centre + 1):
        window = psf[centre - radius:centre + radius + 1, centre - radius:centre + radius + 1]
        if window.sum() >= energy * total:
            return window
    return psf


def manifest_sources(path) -> dict[str, str]:
    """pair id (``split/sequence/frame-stem``) -> ``source`` from a ``make-synthetic`` manifest.jsonl."""
    path = Path(path)
    sources = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            sources[f"{row['split']}/{row['sequence']}/{Path(row['frame']).stem}"] = str(row["source"])
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise ValueError(f"{path}, line {number}: not a make-synthetic manifest row "
                             f"(needs split, sequence, frame and source): {error}") from None
    return sources


def spread_points(points: np.ndarray, count: int) -> np.ndarray:
    """Indices of ``count`` well-spread points (farthest-point order from the point farthest from
    the mean): deterministic."""
    count = min(count, len(points))
    if count <= 0:
        return np.zeros(0, np.int64)
    chosen = [int(np.argmax(((points - points.mean(0)) ** 2).sum(1)))]
    distance = ((points - points[chosen[0]]) ** 2).sum(1)
    while len(chosen) < count:
        chosen.append(int(np.argmax(distance)))
        distance = np.minimum(distance, ((points - points[chosen[-1]]) ** 2).sum(1))
    return np.array(chosen)


def _text(canvas: np.ndarray, text: str, origin, scale: float = 0.45, colour=(0, 0, 0), thickness: int = 1) -> None:
    cv2.putText(canvas, text, (int(origin[0]), int(origin[1])), cv2.FONT_HERSHEY_SIMPLEX, scale, colour,
                thickness, cv2.LINE_AA)


def bank_map(codes: np.ndarray, labels: list[str], thumbnails: dict[int, np.ndarray] | None = None,
             size: tuple[int, int] = (900, 640), title: str = "") -> np.ndarray:
    """Scatter of the codes' first two principal components, coloured by ``labels``; each
    ``thumbnails[i]`` (a (K, K) PSF) drawn beside point ``i``. Returns uint8 RGB."""
    if len(labels) != len(codes):
        raise ValueError(f"{len(labels)} labels for {len(codes)} codes")
    coords, ratio = bank_pca(codes)
    width, height = size
    left, right, top, bottom = 60, 200, 40, 50
    canvas = np.full((height, width, 3), 255, np.uint8)
    low, high = coords.min(0), coords.max(0)
    span = np.where(high - low > 0, high - low, 1.0)
    pad = 0.05 * span

    def to_pixel(point):
        u = (point - low + pad) / (span + 2 * pad)
        return left + u[0] * (width - left - right), height - bottom - u[1] * (height - top - bottom)

    cv2.rectangle(canvas, (left, top), (width - right, height - bottom), (0, 0, 0), 1)
    groups = list(dict.fromkeys(labels))
    colours = {g: PALETTE[i % len(PALETTE)] for i, g in enumerate(groups)}
    for point, group in zip(coords, labels):
        x, y = to_pixel(point)
        cv2.circle(canvas, (int(x), int(y)), 2, colours[group], -1, cv2.LINE_AA)
    for i, psf in (thumbnails or {}).items():
        x, y = to_pixel(coords[i])
        psf = psf_support(psf)
        side = 72
        thumb = cv2.resize(_colormap((psf / max(float(psf.max()), 1e-12)) ** 0.5), (side, side),
                           interpolation=cv2.INTER_NEAREST)
        tx = int(np.clip(x + 10, left + 1, width - right - side - 1))
        ty = int(np.clip(y - side - 10, top + 1, height - bottom - side - 1))
        cv2.line(canvas, (int(x), int(y)), (tx + side // 2, ty + side // 2), (90, 90, 90), 1, cv2.LINE_AA)
        cv2.circle(canvas, (int(x), int(y)), 4, (0, 0, 0), 1, cv2.LINE_AA)
        canvas[ty:ty + side, tx:tx + side] = thumb
        cv2.rectangle(canvas, (tx - 1, ty - 1), (tx + side, ty + side), (0, 0, 0), 1)
        _text(canvas, f"{psf.shape[0]}px", (tx + 2, ty + side - 4), 0.35, (255, 255, 255))
    _text(canvas, f"PC1 ({100 * ratio[0]:.1f}% of variance)", (left + 10, height - 15))
    vertical = np.full((20, 260, 3), 255, np.uint8)
    _text(vertical, f"PC2 ({100 * ratio[1]:.1f}% of variance)", (2, 15))
    vertical = np.rot90(vertical)
    y0 = top + 10
    canvas[y0:y0 + vertical.shape[0], 10:10 + vertical.shape[1]] = vertical
    if title:
        _text(canvas, title, (left, 25), 0.5)
    legend_x = width - right + 15
    for i, group in enumerate(groups[:20]):
        y = top + 15 + 20 * i
        cv2.circle(canvas, (legend_x, y - 4), 5, colours[group], -1, cv2.LINE_AA)
        count = sum(1 for g in labels if g == group)
        _text(canvas, f"{group[:18]} ({count})", (legend_x + 12, y), 0.4)
    if len(groups) > 20:
        _text(canvas, f"... {len(groups) - 20} more", (legend_x, top + 15 + 20 * 20), 0.4)
    return canvas


def label(image: np.ndarray, text: str) -> np.ndarray:
    """A copy of a uint8 RGB image with ``text`` in its top-left corner (white on a dark outline)."""
    out = np.ascontiguousarray(image).copy()
    scale = 0.5 if out.shape[1] >= 200 else 0.35  # small tiles: small text, so labels fit
    _text(out, text, (5, int(36 * scale)), scale, (0, 0, 0), 3)
    _text(out, text, (5, int(36 * scale)), scale, (255, 255, 255), 1)
    return out


def square_crop(image: np.ndarray, side: int) -> np.ndarray:
    """Resize so the shorter side is ``side`` (area interpolation), then centre-crop to side x side."""
    height, width = image.shape[:2]
    scale = side / min(height, width)
    resized = cv2.resize(image, (max(side, round(width * scale)), max(side, round(height * scale))),
                         interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    top, left = (resized.shape[0] - side) // 2, (resized.shape[1] - side) // 2
    return resized[top:top + side, left:left + side]


def sample_grid(model: BlurModel, sharps: dict[str, np.ndarray], codes: np.ndarray,
                motions: list[tuple[int, float]], grid_mode: str = "resize") -> np.ndarray:
    """One row per sharp uint8 RGB image (all the same size): sharp | one learned blur per code of
    ``codes`` (n, C, h, w) | one parametric motion blur per (length, angle) of ``motions``."""
    if not sharps:
        raise ValueError("sample_grid needs at least one sharp image")
    shapes = {image.shape for image in sharps.values()}
    if len(shapes) != 1:
        raise ValueError(f"sample_grid needs images of one size, got {sorted(shapes)}")
    codes = torch.as_tensor(np.asarray(codes, np.float32))
    rows = []
    for name, sharp in sharps.items():
        hwc = sharp.astype(np.float32) / 255
        tiles = [label(sharp, name)]
        if len(codes):
            batch = torch.from_numpy(hwc).permute(2, 0, 1)[None].expand(len(codes), -1, -1, -1)
            blurred = KF.learned_blur(batch, codes, model, grid_mode=grid_mode)
            for j, image in enumerate(blurred):
                pixels = (image.permute(1, 2, 0).numpy() * 255 + 0.5).clip(0, 255).astype(np.uint8)
                tiles.append(label(pixels, f"learned {j + 1}"))
        for length, angle in motions:
            pixels = (KF.motion_blur(hwc, length, angle) * 255 + 0.5).clip(0, 255).astype(np.uint8)
            tiles.append(label(pixels, f"motion {length}px {angle:.0f}deg"))
        rows.append(np.hstack(tiles))
    return np.vstack(rows)


def write_picture(path, rgb: np.ndarray) -> Path:
    """Write a uint8 RGB picture (PNG or any format OpenCV knows by the suffix); ValueError on failure."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, data = cv2.imencode(path.suffix or ".png", np.ascontiguousarray(rgb[..., ::-1]))
    if not ok:
        raise ValueError(f"cannot encode a picture as {path.suffix or '.png'} for {path}")
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data.tobytes())
    tmp.replace(path)
    return path
