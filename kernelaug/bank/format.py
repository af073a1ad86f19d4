"""Kernel banks: blur codes in one self-describing HDF5 file, written in batches, read lazily anywhere.

Layout (``format = "kernelaug.bank"``, ``format_version = 1``):

* ``codes`` (N, C, h, w), float16 or float32, chunked, gzip-compressed, resizable along N;
* one row per code: ``pair_id`` (utf-8 string), ``crop_box`` (N, 4) int32 (top, left, height,
  width in the source pair), ``psnr`` (N,) float32 (reconstruction PSNR of F(x, code) against y on
  that crop, computed with the *stored* code), ``pair_index`` (N,) int64 (the pair's position in
  its dataset; -1 when unknown);
* root attributes: ``format``, ``format_version``, ``model_config`` (JSON), ``model_sha256``,
  ``code_shape``, ``crop_size``, ``dtype``, ``created``, ``source_dataset``, ``complete``,
  ``codes_done`` (codes committed so far), and whatever the writer adds (the extraction settings).

A bank file is written whole, then renamed into place (see :mod:`.journal`): while it is being made
its rows live in ``OUT.partial``, and ``OUT`` is never modified in place. Files without
``complete = True`` (from older versions, or made by other tools) are refused by readers unless
``allow_incomplete=True``.
"""

from __future__ import annotations

import datetime
from pathlib import Path

import h5py
import numpy as np

from .. import __version__
from ..models.checkpoint import model_sha256
from ..models import BlurModel

FORMAT = "kernelaug.bank"
FORMAT_VERSION = 1
DTYPES = ("float16", "float32")

_CHUNK_BYTES = 16 * 1024        # target size of one chunk of ``codes`` (random access decompresses one chunk)
_ROW_CHUNK = 4096               # rows per chunk of the provenance datasets
_FLOAT16_MAX = float(np.finfo(np.float16).max)
_PROVENANCE = ("pair_id", "crop_box", "psnr", "pair_index")


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _check_dtype(dtype) -> str:
    name = np.dtype(dtype).name if not isinstance(dtype, str) else dtype
    if name not in DTYPES:
        raise ValueError(f"bank dtype must be one of {DTYPES}, got {dtype!r}")
    return name


def _plain(value):
    """An HDF5 attribute value as a plain Python value (str, int, float, bool, list)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _model_hash(model: BlurModel) -> str:
    return getattr(model, "sha256", None) or model_sha256(model)


def _existing_bank_error(path: Path, resumable: bool = True) -> ValueError | None:
    """Why ``path`` may not be replaced silently (None when it does not exist)."""
    from .journal import partial_path

    partial = partial_path(path)
    if partial.exists() and resumable:
        return ValueError(f"{partial} holds an interrupted extraction into {path}; pass resume=True (--resume) to "
                          f"continue it or overwrite=True (--overwrite) to start over")
    if not path.exists():
        return None
    if path.is_dir():
        return ValueError(f"{path} is a folder, not a bank file; choose a file name ending in .h5")
    try:
        with h5py.File(path, "r") as handle:
            attrs = dict(handle.attrs)
    except OSError:
        attrs = {}
    if attrs.get("format") == FORMAT and _plain(attrs.get("complete", False)) is True:
        return ValueError(f"{path} is already a complete kernel bank ({_plain(attrs.get('codes_done', 0))} codes); "
                          f"pass overwrite=True (--overwrite) to replace it")
    if attrs.get("format") == FORMAT:
        return ValueError(f"{path} holds an interrupted extraction written in place by an older kernelaug, which "
                          f"cannot be resumed safely; pass overwrite=True (--overwrite) to start over")
    return ValueError(f"{path} exists and is not a readable kernel bank (or is open for writing elsewhere); "
                      f"refusing to replace it (pass overwrite=True / --overwrite)")


def _is_complete_bank(path: Path) -> bool:
    """True when ``path`` is a kernel bank file flagged complete."""
    try:
        with h5py.File(path, "r") as handle:
            return handle.attrs.get("format") == FORMAT and _plain(handle.attrs.get("complete", False)) is True
    except OSError:
        return False


def _code_chunk_rows(code_shape, dtype) -> int:
    code_bytes = int(np.prod(code_shape)) * np.dtype(dtype).itemsize
    return max(1, min(4096, _CHUNK_BYTES // max(code_bytes, 1)))


def _root_attrs(code_shape, dtype: str, attrs: dict) -> dict:
    """The root attributes of a new bank: the schema's, then ``attrs`` (not yet complete)."""
    root = {"format": FORMAT, "format_version": FORMAT_VERSION, "code_shape": [int(s) for s in code_shape],
            "dtype": dtype, "created": _now(), "complete": False, "codes_done": 0,
            "kernelaug_version": __version__}
    return {**root, **attrs, "complete": False}


def _set_attrs(handle: h5py.File, attrs: dict) -> None:
    for key, value in attrs.items():
        handle.attrs[key] = np.array(value, np.int64) if key == "code_shape" else value


def _create_codes(handle: h5py.File, total: int, code_shape, dtype: str) -> h5py.Dataset:
    code_shape = tuple(int(s) for s in code_shape)
    rows = _code_chunk_rows(code_shape, dtype)
    return handle.create_dataset("codes", shape=(total, *code_shape), maxshape=(None, *code_shape), dtype=dtype,
                                 chunks=(rows, *code_shape), compression="gzip", compression_opts=4, shuffle=True)


def _create_provenance(handle: h5py.File, data: dict | None = None, total: int = 0) -> None:
    """The provenance datasets, filled with ``data`` (columns) or empty with ``total`` rows."""
    specs = {"pair_id": (h5py.string_dtype("utf-8"), ()), "crop_box": (np.int32, (4,)),
             "psnr": (np.float32, ()), "pair_index": (np.int64, ())}
    for name, (dtype, tail) in specs.items():
        values = None if data is None else data[name]
        count = total if values is None else len(values)
        dataset = handle.create_dataset(name, shape=(count, *tail), maxshape=(None, *tail), dtype=dtype,
                                        chunks=(_ROW_CHUNK, *tail), compression="gzip", compression_opts=4)
        if values is not None and count:
            dataset[...] = values
