"""Reading kernel banks: :class:`KernelBank`, lazy and safe in DataLoader workers, and its sampling modes."""


from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch

from .codes import GRID_MODES, adapt_grid
from ..models import BlurModel
from .format import FORMAT, FORMAT_VERSION, _PROVENANCE, _model_hash, _plain
from .journal import partial_path

__all__ = ["SAMPLE_MODES", "KernelBank", "CodeGaussian", "as_generator", "resolve_bank"]

SAMPLE_MODES = ("bank", "gaussian", "mix")

_READ_CACHE_BYTES = 16 * 1024**2  # HDF5 chunk cache per dataset, per reading process
#: Banks whose codes take at most this many bytes as float32 are read into memory once per process at
#: their first read: a draw from memory costs about 0.1 ms less than one through HDF5 inside a training
#: loop (measured 2026-12-04, LearnedBlur at 64x64 on one thread: 1.20 vs 1.32 ms per call).
MEMORY_CODES_BYTES = 64 * 1024**2
_GAUSSIAN_RANK = 32             # principal components kept by the "gaussian" sampling mode
_COV_DIM_LIMIT = 4096           # above this code size the Gaussian is fitted from a Gram matrix
_GRAM_MAX_CODES = 4096          # ... of at most this many evenly spaced codes


_NONFINITE_CACHE: dict = {}     # (file identity) -> rows holding NaN/Inf, so a file is scanned once per process
_NAMED_ROWS = 10                # rows named in an error message


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


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
    fork; a pickled bank carries only its path). Codes of banks up to :data:`MEMORY_CODES_BYTES` are
    read into memory at the first read, once per process. ``bank[i]`` is a float32 (C, h, w) code, ``bank[a:b]``
    or ``bank[[i, j]]`` a (n, C, h, w) array; :meth:`sample` draws codes, :meth:`check` verifies a
    model (and that every code is finite). A file not flagged complete (an interrupted extraction
    written in place by an older kernelaug) is refused unless ``allow_incomplete=True``; it then
    shows the codes committed so far. An extraction in progress lives in ``BANK.partial`` (see
    :mod:`kernelaug.bank.journal`), whose progress :func:`kernelaug.bank.bank_info` reports.
    Malformed attributes or datasets are ValueErrors naming the file and the field.
    """

    def __init__(self, path, allow_incomplete: bool = False):
        self.path = Path(path)
        self.allow_incomplete = bool(allow_incomplete)
        self._file = None
        self._pid = None
        self._datasets: dict = {}
        self._gaussian = None
        self._memory: np.ndarray | None = None  # all codes, float32, for small banks (see _codes_in_memory)
        handle = self._handle()
        self._attrs = {k: _plain(v) for k, v in handle.attrs.items()}
        self._length, self._dtype = self._validate(handle)

    # -- opening -------------------------------------------------------------------------------
    def _handle(self) -> h5py.File:
        if self._file is None or self._pid != os.getpid():
            self._file, self._datasets = None, {}  # a handle inherited through fork is never used here
            if not self.path.exists():
                partial = partial_path(self.path)
                if partial.exists():
                    raise FileNotFoundError(f"kernel bank {self.path} does not exist yet: {partial} holds an "
                                            f"interrupted extraction; finish it with `kernelaug extract ... "
                                            f"--resume` (kernelaug bank-info {self.path} shows its progress)")
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

    def _bad(self, field: str, why: str) -> ValueError:
        return ValueError(f"{self.path} is a damaged kernel bank: {field} {why}")

    def _validate(self, handle: h5py.File) -> tuple[int, np.dtype]:
        path, attrs = self.path, self._attrs
        if attrs.get("format") != FORMAT:
            raise ValueError(f"{path} is an HDF5 file but not a kernelaug bank (attribute format = "
                             f"{attrs.get('format')!r}, expected {FORMAT!r})")
        version = attrs.get("format_version")
        if not _is_int(version) or version < 1:
            raise self._bad("attribute format_version", f"is {version!r}, not a positive integer")
        if version > FORMAT_VERSION:
            raise ValueError(f"{path} has bank format version {version!r}; this kernelaug reads up to "
                             f"{FORMAT_VERSION}: upgrade kernelaug")
        for name in ("codes", *_PROVENANCE[:3]):
            link = handle.get(name, getlink=True)
            if link is None:
                raise ValueError(f"{path} is a damaged kernel bank: missing {name}")
            if not isinstance(link, h5py.HardLink):
                raise self._bad(f"dataset {name}", f"is a {type(link).__name__} (to {getattr(link, 'filename', '')}"
                                f"{getattr(link, 'path', '')}); a bank holds its own datasets")
            if not isinstance(handle[name], h5py.Dataset):
                raise self._bad(name, "is not a dataset")
        missing = [key for key in ("model_sha256", "model_config", "code_shape", "crop_size") if key not in attrs]
        if missing:
            raise ValueError(f"{path} is a damaged kernel bank: missing {', '.join(missing)}")
        shape = attrs["code_shape"]
        if not isinstance(shape, list) or len(shape) != 3 or not all(_is_int(v) and v > 0 for v in shape):
            raise self._bad("attribute code_shape", f"is {shape!r}, not three positive integers (C, h, w)")
        if not _is_int(attrs["crop_size"]) or attrs["crop_size"] < 1:
            raise self._bad("attribute crop_size", f"is {attrs['crop_size']!r}, not a positive integer")
        if not isinstance(attrs["model_sha256"], str):
            raise self._bad("attribute model_sha256", f"is {attrs['model_sha256']!r}, not a string")
        try:
            config = json.loads(attrs["model_config"]) if isinstance(attrs["model_config"], str) else None
        except (ValueError, RecursionError):
            config = None
        if not isinstance(config, dict):
            raise self._bad("attribute model_config", "is not a JSON object (the model's config)")
        self._config = config
        complete = attrs.get("complete", False)
        if not isinstance(complete, bool):
            raise self._bad("attribute complete", f"is {complete!r}, not a boolean")
        done = attrs.get("codes_done", 0)
        if not _is_int(done) or done < 0:
            raise self._bad("attribute codes_done", f"is {done!r}, not a non-negative integer")
        codes = handle["codes"]
        if codes.ndim != 4 or list(codes.shape[1:]) != list(shape):
            raise ValueError(f"{path} is a damaged kernel bank: codes have shape {codes.shape}, attribute "
                             f"code_shape is {shape}")
        if codes.dtype not in (np.float16, np.float32):
            raise self._bad("dataset codes", f"has type {codes.dtype}, not float16 or float32")
        if not complete and not self.allow_incomplete:
            raise ValueError(f"{path} is an incomplete kernel bank ({done} codes committed; "
                             f"an interrupted or still running extraction): finish it with "
                             f"`kernelaug extract ... --resume`, or open it with allow_incomplete=True")
        length = codes.shape[0] if complete else min(codes.shape[0], done)
        short = [name for name in _PROVENANCE[:3] if handle[name].shape[0] < length]
        if short:
            raise ValueError(f"{path} is a damaged kernel bank: {', '.join(short)} hold fewer rows than "
                             f"its {length} codes")
        if handle["crop_box"].ndim != 2 or handle["crop_box"].shape[1] != 4:
            raise self._bad("dataset crop_box", f"has shape {handle['crop_box'].shape}, not (N, 4)")
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
        state["_file"], state["_pid"], state["_datasets"], state["_memory"] = None, None, {}, None
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
        return json.loads(json.dumps(self._config))

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
        """Raise ValueError when ``model`` did not make these codes (code shape first, then weights hash)
        or when any code is not finite (:meth:`check_finite`)."""
        if model.kernel_dim != self.code_shape[0]:
            raise ValueError(f"code shape mismatch: bank {self.path} holds codes of shape {self.code_shape} "
                             f"({self.code_shape[0]} channels) but the model's kernel_dim is {model.kernel_dim}")
        digest = _model_hash(model)
        if digest != self.model_sha256:
            raise ValueError(f"model hash mismatch: bank {self.path} was extracted by model sha256 "
                             f"{self.model_sha256[:16]}..., this model's weights hash to {digest[:16]}...; "
                             f"codes are only meaningful for the model that extracted them")
        self.check_finite()

    def nonfinite_rows(self) -> np.ndarray:
        """Indices of the codes holding NaN or infinity (reads the whole bank once per file and process)."""
        stat = self.path.stat()
        key = (str(self.path.resolve()), stat.st_ino, stat.st_mtime_ns, stat.st_size, self._length)
        if key not in _NONFINITE_CACHE:
            dim, bad = int(np.prod(self.code_shape)), []
            step = max(1, (1 << 22) // max(dim, 1))  # rows per read: about 4 M values
            for start in range(0, self._length, step):
                block = self._read("codes", np.s_[start:start + step]).reshape(-1, dim)
                bad.append(start + np.flatnonzero(~np.isfinite(block).all(axis=1)))
            _NONFINITE_CACHE[key] = np.concatenate(bad).astype(np.int64) if bad else np.zeros(0, np.int64)
        return _NONFINITE_CACHE[key].copy()

    def check_finite(self) -> None:
        """ValueError naming the rows when any code holds NaN or infinity (blurring with one gives a
        NaN or black image; kernelaug never writes such codes, so the file was damaged or edited)."""
        rows = self.nonfinite_rows()
        if rows.size:
            named = ", ".join(str(int(r)) for r in rows[:_NAMED_ROWS]) + (", ..." if rows.size > _NAMED_ROWS else "")
            raise ValueError(f"kernel bank {self.path} holds {rows.size} code(s) with NaN or infinity (rows "
                             f"{named}); remove them or re-extract the bank")

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

    def _codes_in_memory(self) -> np.ndarray | None:
        """Every code as float32, read once per process, for banks up to MEMORY_CODES_BYTES; else None."""
        if self._memory is None and self._length * 4 * int(np.prod(self.code_shape)) <= MEMORY_CODES_BYTES:
            self._memory = self._read("codes", np.s_[:self._length]).astype(np.float32, copy=False)
        return self._memory

    def __getitem__(self, key) -> np.ndarray:
        single = isinstance(key, (int, np.integer)) and not isinstance(key, bool)
        if single and not -self._length <= key < self._length:
            raise IndexError(f"index {key} out of range for a bank of {self._length} codes")
        memory = self._codes_in_memory()
        if single:
            row = int(key) % self._length
            return memory[row].copy() if memory is not None else self._read("codes", row).astype(np.float32)
        index = self._indices(key)
        return memory[index] if memory is not None else self._rows("codes", index).astype(np.float32)

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


def resolve_bank(bank, model_name: str | None = None):
    """A KernelBank, an HDF5 path or a pretrained name -> a KernelBank.

    The one place where the engine, the adapters and the CLI turn a bank argument into a bank.
    ``bank=None`` with a pretrained model name uses the bank shipped with that model.
    """
    from ..models import pretrained
    if isinstance(bank, KernelBank):
        return bank
    if bank is None:
        if model_name is None:
            raise ValueError("bank is required (a KernelBank, an .h5 path or a pretrained name)")
        return KernelBank(pretrained.bank_path(model_name))
    if isinstance(bank, (str, os.PathLike)):
        path = str(bank)
        if os.path.exists(path) or path.endswith((".h5", ".hdf5")):
            return KernelBank(path)
        return KernelBank(pretrained.bank_path(path))
    if all(hasattr(bank, name) for name in ("sample", "check", "code_shape")):
        return bank  # a bank-like object (duck typing), e.g. an in-memory bank in tests
    raise TypeError(f"bank must be a kernelaug KernelBank, an .h5 path or a pretrained name, "
                    f"got {type(bank).__name__}")
