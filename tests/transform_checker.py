"""One shared checker that every kernelaug transform passes, plus small test helpers.

:func:`check_transform` verifies, for each sample input:

* the output has the input's type (numpy array / torch tensor subclass), dtype and shape;
* the output's values are finite and in range ([0, 1] for floats, the dtype's range for integers);
* the input is not modified in place;
* two transforms built with the same seed give identical outputs (seeded runs are reproducible);
* optionally, a batch through one transform equals the images one by one through another
  transform with the same seed (where batching applies);
* optionally, that the transform actually changes at least one input (it is not a no-op).

The helpers build a tiny ``psf-tiny`` model whose blur is clearly visible and a bank for it, and a
picklable Dataset for the DataLoader tests (it lives here, not in a test module, so spawned
workers import little).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

import kernelaug as ka


# -- the checker ---------------------------------------------------------------------------------
def _snapshot(x):
    if isinstance(x, np.ndarray):
        return x.copy()
    if isinstance(x, torch.Tensor):
        return x.detach().clone()
    return copy.deepcopy(x)


def _equal(a, b) -> bool:
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.shape == b.shape and a.dtype == b.dtype and \
            np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.shape == b.shape and a.dtype == b.dtype and \
            bool(torch.equal(a.as_subclass(torch.Tensor), b.as_subclass(torch.Tensor)))
    return a == b


def _as_float(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().as_subclass(torch.Tensor).cpu()
        return x.double().numpy()
    return np.asarray(x, np.float64)


def _max_value(dtype) -> float:
    if isinstance(dtype, torch.dtype):
        return 255.0 if dtype == torch.uint8 else 1.0
    dtype = np.dtype(dtype)
    return float(np.iinfo(dtype).max) if dtype.kind in "ui" else 1.0


def _check_output(x, y, where: str) -> None:
    if isinstance(x, np.ndarray):
        assert isinstance(y, np.ndarray), f"{where}: numpy in, {type(y).__name__} out"
    else:
        assert type(y) is type(x), f"{where}: {type(x).__name__} in, {type(y).__name__} out"
        assert y.device == x.device, f"{where}: device {x.device} in, {y.device} out"
    assert y.dtype == x.dtype, f"{where}: dtype {x.dtype} in, {y.dtype} out"
    assert tuple(y.shape) == tuple(x.shape), f"{where}: shape {tuple(x.shape)} in, {tuple(y.shape)} out"
    values = _as_float(y)
    assert np.isfinite(values).all(), f"{where}: non-finite output"
    top = _max_value(x.dtype)
    assert values.min() >= 0 and values.max() <= top, \
        f"{where}: output range [{values.min()}, {values.max()}] outside [0, {top}]"


def check_transform(make_transform: Callable[[int], Callable[[Any], Any]],
                    make_inputs: Callable[[], Sequence[Any]] | Sequence[Any], *,
                    seed: int = 0,
                    stack: Callable[[Sequence[Any]], Any] | None = None,
                    unstack: Callable[[Any], Sequence[Any]] | None = None,
                    batch_tolerance: float = 2e-4,
                    changes: bool = True) -> list[Any]:
    """Run every check on every input; return the outputs of the first transform.

    ``make_transform(seed)`` must build a *fresh* transform seeded with ``seed`` and return a
    callable ``input -> output`` (wrap framework calling conventions, e.g.
    ``lambda x: compose(image=x)["image"]``). ``make_inputs`` is a list of inputs or a function
    returning one. ``stack`` / ``unstack`` (optional) turn a list of same-shaped inputs into one
    batched input and a batched output back into a list: then the batch through one transform
    must equal the inputs one by one through another (tolerance ``batch_tolerance`` in [0, 1]
    units, plus one step for integer outputs). ``changes``: at least one output must differ from
    its input.
    """
    inputs = list(make_inputs() if callable(make_inputs) else make_inputs)
    assert inputs, "no inputs to check"
    transform = make_transform(seed)
    twin = make_transform(seed)
    outputs, changed = [], False
    for k, x in enumerate(inputs):
        where = f"input {k} {type(x).__name__}{tuple(x.shape)} {x.dtype}"
        before = _snapshot(x)
        y = transform(x)
        assert _equal(x, before), f"{where}: the input was modified in place"
        _check_output(x, y, where)
        assert y is not x, f"{where}: the input object itself was returned"
        again = twin(x)
        assert _equal(y, again), f"{where}: two transforms with seed {seed} gave different outputs"
        changed = changed or not np.array_equal(_as_float(x), _as_float(y))
        outputs.append(y)
    if changes:
        assert changed, "the transform changed none of the inputs"
    if stack is not None:
        assert unstack is not None, "stack needs unstack"
        batched = unstack(make_transform(seed)(stack(inputs)))
        single = make_transform(seed)
        assert len(batched) == len(inputs)
        for k, (x, b) in enumerate(zip(inputs, batched)):
            one = single(x)
            step = 1.0 / _max_value(x.dtype) if _max_value(x.dtype) > 1 else 0.0
            diff = np.abs(_as_float(one) - _as_float(b)).max() / _max_value(x.dtype)
            assert diff <= batch_tolerance + step, f"input {k}: batched differs from unbatched by {diff}"
    return outputs


# -- helpers -------------------------------------------------------------------------------------
def tiny_model(seed: int = 0) -> ka.BlurModel:
    """An untrained ``psf-tiny`` (cell 64, kernel_dim 8, 9x9 PSFs) whose codes give visible blur:
    random decoder and PSF basis, PSFs spread out (not the identity of a fresh model)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):  # deterministic init, global RNG left as it was
        torch.manual_seed(seed)
        model = ka.build_model("psf-tiny")
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.startswith(("decoder", "basis")):
                param.add_(torch.randn(param.shape, generator=generator) * 0.5)
        return model.eval()


def write_bank(path: Path, model, count: int = 24, seed: int = 0, grid: int = 2) -> Path:
    """A complete bank of ``count`` random codes (grid x grid cells) for ``model``."""
    from kernelaug.bank import BankWriter
    rng = np.random.default_rng(seed)
    codes = rng.normal(size=(count, model.kernel_dim, grid, grid)).astype(np.float32)
    with BankWriter(path, model, crop_size=grid * model.cell, source="tests") as writer:
        writer.append(codes, pair_ids=[f"pair{i}" for i in range(count)],
                      crop_boxes=np.zeros((count, 4), np.int64), psnr=np.full(count, 30.0))
    return Path(path)


def textured(rng: np.random.Generator, height: int, width: int, channels: int = 3) -> np.ndarray:
    """A uint8 image with edges (blocks over smooth noise): blur is measurable on it."""
    small = rng.uniform(0, 255, (max(1, height // 8), max(1, width // 8), channels))
    image = np.kron(small, np.ones((8, 8, 1)))[:height, :width]
    if image.shape[:2] != (height, width):
        image = np.pad(image, ((0, height - image.shape[0]), (0, width - image.shape[1]), (0, 0)), mode="edge")
    return image.astype(np.uint8)


def sharpness(image) -> float:
    """Mean squared horizontal+vertical gradient (in [0, 1] units): drops when an image is blurred."""
    x = _as_float(image)
    if isinstance(image, np.ndarray) and image.dtype == np.uint8 or (
            isinstance(image, torch.Tensor) and image.dtype == torch.uint8):
        x = x / 255.0
    if isinstance(image, torch.Tensor):
        x = np.moveaxis(x, -3, -1) if x.ndim >= 3 else x
    return float(np.mean(np.diff(x, axis=0) ** 2) + np.mean(np.diff(x, axis=1) ** 2))


class BlurDataset(torch.utils.data.Dataset):
    """``length`` copies of one image through ``transform`` (for the DataLoader tests)."""

    def __init__(self, image: np.ndarray, transform, length: int = 8):
        self.image, self.transform, self.length = image, transform, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int):
        out = self.transform(self.image)
        return torch.from_numpy(np.ascontiguousarray(out)), torch.utils.data.get_worker_info().id \
            if torch.utils.data.get_worker_info() else -1


class CodeDataset(torch.utils.data.Dataset):
    """Sharp images with codes drawn in the worker (the LearnedBlurBatch recipe)."""

    def __init__(self, image: np.ndarray, bank, length: int = 8, seed: int = 0):
        from kernelaug.transforms import CodeSampler
        self.image, self.length = image, length
        self.sampler = CodeSampler(bank, seed=seed)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int):
        sharp = torch.from_numpy(self.image).permute(2, 0, 1).float() / 255
        return sharp, self.sampler()


def is_exact_crop(crop: np.ndarray, image: np.ndarray) -> bool:
    """Whether ``crop`` (HWC) is a window of ``image``, possibly mirrored left-right or up-down."""
    from numpy.lib.stride_tricks import sliding_window_view
    if crop.shape[0] > image.shape[0] or crop.shape[1] > image.shape[1]:
        return False
    windows = sliding_window_view(image, crop.shape)
    for candidate in (crop, crop[:, ::-1], crop[::-1], crop[::-1, ::-1]):
        if np.all(windows == candidate, axis=tuple(range(-crop.ndim, 0))).any():
            return True
    return False


def correlation(a, b) -> float:
    a, b = _as_float(a).ravel(), _as_float(b).ravel()
    a, b = a - a.mean(), b - b.mean()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))


def assert_aligned_pair(blurred, sharp, image) -> None:
    """The pair recipe's contract: the target is an exact (unblurred) crop of ``image``, the input
    is blurred, and the input is a blur of that same crop (aligned: it correlates with the target
    far better than with the target mirrored or shifted by 8 pixels)."""
    blurred, sharp = np.asarray(blurred), np.asarray(sharp)
    assert blurred.shape == sharp.shape
    assert is_exact_crop(sharp, image), "the sharp target is not an unmodified crop of the image"
    assert not is_exact_crop(blurred, image), "the input was not blurred"
    aligned = correlation(blurred, sharp)
    misaligned = max(correlation(blurred, other) for other in (
        sharp[:, ::-1], sharp[::-1], np.roll(sharp, 8, 0), np.roll(sharp, 8, 1), np.roll(sharp, -8, 1)))
    assert aligned > 0.4 and aligned > misaligned + 0.1, \
        f"input and target are not aligned (correlation {aligned:.2f}, misaligned up to {misaligned:.2f})"
