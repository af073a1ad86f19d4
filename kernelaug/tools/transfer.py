"""Blur transfer: extract the blur of one sharp/blurry pair and apply it to another image.

:func:`extract_pair_code` runs G on a pair of any size (the largest centred region whose sides are
multiples of the model's cell; pairs smaller than one cell are reflect-padded to it);
:func:`transfer_blur` applies a code to any image through :func:`kernelaug.functional.learned_blur`,
which fits the code grid to the image (``grid_mode`` "resize" or "tile").
"""

from __future__ import annotations

import numpy as np
import torch

from .. import functional as KF
from ..learn.refine import refine_codes
from ..models import BlurModel

__all__ = ["cell_crop", "extract_pair_code", "transfer_blur", "to_tensor", "to_uint8"]


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """float32 HWC RGB in [0, 1] (as :func:`kernelaug.data.pairs.read_image` returns) -> (1, 3, H, W)."""
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an RGB image of shape (H, W, 3), got {getattr(image, 'shape', type(image))}")
    return torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).permute(2, 0, 1)[None]


def to_uint8(batch: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) or (3, H, W) float in [0, 1] -> uint8 HWC RGB."""
    image = batch[0] if batch.ndim == 4 else batch
    return (image.permute(1, 2, 0).float().cpu().numpy() * 255 + 0.5).clip(0, 255).astype(np.uint8)


def cell_crop(height: int, width: int, cell: int) -> tuple[int, int, int, int]:
    """(top, left, crop height, crop width): the largest centred region with sides multiples of
    ``cell`` (a side shorter than one cell is kept whole; the caller pads it)."""
    crop_h = height // cell * cell or height
    crop_w = width // cell * cell or width
    return (height - crop_h) // 2, (width - crop_w) // 2, crop_h, crop_w


def extract_pair_code(model: BlurModel, sharp: torch.Tensor, blurry: torch.Tensor, refine: int = 0) -> torch.Tensor:
    """G(sharp, blurry) for one aligned pair (1, 3, H, W) of any size -> code (1, C, h, w).

    The code describes the centred cell-aligned crop of the pair (see :func:`cell_crop`); a side
    shorter than one cell is reflect-padded to a cell. ``refine``: gradient steps that improve G's
    code on this pair (:func:`kernelaug.learn.refine.refine_codes`).
    """
    if sharp.shape != blurry.shape:
        raise ValueError(f"sharp and blurry images differ in shape: {tuple(sharp.shape)} vs {tuple(blurry.shape)}")
    if sharp.ndim != 4 or sharp.shape[:2] != (1, 3):
        raise ValueError(f"expected one RGB pair of shape (1, 3, H, W), got {tuple(sharp.shape)}")
    top, left, height, width = cell_crop(sharp.shape[-2], sharp.shape[-1], model.cell)
    pair = torch.cat((sharp, blurry))[..., top:top + height, left:left + width]
    pair, _ = KF.pad_to_multiple(pair, model.cell)
    dtype, device = KF._model_dtype_device(model)
    pair = pair.to(device=device, dtype=dtype)
    return refine_codes(model, pair[:1], pair[1:], refine).float().cpu()


def transfer_blur(model: BlurModel, code, image: torch.Tensor, strength: float = 1.0,
                  grid_mode: str = "resize") -> torch.Tensor:
    """Apply ``code`` ((C, h, w) or (1, C, h, w), any grid) to ``image`` (1, 3, H, W), any size."""
    return KF.learned_blur(image, code, model, strength=strength, grid_mode=grid_mode)
