"""Output paths checked before any work starts: one helper for every command that writes files."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

__all__ = ["IMAGE_SUFFIXES", "BANK_SUFFIXES", "MODEL_SUFFIXES", "check_output", "stage_folder", "publish_folder"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
BANK_SUFFIXES = (".h5", ".hdf5")
MODEL_SUFFIXES = (".safetensors",)


def _writable(folder: Path) -> bool:
    """Whether a file can be created in ``folder`` (tried for real: permission bits do not tell
    for root, read-only mounts or full quotas)."""
    try:
        fd, name = tempfile.mkstemp(prefix=".kernelaug-write-check-", dir=folder)
    except OSError:
        return False
    os.close(fd)
    os.unlink(name)
    return True


def check_output(path, what: str = "output", suffixes: tuple[str, ...] | None = None, folder: bool = False,
                 inputs=()) -> Path:
    """``path`` as a Path, or a ValueError saying why it cannot be written, before any work.

    A file output (``folder=False``) must not be a folder, must lie in an existing, writable
    folder, must end in one of ``suffixes`` (when given) and must not be one of ``inputs``. A
    folder output (``folder=True``, e.g. a dataset) must not be a file; missing folders above it
    are created later, so the nearest existing one must be a writable folder.
    """
    if path is None or str(path) == "":
        raise ValueError(f"{what}: no path given")
    path = Path(path)
    if folder:
        if path.exists() and not path.is_dir():
            raise ValueError(f"{what} {path} exists and is not a folder")
        parent = path if path.is_dir() else next((p for p in path.absolute().parents if p.exists()), Path("/"))
        if not parent.is_dir():
            raise ValueError(f"{what} {path}: {parent} is a file, not a folder")
    else:
        if path.is_dir():
            raise ValueError(f"{what} {path} is a folder; give a file name"
                             + (f" ending in {suffixes[0]}" if suffixes else ""))
        if path.exists() and not path.is_file():
            raise ValueError(f"{what} {path} exists and is not a regular file")
        if suffixes is not None and path.suffix.lower() not in suffixes:
            raise ValueError(f"{what} {path} must end in {', '.join(suffixes)} (the suffix decides the format), "
                             f"got {path.suffix or 'no suffix'!r}")
        parent = path.parent
        if not parent.exists():
            raise ValueError(f"{what} {path}: folder {parent} does not exist (create it first)")
        if not parent.is_dir():
            raise ValueError(f"{what} {path}: {parent} is not a folder")
        for other in inputs:
            if other is not None and os.path.exists(other) and path.exists() and os.path.samefile(other, path):
                raise ValueError(f"{what} {path} is also an input of this command; choose another output path")
    if not _writable(parent):
        raise ValueError(f"{what} {path}: folder {parent} is not writable (read-only or no permission)")
    return path


def stage_folder(out, overwrite: bool) -> Path:
    """A fresh staging folder beside ``out``, for a dataset written whole; refuses a non-empty ``out``
    unless ``overwrite`` (which replaces all of it, in :func:`publish_folder`)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"output {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise ValueError(f"output folder {out} is not empty; pass overwrite (--overwrite) to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    if not _writable(out.parent):
        raise ValueError(f"cannot write into {out.parent} (read-only or no permission)")
    return Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))


def publish_folder(staging: Path, out) -> None:
    """Replace ``out`` by the completed staging folder (the old one is removed only now)."""
    out = Path(out)
    if out.exists():
        old = out.with_name(f".{out.name}.old{os.getpid()}")
        os.replace(out, old)
        os.replace(staging, out)
        shutil.rmtree(old)
    else:
        os.replace(staging, out)
