"""``LearnedBlur`` for ``torchvision.transforms.v2``: a ``v2.Transform`` over :class:`kernelaug.LearnedBlur`.

Usage::

    from torchvision import tv_tensors
    from torchvision.transforms import v2
    from kernelaug.integrations.torchvision import LearnedBlur

    pipeline = v2.Compose([v2.RandomCrop(256), v2.RandomHorizontalFlip(),
                           LearnedBlur("synth-small", p=0.9)])
    image, mask = pipeline(tv_tensors.Image(x), tv_tensors.Mask(m))   # the mask passes through

What it blurs: ``tv_tensors.Image``, PIL images, and plain tensors (CHW / BCHW, uint8 or float in
[0, 1]) under v2's rule -- plain tensors are images only when the sample holds no
``tv_tensors.Image`` / PIL image, and then only the first one. Masks, boxes, keypoints, labels and
videos pass through untouched. One set of parameters is drawn per call (as every v2 transform does):
all images of one sample -- and all images of a BCHW batch -- get the same blur.

Randomness: with ``seed=None`` (default) parameters come from torch's global RNG, like every
torchvision transform: ``torch.manual_seed`` reproduces a run and DataLoader workers differ
without help. With an int ``seed`` the transform uses its own generator (reseeded per worker by
``kernelaug.transforms.seed_worker``).

Pairs for deblur training (blurred input, sharp target, aligned, target never blurred)
-------------------------------------------------------------------------------------
Never run ``LearnedBlur`` on a sample that holds both images: it would blur both. Either blur after
the geometry -- :func:`make_pair`::

    sharp = geometric(tv_tensors.Image(x))           # crop/flip once
    blurred = blur(sharp)                            # LearnedBlur never writes into its input

or blur the whole frame first and apply the geometry to *both as tv_tensors.Image* in one call,
which gives them the same crop/flip parameters (``make_pair(..., blur_first=True)``)::

    blurred, sharp = geometric(tv_tensors.Image(blur(x)), tv_tensors.Image(x))

(Two *plain* tensors would not work: v2 transforms only the first plain tensor of a sample.)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import PIL.Image
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2._utils import is_pure_tensor

from .. import transforms as _engine
from ..models.pretrained import DEFAULT_MODEL

__all__ = ["LearnedBlur", "make_pair"]


class LearnedBlur(v2.Transform):
    """torchvision v2 transform: blur images with a learned blur (see :class:`kernelaug.LearnedBlur`).

    Args as the engine: ``model``, ``bank``, ``p`` (default 1.0), ``mode``, ``strength``,
    ``grid_mode``, ``parametric``, ``parametric_ratio``, ``motion_length``, ``seed`` (None: torch's
    global RNG), ``device``. ``model`` and ``bank`` are properties (the resolved objects, not
    submodules: the transform has no parameters or buffers of its own).
    """

    _transformed_types = (tv_tensors.Image, PIL.Image.Image, is_pure_tensor)

    def __init__(self, model=DEFAULT_MODEL, bank=None, p: float = 1.0, mode: str = "bank", strength=1.0,
                 grid_mode: str = "resize", parametric=None, parametric_ratio: float = 0.0,
                 motion_length=_engine.DEFAULT_MOTION_LENGTH, seed: int | None = None, device: str = "cpu"):
        super().__init__()
        self._engine = _engine.LearnedBlur(model, bank, p=p, mode=mode, strength=strength, grid_mode=grid_mode,
                                           parametric=parametric, parametric_ratio=parametric_ratio,
                                           motion_length=motion_length, seed=seed, device=device)
        self.p = p
        self.mode = mode
        self.strength = strength
        self.grid_mode = grid_mode
        self.parametric = parametric
        self.parametric_ratio = parametric_ratio
        self.motion_length = tuple(motion_length)
        self.seed = seed
        self.device = str(device)

    @property
    def engine(self) -> _engine.LearnedBlur:
        return self._engine

    @property
    def model(self):
        return self._engine.model

    @property
    def bank(self):
        return self._engine.bank

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        if self.seed is None:
            # torch's global RNG, as torchvision's own transforms: one 63-bit draw seeds this call.
            rng = np.random.default_rng(int(torch.randint(0, 2**62, (1,)).item()))
        else:
            rng = self._engine.rng
        return {"blur": self._engine.make_params(rng)}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if isinstance(inpt, PIL.Image.Image):
            array = np.asarray(inpt)
            if array.dtype == bool or inpt.mode not in ("L", "RGB", "RGBA"):
                raise ValueError(f"LearnedBlur supports PIL images in mode L, RGB or RGBA, got {inpt.mode}")
            return PIL.Image.fromarray(self._engine.apply(array, params["blur"]))
        out = self._engine.apply(inpt, params["blur"])
        if isinstance(inpt, tv_tensors.TVTensor):
            return tv_tensors.wrap(out, like=inpt)
        return out


def make_pair(image, geometric, blur, blur_first: bool = False):
    """(blurred, sharp) for deblur training, aligned, the sharp target never blurred.

    ``image``: a tensor (CHW) or ``tv_tensors.Image``. ``blur_first=False``: ``geometric`` once,
    then ``blur`` on the result. ``blur_first=True``: ``blur`` on the whole image, then
    ``geometric`` on (blurred, sharp) as two ``tv_tensors.Image`` in one call (same parameters).
    Both outputs are ``tv_tensors.Image``.
    """
    image = image if isinstance(image, tv_tensors.Image) else tv_tensors.Image(image)
    if not blur_first:
        sharp = geometric(image)
        return blur(sharp), sharp
    blurred = tv_tensors.wrap(blur(image), like=image)
    return geometric(blurred, image)
