"""Writing kernel banks: :class:`BankWriter` (batched, resumable) and :func:`merge_banks` (shards)."""


from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import numpy as np
import torch

from ..models import BlurModel, config_to_dict
from .format import (FORMAT, _CHUNK_BYTES, _FLOAT16_MAX, _PROVENANCE, _check_dtype, _create, _create_provenance,
                     _existing_bank_error, _model_hash, _now, _plain)
from .reader import KernelBank

__all__ = ["BankWriter", "merge_banks"]


class BankWriter:
    """Write a kernel bank: ``append`` codes with their provenance, ``commit`` consistent points.

    ``model`` (a :class:`BlurModel`) gives the config, the weights' SHA-256 and the code shape
    ``model.code_shape(crop_size, crop_size)``. ``source`` names the dataset the codes come from and
    ``attrs`` adds root attributes (numbers, strings, booleans). Used as a context manager, a normal
    exit marks the bank complete and an exception leaves it incomplete::

        with BankWriter("bank.h5", model, crop_size=128, source="test") as writer:
            writer.append(codes, pair_ids=ids, crop_boxes=boxes, psnr=psnr)

    An existing file is refused unless ``overwrite=True``; ``resume=True`` reopens an incomplete bank
    written with the same model, crop size, dtype and ``attrs`` (a mismatch is a ValueError naming
    it) and truncates it to its last commit.
    """

    def __init__(self, path, model: BlurModel, crop_size: int, source: str = "", *, dtype="float16",
                 overwrite: bool = False, resume: bool = False, attrs: dict | None = None):
        self.path = Path(path)
        self.dtype = _check_dtype(dtype)
        self.crop_size = int(crop_size)
        self.code_shape = tuple(model.code_shape(self.crop_size, self.crop_size))
        fixed = {"model_config": json.dumps(config_to_dict(model.config), sort_keys=True),
                 "model_sha256": _model_hash(model), "crop_size": self.crop_size, "source_dataset": str(source),
                 **(attrs or {})}
        self._file = None
        if resume and self.path.exists():
            self._file = self._reopen(fixed)
        else:
            error = None if overwrite else _existing_bank_error(self.path)
            if error is not None:
                raise error
            self._file = _create(self.path, self.code_shape, self.dtype, fixed)
        self._count = int(self._file.attrs["codes_done"])

    def _reopen(self, fixed: dict) -> h5py.File:
        try:
            handle = h5py.File(self.path, "r+")
        except OSError as error:
            raise ValueError(f"cannot resume {self.path}: cannot open it for writing (still open in a reader, "
                             f"or damaged by the interruption? then start over with overwrite=True): "
                             f"{error}") from None
        try:
            attrs = {k: _plain(v) for k, v in handle.attrs.items()}
            if attrs.get("format") != FORMAT:
                raise ValueError(f"cannot resume {self.path}: not a kernel bank")
            if attrs.get("complete"):
                raise ValueError(f"cannot resume {self.path}: it is already complete")
            expected = {**fixed, "dtype": self.dtype, "code_shape": list(self.code_shape)}
            for key, value in expected.items():
                stored = attrs.get(key)
                if key == "model_config":
                    same = stored is not None and json.loads(stored) == json.loads(value)
                else:
                    same = stored == _plain(np.asarray(value)) if isinstance(value, (list, tuple)) else stored == value
                if not same:
                    what = "model (weights sha256)" if key == "model_sha256" else key
                    raise ValueError(f"cannot resume {self.path}: it was written with {what} = {stored!r}, "
                                     f"this run has {value!r}; use the same settings or start over with "
                                     f"overwrite=True")
            done = int(attrs.get("codes_done", 0))
            for name in ("codes", *_PROVENANCE):
                if name not in handle:
                    raise ValueError(f"cannot resume {self.path}: dataset {name!r} is missing")
                if handle[name].shape[0] < done:
                    raise ValueError(f"cannot resume {self.path}: {name!r} holds {handle[name].shape[0]} rows, "
                                     f"fewer than the {done} committed")
                handle[name].resize(done, axis=0)  # drop a partly written batch
            handle.flush()
        except BaseException:
            handle.close()
            raise
        return handle

    def __len__(self) -> int:
        """Codes written so far (committed or not)."""
        return self._count

    @property
    def closed(self) -> bool:
        return self._file is None

    @property
    def attrs(self) -> dict:
        """The bank's root attributes as plain Python values (a copy)."""
        return {k: _plain(v) for k, v in self._handle().attrs.items()}

    def _handle(self) -> h5py.File:
        if self._file is None:
            raise ValueError(f"bank writer for {self.path} is closed")
        return self._file

    def append(self, codes, pair_ids=None, crop_boxes=None, psnr=None, pair_index=None) -> int:
        """Append codes (n, C, h, w) (numpy or torch) and their provenance; return the new count.

        Missing provenance is stored as unknown: empty pair id, crop box -1, PSNR NaN, pair index -1.
        Codes must be finite and, for a float16 bank, within float16's range.
        """
        handle = self._handle()
        if isinstance(codes, torch.Tensor):
            codes = codes.detach().cpu().numpy()
        codes = np.asarray(codes)
        if codes.ndim == len(self.code_shape):
            codes = codes[None]
        if codes.shape[1:] != self.code_shape:
            raise ValueError(f"codes of shape {codes.shape} do not fit bank {self.path}: expected "
                             f"(n, {', '.join(map(str, self.code_shape))})")
        if not np.issubdtype(codes.dtype, np.floating):
            raise ValueError(f"codes must be floating point, got {codes.dtype}")
        if not np.all(np.isfinite(codes)):
            raise ValueError(f"codes for {self.path} contain NaN or infinity")
        if self.dtype == "float16" and codes.size and float(np.abs(codes).max()) > _FLOAT16_MAX:
            raise ValueError(f"codes reach {float(np.abs(codes).max()):.4g}, beyond float16's range "
                             f"({_FLOAT16_MAX:.0f}); write the bank with dtype='float32'")
        n = codes.shape[0]
        columns = {
            "pair_id": [""] * n if pair_ids is None else ([pair_ids] * n if isinstance(pair_ids, str)
                                                           else [str(p) for p in pair_ids]),
            "crop_box": np.full((n, 4), -1, np.int32) if crop_boxes is None
            else np.asarray(crop_boxes, np.int64).reshape(-1, 4),
            "psnr": np.full(n, np.nan, np.float32) if psnr is None else np.asarray(psnr, np.float32).reshape(-1),
            "pair_index": np.full(n, -1, np.int64) if pair_index is None
            else np.asarray(pair_index, np.int64).reshape(-1),
        }
        for name, values in columns.items():
            if len(values) != n:
                raise ValueError(f"{name} has {len(values)} entries for {n} codes")
        start, stop = self._count, self._count + n
        if n == 0:
            return self._count
        handle["codes"].resize(stop, axis=0)
        handle["codes"][start:stop] = codes.astype(self.dtype)
        for name, values in columns.items():
            handle[name].resize(stop, axis=0)
            handle[name][start:stop] = values
        self._count = stop
        return stop

    def commit(self, **attrs) -> None:
        """Record a consistent point: set ``attrs``, ``codes_done`` = codes written, and flush to disk."""
        handle = self._handle()
        for key, value in attrs.items():
            handle.attrs[key] = value
        handle.attrs["codes_done"] = self._count
        handle.flush()

    def mark_complete(self, **attrs) -> None:
        """Commit, then flag the bank complete (the last write: a crash before it leaves it incomplete)."""
        self.commit(**attrs)
        handle = self._handle()
        handle.attrs["finished"] = _now()
        handle.attrs["complete"] = True
        handle.flush()

    def close(self) -> None:
        """Close the file as it stands (without committing or completing)."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> "BankWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None and self._file is not None:
                self.mark_complete()
        finally:
            self.close()


_RUN_KEYS = ("source_dataset", "seed", "crops_per_pair", "tiling", "split", "limit", "world")
_MATCH_KEYS = ("model_sha256", "code_shape", "crop_size", "dtype")


def merge_banks(shards, out, virtual: bool = False, overwrite: bool = False) -> dict:
    """Join complete banks made by one model with one crop size into ``out``; return a summary.

    Shards of one ``torchrun`` extraction (same run settings, ranks 0..world-1, all present) are
    interleaved by pair index, so the result equals a single-process extraction; other banks are
    concatenated in the order given. ``virtual=True`` makes ``codes`` an HDF5 virtual dataset over
    the shards (referenced by paths relative to ``out``; keep them beside it); provenance is copied.
    """
    shards = [Path(s) for s in shards]
    out = Path(out)
    if not shards:
        raise ValueError("merge_banks needs at least one shard")
    if any(s.resolve() == out.resolve() for s in shards):
        raise ValueError(f"output {out} is also one of the shards")
    banks = [KernelBank(s) for s in shards]  # refuses incomplete or damaged shards
    first = banks[0]
    for bank in banks[1:]:
        for key in _MATCH_KEYS:
            if bank.attrs.get(key) != first.attrs.get(key):
                raise ValueError(f"cannot merge {bank.path} with {first.path}: different {key} "
                                 f"({bank.attrs.get(key)!r} vs {first.attrs.get(key)!r})")
        if bank.model_config != first.model_config:
            raise ValueError(f"cannot merge {bank.path} with {first.path}: different model configs")
    error = None if overwrite else _existing_bank_error(out, resumable=False)
    if error is not None:
        raise error

    world = first.attrs.get("world", 1)
    sharded = (len(banks) > 1 and isinstance(world, int) and world > 1
               and all(all(b.attrs.get(k) == first.attrs.get(k) for k in _RUN_KEYS) for b in banks))
    if sharded:
        ranks = sorted(b.attrs.get("rank") for b in banks)
        if ranks != list(range(world)):
            raise ValueError(f"shards of a {world}-process extraction must be given once each for ranks "
                             f"0..{world - 1}; got ranks {ranks}")
        banks.sort(key=lambda b: b.attrs["rank"])

    columns = {name: [b.column(name) for b in banks] for name in _PROVENANCE}
    sizes = [len(b) for b in banks]
    which = np.concatenate([np.full(n, k, np.int64) for k, n in enumerate(sizes)]) if sizes else np.zeros(0, int)
    row = np.concatenate([np.arange(n) for n in sizes])
    if sharded:
        order = np.argsort(np.concatenate(columns["pair_index"]), kind="stable")
        which, row = which[order], row[order]
    else:
        order = np.arange(len(which))
    merged = {name: np.concatenate(parts)[order] for name, parts in columns.items()}
    total = int(sum(sizes))

    attrs = {k: v for k, v in first.attrs.items() if k not in ("complete", "codes_done", "finished", "created")}
    if sharded:
        attrs.update(rank=0, world=1, pairs_done=int(sum(b.attrs.get("pairs_done", 0) for b in banks)),
                     pairs_total=int(sum(b.attrs.get("pairs_total", 0) for b in banks)))
    else:
        sources = list(dict.fromkeys(b.source_dataset for b in banks))
        attrs["source_dataset"] = " + ".join(sources)
    attrs["merged_from"] = json.dumps([os.path.relpath(b.path.resolve(), out.resolve().parent) for b in banks])
    attrs["code_shape"] = np.array(first.code_shape, np.int64)

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    try:
        with h5py.File(tmp, "w") as handle:
            if virtual:
                _virtual_codes(handle, banks, which, first.code_shape, first.dtype, out)
            else:
                _copy_codes(handle, banks, which, row, first.code_shape, first.dtype)
            _create_provenance(handle, merged)
            for key, value in attrs.items():
                handle.attrs[key] = value
            handle.attrs["created"] = _now()
            handle.attrs["codes_done"] = total
            handle.attrs["finished"] = _now()
            handle.attrs["complete"] = True
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        for bank in banks:
            bank.close()
    return {"out": str(out), "codes": total, "shards": len(banks), "virtual": bool(virtual),
            "interleaved": bool(sharded), "file_size_bytes": out.stat().st_size}


def _runs(which: np.ndarray):
    """(shard, start, stop) over maximal runs of equal ``which`` in output order."""
    if which.size == 0:
        return
    edges = np.concatenate([[0], np.flatnonzero(np.diff(which)) + 1, [which.size]])
    for start, stop in zip(edges[:-1], edges[1:]):
        yield int(which[start]), int(start), int(stop)


def _copy_codes(handle, banks, which, row, code_shape, dtype) -> None:
    code_bytes = int(np.prod(code_shape)) * np.dtype(dtype).itemsize
    rows = max(1, min(4096, _CHUNK_BYTES // max(code_bytes, 1)))
    total = len(which)
    codes = handle.create_dataset("codes", shape=(total, *code_shape), maxshape=(None, *code_shape), dtype=dtype,
                                  chunks=(rows, *code_shape), compression="gzip", compression_opts=4, shuffle=True)
    block = max(rows, 65536 // max(1, rows) * rows)
    for start in range(0, total, block):
        stop = min(total, start + block)
        part = np.empty((stop - start, *code_shape), dtype)
        for shard, a, b in _runs(which[start:stop]):
            rows_needed = row[start + a:start + b]
            part[a:b] = banks[shard]._rows("codes", rows_needed)
        codes[start:stop] = part


def _virtual_codes(handle, banks, which, code_shape, dtype, out: Path) -> None:
    total = len(which)
    layout = h5py.VirtualLayout(shape=(total, *code_shape), dtype=dtype)
    for k, bank in enumerate(banks):
        count = len(bank)
        if count == 0:
            continue
        name = os.path.relpath(bank.path.resolve(), out.resolve().parent)
        source = h5py.VirtualSource(name, "codes", shape=(count, *code_shape))
        positions = np.flatnonzero(which == k)
        space = h5py.h5s.create_simple((total, *code_shape))
        space.select_none()
        edges = np.concatenate([[0], np.flatnonzero(np.diff(positions) != 1) + 1, [positions.size]])
        for a, b in zip(edges[:-1], edges[1:]):
            space.select_hyperslab((int(positions[a]), 0, 0, 0), (int(b - a), *code_shape),
                                   op=h5py.h5s.SELECT_OR)
        layout.dcpl.set_virtual(space, os.fsencode(name), b"codes", source.sel.id)
    handle.create_virtual_dataset("codes", layout, fillvalue=0)
