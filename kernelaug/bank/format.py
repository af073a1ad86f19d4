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

A writer sets ``complete`` only after everything is written and flushed, so a crash never leaves a
bank that claims to be complete; readers refuse incomplete banks unless ``allow_incomplete=True``.
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
    if not path.exists():
        return None
    try:
        with h5py.File(path, "r") as handle:
            attrs = dict(handle.attrs)
    except OSError:
        attrs = {}
    if attrs.get("format") == FORMAT and bool(attrs.get("complete", False)):
        return ValueError(f"{path} is already a complete kernel bank ({int(attrs.get('codes_done', 0))} codes); "
                          f"pass overwrite=True (--overwrite) to replace it")
    if attrs.get("format") == FORMAT:
        hint = "pass resume=True (--resume) to continue it or" if resumable else "pass"
        return ValueError(f"{path} holds an interrupted extraction ({int(attrs.get('codes_done', 0))} codes "
                          f"committed); {hint} overwrite=True (--overwrite) to start over")
    return ValueError(f"{path} exists and is not a readable kernel bank (or is open for writing elsewhere); "
                      f"refusing to replace it (pass overwrite=True / --overwrite)")


def _create(path: Path, code_shape, dtype: str, attrs: dict) -> h5py.File:
    """A new, empty, incomplete bank file (truncating ``path``) with the given root attributes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = h5py.File(path, "w")
    try:
        code_shape = tuple(int(s) for s in code_shape)
        code_bytes = int(np.prod(code_shape)) * np.dtype(dtype).itemsize
        rows = max(1, min(4096, _CHUNK_BYTES // max(code_bytes, 1)))
        handle.create_dataset("codes", shape=(0, *code_shape), maxshape=(None, *code_shape), dtype=dtype,
                              chunks=(rows, *code_shape), compression="gzip", compression_opts=4,
                              shuffle=True)
        _create_provenance(handle)
        root = {"format": FORMAT, "format_version": FORMAT_VERSION, "code_shape": np.array(code_shape, np.int64),
                "dtype": dtype, "created": _now(), "complete": False, "codes_done": 0,
                "kernelaug_version": __version__}
        for key, value in {**root, **attrs}.items():
            handle.attrs[key] = value
        handle.attrs["complete"] = False
        handle.flush()
    except BaseException:
        handle.close()
        raise
    return handle


def _create_provenance(handle: h5py.File, data: dict | None = None) -> None:
    specs = {"pair_id": (h5py.string_dtype("utf-8"), ()), "crop_box": (np.int32, (4,)),
             "psnr": (np.float32, ()), "pair_index": (np.int64, ())}
    for name, (dtype, tail) in specs.items():
        values = None if data is None else data[name]
        count = 0 if values is None else len(values)
        dataset = handle.create_dataset(name, shape=(count, *tail), maxshape=(None, *tail), dtype=dtype,
                                        chunks=(_ROW_CHUNK, *tail), compression="gzip", compression_opts=4)
        if count:
            dataset[...] = values
