"""Crash-safe bank files: the append-only journal of a bank being written, and atomic replacement.

HDF5 has no journal: a process killed while HDF5 rewrites a chunk or its index can leave data that
was written long before unreadable. So a bank is never written in place. :class:`BankWriter`
streams into ``OUT.partial``, a file of records that are only ever appended:

* a header line (:data:`MAGIC`), then records, each ``KREC`` + kind (1 byte) + 3 zero bytes +
  payload length (uint64 LE) + CRC-32 of the payload (uint32 LE) + payload;
* kind 1, settings (JSON, first record): the bank's root attributes;
* kind 2, rows (an ``.npz`` without pickles): codes and provenance of one ``append``;
* kind 3, commit (JSON): ``codes_done`` and the attributes set by that commit.

A commit fsyncs the rows, then appends the commit record and fsyncs again. Reopening scans the
records, stops at the first torn or damaged one, and truncates the file after the last commit:
committed bytes are never rewritten. When the bank is complete it is written as an ordinary HDF5
bank to ``OUT.tmp``, fsynced, and renamed over ``OUT`` (:func:`replace`), so ``OUT`` is always either
the old file or the whole new one.
"""

from __future__ import annotations

import errno
import fcntl
import io
import json
import os
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np

__all__ = ["MAGIC", "Journal", "partial_path", "temporary_path", "check_not_open", "replace", "fsync_dir"]

MAGIC = b"kernelaug.bank.partial v1\n"
SETTINGS, ROWS, COMMIT = 1, 2, 3
_RECORD = struct.Struct("<4sB3xQI")
_TAG = b"KREC"
_MAX_JSON = 1 << 24


def partial_path(path) -> Path:
    """Where the journal of a bank being written to ``path`` lives: ``path`` + ``.partial``."""
    path = Path(path)
    return path.with_name(path.name + ".partial")


def temporary_path(path) -> Path:
    """Where the finished bank is assembled before it is renamed to ``path``."""
    path = Path(path)
    return path.with_name(path.name + ".tmp")


def fsync_file(path) -> None:
    """Make a file's content durable (a folder's: a rename or a new file in it)."""
    fd = os.open(os.fspath(path), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(folder) -> None:
    """Make a rename or a new file in ``folder`` durable."""
    fsync_file(folder)


def _locked_elsewhere(path: Path) -> bool:
    """True when another open handle (this process or another) holds a lock on ``path`` (HDF5 locks
    every file it opens with flock: shared for readers, exclusive for writers)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return True
        raise
    finally:
        os.close(fd)  # closing the descriptor drops a lock taken just above
    return False


def check_not_open(path) -> None:
    """ValueError when ``path`` is open in another process (or another handle of this one)."""
    path = Path(path)
    if path.is_file() and _locked_elsewhere(path):
        raise ValueError(f"{path} is open in another process (a training job or a reader holding it, or an "
                         f"extraction writing it); refusing to replace it -- close it first. It is untouched")


def replace(src: Path, dst: Path) -> None:
    """Rename ``src`` over ``dst`` (atomic on POSIX) and make the rename durable."""
    os.replace(src, dst)
    fsync_dir(dst.parent)


def _plain_json(value):
    """``value`` as it reads back from JSON (numpy scalars and arrays become numbers and lists)."""
    def convert(item):
        if isinstance(item, np.generic):
            return item.item()
        if isinstance(item, np.ndarray):
            return item.tolist()
        raise TypeError(f"attribute value {item!r} of type {type(item).__name__} cannot be stored")
    return json.loads(json.dumps(value, default=convert))


def _pack_rows(arrays: dict) -> bytes:
    ids = [s.encode("utf-8") for s in arrays["pair_id"]]
    buffer = io.BytesIO()
    np.savez(buffer, codes=arrays["codes"], crop_box=np.asarray(arrays["crop_box"], np.int32),
             psnr=np.asarray(arrays["psnr"], np.float32), pair_index=np.asarray(arrays["pair_index"], np.int64),
             id_bytes=np.frombuffer(b"".join(ids), np.uint8), id_lengths=np.array([len(s) for s in ids], np.int64))
    return buffer.getvalue()


def _unpack_rows(payload: bytes) -> dict:
    with np.load(io.BytesIO(payload), allow_pickle=False) as data:
        blob, lengths = data["id_bytes"].tobytes(), data["id_lengths"]
        ends = np.cumsum(lengths)
        ids = [blob[end - n:end].decode("utf-8") for n, end in zip(lengths.tolist(), ends.tolist())]
        return {"codes": data["codes"], "pair_id": ids, "crop_box": data["crop_box"], "psnr": data["psnr"],
                "pair_index": data["pair_index"]}


class Journal:
    """An open, locked ``.partial`` file (see the module docstring); create with :meth:`create`,
    reopen (truncated to its last commit) with :meth:`open`."""

    def __init__(self, path: Path, fd: int):
        self.path = path
        self._fd = fd
        self.settings: dict = {}
        self.attrs: dict = {}               # merged attributes of all commits
        self.codes_done = 0
        self._committed: list[tuple[int, int]] = []   # (payload offset, length) of committed rows records
        self._pending: list[tuple[int, int]] = []
        self._end = 0
        self.last_row: dict | None = None   # provenance of the last committed row

    # -- opening ---------------------------------------------------------------------------------
    @staticmethod
    def _lock(path: Path) -> int:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            os.close(fd)
            if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise ValueError(f"{path} is being written by another process (another extraction into the "
                                 f"same bank?); wait for it or stop it first") from None
            raise
        return fd

    @classmethod
    def create(cls, path: Path, settings: dict) -> "Journal":
        """A new journal at ``path`` (an unlocked old one is truncated) holding ``settings``, committed."""
        journal = cls(path, cls._lock(path))
        try:
            journal.initialise(settings)
        except BaseException:
            journal.close()
            raise
        return journal

    @property
    def empty(self) -> bool:
        """True when nothing was committed (a run killed before its first commit): start it afresh."""
        return not self.settings

    def initialise(self, settings: dict) -> None:
        """Truncate the journal and commit ``settings`` as its first record."""
        os.ftruncate(self._fd, 0)
        self._committed, self._pending, self.attrs, self.codes_done, self.last_row = [], [], {}, 0, None
        self._write_at(0, MAGIC)
        self._end = len(MAGIC)
        self.settings = _plain_json(settings)
        self._append(SETTINGS, json.dumps(self.settings, sort_keys=True).encode())
        self.commit(0, {})
        fsync_dir(self.path.parent)

    @classmethod
    def open(cls, path: Path, readonly: bool = False) -> "Journal":
        """Reopen ``path``: scan it, keep what was committed and (unless ``readonly``, which neither
        locks nor modifies it) cut off everything after."""
        fd = os.open(path, os.O_RDONLY) if readonly else cls._lock(path)
        journal = cls(path, fd)
        try:
            journal._scan()
            if not readonly and os.fstat(fd).st_size != journal._end:
                os.ftruncate(fd, journal._end)  # drop uncommitted rows and a torn record
                os.fsync(fd)
        except BaseException:
            journal.close()
            raise
        return journal

    def _damaged(self, why: str) -> ValueError:
        return ValueError(f"{self.path} is not a readable bank journal ({why}); start over with "
                          f"overwrite=True (--overwrite)")

    def _scan(self) -> None:
        try:
            self._scan_records()
        except (ValueError, KeyError, TypeError, RecursionError, OSError, zlib.error, zipfile.BadZipFile) as error:
            if isinstance(error, ValueError) and str(error).startswith(str(self.path)):
                raise
            raise self._damaged(f"{type(error).__name__}: {error}") from None
        if not isinstance(self.settings, dict) or (self.settings and not isinstance(self.settings.get("attrs"), dict)):
            raise self._damaged("settings are not a JSON object with attrs")

    def _scan_records(self) -> None:
        size = os.fstat(self._fd).st_size
        header = os.pread(self._fd, len(MAGIC), 0)
        if header != MAGIC:
            if MAGIC.startswith(header):  # killed while the header was written: nothing committed
                self.settings, self._end = {}, 0
                return
            raise self._damaged("bad header")
        offset, records, committed_end = len(MAGIC), [], None
        settings, attrs, done = None, {}, 0
        last = None
        while offset + _RECORD.size <= size:
            tag, kind, length, crc = _RECORD.unpack(os.pread(self._fd, _RECORD.size, offset))
            start = offset + _RECORD.size
            if tag != _TAG or kind not in (SETTINGS, ROWS, COMMIT) or start + length > size:
                break  # torn or garbage tail: everything from here on is uncommitted
            payload = os.pread(self._fd, length, start)
            if zlib.crc32(payload) != crc:
                break
            offset = start + length
            if kind == SETTINGS:
                if settings is not None:
                    break
                settings = json.loads(payload)
            elif kind == ROWS:
                records.append((start, length))
            else:
                if settings is None:
                    break
                commit = json.loads(payload)
                rows = sum(len(self._read_rows(s, n)["codes"]) for s, n in records[len(self._committed):])
                if done + rows != commit["codes_done"]:
                    break
                if len(records) > len(self._committed):
                    last_part = self._read_rows(*records[-1])
                    last = {"pair_id": last_part["pair_id"][-1], "pair_index": int(last_part["pair_index"][-1])}
                done = commit["codes_done"]
                attrs.update(commit["attrs"])
                self._committed = list(records)
                committed_end = offset
        if settings is None or committed_end is None:
            settings, committed_end = {}, 0  # killed before the first commit: nothing committed
        self.settings, self.attrs, self.codes_done, self.last_row = settings, attrs, done, last
        self._end = committed_end

    # -- writing ---------------------------------------------------------------------------------
    def _write_at(self, offset: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.pwrite(self._fd, view, offset)
            view, offset = view[written:], offset + written

    def _append(self, kind: int, payload: bytes) -> tuple[int, int]:
        header = _RECORD.pack(_TAG, kind, len(payload), zlib.crc32(payload))
        self._write_at(self._end, header + payload)
        start = self._end + len(header)
        self._end = start + len(payload)
        return start, len(payload)

    def append_rows(self, arrays: dict) -> None:
        """Append rows (codes and provenance columns); they count once :meth:`commit` returns."""
        self._pending.append(self._append(ROWS, _pack_rows(arrays)))

    def commit(self, codes_done: int, attrs: dict) -> None:
        """Make the appended rows and ``attrs`` durable: fsync, commit record, fsync."""
        attrs = _plain_json(attrs)
        os.fsync(self._fd)
        self._append(COMMIT, json.dumps({"codes_done": int(codes_done), "attrs": attrs}, sort_keys=True).encode())
        os.fsync(self._fd)
        if self._pending:
            last = self._read_rows(*self._pending[-1])
            self.last_row = {"pair_id": last["pair_id"][-1], "pair_index": int(last["pair_index"][-1])}
        self._committed += self._pending
        self._pending = []
        self.codes_done = int(codes_done)
        self.attrs.update(attrs)

    # -- reading ---------------------------------------------------------------------------------
    def _read_rows(self, offset: int, length: int) -> dict:
        return _unpack_rows(os.pread(self._fd, length, offset))

    def committed_rows(self):
        """The committed rows records in order, each a dict of arrays (``pair_id`` a list of str)."""
        for offset, length in self._committed:
            yield self._read_rows(offset, length)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

