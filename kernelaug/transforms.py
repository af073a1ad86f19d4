"""The blur augmentation engine, free of any augmentation framework.

* :class:`LearnedBlur` -- one image (or a small batch) at a time, in a ``Dataset`` or a DataLoader
  worker, on the CPU: numpy HWC (uint8 / float in [0, 1]) or torch CHW / BCHW in, the same type,
  dtype, shape and value range out. The adapters in :mod:`kernelaug.integrations` wrap it for
  Albumentations, imgaug and torchvision.
* :class:`LearnedBlurBatch` -- a whole collated batch in one forward pass on the model's device
  (the GPU path): use it in the training step, not inside DataLoader workers.
* :func:`seed_worker` -- a DataLoader ``worker_init_fn`` that gives every worker its own blurs.

Like Kornia's ``generate_parameters`` / ``apply_transform`` and torchvision's ``make_params`` /
``transform``, the classes only draw parameters (:meth:`LearnedBlur.make_params`) and hand them to
the pure functions of :mod:`kernelaug.functional`, which do the work.

Randomness and seeding
----------------------
Each :class:`LearnedBlur` owns a ``numpy.random.Generator`` created from ``seed`` (fresh entropy
when ``seed`` is None); :meth:`LearnedBlur.reseed` replaces it, and every call accepts an explicit
``rng=`` (an int or a Generator) that overrides it. Global random state is never read.

In a DataLoader, every worker starts with a copy of the same generator (fork) or of the same
pickled state (spawn), so all workers would draw the *same* blurs. Pass
``worker_init_fn=kernelaug.transforms.seed_worker``: it reseeds every :class:`LearnedBlur` (and
kernelaug adapter, Albumentations ``Compose`` and imgaug augmenter) found in the worker's dataset
from ``torch.initial_seed()``, which PyTorch makes distinct per worker and reproducible from the
DataLoader's ``generator=``/``torch.manual_seed``::

    loader = DataLoader(dataset, num_workers=4, worker_init_fn=kernelaug.transforms.seed_worker,
                        generator=torch.Generator().manual_seed(0))   # reproducible run

Keep the model on the CPU (``device="cpu"``, the default) in datasets used by workers: CUDA
cannot be used in forked workers. For GPU blurring draw codes in the workers
(``bank.sample``) and apply them with :class:`LearnedBlurBatch` after collation.

Strength
--------
``strength`` s in [0, 1] (a float, or a ``(lo, hi)`` range drawn uniformly per image) blends the
sharp image x and the learned blur F(x, k): ``x + s * (F(x, k) - x)``. For a linear blur this is
the PSF ``(1 - s) * delta + s * k`` -- a valid kernel between no blur and the learned one (the
exposure split between a still and a moving camera) -- so it never invents blur the model did not
learn. s = 1 is the paper's augmentation.

The paper's "comb." setting
---------------------------
``parametric="motion"`` (a built-in line-kernel motion blur whose length is drawn from
``motion_length`` and angle from [0, 180) degrees) or any callable ``image -> image`` on numpy HWC
RGB images, with ``parametric_ratio`` the fraction of blurred images that get the parametric blur
instead of the learned one: ``LearnedBlur(model, bank, parametric="motion", parametric_ratio=0.5)``.
A callable receives uint8 RGB when the input is an integer image and float32 RGB in [0, 1]
otherwise, and must return the same shape, dtype kind and range (checked: a ValueError otherwise);
its randomness is its own.

Image conventions (see :mod:`kernelaug.functional`): grayscale is blurred as RGB and returned as
the mean of the blurred channels; RGBA keeps its alpha; uint8 outputs are rounded.

Non-finite codes: a bank holding NaN/Inf codes is refused when a transform is built (the rows are
named), and :func:`kernelaug.functional.learned_blur` raises a ValueError for any such code given
directly (``codes=``, a bank-like object): no transform returns a NaN or black image for one.
"""

from __future__ import annotations

import functools
import itertools
import os
import random
import sys
import types
from typing import Any, Callable, Sequence

import numpy as np
import torch

from . import functional as KF
from .bank import SAMPLE_MODES, as_generator, resolve_bank
from .bank.codes import GRID_MODES
from .device import check_device, resolve_device
from .models.checkpoint import resolve_model
from .models.pretrained import DEFAULT_MODEL

__all__ = ["LearnedBlur", "LearnedBlurBatch", "CodeSampler", "seed_worker", "SAMPLE_MODES"]

DEFAULT_MOTION_LENGTH = (3, 15)


# -- argument handling shared with the adapters --------------------------------------------------
def reference(obj):
    """A model or bank as a string when it came from a file (its path) -- what serialisation stores --
    else the object itself. Strings and paths are returned as strings."""
    if isinstance(obj, (str, os.PathLike)):
        return os.fspath(obj)
    source = getattr(obj, "source", None)  # set by kernelaug.load_model
    if source is None and hasattr(obj, "sample") and hasattr(obj, "path"):
        source = obj.path                 # a KernelBank
    return os.fspath(source) if source is not None else obj


def check_probability(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise TypeError(f"{name} must be a number in [0, 1], got {value!r}")
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value}")
    return value


def check_strength(strength) -> tuple[float, float]:
    """A float in [0, 1] or a (lo, hi) range with 0 <= lo <= hi <= 1 -> (lo, hi)."""
    if isinstance(strength, (list, tuple)):
        if len(strength) != 2:
            raise ValueError(f"strength range must be (lo, hi), got {strength!r}")
        lo, hi = (check_probability("strength", s) for s in strength)
        if lo > hi:
            raise ValueError(f"strength range must have lo <= hi, got {strength!r}")
        return lo, hi
    value = check_probability("strength", strength)
    return value, value


def check_choice(name: str, value, choices) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")
    return value


def check_parametric(parametric, ratio, motion_length) -> tuple[float, tuple[int, int]]:
    ratio = check_probability("parametric_ratio", ratio)
    if parametric is not None and parametric != "motion" and not callable(parametric):
        raise ValueError(f"parametric must be None, 'motion' or a callable image -> image, got {parametric!r}")
    if ratio > 0 and parametric is None:
        raise ValueError("parametric_ratio > 0 needs a parametric blur: pass parametric='motion' or a callable")
    if (not isinstance(motion_length, (list, tuple)) or len(motion_length) != 2
            or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in motion_length)
            or not 1 <= motion_length[0] <= motion_length[1]):
        raise ValueError(f"motion_length must be a (min, max) pair of ints with 1 <= min <= max, got {motion_length!r}")
    return ratio, (int(motion_length[0]), int(motion_length[1]))


# -- the engine ----------------------------------------------------------------------------------
class LearnedBlur:
    """Blur a sharp image with a learned blur from a kernel bank (see the module docstring).

    Args:
        model: a :class:`~kernelaug.models.BlurModel`, a ``.safetensors`` path or a pretrained name.
            Stored resolved (a BlurModel) in ``self.model``.
        bank: a :class:`~kernelaug.bank.KernelBank`, an ``.h5`` path, a pretrained name, or None to
            use the bank shipped with the pretrained ``model`` name. Stored resolved in ``self.bank``;
            ``bank.check(model)`` is verified here, and refuses a bank holding NaN/Inf codes (naming
            the rows): a non-finite code is an error, never skipped or redrawn.
        p: probability of blurring an image (otherwise it is returned unchanged, as a copy).
        mode: how codes are drawn: ``"bank"`` (stored codes), ``"gaussian"`` (novel codes from a
            Gaussian fitted to the bank) or ``"mix"`` (interpolations of two stored codes).
        strength: float in [0, 1] or a (lo, hi) range: ``x + s * (F(x, k) - x)``.
        grid_mode: fitting the code grid to the image: ``"resize"`` or ``"tile"``.
        parametric: None, ``"motion"`` or a callable numpy HWC RGB -> same (the "comb." setting).
        parametric_ratio: fraction of blurred images that get the parametric blur.
        motion_length: (min, max) length in pixels of the built-in motion blur.
        seed: seed of this transform's own generator (None: fresh entropy).
        device: where the model runs (keep "cpu" inside DataLoader workers).
    """

    def __init__(self, model=DEFAULT_MODEL, bank=None, p: float = 1.0, mode: str = "bank", strength=1.0,
                 grid_mode: str = "resize", parametric: str | Callable | None = None,
                 parametric_ratio: float = 0.0, motion_length: Sequence[int] = DEFAULT_MOTION_LENGTH,
                 seed: int | None = None, device: str | torch.device = "cpu"):
        self.p = check_probability("p", p)
        self.mode = check_choice("mode", mode, SAMPLE_MODES)
        self._strength = check_strength(strength)
        self.strength = strength
        self.grid_mode = check_choice("grid_mode", grid_mode, GRID_MODES)
        self.parametric_ratio, self._motion_length = check_parametric(parametric, parametric_ratio, motion_length)
        self.parametric = parametric
        self.motion_length = motion_length
        self.seed = seed
        self._rng = as_generator(seed)
        self.device = check_device(device)
        self.model = resolve_model(model, self.device)
        model_name = model if isinstance(model, str) and not os.path.exists(model) else None
        self.bank = resolve_bank(bank, model_name)
        self.bank.check(self.model)

    def __repr__(self) -> str:
        source = getattr(self.model, "source", None) or type(self.model).__name__
        bank = getattr(self.bank, "path", type(self.bank).__name__)
        return (f"{type(self).__name__}(model={str(source)!r}, bank={str(bank)!r}, p={self.p}, mode={self.mode!r}, "
                f"strength={self.strength!r}, grid_mode={self.grid_mode!r}, parametric={self.parametric!r}, "
                f"parametric_ratio={self.parametric_ratio}, seed={self.seed!r}, device={str(self.device)!r})")

    # -- randomness --------------------------------------------------------------------------
    def reseed(self, seed=None) -> None:
        """Replace this transform's generator (None: fresh entropy). ``self.seed`` keeps the
        constructor's value."""
        self._rng = as_generator(seed)

    @property
    def rng(self) -> np.random.Generator:
        return self._rng

    def make_params(self, rng=None) -> dict[str, Any]:
        """Draw the parameters of one image's blur (all randomness of this transform is here).

        Returns a dict: ``apply`` (bool); when applied, ``kind`` ("learned" or "parametric") and
        ``strength``; ``code`` (float32 (C, h, w)) for learned blurs; ``length`` and ``angle``
        for the built-in motion blur.
        """
        rng = self._rng if rng is None else as_generator(rng)
        if self.p < 1.0 and not rng.random() < self.p:
            return {"apply": False}
        lo, hi = self._strength
        strength = lo if lo == hi else float(rng.uniform(lo, hi))
        if self.parametric_ratio > 0 and (self.parametric_ratio >= 1.0 or rng.random() < self.parametric_ratio):
            params = {"apply": True, "kind": "parametric", "strength": strength}
            if self.parametric == "motion":
                params["length"] = int(rng.integers(self._motion_length[0], self._motion_length[1] + 1))
                params["angle"] = float(rng.uniform(0.0, 180.0))
            return params
        code = self.bank.sample(1, rng=rng, mode=self.mode)[0]
        return {"apply": True, "kind": "learned", "strength": strength, "code": code}

    # -- application -------------------------------------------------------------------------
    def __call__(self, image, rng=None, params=None):
        """Blur ``image`` (numpy HW/HWC/NHWC or torch HW/CHW/BCHW); one draw per image of a batch.

        ``rng`` overrides this transform's generator for this call; ``params`` (a dict from
        :meth:`make_params`, or a list with one per image) skips the drawing.
        """
        rgb, spec = KF.to_rgb_batch(image)
        if params is None:
            rng = self._rng if rng is None else as_generator(rng)
            params = [self.make_params(rng) for _ in range(rgb.shape[0])]
        return self._finish(image, rgb, spec, params)

    def apply(self, image, params):
        """Apply already drawn ``params`` (one dict for every image, or one per image)."""
        rgb, spec = KF.to_rgb_batch(image)
        return self._finish(image, rgb, spec, params)

    def _finish(self, image, rgb, spec, params):
        if isinstance(params, dict):
            params = [params] * rgb.shape[0]
        if not any(prm.get("apply") for prm in params):
            # exact, never the input; detached like a blurred output, whatever p drew
            return image.copy() if isinstance(image, np.ndarray) else image.detach().clone()
        return KF.from_rgb_batch(self._apply_rgb(rgb, params, spec), spec)

    def _apply_rgb(self, rgb: torch.Tensor, params, spec: KF.ImageSpec) -> torch.Tensor:
        batch = rgb.shape[0]
        if isinstance(params, dict):
            params = [params] * batch
        if len(params) != batch:
            raise ValueError(f"got {len(params)} parameter sets for {batch} images")
        learned = [i for i, prm in enumerate(params) if prm.get("apply") and prm["kind"] == "learned"]
        parametric = [i for i, prm in enumerate(params) if prm.get("apply") and prm["kind"] == "parametric"]
        if not learned and not parametric:
            return rgb
        out = rgb.clone() if len(learned) + len(parametric) < batch else torch.empty_like(rgb)
        if learned:
            index = torch.tensor(learned)
            codes = np.stack([params[i]["code"] for i in learned])
            strengths = [float(params[i]["strength"]) for i in learned]
            strength = strengths[0] if len(set(strengths)) == 1 else strengths
            sharp = rgb if len(learned) == batch else rgb[index]
            blurred = KF.learned_blur(sharp, torch.from_numpy(codes), self.model, strength, self.grid_mode)
            if len(learned) == batch:
                out = blurred
            else:
                out[index] = blurred.to(out.device)
        for i in parametric:
            out[i] = self._parametric_one(rgb[i], params[i], spec)
        return out

    def _parametric_one(self, rgb: torch.Tensor, params: dict, spec: KF.ImageSpec) -> torch.Tensor:
        """One (3, H, W) float image through the parametric blur, then blended by strength."""
        hwc = rgb.permute(1, 2, 0).cpu().numpy()
        if self.parametric == "motion":
            blurred = KF.motion_blur(np.ascontiguousarray(hwc), params["length"], params["angle"])
        else:
            integer = spec.integer
            arg = np.ascontiguousarray((hwc * 255).round().astype(np.uint8) if integer else hwc)
            result = np.asarray(self.parametric(arg))
            if result.shape != arg.shape:
                raise ValueError(f"the parametric blur {self.parametric!r} returned shape {result.shape} "
                                 f"for an image of shape {arg.shape}; it must keep the shape")
            blurred = _parametric_result(self.parametric, result, arg.dtype)
        blurred = torch.from_numpy(np.ascontiguousarray(blurred, dtype=np.float32)).permute(2, 0, 1).to(rgb.device)
        return KF.blend(rgb[None], blurred[None], params["strength"])[0].clamp(0, 1)


def _parametric_result(blur, result: np.ndarray, given: np.dtype) -> np.ndarray:
    """A parametric blur's output as float32 in [0, 1]; ValueError unless it has the dtype it was given
    (uint8, or float with finite values in [0, 1])."""
    if given == np.uint8:
        if result.dtype != np.uint8:
            raise ValueError(f"the parametric blur {blur!r} returned {result.dtype} for a uint8 image; it must "
                             f"return uint8 (0..255), as it was given")
        return result.astype(np.float32) / 255.0
    if not np.issubdtype(result.dtype, np.floating):
        raise ValueError(f"the parametric blur {blur!r} returned {result.dtype} for a float image; it must "
                         f"return floats in [0, 1], as it was given")
    low, high = (float(result.min()), float(result.max())) if result.size else (0.0, 0.0)
    if not (np.isfinite(low) and np.isfinite(high)) or low < -KF.FLOAT_TOLERANCE or high > 1 + KF.FLOAT_TOLERANCE:
        raise ValueError(f"the parametric blur {blur!r} returned values in [{low:.4g}, {high:.4g}] for a float "
                         f"image in [0, 1]; it must keep that range (NaN and infinity are refused)")
    return result.astype(np.float32).clip(0, 1)


# -- the batched GPU path ------------------------------------------------------------------------
class LearnedBlurBatch:
    """Blur a whole collated batch with bank codes in one forward pass on the model's device.

    Use it in the training step (after ``.to(device)``), not in DataLoader workers::

        batch_aug = LearnedBlurBatch(model.to("cuda"), bank, seed=0)
        for sharp in loader:                          # (B, 3, H, W) float in [0, 1]
            blurred, sharp, codes = batch_aug(sharp.to("cuda", non_blocking=True))

    Codes can also be drawn in the workers (a :class:`CodeSampler` per dataset, one code per item,
    collated to (B, C, h, w)) and passed as ``codes=``; the strength is then still drawn here (when it is a
    range). Args as :class:`LearnedBlur`; ``device`` None keeps the model where it is ("auto": CUDA
    when present); ``chunk_size`` images per forward pass (default on the CPU: one per torch thread, at most 2, where
    larger batches get slower per image; the whole batch on a GPU).
    """

    def __init__(self, model=DEFAULT_MODEL, bank=None, mode: str = "bank", strength=1.0, grid_mode: str = "resize",
                 seed: int | None = None, device: str | torch.device | None = None, chunk_size: int | None = None):
        if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(chunk_size, int)
                                       or chunk_size < 1):
            raise ValueError(f"chunk_size must be a positive int or None, got {chunk_size!r}")
        self.chunk_size = chunk_size
        self.mode = check_choice("mode", mode, SAMPLE_MODES)
        self._strength = check_strength(strength)
        self.strength = strength
        self.grid_mode = check_choice("grid_mode", grid_mode, GRID_MODES)
        self.seed = seed
        self._rng = as_generator(seed)
        self.device = None if device is None else resolve_device(device)
        self.model = resolve_model(model, self.device)
        model_name = model if isinstance(model, str) and not os.path.exists(model) else None
        self.bank = resolve_bank(bank, model_name)
        self.bank.check(self.model)

    def reseed(self, seed=None) -> None:
        self._rng = as_generator(seed)

    def sample_codes(self, n: int, rng=None) -> torch.Tensor:
        """``n`` codes (n, C, h, w) float32 from the bank, on the model's device."""
        rng = self._rng if rng is None else as_generator(rng)
        device = KF._model_dtype_device(self.model)[1]
        return torch.from_numpy(self.bank.sample(n, rng=rng, mode=self.mode)).to(device)

    def sample_strength(self, n: int, rng=None):
        rng = self._rng if rng is None else as_generator(rng)
        lo, hi = self._strength
        if lo == hi:
            return lo
        return torch.from_numpy(rng.uniform(lo, hi, size=n).astype(np.float32))

    def __call__(self, sharp_batch: torch.Tensor, codes=None, rng=None):
        """(B, C, H, W) sharp batch (C in 1, 3, 4; float or uint8) -> (blurred, sharp, codes).

        ``blurred`` has the input's dtype, device and shape; ``sharp`` is the input itself
        (untouched); ``codes`` the (B, kernel_dim, h, w) codes used (drawn here when None).
        """
        if not isinstance(sharp_batch, torch.Tensor) or sharp_batch.ndim != 4:
            got = tuple(sharp_batch.shape) if isinstance(sharp_batch, torch.Tensor) else type(sharp_batch).__name__
            raise ValueError(f"LearnedBlurBatch expects a (B, C, H, W) tensor, got {got}")
        rgb, spec = KF.to_rgb_batch(sharp_batch)
        batch = rgb.shape[0]
        rng = self._rng if rng is None else as_generator(rng)
        if codes is None:
            codes = self.sample_codes(batch, rng)
        else:
            codes = torch.as_tensor(codes)
            if codes.ndim != 4 or codes.shape[0] != batch:
                raise ValueError(f"codes must have shape (B, C, h, w) with B = {batch}, got {tuple(codes.shape)}")
        strength = self.sample_strength(batch, rng)
        blurred = KF.learned_blur(rgb, codes, self.model, strength, self.grid_mode, self.chunk_size)
        return KF.from_rgb_batch(blurred, spec), sharp_batch, codes


class CodeSampler:
    """Draw codes from a bank in DataLoader workers, for :class:`LearnedBlurBatch` after collation.

    Cheap and picklable (holds only the bank, which opens its file lazily per process) and reseeded
    per worker by :func:`seed_worker`::

        sampler = CodeSampler(bank, seed=0)
        def __getitem__(self, i):                  # in the Dataset
            return sharp_crop(i), sampler()        # (3, H, W) image, (C, h, w) code
    """

    def __init__(self, bank, mode: str = "bank", seed: int | None = None):
        self.bank = resolve_bank(bank)
        self.mode = check_choice("mode", mode, SAMPLE_MODES)
        self.seed = seed
        self._rng = as_generator(seed)

    def reseed(self, seed=None) -> None:
        self._rng = as_generator(seed)

    def __call__(self, n: int | None = None, rng=None) -> torch.Tensor:
        """One code (C, h, w) when ``n`` is None, else ``n`` codes (n, C, h, w); float32 tensors."""
        rng = self._rng if rng is None else as_generator(rng)
        codes = torch.from_numpy(self.bank.sample(1 if n is None else n, rng=rng, mode=self.mode))
        return codes[0] if n is None else codes


# -- DataLoader workers --------------------------------------------------------------------------
_ATOMIC = (str, bytes, int, float, bool, complex, type(None), np.ndarray, np.generic, torch.Tensor, type)
_MAX_CHILDREN = 256


def _filled(cell) -> bool:
    try:
        cell.cell_contents
    except ValueError:
        return False
    return True


def _find_seedables(root, limit: int = 10000):
    """Objects reachable from ``root`` (attributes, containers) that hold random state we reseed."""
    from .models import BlurModel
    KernelBank = getattr(sys.modules.get("kernelaug.bank"), "KernelBank", None)
    found, seen, stack = [], set(), [(root, 0)]
    albumentations = sys.modules.get("albumentations")
    imgaug_meta = sys.modules.get("imgaug.augmenters.meta")
    while stack and len(seen) < limit:
        obj, depth = stack.pop()
        if id(obj) in seen or depth > 12:
            continue
        seen.add(id(obj))
        if isinstance(obj, _ATOMIC):
            continue
        if isinstance(obj, (LearnedBlur, LearnedBlurBatch, CodeSampler)):
            found.append(obj)
            if callable(getattr(obj, "parametric", None)):  # e.g. an imgaug augmenter as the parametric blur
                stack.append((obj.parametric, depth + 1))
            continue
        if albumentations is not None and isinstance(obj, (albumentations.BaseCompose, albumentations.BasicTransform)):
            found.append(obj)  # Compose.set_random_seed reaches all its children
            continue
        if imgaug_meta is not None and isinstance(obj, imgaug_meta.Augmenter):
            found.append(obj)  # seed_ derives child generators itself
            continue
        if isinstance(obj, BlurModel) or (KernelBank is not None and isinstance(obj, KernelBank)):
            continue
        children = []
        if isinstance(obj, dict):
            children = list(itertools.islice(obj.values(), _MAX_CHILDREN))
        elif isinstance(obj, (list, tuple, set, frozenset)):
            children = list(itertools.islice(obj, _MAX_CHILDREN))
        elif isinstance(obj, types.FunctionType):  # transforms captured by closures / defaults
            children = [cell.cell_contents for cell in obj.__closure__ or () if _filled(cell)]
            children += list(obj.__defaults__ or ())
        elif isinstance(obj, types.MethodType):
            children = [obj.__self__]
        elif isinstance(obj, functools.partial):
            children = [obj.func, *obj.args, *obj.keywords.values()]
        else:
            attributes = getattr(obj, "__dict__", None)
            if isinstance(attributes, dict):
                children = list(attributes.values())
        if len(children) > _MAX_CHILDREN:  # e.g. a dataset's list of samples: transforms are not in there
            children = children[:_MAX_CHILDREN]
        stack.extend((child, depth + 1) for child in reversed(children) if not isinstance(child, _ATOMIC))
    return found


def seed_worker(worker_id: int | None = None) -> None:
    """DataLoader ``worker_init_fn``: reseed every augmentation of the worker's dataset.

    The seed is ``torch.initial_seed()`` (distinct per worker, derived from the DataLoader's
    generator), so a seeded run is reproducible and workers draw different blurs. Reseeds each
    :class:`LearnedBlur` / :class:`LearnedBlurBatch` and each kernelaug adapter (their engines),
    Albumentations transforms and ``Compose`` (``set_random_seed``) and imgaug augmenters
    (``seed_``) found by walking the dataset's attributes; also seeds ``random`` and ``numpy``'s
    legacy global state. Outside a worker it only seeds from ``torch.initial_seed()``.
    """
    base = torch.initial_seed() % 2**63
    random.seed(base)
    np.random.seed(base % 2**32)
    if "imgaug" in sys.modules:
        try:
            sys.modules["imgaug"].random.seed(base % 2**32)
        except AttributeError:
            pass
    info = torch.utils.data.get_worker_info()
    if info is None:
        return
    for k, obj in enumerate(_find_seedables(info.dataset)):
        seed = int(np.random.SeedSequence([base, k]).generate_state(1, np.uint64)[0] % 2**63)
        if isinstance(obj, (LearnedBlur, LearnedBlurBatch, CodeSampler)):
            obj.reseed(seed)
        elif hasattr(obj, "set_random_seed"):      # Albumentations
            obj.set_random_seed(seed % 2**32)
        elif hasattr(obj, "seed_"):                # imgaug
            obj.seed_(seed % 2**32)
