"""Extraction: run G over a paired dataset and stream the codes into a kernel bank (see bank.py).

Pairs (``find_pairs`` order, at most ``limit``) are read in batches of ``batch_size`` pairs, cut into
square crops (seeded random positions, or a tiling of the whole image), encoded by G, rounded to the
bank's dtype, and scored by the reconstruction PSNR of F(x, stored code) against y. Each batch is
appended to the bank's journal ``OUT.partial`` and committed (see :mod:`kernelaug.bank.journal`), so
memory stays flat, a kill at any moment loses at most the batch in flight, and ``OUT`` appears (or
is replaced) only when the bank is complete.

Determinism: the crop positions of pair ``i`` come from ``np.random.SeedSequence([seed, i])``, so a
resumed run writes the same bank as an uninterrupted one; it must use the same batch size (G's
arithmetic may depend on the batch composition), which resuming checks. Under ``torchrun``
(``RANK``/``WORLD_SIZE``) rank ``r`` takes pairs ``r::world`` into ``OUT.rank{r}-of-{world}.h5``;
:func:`kernelaug.bank.merge_banks` joins the shards.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import h5py
import numpy as np
import torch
from tqdm import tqdm

from ..bank import BankWriter
from ..bank.format import _check_dtype, _is_complete_bank, _plain
from ..bank.journal import partial_path
from ..models.checkpoint import load_model
from ..data.pairs import find_pairs, read_pair
from ..device import resolve_device
from ..metrics import psnr as psnr_db
from ..models import BlurModel
from .refine import check_steps, refine_codes

__all__ = ["extract_bank", "crop_boxes", "shard_path"]

TILING_MODES = ("random", "tile")


def shard_path(out, rank: int, world: int) -> Path:
    """``bank.h5`` -> ``bank.rank{rank}-of-{world}.h5`` (``out`` itself when ``world == 1``)."""
    out = Path(out)
    if world == 1:
        return out
    stem = out.name[:-len(out.suffix)] if out.suffix in (".h5", ".hdf5") else out.name
    return out.with_name(f"{stem}.rank{rank}-of-{world}.h5")


def crop_boxes(height: int, width: int, crop: int, pair_index: int, seed: int = 0, crops_per_pair: int = 1,
               tile: bool = False) -> list[tuple[int, int, int, int]]:
    """Crop boxes (top, left, height, width) of one pair's image of the given size.

    ``tile=False``: ``crops_per_pair`` random positions from ``SeedSequence([seed, pair_index])``;
    ``tile=True``: every non-overlapping ``crop`` x ``crop`` tile of a grid centred on the image.
    """
    if height < crop or width < crop:
        raise ValueError(f"image is {height}x{width} (HxW), smaller than the {crop}x{crop} crop")
    if tile:
        rows, cols = height // crop, width // crop
        top0, left0 = (height - rows * crop) // 2, (width - cols * crop) // 2
        return [(top0 + r * crop, left0 + c * crop, crop, crop) for r in range(rows) for c in range(cols)]
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(pair_index)]))
    boxes = []
    for _ in range(crops_per_pair):
        top, left = int(rng.integers(height - crop + 1)), int(rng.integers(width - crop + 1))
        boxes.append((top, left, crop, crop))
    return boxes


def _batch_flushed(path: Path, pairs_done: int) -> None:
    """Called after each committed batch (a hook for tests that interrupt an extraction)."""


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _read_batch(pairs, indices, crop, seed, crops_per_pair, tile):
    """Crops of the given pairs: (sharp, blurry) float32 arrays (n, 3, crop, crop), boxes, pair indices, ids."""
    sharps, blurries, boxes, owners, ids = [], [], [], [], []
    for index in indices:
        pair = pairs[index]
        sharp, blurry = read_pair(pair)
        try:
            found = crop_boxes(sharp.shape[0], sharp.shape[1], crop, index, seed, crops_per_pair, tile)
        except ValueError as error:
            raise ValueError(f"pair {pair.pair_id!r} ({pair.sharp}): {error}") from None
        for top, left, h, w in found:
            sharps.append(sharp[top:top + h, left:left + w].transpose(2, 0, 1))
            blurries.append(blurry[top:top + h, left:left + w].transpose(2, 0, 1))
        boxes += found
        owners += [index] * len(found)
        ids += [pair.pair_id] * len(found)
    return (np.stack(sharps), np.stack(blurries), np.asarray(boxes, np.int32), np.asarray(owners, np.int64), ids)


def _encode(model: BlurModel, sharp: np.ndarray, blurry: np.ndarray, dtype: str, batch_size: int, device,
            refine: int = 0):
    """Stored codes (numpy, bank dtype) and the PSNR of F(x, stored code) vs y, per crop; G's codes
    refined by ``refine`` steps of :func:`.refine.refine_codes` first."""
    codes, scores = [], []
    for start in range(0, len(sharp), batch_size):
        x = torch.from_numpy(sharp[start:start + batch_size]).to(device)
        y = torch.from_numpy(blurry[start:start + batch_size]).to(device)
        stored = refine_codes(model, x, y, refine).float().cpu().numpy().astype(dtype)
        with torch.no_grad():
            rebuilt = model.apply(x, torch.from_numpy(stored.astype(np.float32)).to(device))
        codes.append(stored)
        scores.append(psnr_db(rebuilt.float(), y).cpu().numpy())
    return np.concatenate(codes), np.concatenate(scores).astype(np.float32)


def extract_bank(model, data, out, crop: int = 256, crops_per_pair: int = 1, tile: bool = False,
                 batch_size: int = 8, device="cpu", seed: int = 0, dtype: str = "float16", resume: bool = False,
                 overwrite: bool = False, limit: int | None = None, split: str | None = None,
                 progress: bool = True, rank: int = 0, world: int = 1, refine: int = 0) -> dict:
    """Extract the codes of a paired dataset into a kernel bank at ``out``; return a summary dict.

    ``model``: a :class:`BlurModel` (moved to ``device``) or a model file / pretrained name.
    ``data``/``split``: any layout :func:`kernelaug.data.pairs.find_pairs` reads; ``limit``: at most
    that many pairs (the first ones). ``crop``: square crop side, a multiple of the model's cell;
    ``crops_per_pair`` random crops per pair, or ``tile=True`` to tile each whole image.
    ``batch_size``: pairs per committed batch, and crops per forward pass. ``dtype``: float16 or
    float32 storage. ``resume``: continue the interrupted extraction into ``out`` (same model, seed,
    crop, dtype, tiling, batch size and dataset -- by any path to it -- else ValueError); an
    existing bank is otherwise refused unless ``overwrite``, and one that another process holds
    open always. ``rank``/``world``: this process's shard (see :func:`shard_path`). ``refine``: refine
    each code by that many gradient steps before storing it (:mod:`.refine`; about 3 x ``refine``
    applications of F per crop; recorded in the bank as ``refine_steps``).
    """
    crop = _positive_int("crop", crop)
    crops_per_pair = _positive_int("crops_per_pair", crops_per_pair)
    batch_size = _positive_int("batch_size", batch_size)
    world = _positive_int("world", world)
    if isinstance(rank, bool) or int(rank) != rank or not 0 <= rank < world:
        raise ValueError(f"rank must be in [0, {world}), got {rank!r}")
    if tile and crops_per_pair != 1:
        raise ValueError("choose either tile=True (tile each image) or crops_per_pair > 1 (random crops), not both")
    if limit is not None:
        limit = _positive_int("limit", limit)
    refine = check_steps(refine)
    dtype = _check_dtype(dtype)
    if not isinstance(model, BlurModel):
        model = load_model(model)
    if crop % model.cell:
        raise ValueError(f"crop {crop} must be a multiple of the model's cell ({model.cell} px)")

    path = shard_path(out, rank, world)
    source_file = getattr(model, "source", None)
    if source_file and path.exists() and os.path.exists(source_file) and os.path.samefile(source_file, path):
        raise ValueError(f"output {path} is the model file itself; choose another output path")
    pairs = find_pairs(data, split=split)
    if limit is not None:
        pairs = pairs[:limit]
    mine = list(range(rank, len(pairs), world))
    tiling = "tile" if tile else "random"
    fixed = {"seed": int(seed), "crops_per_pair": crops_per_pair, "tiling": tiling, "split": split or "",
             "rank": int(rank), "world": world, "batch_size": batch_size, "refine_steps": refine}
    source = os.path.normpath(str(data))
    device = resolve_device(device, world)

    resumed_from = 0
    if resume and not partial_path(path).exists() and path.exists() and _is_complete_bank(path):
        _check_complete(path, model, crop, source, dtype, {**fixed, "limit": -1 if limit is None else limit})
        return _summary(path, model, 0, 0, 0.0, rank, world, resumed_from=len(mine), complete=True)
    writer = BankWriter(path, model, crop, source, dtype=dtype, overwrite=overwrite, resume=resume, attrs=fixed)
    was_training = model.training
    start_time = time.perf_counter()
    written = 0
    bar = None
    try:
        resumed_from = int(writer.attrs.get("pairs_done", 0))
        _check_resumed(writer, pairs, mine, resumed_from)
        model.to(device).eval()
        todo = mine[resumed_from:]
        batches = [todo[i:i + batch_size] for i in range(0, len(todo), batch_size)]
        suffix = f" [{rank}/{world}]" if world > 1 else ""
        bar = tqdm(total=len(mine), initial=resumed_from, disable=not progress, desc=f"extract{suffix}",
                   unit="pair", dynamic_ncols=True)
        done = resumed_from
        writer.commit(pairs_done=done, pairs_total=len(mine), limit=-1 if limit is None else limit)
        with ThreadPoolExecutor(max_workers=1) as pool:  # reads the next batch while G and F run
            pending = pool.submit(_read_batch, pairs, batches[0], crop, seed, crops_per_pair, tile) if batches else None
            for k, batch in enumerate(batches):
                sharp, blurry, boxes, owners, ids = pending.result()
                if k + 1 < len(batches):
                    pending = pool.submit(_read_batch, pairs, batches[k + 1], crop, seed, crops_per_pair, tile)
                codes, scores = _encode(model, sharp, blurry, dtype, batch_size, device, refine)
                writer.append(codes, pair_ids=ids, crop_boxes=boxes, psnr=scores, pair_index=owners)
                done += len(batch)
                written += len(codes)
                writer.commit(pairs_done=done)
                _batch_flushed(path, done)
                bar.update(len(batch))
        writer.mark_complete()
    finally:
        if bar is not None:
            bar.close()
        writer.close()
        model.train(was_training)
    elapsed = time.perf_counter() - start_time
    return _summary(path, model, written, len(mine) - resumed_from, elapsed, rank, world, resumed_from, True)


def _check_complete(path: Path, model, crop, source, dtype, fixed) -> None:
    """A complete bank asked to resume: fine when it was made with the same settings."""
    from ..bank import KernelBank

    bank = KernelBank(path)
    with bank:
        bank.check(model)
        attrs = bank.attrs
        expected = {**fixed, "crop_size": crop, "source_dataset": source, "dtype": dtype}
        for key, value in expected.items():
            if key == "source_dataset" and _same_folder(attrs.get(key), value):
                continue
            if attrs.get(key) != value:
                raise ValueError(f"cannot resume {path}: it was written with {key} = {attrs.get(key)!r}, "
                                 f"this run has {value!r}")


def _same_folder(a, b) -> bool:
    return isinstance(a, str) and os.path.exists(a) and os.path.exists(b) and os.path.samefile(a, b)


def _check_resumed(writer: BankWriter, pairs, mine, pairs_done: int) -> None:
    """The committed codes must come from the same pairs as this run would have used."""
    if pairs_done == 0:
        return
    if pairs_done > len(mine):
        raise ValueError(f"cannot resume {writer.path}: it holds {pairs_done} pairs but this run has only "
                         f"{len(mine)} (different dataset, split or limit?)")
    last = writer.last_row or {"pair_index": -1, "pair_id": None}
    last_index, last_id = last["pair_index"], last["pair_id"]
    expected = mine[pairs_done - 1]
    if last_index != expected or last_id != pairs[expected].pair_id:
        raise ValueError(f"cannot resume {writer.path}: the dataset changed since the interrupted run (its last "
                         f"pair is #{last_index} {last_id!r}, this run's pair #{expected} is "
                         f"{pairs[expected].pair_id!r})")


def _summary(path: Path, model, written: int, pairs_written: int, elapsed: float, rank: int, world: int,
             resumed_from: int, complete: bool) -> dict:
    with h5py.File(path, "r") as handle:
        scores = handle["psnr"][:]
        total = int(handle["codes"].shape[0])
        pairs = int(handle.attrs.get("pairs_done", 0))
        sha = str(_plain(handle.attrs["model_sha256"]))
        dtype = str(handle["codes"].dtype)
    known = scores[np.isfinite(scores)]
    return {"out": str(path), "codes": total, "pairs": pairs, "codes_written": written,
            "pairs_written": pairs_written, "resumed_from_pairs": resumed_from,
            "mean_psnr": float(known.mean()) if known.size else float("nan"), "dtype": dtype,
            "wall_time_s": round(elapsed, 3), "pairs_per_s": pairs_written / elapsed if elapsed > 0 else 0.0,
            "complete": complete, "rank": rank, "world": world, "model_sha256": sha}
