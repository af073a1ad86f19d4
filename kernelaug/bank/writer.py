"""Writing kernel banks: :class:`BankWriter` (batched, resumable) and :func:`merge_banks` (shards)."""


from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import numpy as np
import torch

from ..models import BlurModel, config_to_dict
from .format import (FORMAT, _FLOAT16_MAX, _PROVENANCE, _check_dtype, _create_codes,
                     _create_provenance, _existing_bank_error, _is_complete_bank, _model_hash, _now, _root_attrs, _set_attrs)
from .journal import Journal, _plain_json, check_not_open, fsync_dir, fsync_file, partial_path, replace, temporary_path
from .reader import KernelBank

__all__ = ["BankWriter", "merge_banks"]


class BankWriter:
    """Write a kernel bank: ``append`` codes with their provenance, ``commit`` consistent points.

    ``model`` (a :class:`BlurModel`) gives the config, the weights' SHA-256 and the code shape
    ``model.code_shape(crop_size, crop_size)``. ``source`` names the dataset the codes come from and
    ``attrs`` adds root attributes (numbers, strings, booleans). Used as a context manager, a normal
    exit completes the bank and an exception leaves it unfinished::

        with BankWriter("bank.h5", model, crop_size=128, source="test") as writer:
            writer.append(codes, pair_ids=ids, crop_boxes=boxes, psnr=psnr)

    Crash safety (see :mod:`kernelaug.bank.journal`): rows go to the append-only journal
    ``path.partial``; :meth:`commit` makes them durable; :meth:`mark_complete` writes the bank beside
    ``path`` and renames it over ``path``, so an existing file is never modified in place and is
    replaced only by a complete bank. An existing bank is refused unless ``overwrite=True``, a file
    that another process holds open always; ``resume=True`` reopens an unfinished journal written
    with the same model, crop size, dtype and ``attrs`` (a mismatch is a ValueError naming it) at
    its last commit.
    """

    def __init__(self, path, model: BlurModel, crop_size: int, source: str = "", *, dtype="float16",
                 overwrite: bool = False, resume: bool = False, attrs: dict | None = None):
        self.path = Path(path)
        self.partial = partial_path(self.path)
        self.dtype = _check_dtype(dtype)
        self.crop_size = int(crop_size)
        self.code_shape = tuple(model.code_shape(self.crop_size, self.crop_size))
        fixed = {"model_config": json.dumps(config_to_dict(model.config), sort_keys=True),
                 "model_sha256": _model_hash(model), "crop_size": self.crop_size, "source_dataset": str(source),
                 **(attrs or {})}
        source_real = os.path.realpath(source) if source and os.path.exists(source) else None
        self._journal = None
        if self.path.is_dir():
            raise ValueError(f"{self.path} is a folder, not a bank file; choose a file name ending in .h5")
        settings = {"attrs": _root_attrs(self.code_shape, self.dtype, fixed), "source_realpath": source_real}
        if resume and self.partial.exists():
            journal = Journal.open(self.partial)
            try:
                if journal.empty:
                    journal.initialise(settings)
                else:
                    self._check_resumable(journal, fixed, source_real)
            except BaseException:
                journal.close()
                raise
        else:
            if resume and self.path.is_file() and _is_complete_bank(self.path):
                raise ValueError(f"cannot resume {self.path}: it is already complete")
            error = None if overwrite else _existing_bank_error(self.path)
            if error is not None:
                raise error
            check_not_open(self.path)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            journal = Journal.create(self.partial, settings)
        self._journal = journal
        self._count = journal.codes_done

    def _check_resumable(self, journal: Journal, fixed: dict, source_real: str | None) -> None:
        stored = journal.settings["attrs"]
        if stored.get("format") != FORMAT:
            raise ValueError(f"cannot resume {self.partial}: not the journal of a kernel bank")
        expected = {**fixed, "dtype": self.dtype, "code_shape": list(self.code_shape)}
        for key, value in expected.items():
            have = stored.get(key)
            if key == "model_config":
                same = have is not None and json.loads(have) == json.loads(value)
            elif key == "source_dataset":
                same = have == value or (source_real is not None and journal.settings.get("source_realpath")
                                         == source_real)
            else:
                same = have == _plain_json(value)
            if not same:
                what = "model (weights sha256)" if key == "model_sha256" else key
                raise ValueError(f"cannot resume {self.path}: it was written with {what} = {have!r}, "
                                 f"this run has {value!r}; use the same settings or start over with "
                                 f"overwrite=True")

    def __len__(self) -> int:
        """Codes written so far (committed or not)."""
        return self._count

    @property
    def closed(self) -> bool:
        return self._journal is None

    @property
    def attrs(self) -> dict:
        """The bank's root attributes as plain Python values (a copy), as committed so far."""
        journal = self._handle()
        return {**journal.settings["attrs"], **journal.attrs, "codes_done": journal.codes_done}

    @property
    def last_row(self) -> dict | None:
        """``pair_id`` and ``pair_index`` of the last committed code (None when there is none)."""
        return None if self._handle().last_row is None else dict(self._handle().last_row)

    def _handle(self) -> Journal:
        if self._journal is None:
            raise ValueError(f"bank writer for {self.path} is closed")
        return self._journal

    def append(self, codes, pair_ids=None, crop_boxes=None, psnr=None, pair_index=None) -> int:
        """Append codes (n, C, h, w) (numpy or torch) and their provenance; return the new count.

        Missing provenance is stored as unknown: empty pair id, crop box -1, PSNR NaN, pair index -1.
        Codes must be finite and, for a float16 bank, within float16's range.
        """
        journal = self._handle()
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
        if n == 0:
            return self._count
        journal.append_rows({"codes": codes.astype(self.dtype), **columns})
        self._count += n
        return self._count

    def commit(self, **attrs) -> None:
        """Record a consistent point: set ``attrs``, ``codes_done`` = codes written, and make both durable."""
        self._handle().commit(self._count, attrs)

    def mark_complete(self, **attrs) -> None:
        """Commit, write the bank file beside ``path`` and rename it over ``path``; closes the writer.

        A crash before the rename leaves ``path`` as it was and the journal resumable; a file that
        another process holds open at ``path`` is a ValueError (the journal is kept).
        """
        self.commit(**attrs)
        journal = self._handle()
        tmp = temporary_path(self.path)
        final = {**journal.settings["attrs"], **journal.attrs, "codes_done": journal.codes_done,
                 "finished": _now(), "complete": True}
        try:
            _write_bank_file(tmp, journal, self.code_shape, self.dtype, final)
            check_not_open(self.path)
            replace(tmp, self.path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        journal.close()
        self._journal = None
        self.partial.unlink(missing_ok=True)
        fsync_dir(self.path.parent)

    def close(self) -> None:
        """Close the writer as it stands (without committing or completing; the journal stays)."""
        if self._journal is not None:
            self._journal.close()
            self._journal = None

    def __enter__(self) -> "BankWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None and self._journal is not None:
                self.mark_complete()
        finally:
            self.close()


_BLOCK_ROWS = 65536  # rows gathered from the journal per write into the bank file


def _write_bank_file(path: Path, journal: Journal, code_shape, dtype: str, attrs: dict) -> None:
    """The committed rows of ``journal`` as a complete bank at ``path``, fsynced."""
    total = journal.codes_done
    with h5py.File(path, "w") as handle:
        codes = _create_codes(handle, total, code_shape, dtype)
        _create_provenance(handle, total=total)
        start, block = 0, []

        def flush_block():
            nonlocal start, block
            if not block:
                return
            stop = start + sum(len(part["codes"]) for part in block)
            codes[start:stop] = np.concatenate([part["codes"] for part in block])
            for name in _PROVENANCE:
                values = np.array([v for part in block for v in part[name]], dtype=object) if name == "pair_id" \
                    else np.concatenate([part[name] for part in block])
                handle[name][start:stop] = values
            start, block = stop, []

        for part in journal.committed_rows():
            block.append(part)
            if sum(len(p["codes"]) for p in block) >= _BLOCK_ROWS:
                flush_block()
        flush_block()
        if start != total:
            raise ValueError(f"{journal.path} is damaged: {start} rows for {total} committed codes")
        _set_attrs(handle, attrs)
    fsync_file(path)


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
    seen: dict[Path, Path] = {}
    for shard in shards:
        if shard.resolve() in seen:
            raise ValueError(f"shard {shard} is given twice (also as {seen[shard.resolve()]}); "
                             f"each bank may be merged once")
        seen[shard.resolve()] = shard
    if out.is_dir():
        raise ValueError(f"output {out} is a folder, not a bank file; choose a file name ending in .h5")
    banks = [KernelBank(s) for s in shards]  # refuses incomplete or damaged shards
    for bank in banks:
        bank.check_finite()
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
    check_not_open(out)

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
    attrs.update(code_shape=list(first.code_shape), created=_now(), codes_done=total, finished=_now(), complete=True)

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f"{out.name}.merge-{os.getpid()}.tmp")
    try:
        with h5py.File(tmp, "w") as handle:
            if virtual:
                _virtual_codes(handle, banks, which, first.code_shape, first.dtype, out)
            else:
                _copy_codes(handle, banks, which, row, first.code_shape, first.dtype)
            _create_provenance(handle, merged)
            _set_attrs(handle, attrs)
        fsync_file(tmp)
        check_not_open(out)
        replace(tmp, out)
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
    total = len(which)
    codes = _create_codes(handle, total, code_shape, dtype)
    rows = codes.chunks[0]
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
