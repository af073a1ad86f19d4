"""``LearnedBlur`` for Albumentations 2.x: an ``ImageOnlyTransform`` over :class:`kernelaug.LearnedBlur`.

Usage::

    import albumentations as A
    from kernelaug.integrations.albumentations import LearnedBlur

    pipeline = A.Compose([
        A.RandomCrop(256, 256),
        A.HorizontalFlip(),
        A.OneOf([LearnedBlur("synth-small", p=1.0),            # the pretrained model and its bank
                 A.MotionBlur(p=1.0)], p=0.9),
    ], seed=0)
    out = pipeline(image=image)["image"]

Randomness comes only from ``self.random_generator`` / ``self.py_random``, which Albumentations
seeds (``A.Compose(seed=...)`` reproduces a run); ``p`` is Albumentations' (default 0.5, as for
``A.MotionBlur``). Model and bank are stored as strings (a ``.safetensors`` / ``.h5`` path or a
pretrained name; objects loaded from files are stored by path), so the transform survives
``A.to_dict`` / ``A.from_dict`` and ``A.save`` / ``A.load`` (import this module before loading).

Pairs for deblur training (blurred input, sharp target, aligned, target never blurred)
-------------------------------------------------------------------------------------
*Geometry, then blur a copy* (cheapest: only the crop is blurred) -- :func:`make_pair`::

    geometric = A.Compose([A.RandomCrop(256, 256), A.HorizontalFlip()], seed=0)
    blur = A.Compose([LearnedBlur(model_path, bank_path, p=1.0)], seed=0)
    sharp = geometric(image=image)["image"]
    blurred = blur(image=sharp)["image"]             # LearnedBlur never writes into its input

*Blur the whole frame, then the same geometry on both* (real image content at crop borders)::

    geometric = A.Compose([A.RandomCrop(256, 256), A.HorizontalFlip()],
                          additional_targets={"blurred": "image"})
    full = blur(image=image)["image"]
    out = geometric(image=image, blurred=full)       # one set of crop/flip parameters for both
    sharp, blurred = out["image"], out["blurred"]

Do not put ``LearnedBlur`` in a Compose whose ``additional_targets`` maps the sharp target to
``"image"``: image-only transforms apply to every image target, so the target would be blurred too.

Worker seeding: Albumentations 2.0.x does not reseed per DataLoader worker by itself; pass
``worker_init_fn=kernelaug.transforms.seed_worker``, which calls ``set_random_seed`` on every
Compose found in the dataset with a seed derived from ``torch.initial_seed()``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from albumentations.core.transforms_interface import ImageOnlyTransform

from .. import transforms as _engine
from ..models.pretrained import DEFAULT_MODEL

__all__ = ["LearnedBlur", "make_pair"]


class LearnedBlur(ImageOnlyTransform):
    """Albumentations transform: blur the image with a learned blur (see :class:`kernelaug.LearnedBlur`).

    Args: ``model`` (path, pretrained name or BlurModel), ``bank`` (path, pretrained name,
    KernelBank, or None for the pretrained model's own bank), ``mode``, ``strength``,
    ``grid_mode``, ``parametric`` (None or ``"motion"``; a callable works but does not serialise),
    ``parametric_ratio``, ``motion_length``, ``device`` -- as for the engine -- and ``p``.
    Accepts uint8 and float32 images, HW / HWC with 1, 3 or 4 channels.
    """

    def __init__(self, model=DEFAULT_MODEL, bank=None, mode: str = "bank", strength=1.0, grid_mode: str = "resize",
                 parametric=None, parametric_ratio: float = 0.0,
                 motion_length=_engine.DEFAULT_MOTION_LENGTH, device: str = "cpu", p: float = 0.5):
        super().__init__(p=p)
        self.engine = _engine.LearnedBlur(model, bank, p=1.0, mode=mode, strength=strength, grid_mode=grid_mode,
                                          parametric=parametric, parametric_ratio=parametric_ratio,
                                          motion_length=motion_length, device=device)
        self.model = _engine.reference(model)
        self.bank = _engine.reference(bank) if bank is not None else None
        self.mode = mode
        self.strength = tuple(strength) if isinstance(strength, list) else strength
        self.grid_mode = grid_mode
        self.parametric = parametric
        self.parametric_ratio = parametric_ratio
        self.motion_length = tuple(motion_length)
        self.device = str(device)

    def get_params(self) -> dict[str, Any]:
        return {"blur": self.engine.make_params(rng=self.random_generator)}

    def apply(self, img: np.ndarray, blur: dict | None = None, **params: Any) -> np.ndarray:
        if blur is None:  # called directly, outside __call__
            blur = self.engine.make_params(rng=self.random_generator)
        return self.engine.apply(img, blur)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("model", "bank", "mode", "strength", "grid_mode", "parametric", "parametric_ratio",
                "motion_length", "device")

    def get_transform_init_args(self) -> dict[str, Any]:
        args = {name: getattr(self, name) for name in self.get_transform_init_args_names()}
        for name in ("model", "bank", "parametric"):
            if args[name] is not None and not isinstance(args[name], str):
                raise ValueError(
                    f"cannot serialise LearnedBlur: {name} is a {type(args[name]).__name__} object; pass the "
                    f"model and bank as file paths or pretrained names (or load them with kernelaug.load_model"
                    f" / kernelaug.KernelBank), and parametric as None or 'motion'")
        return args


def make_pair(image: np.ndarray, geometric, blur) -> tuple[np.ndarray, np.ndarray]:
    """(blurred, sharp) for deblur training: ``geometric`` (an ``A.Compose`` of crops/flips) once,
    then ``blur`` (a ``LearnedBlur`` or a Compose holding it) on the result. ``sharp`` is the
    geometric output itself, never blurred; ``blurred`` is its blur, pixel-aligned with it."""
    sharp = geometric(image=image)["image"]
    blurred = blur(image=sharp)["image"]
    return blurred, sharp
