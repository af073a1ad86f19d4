"""``LearnedBlur`` for imgaug (the maintained ``imaug`` fork, imported as ``imgaug``): an ``Augmenter``.

Usage::

    import imgaug.augmenters as iaa
    from kernelaug.integrations.imgaug import LearnedBlur

    pipeline = iaa.Sequential([
        iaa.CropToFixedSize(256, 256),
        iaa.Fliplr(0.5),
        iaa.Sometimes(0.9, LearnedBlur("synth-small")),   # the pretrained model and its bank
    ], seed=0)
    images_aug = pipeline(images=images)                 # list of HWC arrays or an NHWC array

Randomness comes only from imgaug's ``random_state`` (``seed=`` / ``seed_()``), so
``to_deterministic()`` repeats the same blur on the next batch (same number of images). There is
no ``p``: wrap it in ``iaa.Sometimes``. Heatmaps, segmentation maps, keypoints and boxes pass
through unchanged. Images: uint8 / uint16 / float (in [0, 1]), HW or HWC with 1, 3 or 4 channels.

Pairs for deblur training (blurred input, sharp target, aligned, target never blurred)
-------------------------------------------------------------------------------------
*Geometry, then blur a copy* (cheapest) -- :func:`make_pair`::

    sharp = geometric(image=image)
    blurred = blur(image=sharp)                      # LearnedBlur never writes into its input

*Blur the whole frame, then the same geometry on both* -- ``make_pair(..., blur_first=True)``::

    det = geometric.to_deterministic()               # one set of crop/flip parameters ...
    sharp = det(image=image)
    blurred = det(image=blur(image=image))           # ... applied to both images

Worker seeding: pass ``worker_init_fn=kernelaug.transforms.seed_worker`` to the DataLoader; it
calls ``seed_`` on every augmenter of the dataset (and seeds imgaug's global RNG) from
``torch.initial_seed()``.
"""

from __future__ import annotations

import numpy as np
from imgaug.augmenters import meta

from .. import transforms as _engine
from ..models.pretrained import DEFAULT_MODEL

__all__ = ["LearnedBlur", "make_pair"]


def _generator(random_state) -> np.random.Generator:
    generator = getattr(random_state, "generator", random_state)
    if not isinstance(generator, np.random.Generator):  # very old NumPy: a RandomState
        generator = np.random.default_rng(int(generator.randint(0, 2**31 - 1)))
    return generator


class LearnedBlur(meta.Augmenter):
    """imgaug augmenter: blur images with a learned blur (see :class:`kernelaug.LearnedBlur`).

    Args: ``model``, ``bank``, ``mode``, ``strength``, ``grid_mode``, ``parametric``,
    ``parametric_ratio``, ``motion_length``, ``device`` as for the engine; ``seed``, ``name``
    (and the deprecated ``random_state`` / ``deterministic``) as for every imgaug augmenter.
    """

    def __init__(self, model=DEFAULT_MODEL, bank=None, mode: str = "bank", strength=1.0, grid_mode: str = "resize",
                 parametric=None, parametric_ratio: float = 0.0, motion_length=_engine.DEFAULT_MOTION_LENGTH,
                 device: str = "cpu", seed=None, name=None, random_state="deprecated", deterministic="deprecated"):
        super().__init__(seed=seed, name=name, random_state=random_state, deterministic=deterministic)
        self.engine = _engine.LearnedBlur(model, bank, p=1.0, mode=mode, strength=strength, grid_mode=grid_mode,
                                          parametric=parametric, parametric_ratio=parametric_ratio,
                                          motion_length=motion_length, device=device)
        self.model = _engine.reference(model)
        self.bank = _engine.reference(bank) if bank is not None else None
        self.mode = mode
        self.strength = strength
        self.grid_mode = grid_mode
        self.parametric = parametric
        self.parametric_ratio = parametric_ratio
        self.motion_length = tuple(motion_length)
        self.device = str(device)
        self.seed = seed

    def _augment_batch_(self, batch, random_state, parents, hooks):
        if batch.images is None:
            return batch
        images = batch.images
        rng = _generator(random_state)
        params = [self.engine.make_params(rng) for _ in range(len(images))]
        if isinstance(images, np.ndarray):
            batch.images = self.engine.apply(images, params)   # one forward pass for the whole array
        else:
            batch.images = [self.engine.apply(image, prm) for image, prm in zip(images, params)]
        return batch

    def get_parameters(self):
        return [self.model, self.bank, self.mode, self.strength, self.grid_mode, self.parametric,
                self.parametric_ratio, self.motion_length, self.device]


def make_pair(image: np.ndarray, geometric, blur, blur_first: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(blurred, sharp) for deblur training, aligned, the sharp target never blurred.

    ``blur_first=False``: ``geometric`` once, then ``blur`` on the result (only the crop is
    blurred). ``blur_first=True``: ``blur`` on the whole image, then the *same* geometric
    parameters (``geometric.to_deterministic()``) on the sharp and the blurred image.
    Both outputs are C-contiguous arrays (ready for ``torch.from_numpy``).
    """
    if not blur_first:
        sharp = np.ascontiguousarray(geometric(image=image))  # flips return negative-stride views
        return np.ascontiguousarray(blur(image=sharp)), sharp
    det = geometric.to_deterministic()
    sharp = det(image=image)
    blurred = det(image=blur(image=image))
    return np.ascontiguousarray(blurred), np.ascontiguousarray(sharp)
