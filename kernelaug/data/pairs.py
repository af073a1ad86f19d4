"""Paired sharp/blurry datasets: discovery on disk, image reading, training crops.

Three folder layouts are understood (folder names are matched exactly, lower case):

* ``gopro``   -- ``ROOT/<split>/<sequence>/{blur,sharp}/*.png`` (other folders such as
  ``blur_gamma`` are ignored);
* ``reds``    -- ``ROOT/<split>_{blur,sharp}/<sequence>/*.png``;
* ``generic`` -- ``ROOT/{blur,sharp}/**`` matched by relative path, at any depth.

In every layout a blurry image and a sharp image form a pair when their paths relative
to the ``blur`` and ``sharp`` folders agree once the extension is removed (so
``blur/a/001.jpg`` pairs with ``sharp/a/001.png``). Image files are recognised by
extension (:data:`IMAGE_EXTENSIONS`, case-insensitive); names starting with a dot are
skipped. Pair ids are that relative path without extension, prefixed by the split and
for GoPro the sequence, e.g. ``train/GOPR0372_07_00/000047``.
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

__all__ = [
    "IMAGE_EXTENSIONS",
    "LAYOUTS",
    "Pair",
    "PairedDataset",
    "detect_layout",
    "find_pairs",
    "read_image",
    "read_pair",
    "split_pairs",
]

LAYOUTS = ("gopro", "reds", "generic")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

_REDS_DIR = re.compile(r"^(?P<split>.+)_(?P<kind>blur|sharp)$")
_MAX_LISTED = 5


@dataclass(frozen=True)
class Pair:
    """One sharp image, its blurry counterpart and a stable id (see module docstring)."""

    sharp: Path
    blurry: Path
    pair_id: str


# ---------------------------------------------------------------------------
# Discovery
# ---------------------------------------------------------------------------


def detect_layout(root) -> str:
    """Return which of :data:`LAYOUTS` the folder ``root`` follows.

    Raises FileNotFoundError if ``root`` does not exist, and ValueError if no layout or
    more than one layout matches (pass ``layout=`` explicitly in the latter case).
    """
    root = _existing_dir(root)
    found = []
    if (root / "blur").is_dir() and (root / "sharp").is_dir():
        found.append("generic")
    if _reds_splits(root)[0]:
        found.append("reds")
    if _gopro_splits(root):
        found.append("gopro")
    if len(found) == 1:
        return found[0]
    if found:
        raise ValueError(
            f"{root} matches several dataset layouts ({', '.join(found)}); "
            f"pass layout= one of them explicitly"
        )
    hint = ""
    if any((d / "blur").is_dir() and (d / "sharp").is_dir() for d in _subdirs(root)):
        hint = (
            f" ({root} holds <sequence>/{{blur,sharp}} folders: it looks like one GoPro "
            f"split; pass its parent folder {root.parent} instead)"
        )
    raise ValueError(
        f"cannot tell the dataset layout of {root}: looked for "
        f"{root}/blur + {root}/sharp (generic), "
        f"{root}/<split>_blur + {root}/<split>_sharp (reds) and "
        f"{root}/<split>/<sequence>/blur + .../sharp (gopro), found none{hint}"
    )


def find_pairs(root, layout: str = "auto", split: str | None = None) -> list[Pair]:
    """List the sharp/blurry pairs under ``root``, sorted by ``pair_id``.

    ``layout`` is one of :data:`LAYOUTS` or ``"auto"`` (see :func:`detect_layout`).
    ``split`` selects one split of a GoPro or REDS dataset (``None``: every split
    found); it is ignored for the generic layout. Nothing is read, only listed.

    Raises FileNotFoundError when ``root`` or an expected folder is missing or no image
    is found, and ValueError for an unknown layout or split, for blurry images without a
    sharp counterpart (or vice versa) and for two files that map to the same pair id.
    """
    root = _existing_dir(root)
    if layout == "auto":
        layout = detect_layout(root)
    if layout == "generic":
        folders = [(root / "blur", root / "sharp", "")]
    elif layout == "reds":
        folders = _reds_folders(root, split)
    elif layout == "gopro":
        folders = _gopro_folders(root, split)
    else:
        raise ValueError(f"unknown layout {layout!r}; expected 'auto' or one of {LAYOUTS}")

    pairs, unmatched = [], []
    for blur_dir, sharp_dir, prefix in folders:
        found, missing = _match_folders(blur_dir, sharp_dir, prefix)
        pairs += found
        unmatched += missing
    if unmatched:
        raise ValueError(
            f"{len(unmatched)} image(s) under {root} have no counterpart: "
            f"{_listing(sorted(unmatched))}"
        )
    if not pairs:
        looked = _listing([str(folder) for halves in folders for folder in halves[:2]])
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) found in {looked}")
    return sorted(pairs, key=lambda p: p.pair_id)


def _existing_dir(root) -> Path:
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"dataset folder {root} does not exist")
    if not root.is_dir():
        raise NotADirectoryError(f"dataset folder {root} is not a folder")
    return root


def _subdirs(folder: Path) -> list[Path]:
    return sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))


def _gopro_splits(root: Path) -> dict[str, list[Path]]:
    """``{split: [sequence folders]}``: a split counts when one of its sequences holds both
    blur/ and sharp/; its sequences are those holding either (a missing half is an error
    later, not a sequence silently dropped)."""
    splits = {}
    for split_dir in _subdirs(root):
        halves = {
            seq: [(seq / kind).is_dir() for kind in ("blur", "sharp")]
            for seq in _subdirs(split_dir)
        }
        if any(all(h) for h in halves.values()):
            splits[split_dir.name] = [seq for seq, h in halves.items() if any(h)]
    return splits


def _gopro_folders(root: Path, split: str | None):
    splits = _gopro_splits(root)
    if not splits:
        raise FileNotFoundError(
            f"no GoPro folders {root}/<split>/<sequence>/{{blur,sharp}} found under {root}"
        )
    if split is not None and split not in splits:
        raise ValueError(
            f"split {split!r} not found in GoPro dataset {root}; "
            f"splits present: {', '.join(sorted(splits))}"
        )
    names = [split] if split is not None else sorted(splits)
    return [
        (seq / "blur", seq / "sharp", f"{name}/{seq.name}")
        for name in names
        for seq in splits[name]
    ]


def _reds_splits(root: Path) -> tuple[list[str], dict[str, str]]:
    """Complete REDS splits, and ``{split: missing folder name}`` for one-sided ones."""
    kinds: dict[str, set[str]] = {}
    for d in _subdirs(root):
        m = _REDS_DIR.match(d.name)
        if m:
            kinds.setdefault(m["split"], set()).add(m["kind"])
    complete = sorted(s for s, k in kinds.items() if k == {"blur", "sharp"})
    incomplete = {
        s: f"{s}_{'sharp' if 'blur' in k else 'blur'}"
        for s, k in kinds.items()
        if k != {"blur", "sharp"}
    }
    return complete, incomplete


def _reds_folders(root: Path, split: str | None):
    complete, incomplete = _reds_splits(root)
    if split is not None:
        if split in incomplete:
            raise FileNotFoundError(
                f"REDS split {split!r} has no {root / incomplete[split]} folder"
            )
        if split not in complete:
            raise ValueError(
                f"split {split!r} not found in REDS dataset {root}; "
                f"splits present: {', '.join(complete) or 'none'}"
            )
        names = [split]
    else:
        if not complete:
            raise FileNotFoundError(
                f"no REDS folders {root}/<split>_blur + {root}/<split>_sharp found"
            )
        for name, missing in sorted(incomplete.items()):
            warnings.warn(
                f"ignoring REDS split {name!r} of {root}: it has no {missing} folder",
                stacklevel=3,
            )
        names = complete
    return [(root / f"{n}_blur", root / f"{n}_sharp", n) for n in names]


def _list_images(folder: Path) -> dict[str, Path]:
    """``{relative path without extension (posix): file}`` for the images under ``folder``."""
    if not folder.is_dir():
        raise FileNotFoundError(f"expected a folder {folder}")
    images: dict[str, Path] = {}
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            path = Path(dirpath, name)
            if name.startswith(".") or path.suffix.lower() not in IMAGE_EXTENSIONS:
                continue
            key = path.relative_to(folder).with_suffix("").as_posix()
            if key in images:
                raise ValueError(
                    f"{images[key]} and {path} have the same name up to the extension; "
                    f"keep only one of them"
                )
            images[key] = path
    return images


def _match_folders(blur_dir: Path, sharp_dir: Path, prefix: str):
    """Pairs found in one blur/sharp folder pair, and the files left without a partner."""
    blurry, sharp = _list_images(blur_dir), _list_images(sharp_dir)
    pairs = [
        Pair(sharp=sharp[key], blurry=blurry[key], pair_id=f"{prefix}/{key}" if prefix else key)
        for key in blurry.keys() & sharp.keys()
    ]
    unmatched = [
        f"{blurry[k]} (no sharp {sharp_dir / k}.*)" for k in blurry.keys() - sharp.keys()
    ] + [f"{sharp[k]} (no blurry {blur_dir / k}.*)" for k in sharp.keys() - blurry.keys()]
    return pairs, unmatched


def _listing(items: list[str]) -> str:
    shown = "; ".join(items[:_MAX_LISTED])
    if len(items) > _MAX_LISTED:
        shown += f"; and {len(items) - _MAX_LISTED} more"
    return shown


# ---------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------


def read_image(path) -> np.ndarray:
    """Read an image as float32 RGB, shape (H, W, 3), values in [0, 1].

    8-bit images are divided by 255 and 16-bit ones by 65535; grayscale is repeated to
    three channels and alpha is dropped. Raises ValueError naming the file when it
    cannot be decoded (corrupt, truncated, empty, not an image) or has another pixel type.
    """
    path = Path(path)
    data = np.fromfile(path, dtype=np.uint8)  # FileNotFoundError if missing; unicode-safe
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise ValueError(f"cannot read image {path}: empty, truncated or not an image")
    if image.dtype == np.uint8:
        scale = 255.0
    elif image.dtype == np.uint16:
        scale = 65535.0
    else:
        raise ValueError(f"cannot read image {path}: unsupported pixel type {image.dtype}")
    if image.ndim == 3 and image.shape[2] >= 3:
        image = cv2.cvtColor(image[:, :, :3], cv2.COLOR_BGR2RGB)
    else:  # grayscale, possibly with alpha
        gray = image if image.ndim == 2 else image[:, :, 0]
        image = np.repeat(gray[:, :, None], 3, axis=2)
    return image.astype(np.float32) / np.float32(scale)


def read_pair(pair: Pair) -> tuple[np.ndarray, np.ndarray]:
    """Read ``(sharp, blurry)`` with :func:`read_image`; ValueError if their sizes differ."""
    sharp, blurry = read_image(pair.sharp), read_image(pair.blurry)
    if sharp.shape != blurry.shape:
        raise ValueError(
            f"pair {pair.pair_id!r}: sharp {pair.sharp} is {_size(sharp)} but "
            f"blurry {pair.blurry} is {_size(blurry)}"
        )
    return sharp, blurry


def _size(image: np.ndarray) -> str:
    return f"{image.shape[0]}x{image.shape[1]} (HxW)"


# ---------------------------------------------------------------------------
# Training dataset
# ---------------------------------------------------------------------------


class PairedDataset(Dataset):
    """Aligned crops of paired images; item ``i`` is ``(sharp, blurry)``, float32 CHW in [0, 1].

    Pairs come from ``find_pairs(root, layout, split)``, or from ``pairs`` when given
    (``root``, ``layout`` and ``split`` are then ignored). Images are read lazily in
    ``__getitem__``, so the dataset is cheap to pickle into DataLoader workers.

    ``crop``: side of the square crop, or ``None`` for the whole image (the caller then
    makes sure sizes agree within a batch). An image smaller than ``crop`` is a
    ValueError naming it.

    ``augment=True``: random crop position and one of the 8 flips/90-degree rotations,
    applied identically to both images (with ``crop=None`` and a non-square image only
    the 4 shape-preserving ones). ``augment=False``: centre crop, no flips (validation).

    Randomness: item ``i`` draws from ``np.random.SeedSequence([seed, epoch, i])``, so
    items do not depend on global random state, worker count or loading order. Call
    :meth:`set_epoch` before iterating to get new crops each epoch; the change reaches
    DataLoader workers only when they are started afterwards, i.e. not with
    ``persistent_workers=True``.
    """

    def __init__(
        self,
        root=None,
        layout: str = "auto",
        split: str | None = None,
        crop: int | None = 256,
        augment: bool = True,
        pairs: list[Pair] | None = None,
        seed: int = 0,
    ):
        if crop is not None and (isinstance(crop, bool) or int(crop) != crop or crop < 1):
            raise ValueError(f"crop must be a positive integer or None, got {crop!r}")
        if pairs is None:
            if root is None:
                raise ValueError("PairedDataset needs a root folder or a list of pairs")
            pairs = find_pairs(root, layout, split)
        if not pairs:
            raise ValueError("PairedDataset got an empty list of pairs")
        self._pairs = list(pairs)
        self.crop = None if crop is None else int(crop)
        self.augment = augment
        self.seed = seed
        self.epoch = 0

    @property
    def pairs(self) -> list[Pair]:
        """The pairs, in item order (a copy)."""
        return list(self._pairs)

    def set_epoch(self, epoch: int) -> None:
        """Select the random crops/flips of epoch ``epoch`` (no effect with augment=False)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self._pairs)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} pairs")
        index %= len(self)
        pair = self._pairs[index]
        sharp, blurry = read_pair(pair)
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, self.epoch, index]))
        top, left, size_h, size_w = self._crop_box(pair, sharp.shape[:2], rng)
        window = np.s_[top : top + size_h, left : left + size_w]
        sharp, blurry = sharp[window], blurry[window]
        if self.augment:
            square = size_h == size_w
            turns = int(rng.integers(4)) if square else 2 * int(rng.integers(2))
            flip = bool(rng.integers(2))
            sharp, blurry = (_orient(im, turns, flip) for im in (sharp, blurry))
        return _to_tensor(sharp), _to_tensor(blurry)

    def _crop_box(self, pair: Pair, shape, rng: np.random.Generator):
        height, width = shape
        if self.crop is None:
            return 0, 0, height, width
        if height < self.crop or width < self.crop:
            raise ValueError(
                f"image {pair.sharp} (and {pair.blurry}) is {height}x{width} (HxW), "
                f"smaller than the {self.crop}x{self.crop} crop"
            )
        if self.augment:
            top = int(rng.integers(height - self.crop + 1))
            left = int(rng.integers(width - self.crop + 1))
        else:
            top, left = (height - self.crop) // 2, (width - self.crop) // 2
        return top, left, self.crop, self.crop

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({len(self)} pairs, crop={self.crop}, "
            f"augment={self.augment}, seed={self.seed}, epoch={self.epoch})"
        )


def _orient(image: np.ndarray, turns: int, flip: bool) -> np.ndarray:
    """Rotate by ``turns`` x 90 degrees, then mirror left-right if ``flip``."""
    image = np.rot90(image, turns, axes=(0, 1))
    return image[:, ::-1] if flip else image


def _to_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))


# ---------------------------------------------------------------------------
# Train/validation split
# ---------------------------------------------------------------------------


def split_pairs(pairs, val_fraction: float, seed: int = 0) -> tuple[list[Pair], list[Pair]]:
    """Split pairs into ``(train, val)``, each sorted by ``pair_id``; deterministic in ``seed``.

    Pairs are grouped by sequence (their ``pair_id`` up to the last ``/``) and whole
    sequences, in a seeded random order, go to validation until it holds at least
    ``val_fraction`` of the pairs, so no sequence straddles the two sets. With a single
    sequence, individual pairs are drawn instead. The result does not depend on the
    order of ``pairs``. Training keeps at least one pair, and validation gets at least
    one when ``val_fraction > 0``.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
    pairs = sorted(pairs, key=lambda p: p.pair_id)
    if val_fraction == 0.0 or len(pairs) < 2:
        return pairs, []
    target = max(1, round(val_fraction * len(pairs)))

    groups: dict[str, list[Pair]] = {}
    for pair in pairs:
        groups.setdefault(pair.pair_id.rpartition("/")[0], []).append(pair)
    if len(groups) < 2:
        groups = {p.pair_id: [p] for p in pairs}

    rng = np.random.default_rng(np.random.SeedSequence([seed]))
    keys = sorted(groups)
    val_ids: set[str] = set()
    for k in rng.permutation(len(keys)):
        group = groups[keys[k]]
        if len(val_ids) + len(group) >= len(pairs):
            continue  # would leave nothing to train on
        val_ids.update(p.pair_id for p in group)
        if len(val_ids) >= target:
            break
    train = [p for p in pairs if p.pair_id not in val_ids]
    val = [p for p in pairs if p.pair_id in val_ids]
    return train, val
