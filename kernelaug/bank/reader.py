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
import json
import os
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch

from .. import __version__
from ..models.checkpoint import model_sha256
from .codes import GRID_MODES, adapt_grid
from ..models import BlurModel, config_to_dict

__all__ = ["FORMAT", "FORMAT_VERSION", "SAMPLE_MODES", "DTYPES", "BankWriter", "KernelBank", "CodeGaussian",
           "bank_info", "format_bank_info", "merge_banks"]

FORMAT = "kernelaug.bank"
FORMAT_VERSION = 1
SAMPLE_MODES = ("bank", "gaussian", "mix")
DTYPES = ("float16", "float32")

_CHUNK_BYTES = 16 * 1024        # target size of one chunk of ``codes`` (random access decompresses one chunk)
_ROW_CHUNK = 4096               # rows per chunk of the provenance datasets
_READ_CACHE_BYTES = 16 * 1024**2  # HDF5 chunk cache per dataset, per reading process
_FLOAT16_MAX = float(np.finfo(np.float16).max)
_GAUSSIAN_RANK = 32             # principal components kept by the "gaussian" sampling mode
_COV_DIM_LIMIT = 4096           # above this code size the Gaussian is fitted from a Gram matrix
_GRAM_MAX_CODES = 4096          # ... of at most this many evenly spaced codes
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


# ---------------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------------


def as_generator(rng) -> np.random.Generator:
    """None -> fresh entropy; int / SeedSequence -> a new Generator; a Generator is used as is."""
    if rng is None:
        return np.random.default_rng()
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        if rng < 0:
            raise ValueError(f"seeds must be non-negative, got {rng}")
        return np.random.default_rng(int(rng))
    if isinstance(rng, np.random.SeedSequence):
        return np.random.default_rng(rng)
    raise TypeError(f"rng/seed must be None, a non-negative int or a numpy.random.Generator, "
                    f"got {type(rng).__name__}")


@dataclass(frozen=True)
class CodeGaussian:
    """A Gaussian over flattened codes, probabilistic-PCA style: ``mean + components.T @ z + noise_std * e``.

    ``components`` (r, D) are the top principal directions scaled by sqrt(variance - noise_std**2);
    ``noise_std`` is the root mean variance of the discarded directions.
    """

    mean: np.ndarray
    components: np.ndarray
    noise_std: float
    code_shape: tuple

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        z = rng.standard_normal((n, self.components.shape[0]))
        flat = self.mean + z @ self.components
        if self.noise_std > 0:
            flat = flat + self.noise_std * rng.standard_normal((n, self.mean.shape[0]))
        return flat.reshape(n, *self.code_shape).astype(np.float32)


def _fit_gaussian(eigenvalues: np.ndarray, directions: np.ndarray, mean: np.ndarray, count: int,
                  code_shape: tuple) -> CodeGaussian:
    """From eigenpairs (descending; directions as columns) of the sample covariance."""
    eigenvalues = np.clip(eigenvalues, 0, None)
    useful = max(0, min(len(eigenvalues), count - 1))
    rank = min(_GAUSSIAN_RANK, useful)
    rest = eigenvalues[rank:useful]
    noise_var = float(rest.mean()) if rest.size else 0.0
    scales = np.sqrt(np.clip(eigenvalues[:rank] - noise_var, 0, None))
    components = (directions[:, :rank] * scales).T
    return CodeGaussian(mean=mean, components=components, noise_std=float(np.sqrt(noise_var)),
                        code_shape=tuple(code_shape))


class KernelBank:
    """A kernel bank on disk, read-only and lazy: safe to use in DataLoader workers (fork or spawn).

    The file is validated when the bank is created and opened once per process (reopened after a
    fork; a pickled bank carries only its path). ``bank[i]`` is a float32 (C, h, w) code, ``bank[a:b]``
    or ``bank[[i, j]]`` a (n, C, h, w) array; :meth:`sample` draws codes, :meth:`check` verifies a
    model. An incomplete bank (interrupted extraction) is refused unless ``allow_incomplete=True``;
    it then shows the codes committed so far.
    """

    def __init__(self, path, allow_incomplete: bool = False):
        self.path = Path(path)
        self.allow_incomplete = bool(allow_incomplete)
        self._file = None
        self._pid = None
        self._datasets: dict = {}
        self._gaussian = None
        handle = self._handle()
        self._attrs = {k: _plain(v) for k, v in handle.attrs.items()}
        self._length, self._dtype = self._validate(handle)

    # -- opening -------------------------------------------------------------------------------
    def _handle(self) -> h5py.File:
        if self._file is None or self._pid != os.getpid():
            self._file, self._datasets = None, {}  # a handle inherited through fork is never used here
            if not self.path.exists():
                raise FileNotFoundError(f"kernel bank {self.path} does not exist")
            if self.path.is_dir():
                raise ValueError(f"kernel bank {self.path} is a folder, not an HDF5 file")
            try:
                self._file = h5py.File(self.path, "r", rdcc_nbytes=_READ_CACHE_BYTES, rdcc_nslots=10007)
            except OSError as error:
                raise ValueError(f"{self.path} is not a readable HDF5 file (truncated, corrupted, still being "
                                 f"written, or not a kernel bank): {error}") from None
            self._pid = os.getpid()
        return self._file

    def _validate(self, handle: h5py.File) -> tuple[int, np.dtype]:
        path, attrs = self.path, self._attrs
        if attrs.get("format") != FORMAT:
            raise ValueError(f"{path} is an HDF5 file but not a kernelaug bank (attribute format = "
                             f"{attrs.get('format')!r}, expected {FORMAT!r})")
        version = attrs.get("format_version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise ValueError(f"{path} has bank format version {version!r}; this kernelaug reads up to "
                             f"{FORMAT_VERSION}: upgrade kernelaug")
        missing = [name for name in ("codes", *_PROVENANCE[:3]) if name not in handle]
        missing += [key for key in ("model_sha256", "model_config", "code_shape", "crop_size") if key not in attrs]
        if missing:
            raise ValueError(f"{path} is a damaged kernel bank: missing {', '.join(missing)}")
        codes = handle["codes"]
        if codes.ndim != 4 or list(codes.shape[1:]) != list(attrs["code_shape"]):
            raise ValueError(f"{path} is a damaged kernel bank: codes have shape {codes.shape}, attribute "
                             f"code_shape is {attrs['code_shape']}")
        if not attrs.get("complete", False) and not self.allow_incomplete:
            raise ValueError(f"{path} is an incomplete kernel bank ({attrs.get('codes_done', 0)} codes committed; "
                             f"an interrupted or still running extraction): finish it with "
                             f"`kernelaug extract ... --resume`, or open it with allow_incomplete=True")
        length = codes.shape[0] if attrs.get("complete", False) else min(codes.shape[0], attrs.get("codes_done", 0))
        short = [name for name in _PROVENANCE[:3] if handle[name].shape[0] < length]
        if short:
            raise ValueError(f"{path} is a damaged kernel bank: {', '.join(short)} hold fewer rows than "
                             f"its {length} codes")
        if codes.is_virtual:
            for source in codes.virtual_sources():
                name = source.file_name
                located = Path(name) if Path(name).is_absolute() else path.parent / name
                if name != "." and not located.exists():
                    raise ValueError(f"{path} is a virtual bank whose shard {located} is missing; keep the "
                                     f"shards beside it or merge without --virtual")
        return int(length), codes.dtype

    def _dataset(self, name: str) -> h5py.Dataset:
        """Dataset ``name`` of this process's handle (looked up once: a lookup costs more than a read)."""
        handle = self._handle()
        dataset = self._datasets.get(name)
        if dataset is None:
            dataset = self._datasets[name] = handle[name]
        return dataset

    def close(self) -> None:
        """Close this process's handle (reopened on the next access)."""
        if self._file is not None and self._pid == os.getpid():
            self._file.close()
        self._file, self._datasets = None, {}

    def __enter__(self) -> "KernelBank":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_file"], state["_pid"], state["_datasets"] = None, None, {}
        return state

    def __repr__(self) -> str:
        return (f"KernelBank({str(self.path)!r}, {self._length} codes of {self.code_shape}, {self._dtype}, "
                f"model {self.model_config.get('arch')} {self.model_sha256[:12]})")

    # -- metadata ------------------------------------------------------------------------------
    @property
    def attrs(self) -> dict:
        """All root attributes as plain Python values (a copy)."""
        return dict(self._attrs)

    @property
    def code_shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self._attrs["code_shape"])

    @property
    def model_config(self) -> dict:
        return json.loads(self._attrs["model_config"])

    @property
    def model_sha256(self) -> str:
        return str(self._attrs["model_sha256"])

    @property
    def crop_size(self) -> int:
        return int(self._attrs["crop_size"])

    @property
    def source_dataset(self) -> str:
        return str(self._attrs.get("source_dataset", ""))

    @property
    def complete(self) -> bool:
        return bool(self._attrs.get("complete", False))

    @property
    def dtype(self) -> np.dtype:
        """Storage dtype of the codes (reads always return float32)."""
        return self._dtype

    def check(self, model: BlurModel) -> None:
        """Raise ValueError when ``model`` did not make these codes (code shape first, then weights hash)."""
        if model.kernel_dim != self.code_shape[0]:
            raise ValueError(f"code shape mismatch: bank {self.path} holds codes of shape {self.code_shape} "
                             f"({self.code_shape[0]} channels) but the model's kernel_dim is {model.kernel_dim}")
        digest = _model_hash(model)
        if digest != self.model_sha256:
            raise ValueError(f"model hash mismatch: bank {self.path} was extracted by model sha256 "
                             f"{self.model_sha256[:16]}..., this model's weights hash to {digest[:16]}...; "
                             f"codes are only meaningful for the model that extracted them")

    # -- reading -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self._length

    def _read(self, name: str, selection):
        try:
            return self._dataset(name)[selection]
        except OSError as error:
            raise ValueError(f"kernel bank {self.path} is damaged: cannot read {name}: {error}") from None

    def _indices(self, key) -> np.ndarray:
        if isinstance(key, tuple):
            raise IndexError(f"a bank is indexed along its codes only (an int, slice or list), got {key!r}")
        if isinstance(key, slice):
            return np.arange(self._length)[key]
        index = np.asarray(key)
        if index.dtype == bool:
            if index.shape != (self._length,):
                raise IndexError(f"boolean index of shape {index.shape} for a bank of {self._length} codes")
            return np.flatnonzero(index)
        if index.ndim != 1 or (index.size and not np.issubdtype(index.dtype, np.integer)):
            raise IndexError(f"bank indices must be an int, a slice, or a 1-D sequence of ints, got {key!r}")
        index = index.astype(np.int64)
        bad = (index < -self._length) | (index >= self._length)
        if bad.any():
            raise IndexError(f"index {int(index[bad][0])} out of range for a bank of {self._length} codes")
        return index % max(self._length, 1)

    def _rows(self, name: str, index: np.ndarray) -> np.ndarray:
        """Rows ``index`` (any order, repeats allowed) of dataset ``name``, one read per touched chunk."""
        dataset = self._dataset(name)
        if index.size == 0:
            return np.empty((0, *dataset.shape[1:]), dataset.dtype)
        if index[-1] - index[0] == index.size - 1 and np.all(np.diff(index) == 1):
            return self._read(name, np.s_[int(index[0]):int(index[-1]) + 1])
        unique = np.unique(index)
        chunk = dataset.chunks[0] if dataset.chunks else len(unique)
        out = np.empty((len(unique), *dataset.shape[1:]), dataset.dtype)
        groups = np.flatnonzero(np.diff(unique // chunk)) + 1
        for part, offset in zip(np.split(unique, groups), np.concatenate([[0], groups])):
            block = self._read(name, np.s_[int(part[0]):int(part[-1]) + 1])
            out[offset:offset + len(part)] = block[part - part[0]]
        return out[np.searchsorted(unique, index)]

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
            if not -self._length <= key < self._length:
                raise IndexError(f"index {key} out of range for a bank of {self._length} codes")
            return self._read("codes", int(key) % self._length).astype(np.float32)
        return self._rows("codes", self._indices(key)).astype(np.float32)

    def provenance(self, index: int) -> dict:
        """Where code ``index`` came from: ``pair_id``, ``crop_box`` (top, left, height, width), ``psnr``."""
        i = int(self._indices([index])[0])
        pair_id = self._read("pair_id", i)
        return {"pair_id": pair_id.decode("utf-8") if isinstance(pair_id, bytes) else str(pair_id),
                "crop_box": tuple(int(v) for v in self._read("crop_box", i)),
                "psnr": float(self._read("psnr", i))}

    def column(self, name: str) -> np.ndarray:
        """One whole provenance column (``pair_id`` as str objects, ``crop_box``, ``psnr``, ``pair_index``)."""
        if name not in _PROVENANCE:
            raise ValueError(f"unknown provenance column {name!r}; expected one of {_PROVENANCE}")
        handle = self._handle()
        if name not in handle:  # pair_index is optional
            return np.full(self._length, -1, np.int64)
        if name == "pair_id":
            try:
                return handle[name].asstr()[:self._length].astype(object)
            except OSError as error:
                raise ValueError(f"kernel bank {self.path} is damaged: cannot read {name}: {error}") from None
        return self._read(name, np.s_[:self._length])

    # -- sampling ------------------------------------------------------------------------------
    def gaussian(self) -> CodeGaussian:
        """The Gaussian fitted to the bank's codes (fitted once, then cached)."""
        if self._gaussian is None:
            self._gaussian = self._fit()
        return self._gaussian

    def _fit(self) -> CodeGaussian:
        count, dim = self._length, int(np.prod(self.code_shape))
        if count == 0:
            raise ValueError(f"kernel bank {self.path} is empty: nothing to fit")
        step = max(1, (1 << 20) // max(dim, 1))
        if dim <= _COV_DIM_LIMIT:
            total = np.zeros(dim)
            for start in range(0, count, step):
                total += self[start:start + step].reshape(-1, dim).sum(0, dtype=np.float64)
            mean = total / count
            scatter = np.zeros((dim, dim))
            for start in range(0, count, step):
                block = self[start:start + step].reshape(-1, dim).astype(np.float64) - mean
                scatter += block.T @ block
            values, vectors = np.linalg.eigh(scatter / max(count - 1, 1))
            return _fit_gaussian(values[::-1], vectors[:, ::-1], mean, count, self.code_shape)
        index = np.unique(np.linspace(0, count - 1, min(count, _GRAM_MAX_CODES)).round().astype(np.int64))
        data = self[index].reshape(len(index), dim).astype(np.float64)
        mean = data.mean(0)
        data -= mean
        values, vectors = np.linalg.eigh(data @ data.T)
        values, vectors = values[::-1].clip(0), vectors[:, ::-1]
        keep = values > values.max(initial=0) * 1e-12
        directions = np.zeros((dim, len(values)))
        directions[:, keep] = (data.T @ vectors[:, keep]) / np.sqrt(values[keep])
        return _fit_gaussian(values / max(len(index) - 1, 1), directions, mean, len(index), self.code_shape)

    def sample(self, n: int, rng=None, mode: str = "bank", grid: tuple[int, int] | None = None,
               grid_mode: str = "resize") -> np.ndarray:
        """Draw ``n`` codes, float32 (n, C, h, w); with ``grid=(rows, cols)`` adapted to that grid.

        ``mode``: ``"bank"`` uniform over stored codes; ``"gaussian"`` from :meth:`gaussian` (novel
        blurs); ``"mix"`` ``(1 - t) * a + t * b`` for two stored codes and t ~ U(0, 1). ``rng``: None
        (fresh entropy), an int seed or a ``numpy.random.Generator``; global random state is never used.
        ``grid_mode``: see :func:`kernelaug.bank.codes.adapt_grid`.
        """
        if mode not in SAMPLE_MODES:
            raise ValueError(f"unknown sample mode {mode!r}; expected one of {SAMPLE_MODES}")
        if grid_mode not in GRID_MODES:
            raise ValueError(f"unknown grid mode {grid_mode!r}; expected one of {GRID_MODES}")
        if isinstance(n, bool) or int(n) != n or n < 0:
            raise ValueError(f"n must be a non-negative integer, got {n!r}")
        n = int(n)
        rng = as_generator(rng)
        if self._length == 0:
            raise ValueError(f"kernel bank {self.path} is empty: nothing to sample")
        if mode == "bank":
            codes = self[rng.integers(0, self._length, size=n)]
        elif mode == "mix":
            first, second = rng.integers(0, self._length, size=(2, n))
            weight = rng.random(n).astype(np.float32)[:, None, None, None]
            codes = (1 - weight) * self[first] + weight * self[second]
        else:
            codes = self.gaussian().sample(n, rng)
        if grid is not None:
            rows, cols = (int(v) for v in grid)
            codes = adapt_grid(torch.from_numpy(np.ascontiguousarray(codes)), rows, cols, grid_mode).numpy()
        return np.ascontiguousarray(codes, dtype=np.float32)


# ---------------------------------------------------------------------------------------------------
# bank-info
# ---------------------------------------------------------------------------------------------------


def bank_info(path, bins: int = 10) -> dict:
    """Summary of a bank (complete or not): size, shapes, model, and the per-code PSNR distribution."""
    bank = KernelBank(path, allow_incomplete=True)
    with bank:
        psnr = bank.column("psnr").astype(np.float64)
        attrs = bank.attrs
        config = bank.model_config
        known = psnr[np.isfinite(psnr)]
        stats = None
        if known.size:
            quantiles = np.percentile(known, [5, 25, 50, 75, 95])
            counts, edges = np.histogram(known, bins=bins)
            stats = {"count": int(known.size), "min": float(known.min()), "p5": float(quantiles[0]),
                     "p25": float(quantiles[1]), "median": float(quantiles[2]), "p75": float(quantiles[3]),
                     "p95": float(quantiles[4]), "mean": float(known.mean()), "max": float(known.max()),
                     "histogram": {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]}}
        return {
            "file": str(bank.path), "file_size_bytes": bank.path.stat().st_size, "codes": len(bank),
            "code_shape": list(bank.code_shape), "dtype": str(bank.dtype), "crop_size": bank.crop_size,
            "source_dataset": bank.source_dataset, "model_arch": config.get("arch"), "model_config": config,
            "model_sha256": bank.model_sha256, "complete": bank.complete, "created": attrs.get("created"),
            "virtual": bool(bank._handle()["codes"].is_virtual), "psnr": stats,
            "attrs": {k: v for k, v in attrs.items() if k != "model_config"},
        }


def _size(num: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if num < 1024 or unit == "GiB":
            return f"{num:.0f} {unit}" if unit == "B" else f"{num:.1f} {unit}"
        num /= 1024
    return f"{num:.1f} GiB"


def format_bank_info(info: dict, width: int = 40) -> str:
    """Human-readable text for :func:`bank_info`'s dict."""
    lines = [
        f"file:          {info['file']} ({_size(info['file_size_bytes'])}"
        f"{', virtual codes' if info['virtual'] else ''})",
        f"complete:      {'yes' if info['complete'] else 'NO (interrupted or running extraction; resume it)'}",
        f"codes:         {info['codes']} x {tuple(info['code_shape'])} {info['dtype']}"
        + ("" if info["virtual"] or not info["codes"]
           else f" ({_size(info['file_size_bytes'] / info['codes'] * 1000)} per 1000 codes)"),
        f"crop size:     {info['crop_size']} px",
        f"source:        {info['source_dataset'] or '(not recorded)'}",
        f"model:         {info['model_arch']} sha256 {info['model_sha256'][:12]}",
        f"created:       {info['created']}",
    ]
    stats = info["psnr"]
    if stats is None:
        lines.append("psnr:          (not recorded)")
        return "\n".join(lines)
    lines.append(f"reconstruction PSNR (dB) over {stats['count']} codes:")
    lines.append(f"  min {stats['min']:.2f}  p5 {stats['p5']:.2f}  p25 {stats['p25']:.2f}  "
                 f"median {stats['median']:.2f}  p75 {stats['p75']:.2f}  p95 {stats['p95']:.2f}  "
                 f"max {stats['max']:.2f}  mean {stats['mean']:.2f}")
    counts, edges = stats["histogram"]["counts"], stats["histogram"]["edges"]
    top = max(counts) or 1
    for count, low, high in zip(counts, edges[:-1], edges[1:]):
        bar = "#" * round(width * count / top)
        lines.append(f"  {low:7.2f} .. {high:7.2f} | {bar:<{width}} {count}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------
# Merging shards
# ---------------------------------------------------------------------------------------------------

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
