"""Offline data augmentation: a folder of sharp images -> a GoPro-layout paired dataset.

Every sharp image ``i`` gets ``per_image`` blurred versions ``k = 0 .. per_image - 1``, written as
``OUT/<split>/<sequence>/sharp/<k>.png`` (an 8-bit copy of the sharp image) and
``OUT/<split>/<sequence>/blur/<k>.png``, one sequence per source image. Each version is a learned
blur (a code from the bank, applied by F) or, with probability ``mix`` (the paper's "comb."
setting), a parametric motion blur.

Determinism and resuming: the randomness of output (i, k) comes only from
``np.random.SeedSequence(seed, spawn_key=(i, k))`` and each output is computed on its own (one
image per forward pass), so a run that was interrupted and resumed writes the same files as one
that was not.
PNGs are written atomically (temporary file, then rename): a file that exists is complete, and
images whose outputs all exist are skipped; temporary files left by a killed run are removed by
the next one. ``OUT/augment.json`` records the settings (a resumed
run must use the same ones); ``OUT/manifest.jsonl`` is rewritten at the end of each run with one
line per output: source image, blur kind, strength and either the bank code (index, source pair)
or the motion length and angle.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from .. import functional as KF
from ..bank import SAMPLE_MODES, KernelBank
from ..bank.codes import GRID_MODES
from ..data.pairs import read_image
from ..models import BlurModel
from ..models.pretrained import file_sha256

__all__ = ["IMAGE_SUFFIXES", "AugmentSettings", "BlurDraw", "list_images", "sequence_names", "output_rng",
           "draw_blur", "blur_versions", "augment_folder", "write_png"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
GENERATOR = "kernelaug augment v2"  # v2: output names unique for distinct images


@dataclass(frozen=True)
class AugmentSettings:
    """What decides the written files (recorded in ``augment.json``; a resumed run must match)."""

    per_image: int = 4
    mix: float = 0.0
    seed: int = 0
    mode: str = "bank"
    strength: tuple[float, float] = (1.0, 1.0)
    motion_length: tuple[int, int] = (3, 15)
    grid_mode: str = "resize"
    split: str = "train"

    def __post_init__(self):
        if isinstance(self.per_image, bool) or not isinstance(self.per_image, int) or self.per_image < 1:
            raise ValueError(f"per_image must be a positive integer, got {self.per_image!r}")
        if not 0.0 <= float(self.mix) <= 1.0:
            raise ValueError(f"mix must be in [0, 1], got {self.mix!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")
        if self.mode not in SAMPLE_MODES:
            raise ValueError(f"mode must be one of {SAMPLE_MODES}, got {self.mode!r}")
        if self.grid_mode not in GRID_MODES:
            raise ValueError(f"grid_mode must be one of {GRID_MODES}, got {self.grid_mode!r}")
        lo, hi = self.strength
        if not 0.0 <= lo <= hi <= 1.0:
            raise ValueError(f"strength must be (lo, hi) with 0 <= lo <= hi <= 1, got {self.strength!r}")
        a, b = self.motion_length
        if not 1 <= a <= b:
            raise ValueError(f"motion_length must be (min, max) with 1 <= min <= max, got {self.motion_length!r}")
        if not re.fullmatch(r"[A-Za-z0-9._-]+", self.split):
            raise ValueError(f"split must be a plain folder name, got {self.split!r}")


@dataclass
class BlurDraw:
    """The drawn parameters of one output (see :func:`draw_blur`)."""

    kind: str                                  # "learned" or "parametric"
    strength: float
    origin: str | None = None                  # learned: "bank", "gaussian" or "mix"
    bank_index: int | None = None              # "bank": the code's row; "mix": the first code's row
    mix_index: int | None = None               # "mix": the second code's row
    mix_weight: float | None = None            # "mix": code = (1 - w) * first + w * second
    length: int | None = None                  # parametric: motion length (px) and angle (degrees)
    angle: float | None = None
    code: np.ndarray | None = None             # learned: float32 (C, h, w)

    def record(self, pair_ids=None) -> dict:
        """JSON-ready description (the code itself is left out; it is named by its origin)."""
        out = {"kind": self.kind, "strength": round(self.strength, 6)}
        if self.kind == "parametric":
            out["motion"] = {"length": self.length, "angle": round(self.angle, 4)}
            return out
        code = {"origin": self.origin}
        for name, index in (("bank_index", self.bank_index), ("mix_index", self.mix_index)):
            if index is not None:
                code[name] = index
                if pair_ids is not None:
                    code[name.replace("index", "pair_id")] = str(pair_ids[index])
        if self.mix_weight is not None:
            code["mix_weight"] = round(self.mix_weight, 6)
        out["code"] = code
        return out


# -- pure helpers ---------------------------------------------------------------------------------
def list_images(folder) -> list[Path]:
    """Image files under ``folder`` (recursive, sorted by relative path); ValueError if none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"image folder {folder} does not exist or is not a folder")
    files = sorted((p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
                   key=lambda p: p.relative_to(folder).as_posix())
    if not files:
        raise ValueError(f"no images ({', '.join(IMAGE_SUFFIXES)}) found under {folder}")
    return files


_SAFE = re.compile(r"[^A-Za-z0-9._-]")


def sequence_names(relative: list[str]) -> list[str]:
    """One output folder name per image, unique for distinct relative paths and the same in every
    run over the same listing: the relative path without suffix, '/' -> '__', other characters
    than ``A-Za-z0-9._-`` -> '_'. Where that loses information (an unsafe character, a '__' or a
    suffix dropped, so two images could meet), ``-`` and 10 hex digits of the path's SHA-256 are
    appended: ``a b.png`` -> ``a_b-<hash>``, ``a_b.png`` -> ``a_b``."""
    stems = [str(Path(r).with_suffix("")).replace(os.sep, "/") for r in relative]
    names = [_SAFE.sub("_", stem.replace("/", "__")) for stem in stems]
    count: dict[str, int] = {}
    for name in names:
        count[name] = count.get(name, 0) + 1
    digest = [hashlib.sha256(r.encode("utf-8")).hexdigest() for r in relative]
    lossless = [not _SAFE.search(stem.replace("/", "")) and "__" not in stem and count[name] == 1
                for stem, name in zip(stems, names)]
    out = [name if keep else f"{name}-{h[:10]}" for name, keep, h in zip(names, lossless, digest)]
    if len(set(out)) < len(out):  # only for names built to collide with a hash: use the whole hash
        out = [name if keep else f"{name}-{h}" for name, keep, h in zip(names, lossless, digest)]
    if len(set(out)) < len(out):
        raise ValueError("cannot give these images distinct output names; rename the clashing files")
    return out


def output_rng(seed: int, image_index: int, k: int) -> np.random.Generator:
    """The generator of output ``k`` of image ``image_index``: independent of everything else."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(image_index, k)))


def draw_blur(rng: np.random.Generator, bank: KernelBank, settings: AugmentSettings) -> BlurDraw:
    """Draw one output's blur: parametric with probability ``mix``, else a code from the bank."""
    lo, hi = settings.strength
    strength = lo if lo == hi else float(rng.uniform(lo, hi))
    if settings.mix > 0 and (settings.mix >= 1 or rng.random() < settings.mix):
        length = int(rng.integers(settings.motion_length[0], settings.motion_length[1] + 1))
        return BlurDraw("parametric", strength, length=length, angle=float(rng.uniform(0.0, 180.0)))
    if len(bank) == 0:
        raise ValueError(f"kernel bank {bank.path} is empty: nothing to draw")
    if settings.mode == "bank":
        index = int(rng.integers(len(bank)))
        return BlurDraw("learned", strength, origin="bank", bank_index=index, code=bank[index])
    if settings.mode == "mix":
        first, second = (int(v) for v in rng.integers(0, len(bank), size=2))
        weight = float(rng.random())
        code = (1 - weight) * bank[first] + weight * bank[second]
        return BlurDraw("learned", strength, origin="mix", bank_index=first, mix_index=second,
                        mix_weight=weight, code=code.astype(np.float32))
    code = bank.gaussian().sample(1, rng)[0]
    return BlurDraw("learned", strength, origin="gaussian", code=np.asarray(code, np.float32))


def blur_versions(model: BlurModel, sharp: np.ndarray, draws: list[BlurDraw], grid_mode: str = "resize") -> list[np.ndarray]:
    """Apply each draw to one sharp uint8 HWC RGB image -> uint8 HWC RGB images (no randomness)."""
    image = torch.from_numpy(sharp.astype(np.float32) / 255).permute(2, 0, 1)[None]
    out: list[np.ndarray | None] = [None] * len(draws)
    learned = [i for i, d in enumerate(draws) if d.kind == "learned"]
    if learned:
        codes = torch.from_numpy(np.stack([draws[i].code for i in learned]))
        strength = [draws[i].strength for i in learned]
        # One image per forward pass: each output is computed exactly as it would be alone (a resumed
        # run recomputes only what is missing). On a CPU batches are no faster per image (synth-small,
        # one thread: 6.6 ms at 256x256 alone, 6.1-6.6 in batches of 2 or 4; 26.9 vs 27.7-28.0 at 512x512).
        blurred = KF.learned_blur(image.expand(len(learned), -1, -1, -1), codes, model, strength, grid_mode,
                                  chunk_size=1)
        pixels = (blurred.permute(0, 2, 3, 1).numpy() * 255).round().clip(0, 255).astype(np.uint8)
        for j, i in enumerate(learned):
            out[i] = pixels[j]
    for i, draw in enumerate(draws):
        if draw.kind == "parametric":
            hwc = sharp.astype(np.float32) / 255
            blurred = KF.motion_blur(hwc, draw.length, draw.angle)
            mixed = hwc + draw.strength * (blurred - hwc)
            out[i] = (mixed * 255).round().clip(0, 255).astype(np.uint8)
    return out


def write_png(path: Path, rgb: np.ndarray) -> None:
    """Write a uint8 RGB image as PNG atomically (a temporary file in the same folder, then rename)."""
    ok, data = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]))
    if not ok:
        raise ValueError(f"PNG encoding failed for {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data.tobytes())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


_TEMPORARY = re.compile(r"^\..+\.(\d+)\.tmp$")  # what write_png and _write_text_atomic leave when killed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale_temporaries(out: Path) -> int:
    """Delete temporary files of earlier runs that were killed (those of live processes stay)."""
    removed = 0
    for path in out.rglob(".*.tmp"):
        match = _TEMPORARY.match(path.name)
        if match and path.is_file() and (int(match.group(1)) == os.getpid() or not _alive(int(match.group(1)))):
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return (image * 255 + 0.5).clip(0, 255).astype(np.uint8)


# -- the command ----------------------------------------------------------------------------------
def _recipe(settings: AugmentSettings, bank: KernelBank, sources: list[str]) -> dict:
    # The bank's model hash names the model (bank.check enforces it); the file hash names the codes.
    # Output (i, k) is keyed by the image's position in the sorted listing: the listing must not change.
    listing = hashlib.sha256("\n".join(sources).encode()).hexdigest()
    recipe = {"generator": GENERATOR, "settings": asdict(settings), "model_sha256": bank.model_sha256,
              "bank": {"file": Path(bank.path).name, "sha256": file_sha256(bank.path), "codes": len(bank)},
              "sources": {"images": len(sources), "first": sources[0], "last": sources[-1], "listing_sha256": listing}}
    return json.loads(json.dumps(recipe))  # as it reads back from augment.json (tuples -> lists)


def _check_recipe(out: Path, recipe: dict) -> None:
    """Refuse to resume into ``out`` when it was written with other settings, model, bank or images."""
    path = out / "augment.json"
    if not path.exists():
        if out.exists() and any(out.iterdir()):
            raise ValueError(f"output folder {out} is not empty and holds no augment.json: "
                             "choose a new --out (nothing there was written by kernelaug augment)")
        return
    try:
        previous = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is damaged ({error}); choose a new --out") from None
    for key in ("generator", "settings", "model_sha256", "bank", "sources"):
        if previous.get(key) != recipe[key]:
            raise ValueError(f"{out} was written with a different {key} ({previous.get(key)!r} vs now "
                             f"{recipe[key]!r}); resuming would mix two datasets: choose a new --out")


def augment_folder(model: BlurModel, bank: KernelBank, images, out, settings: AugmentSettings,
                   progress: bool = True) -> dict:
    """Write the augmented paired dataset of the images under ``images`` into ``out``; return a summary
    (outputs written and skipped, wall time, outputs per second, learned/parametric counts)."""
    bank.check(model)
    images, out = Path(images), Path(out)
    files = list_images(images)
    relative = [f.relative_to(images).as_posix() for f in files]
    sequences = sequence_names(relative)
    recipe = _recipe(settings, bank, relative)
    _check_recipe(out, recipe)
    out.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(out)
    _write_text_atomic(out / "augment.json", json.dumps(recipe, indent=2) + "\n")

    pair_ids = bank.column("pair_id")
    records, written, skipped = [], 0, 0
    kinds = {"learned": 0, "parametric": 0}
    start = time.perf_counter()
    bar = tqdm(total=len(files) * settings.per_image, desc="augment", unit="img", disable=not progress)
    for i, (path, rel, sequence) in enumerate(zip(files, relative, sequences)):
        folder = out / settings.split / sequence
        names = [f"{k:06d}.png" for k in range(settings.per_image)]
        draws = [draw_blur(output_rng(settings.seed, i, k), bank, settings) for k in range(settings.per_image)]
        missing = [k for k, name in enumerate(names)
                   if not ((folder / "sharp" / name).is_file() and (folder / "blur" / name).is_file())]
        if missing:
            sharp = _to_uint8(read_image(path))
            blurred = blur_versions(model, sharp, [draws[k] for k in missing], settings.grid_mode)
            for k, image in zip(missing, blurred):
                write_png(folder / "sharp" / names[k], sharp)
                write_png(folder / "blur" / names[k], image)
                written += 1
                bar.update()
        skipped += settings.per_image - len(missing)
        bar.update(settings.per_image - len(missing))
        for k, draw in enumerate(draws):
            kinds[draw.kind] += 1
            records.append({"image": rel, "image_index": i, "k": k,
                            "sharp": f"{settings.split}/{sequence}/sharp/{names[k]}",
                            "blur": f"{settings.split}/{sequence}/blur/{names[k]}", **draw.record(pair_ids)})
    bar.close()
    elapsed = time.perf_counter() - start
    _write_text_atomic(out / "manifest.jsonl", "".join(json.dumps(r, sort_keys=True) + "\n" for r in records))
    return {"out": str(out), "images": len(files), "outputs": len(records), "written": written,
            "skipped": skipped, "learned": kinds["learned"], "parametric": kinds["parametric"],
            "wall_time_s": elapsed, "written_per_s": written / elapsed if elapsed > 0 else float("nan")}
