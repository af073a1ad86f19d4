"""High-frame-rate frames -> blur/sharp pairs, the GoPro recipe (Nah et al., CVPR 2017).

A blurry image is the mean of N consecutive frames, the sharp image the middle one (offset N // 2,
as in the GoPro dataset's ``st_frame-S_n_avg-N`` pairs). Averaging is done in linear light
(``space="linear"``: values are raised to ``gamma`` first, undoing an approximate camera response)
or on the stored values (``space="display"``, floored to integers as the GoPro dataset's published
pairs are). Frames come from a folder (sorted by name) or a video file read with OpenCV, which is
streamed: at most the largest N frames are held in memory.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
from tqdm import tqdm

from ..paths import publish_folder, stage_folder
from .pairs import IMAGE_EXTENSIONS

__all__ = ["SPACES", "VIDEO_EXTENSIONS", "FramesSettings", "Window", "list_frames", "draw_windows", "plan_windows",
           "average_frames", "frames_to_pairs"]

SPACES = ("linear", "display")
VIDEO_EXTENSIONS = (".mp4", ".mov", ".avi", ".mkv", ".m4v")
GENERATOR = "kernelaug frames-to-pairs v1"
_NUMBER = re.compile(r"(\d+)(?!.*\d)")  # the last group of digits of a frame's name


@dataclass(frozen=True)
class FramesSettings:
    """How windows are drawn and averaged; validated on construction."""

    frames: tuple[int, int] = (7, 13)   # N is drawn uniformly from this inclusive range per pair
    space: str = "linear"
    gamma: float = 2.2
    stride: int | None = None           # frames between window starts; None: the largest N
    split_at: float | None = None       # fraction in (0, 1) or first frame index of the test split
    seed: int = 0

    def __post_init__(self):
        lo, hi = self.frames
        for value in (lo, hi):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"frames must be two integers >= 1, got {self.frames!r}")
        if lo > hi:
            raise ValueError(f"frames must be (low, high) with low <= high, got {self.frames!r}")
        if self.space not in SPACES:
            raise ValueError(f"space must be one of {SPACES}, got {self.space!r}")
        if not (isinstance(self.gamma, (int, float)) and np.isfinite(self.gamma) and 0.1 <= self.gamma <= 10):
            raise ValueError(f"gamma must be a number in [0.1, 10], got {self.gamma!r}")
        if self.stride is not None and (isinstance(self.stride, bool) or int(self.stride) != self.stride
                                        or self.stride < 1):
            raise ValueError(f"stride must be an integer >= 1, got {self.stride!r}")
        if self.split_at is not None:
            value = self.split_at
            fraction = isinstance(value, float) and 0.0 < value < 1.0
            index = float(value).is_integer() and value >= 1
            if isinstance(value, bool) or not (fraction or index):
                raise ValueError(f"split_at must be a fraction in (0, 1) or a frame index >= 1, got {value!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {self.seed!r}")

    @property
    def step(self) -> int:
        return int(self.stride) if self.stride is not None else self.frames[1]

    def split_index(self, total: int) -> int | None:
        """First frame of the test split for a sequence of ``total`` frames (None: no test split)."""
        if self.split_at is None:
            return None
        if isinstance(self.split_at, float) and self.split_at < 1.0:
            return int(round(self.split_at * total))
        return int(self.split_at)


@dataclass(frozen=True)
class Window:
    """``count`` frames from ``start`` make one pair of split ``split``."""

    start: int
    count: int
    split: str

    @property
    def end(self) -> int:
        return self.start + self.count - 1

    @property
    def sharp(self) -> int:
        return self.start + self.count // 2

    @property
    def name(self) -> str:
        return f"{self.start:06d}_n{self.count:02d}"


def list_frames(folder) -> list[Path]:
    """Image files of ``folder`` sorted by name; ValueError on an empty folder or a numbering gap."""
    folder = Path(folder)
    frames = sorted(p for p in folder.iterdir()
                    if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not frames:
        raise ValueError(f"{folder} holds no frames (image files with extensions {', '.join(IMAGE_EXTENSIONS)})")
    numbers = [_NUMBER.search(p.stem) for p in frames]
    if all(numbers):
        values = [int(m.group(1)) for m in numbers]
        for before, after, a, b in zip(frames, frames[1:], values, values[1:]):
            if b != a + 1:
                missing = f"frame {a + 1}" if b == a + 2 else f"frames {a + 1} to {b - 1}"
                raise ValueError(f"{folder}: {missing} missing between {before.name} and {after.name} "
                                 "(frames must be consecutive)")
    return frames


def draw_windows(settings: FramesSettings, total: int | None = None) -> Iterator[Window]:
    """Windows in order of their start, N drawn per window start from the settings' seed.

    With ``total`` known, only windows that fit in ``total`` frames and do not straddle the
    train/test boundary (those are dropped); without, an endless stream of training windows (a
    video of unknown length). Both draw the same N for the same start.
    """
    rng = np.random.default_rng(np.random.SeedSequence(settings.seed))
    lo, hi = settings.frames
    boundary = settings.split_index(total) if total is not None else None
    start = 0
    while total is None or start < total:
        count = int(rng.integers(lo, hi + 1))
        end = start + count - 1
        if total is None or end < total:
            if boundary is None or end < boundary:
                yield Window(start, count, "train")
            elif start >= boundary:
                yield Window(start, count, "test")
        start += settings.step


def plan_windows(total: int, settings: FramesSettings) -> list[Window]:
    """Every window that fits in ``total`` frames (see :func:`draw_windows`)."""
    return list(draw_windows(settings, total))


def average_frames(frames: list[np.ndarray], space: str = "linear", gamma: float = 2.2) -> np.ndarray:
    """The blur of a window: mean of integer frames, in linear light or on the stored values."""
    dtype = frames[0].dtype
    top = float(np.iinfo(dtype).max)
    stack = np.stack(frames).astype(np.float64)
    if space == "display":
        return np.floor(stack.mean(axis=0)).astype(dtype)
    linear = (stack / top) ** gamma
    mean = linear.mean(axis=0) ** (1.0 / gamma)
    return np.clip(np.rint(mean * top), 0, top).astype(dtype)


# -- reading frames -------------------------------------------------------------------------------
def _check_frame(frame: np.ndarray | None, name: str, first: tuple | None) -> tuple:
    if frame is None:
        raise ValueError(f"cannot read frame {name}: empty, truncated or not an image")
    if frame.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"frame {name} has pixel type {frame.dtype}; expected 8- or 16-bit integers")
    channels = 1 if frame.ndim == 2 else frame.shape[2]
    info = (frame.shape[0], frame.shape[1], channels, frame.dtype)
    if first is not None and info != first:
        raise ValueError(f"frame {name} is {info[0]}x{info[1]} with {info[2]} channel(s) ({info[3]}), "
                         f"the first frame is {first[0]}x{first[1]} with {first[2]} channel(s) ({first[3]}): "
                         "every frame must have the same size, channels and pixel type")
    return info


def _folder_frames(frames: list[Path]) -> Iterator[tuple[str, np.ndarray]]:
    for path in frames:
        data = np.fromfile(path, dtype=np.uint8)
        yield path.name, (cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None)


def _video_frames(path: Path) -> Iterator[tuple[str, np.ndarray]]:
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise ValueError(f"cannot open video {path}: not a video OpenCV can decode")
    try:
        index = 0
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            yield f"{path.name}#{index}", frame
            index += 1
    finally:
        capture.release()
    if index == 0:
        raise ValueError(f"cannot read video {path}: no frame could be decoded")


def _video_length(path: Path) -> int:
    capture = cv2.VideoCapture(str(path))
    count = 0
    while capture.grab():
        count += 1
    capture.release()
    return count


def _source(src: Path) -> tuple[Iterator[tuple[str, np.ndarray]], int | None, str]:
    """(frames as (name, array), frame count if known, kind)."""
    if src.is_dir():
        frames = list_frames(src)
        return _folder_frames(frames), len(frames), "folder"
    if src.is_file() and src.suffix.lower() in VIDEO_EXTENSIONS:
        return _video_frames(src), None, "video"
    if src.is_file():
        raise ValueError(f"{src} is neither a folder of frames nor a video ({', '.join(VIDEO_EXTENSIONS)})")
    raise FileNotFoundError(f"no such folder or video: {src}")


# -- writing pairs --------------------------------------------------------------------------------
def _write_image(path: Path, image: np.ndarray) -> None:
    ok, buffer = cv2.imencode(".png", image)
    if not ok:
        raise OSError(f"PNG encoding failed for {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.tobytes())


def frames_to_pairs(src, out, settings: FramesSettings | None = None, sequence: str | None = None,
                    overwrite: bool = False, progress: bool = True) -> dict:
    """Write GoPro-layout pairs ``OUT/<split>/<sequence>/{blur,sharp}/<start>_n<N>.png`` from frames.

    ``src`` is a folder of consecutive frames or a video file. Also writes ``manifest.jsonl`` (one
    row per pair: source frames, N, space) and ``frames_to_pairs.json`` (the settings). The output
    appears only when complete; an existing non-empty ``out`` is replaced only with ``overwrite``.
    Returns a summary. Deterministic for given frames and settings.
    """
    settings = settings or FramesSettings()
    src, out = Path(src), Path(out)
    sequence = sequence or (src.name if src.is_dir() else src.stem)
    if not sequence or "/" in sequence or sequence.startswith("."):
        raise ValueError(f"sequence name {sequence!r} must be a plain folder name")
    frames, total, kind = _source(src)
    if total is None and settings.split_at is not None:
        total = _video_length(src)
    if total is not None:
        _check_enough(src, total, settings)
    staging = stage_folder(out, overwrite)
    try:
        summary = _write_pairs(frames, total, src, staging, settings, sequence, kind, progress)
        publish_folder(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    summary["out"] = str(out)
    return summary


def _check_enough(src, count: int, settings: FramesSettings) -> None:
    if count < settings.frames[1]:
        raise ValueError(f"{src} has {count} frames, fewer than the {settings.frames[1]} that "
                         f"frames={settings.frames} may average")


def _write_pairs(frames, total, src, staging, settings, sequence, kind, progress) -> dict:
    started = time.perf_counter()
    windows = draw_windows(settings, total)
    upcoming = next(windows, None)
    pending: dict[int, list[Window]] = {}  # windows that have started, by their last frame
    buffer: deque = deque(maxlen=settings.frames[1])
    names: deque = deque(maxlen=settings.frames[1])
    first = None
    rows, counts = [], {"train": 0, "test": 0}
    bar = tqdm(total=total, desc="frames-to-pairs", unit="frame", disable=not progress)
    index = -1
    for index, (name, frame) in enumerate(frames):
        first = _check_frame(frame, name, first)
        buffer.append(frame)
        names.append(name)
        while upcoming is not None and upcoming.start <= index:
            pending.setdefault(upcoming.end, []).append(upcoming)
            upcoming = next(windows, None)
        for window in pending.pop(index, []):
            window_frames = list(buffer)[-window.count:]
            window_names = list(names)[-window.count:]
            middle = window.sharp - window.start
            blurry = average_frames(window_frames, settings.space, settings.gamma)
            sharp = window_frames[middle]
            folder = staging / window.split / sequence
            _write_image(folder / "blur" / f"{window.name}.png", blurry)
            _write_image(folder / "sharp" / f"{window.name}.png", sharp)
            counts[window.split] += 1
            rows.append({"split": window.split, "sequence": sequence, "name": window.name,
                         "start": window.start, "n": window.count, "sharp_frame": window_names[middle],
                         "frames": window_names, "space": settings.space,
                         "gamma": settings.gamma if settings.space == "linear" else None})
        bar.update()
    bar.close()
    seen = index + 1
    _check_enough(src, seen, settings)
    if not rows:
        raise ValueError(f"{src}: no window of {settings.frames} frames fits in {seen} frames")
    rows.sort(key=lambda r: (r["split"], r["start"]))
    (staging / "manifest.jsonl").write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
    recipe = {"generator": GENERATOR, "source": str(src), "source_kind": kind, "source_frames": seen,
              "sequence": sequence, "settings": asdict(settings), "pairs": counts,
              "layout": "<split>/<sequence>/{blur,sharp}/<start>_n<N>.png"}
    (staging / "frames_to_pairs.json").write_text(json.dumps(recipe, indent=2) + "\n")
    return {"pairs": counts, "frames": seen, "height": first[0], "width": first[1],
            "elapsed_s": round(time.perf_counter() - started, 2)}
