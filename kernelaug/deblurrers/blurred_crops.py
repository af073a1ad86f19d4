"""Training crops blurred afresh for every sample, in DataLoader workers: the augmentation as users run it.

:class:`BlurredCrops` cuts a random crop of a sharp photograph (random flips and quarter turns) at
the *camera's* resolution, blurs it there with any transform (a :class:`kernelaug.LearnedBlur`, an
imgaug augmenter ...) and returns the pair; :func:`finish_batch` then downscales the collated batch
(area interpolation, identical for sharp and blurry) and cuts away the margin the blur needed.
Blurring before downscaling is what makes the learned blur of a 1280x720 camera the right blur for
its frames shown at half size, as the benchmark's test pairs are.

Randomness: crop positions come from ``(seed, index)``, so they do not depend on how many workers
serve the loader; the blur draws from its own generator, reseeded per worker by
:func:`kernelaug.transforms.seed_worker`. With ``defer_learned=True`` a learned blur is only
*drawn* in the worker and applied to the whole batch on the training device by
:class:`kernelaug.LearnedBlurBatch` (``--gpu-blur``).
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

__all__ = ["MARGIN", "BlurredCrops", "make_loader", "finish_batch", "native_size"]

MARGIN = 24  # camera-resolution pixels cut off after blurring (half the widest shipped PSF)


def native_size(crop: int, scale: float, margin: int = MARGIN) -> int:
    """Side of the crop cut at camera resolution for a training crop of ``crop`` px at ``scale``."""
    return int(math.ceil(crop / scale)) + 2 * margin


class BlurredCrops(Dataset):
    """``length`` samples ``(blurry, sharp, deferred)``: float (3, n, n) crops at camera resolution.

    ``images``: uint8 (H, W, 3) sharp photographs, each at least :func:`native_size` on its
    shorter side. ``blur``: a callable uint8 HWC -> uint8 HWC. With ``defer_learned`` the blur
    must be a :class:`kernelaug.LearnedBlur`: samples it draws a learned code for come back
    unblurred with ``deferred = True`` (parametric ones are blurred here).
    """

    def __init__(self, images: list[np.ndarray], blur: Callable, crop: int, length: int, scale: float = 1.0,
                 margin: int = MARGIN, seed: int = 0, defer_learned: bool = False):
        if not 0.0 < scale <= 1.0:
            raise ValueError(f"scale must be in (0, 1], got {scale}")
        if crop < 8 or length < 1:
            raise ValueError(f"crop must be >= 8 and length >= 1, got {crop} and {length}")
        self.size = native_size(crop, scale, margin)
        self.images = [im for im in images if min(im.shape[:2]) >= self.size]
        if not self.images:
            raise ValueError(f"no sharp image is at least {self.size} px on its shorter side "
                             f"(crop {crop} at scale {scale} with a {margin}-px margin)")
        for image in self.images:
            if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
                raise ValueError(f"sharp images must be uint8 (H, W, 3), got {image.dtype} {image.shape}")
        self.blur, self.crop, self.length, self.scale = blur, crop, length, scale
        self.margin, self.seed, self.defer_learned = margin, seed, defer_learned

    def __len__(self) -> int:
        return self.length

    def sharp_crop(self, index: int) -> np.ndarray:
        """The sharp crop of sample ``index`` (deterministic for the seed)."""
        rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(index,)))
        image = self.images[int(rng.integers(len(self.images)))]
        top = int(rng.integers(0, image.shape[0] - self.size + 1))
        left = int(rng.integers(0, image.shape[1] - self.size + 1))
        crop = image[top:top + self.size, left:left + self.size]
        crop = np.rot90(crop, int(rng.integers(4)))
        if rng.integers(2):
            crop = crop[:, ::-1]
        return np.ascontiguousarray(crop)

    def __getitem__(self, index: int):
        sharp = self.sharp_crop(index)
        deferred = False
        if self.defer_learned:
            params = self.blur.make_params()
            deferred = bool(params.get("apply")) and params["kind"] == "learned"
            blurry = sharp if deferred else self.blur.apply(sharp, params)
        else:
            blurry = self.blur(sharp)
        return _chw(blurry), _chw(sharp), deferred


def _chw(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(255)


def make_loader(dataset: BlurredCrops, batch_size: int, workers: int, seed: int) -> DataLoader:
    """A DataLoader as users build one: seeded generator, :func:`seed_worker` in every worker."""
    from ..transforms import seed_worker

    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers,
                      worker_init_fn=seed_worker if workers else None, generator=generator,
                      persistent_workers=False, drop_last=True,
                      multiprocessing_context="spawn" if workers else None)


def finish_batch(blurry: torch.Tensor, sharp: torch.Tensor, scale: float, crop: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Downscale a batch of camera-resolution pairs by ``scale`` (area) and centre-crop to ``crop``."""
    if scale != 1.0:
        size = int(round(blurry.shape[-1] * scale))
        blurry = F.interpolate(blurry, size=(size, size), mode="area")
        sharp = F.interpolate(sharp, size=(size, size), mode="area")
    top = (blurry.shape[-2] - crop) // 2
    left = (blurry.shape[-1] - crop) // 2
    window = (..., slice(top, top + crop), slice(left, left + crop))
    return blurry[window].clamp(0, 1), sharp[window]
