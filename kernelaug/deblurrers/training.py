"""Training, evaluating and storing deblurrers.

Two ways to train: :func:`train_deblurrer` on batches a DataLoader blurs afresh for every sample
(the augmentation as users run it; see :mod:`.blurred_crops`), and :func:`train_srn` on in-memory
uint8 pairs (N, H, W, 3) of a paired dataset, cropped and flipped at random every step.
:func:`evaluate_deblurrer` scores any of them. All randomness comes from the seeds passed in.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from tqdm.auto import tqdm

from ..models.checkpoint import checked_state, write_safetensors
from ..metrics import psnr
from ..metrics import ssim as metric_ssim
from .blurred_crops import BlurredCrops, finish_batch, make_loader
from .srn import SRN_FORMAT, SRNConfig, SRNDeblur


@dataclass(frozen=True)
class PairArrays:
    """Aligned sharp and blurry images, uint8 (N, H, W, 3) each."""

    sharp: np.ndarray
    blurry: np.ndarray

    def __post_init__(self):
        for name in ("sharp", "blurry"):
            value = getattr(self, name)
            if not isinstance(value, np.ndarray) or value.ndim != 4 or value.shape[-1] != 3 or value.dtype != np.uint8:
                got = (value.shape, value.dtype) if isinstance(value, np.ndarray) else type(value).__name__
                raise ValueError(f"{name} must be a uint8 array (N, H, W, 3), got {got}")
        if self.sharp.shape != self.blurry.shape:
            raise ValueError(f"sharp and blurry shapes differ: {self.sharp.shape} vs {self.blurry.shape}")
        if len(self.sharp) == 0:
            raise ValueError("no pairs")

    def __len__(self) -> int:
        return len(self.sharp)

    def batch(self, rng: np.random.Generator, size: int, crop: int) -> tuple[torch.Tensor, torch.Tensor]:
        """A random batch of aligned crops with the same random flips, as float (B, 3, crop, crop)."""
        n, height, width, _ = self.sharp.shape
        if crop > min(height, width):
            raise ValueError(f"crop {crop} is larger than the images ({height}x{width})")
        index = rng.integers(0, n, size)
        tops = rng.integers(0, height - crop + 1, size)
        lefts = rng.integers(0, width - crop + 1, size)
        flips = rng.integers(0, 4, size)
        sharp, blurry = [], []
        for i, top, left, flip in zip(index, tops, lefts, flips):
            window = (slice(top, top + crop), slice(left, left + crop))
            pair = self.sharp[i][window], self.blurry[i][window]
            if flip & 1:
                pair = tuple(p[:, ::-1] for p in pair)
            if flip & 2:
                pair = tuple(p[::-1] for p in pair)
            sharp.append(pair[0])
            blurry.append(pair[1])
        return to_tensor(np.stack(sharp)), to_tensor(np.stack(blurry))


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float (N, 3, H, W) in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """float (N, 3, H, W) in [0, 1] -> uint8 (N, H, W, 3)."""
    return (images.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


@dataclass(frozen=True)
class SRNTraining:
    """Budget and optimiser of one SRN training run (Adam, cosine decay to ``lr / 100``)."""

    steps: int = 1000
    batch_size: int = 8
    crop: int = 128
    lr: float = 1e-4
    seed: int = 0

    def __post_init__(self):
        for name in ("steps", "batch_size", "crop"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")


def train_srn(pairs: PairArrays, config: SRNConfig, training: SRNTraining, progress: bool = True,
              desc: str = "srn train", device: str | torch.device = "cpu",
              model: SRNDeblur | None = None) -> tuple[SRNDeblur, dict]:
    """Train a fresh SRN-Deblur of ``config`` (or go on training ``model``) on ``pairs`` on
    ``device`` (Adam, cosine decay to ``lr / 100``); return it (in eval mode) and a summary with the
    loss history (mean per 50 steps) and wall time."""
    torch.manual_seed(training.seed)  # weight initialisation; batches come from their own generator
    if model is None:
        model = SRNDeblur(config)
    elif model.config != config:
        raise ValueError(f"model has config {model.config}, training was asked for {config}")
    batches = pair_batches(pairs, training.batch_size, training.crop, training.steps, training.seed)
    return train_deblurrer(model, batches, training.steps, lr=training.lr, device=device, crop=training.crop,
                           progress=progress, desc=desc, log_every=50, min_lr_ratio=0.01)


def pair_batches(pairs: PairArrays, batch_size: int, crop: int, steps: int, seed: int = 0):
    """``steps`` batches ``(blurry, sharp, deferred)`` of random aligned crops of ``pairs``, seeded,
    in the form :func:`train_deblurrer` takes (nothing is deferred: the pairs are blurred already)."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1,)))
    for _ in range(steps):
        sharp, blurry = pairs.batch(rng, batch_size, crop)
        yield blurry, sharp, torch.zeros(len(sharp), dtype=torch.bool)


def ssim(prediction: np.ndarray, target: np.ndarray) -> float:
    """SSIM of two uint8 (H, W, 3) images with :func:`kernelaug.metrics.ssim`."""
    return float(metric_ssim(to_tensor(prediction[None]), to_tensor(target[None])))


def evaluate_deblurrer(model, pairs: PairArrays, progress: bool = False, desc: str = "eval",
                 keep: int = 0) -> dict:
    """Mean PSNR and SSIM of the deblurred images against the sharp ones, with the blurry input's
    beside them. Images are quantised to 8 bits before measuring, as when saved. The first
    ``keep`` outputs are returned under ``"outputs"`` (uint8) for figures."""
    scores = {"psnr": [], "ssim": [], "blurry_psnr": [], "blurry_ssim": []}
    device = next(model.parameters()).device
    outputs = []
    for i in tqdm(range(len(pairs)), desc=desc, disable=not progress, dynamic_ncols=True):
        sharp, blurry = pairs.sharp[i], pairs.blurry[i]
        restored = to_uint8(model.deblur(to_tensor(blurry[None]).to(device)))[0]
        if i < keep:
            outputs.append(restored)
        target = to_tensor(sharp[None])
        for prefix, image in (("", restored), ("blurry_", blurry)):
            scores[prefix + "psnr"].append(float(psnr(to_tensor(image[None]), target)[0]))
            scores[prefix + "ssim"].append(ssim(image, sharp))
    result = {name: float(np.mean(values)) for name, values in scores.items()}
    result["pairs"] = len(pairs)
    if keep:
        result["outputs"] = outputs
    return result


evaluate_srn = evaluate_deblurrer


def train_deblurrer(model, batches, steps: int, lr: float | None = None, device: str | torch.device = "cpu",
                    scale: float = 1.0, crop: int = 96, batch_blur=None, progress: bool = True,
                    desc: str = "train", log_every: int = 25, min_lr_ratio: float = 1e-3,
                    on_checkpoint=None, checkpoint_every: int = 0) -> tuple[object, dict]:
    """Train ``model`` for ``steps`` batches ``(blurry, sharp, deferred)`` of camera-resolution crops.

    Each batch goes to ``device``; samples flagged ``deferred`` are blurred there by ``batch_blur``
    (a :class:`kernelaug.LearnedBlurBatch`); the batch is then downscaled by ``scale`` and cropped
    to ``crop`` (:func:`.blurred_crops.finish_batch`). The optimiser and loss are the network's own
    (:mod:`.nets`), with a cosine decay to ``lr * min_lr_ratio``. Returns the model in eval mode and a
    summary: loss history (mean per ``log_every`` steps), wall time, steps per second.
    ``on_checkpoint(step, model)`` is called with the model in eval mode every ``checkpoint_every``
    steps (e.g. to score a learning curve).
    """
    from .nets import deblurrer_loss, make_optimizer

    model = model.to(device).train()
    optimiser = make_optimizer(model, lr)
    base_lr = optimiser.param_groups[0]["lr"]
    history, window = [], []
    start = time.perf_counter()
    bar = tqdm(total=steps, desc=desc, disable=not progress, dynamic_ncols=True)
    step = 0
    for blurry, sharp, deferred in batches:
        if step == steps:
            break
        blurry, sharp = blurry.to(device, non_blocking=True), sharp.to(device, non_blocking=True)
        if deferred.any():
            if batch_blur is None:
                raise ValueError("the loader deferred learned blurs but no batch_blur was given")
            index = deferred.nonzero().flatten().to(device)
            blurry[index] = batch_blur(sharp[index])[0].to(blurry.dtype)
        blurry, sharp = finish_batch(blurry, sharp, scale, crop)
        for group in optimiser.param_groups:
            group["lr"] = base_lr * (min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + np.cos(np.pi * step / steps)))
        loss = deblurrer_loss(model, model(blurry), sharp)
        if not torch.isfinite(loss):
            raise RuntimeError(f"training diverged at step {step} (loss {loss.item()}); lower the learning rate")
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        window.append(loss.item())
        step += 1
        bar.update()
        if len(window) == log_every or step == steps:
            history.append(float(np.mean(window)))
            bar.set_postfix(loss=f"{history[-1]:.4f}")
            window = []
        if on_checkpoint is not None and checkpoint_every and step % checkpoint_every == 0:
            model.eval()
            on_checkpoint(step, model)
            model.train()
    bar.close()
    if step < steps:
        raise ValueError(f"the loader ran out after {step} of {steps} steps; give it steps x batch size samples")
    elapsed = time.perf_counter() - start
    model.eval()
    return model, {"steps": steps, "wall_time_s": elapsed, "steps_per_s": steps / elapsed,
                   "loss_history": history, "log_every": log_every}


def train_with_fresh_blur(model, images: list[np.ndarray], blur, steps: int, batch_size: int, crop: int,
                          scale: float = 1.0, seed: int = 0, workers: int = 1, device: str | torch.device = "cpu",
                          batch_blur=None, lr: float | None = None, progress: bool = True,
                          desc: str = "train", on_checkpoint=None, checkpoint_every: int = 0) -> tuple[object, dict]:
    """Train ``model`` on crops of sharp ``images`` blurred afresh per sample by ``blur`` in
    ``workers`` DataLoader workers (:class:`.blurred_crops.BlurredCrops`); with ``batch_blur`` (a
    :class:`kernelaug.LearnedBlurBatch`) learned codes are only drawn there and applied on ``device``."""
    dataset = BlurredCrops(images, blur, crop, steps * batch_size, scale, seed=seed, defer_learned=batch_blur is not None)
    loader = make_loader(dataset, batch_size, workers, seed)
    return train_deblurrer(model, loader, steps, lr=lr, device=device, scale=scale, crop=crop,
                           batch_blur=batch_blur, progress=progress, desc=desc, on_checkpoint=on_checkpoint,
                           checkpoint_every=checkpoint_every)


def save_srn(model: SRNDeblur, path: str | os.PathLike, provenance: dict | None = None) -> Path:
    """Write an SRN-Deblur to a safetensors file (config and provenance in the metadata), atomically."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    metadata = {"format": SRN_FORMAT, "config": json.dumps(model.config.to_dict()),
                "provenance": json.dumps(provenance or {})}
    return write_safetensors(path, tensors, metadata)


def load_srn(path: str | os.PathLike, device: str | torch.device = "cpu") -> SRNDeblur:
    """Read an SRN-Deblur written by :func:`save_srn`; clear errors for other files. The config and
    the tensor names and shapes in the header are checked before any weight is allocated."""
    from ..models.checkpoint import _json_field

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"SRN model file {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            if metadata.get("format") != SRN_FORMAT:
                raise ValueError(f"{path} is not an SRN-Deblur model (metadata format {metadata.get('format')!r}, "
                                 f"expected {SRN_FORMAT!r})")
            try:
                config = SRNConfig.from_dict(_json_field(path, metadata, "config"))
            except TypeError as error:
                raise ValueError(f"{path}: {error}") from None
            provenance = _json_field(path, metadata, "provenance", "{}")
            with torch.device("meta"):
                model = SRNDeblur(config)
            state = checked_state(handle, path, model)
    except (SafetensorError, OSError) as error:
        raise ValueError(f"{path} is not a readable SRN-Deblur safetensors file: {error}") from None
    model = model.to_empty(device="cpu")  # every weight is overwritten
    model.load_state_dict(state)
    model.provenance = provenance
    return model.to(device).eval()


def load_pair_arrays(pairs, size: int | None = None, limit: int | None = None) -> PairArrays:
    """Read dataset pairs (from :func:`kernelaug.data.pairs.find_pairs`) into memory as uint8, each
    centre-cropped to ``size`` (all pairs must then share one size when ``size`` is None)."""
    from ..data.pairs import read_pair

    pairs = list(pairs)[:limit] if limit else list(pairs)
    if not pairs:
        raise ValueError("no pairs to load")
    sharp, blurry = [], []
    for pair in pairs:
        s, b = read_pair(pair)
        if size is not None:
            if min(s.shape[:2]) < size:
                raise ValueError(f"{pair.sharp} is {s.shape[1]}x{s.shape[0]}, smaller than the crop {size}")
            top, left = (s.shape[0] - size) // 2, (s.shape[1] - size) // 2
            s, b = (x[top:top + size, left:left + size] for x in (s, b))
        elif sharp and s.shape != sharp[0].shape:
            raise ValueError(f"{pair.sharp} is {s.shape[1]}x{s.shape[0]} but the first pair is "
                             f"{sharp[0].shape[1]}x{sharp[0].shape[0]}; pass a crop size")
        sharp.append(np.round(s * 255).astype(np.uint8))
        blurry.append(np.round(b * 255).astype(np.uint8))
    return PairArrays(np.stack(sharp), np.stack(blurry))
