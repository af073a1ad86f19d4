"""``kernelaug bench augment``: the paper's augmentation experiment, end to end, with one command.

Three trainings of one deblurrer (NAFNet or SRN-Deblur) with the same budget, seed and sharp
images differ only in their training blur, drawn afresh for every sample in DataLoader workers
through one :class:`kernelaug.LearnedBlur`:

* ``imgaug``: imgaug ``MotionBlur`` only (``parametric_ratio=1``);
* ``comb.``: the paper's mix, half imgaug, half learned codes of the reference camera's bank;
* ``learned``: learned codes only.

Each is tested on held-out sharp images blurred by imgaug and by the learned blur, on the
reference camera's real pairs (``reference``; default: held-out pairs of the synthetic shake
family the shipped ``synth-small`` bank was learned from), on any further real paired sets of
that camera (``also_test``, reported beside it; the bars are judged on ``reference``) and on the
other synthetic family.
Blur is applied at the camera's resolution and every image, training and test alike, is then
downscaled by the preset's ``scale`` (area interpolation). Test sets do not depend on the seed;
each seed re-runs the three trainings.
"""

from __future__ import annotations

import fnmatch
import json
import math
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from ..models.pretrained import DEFAULT_MODEL
from .blurred_crops import MARGIN, native_size
from .training import PairArrays

PAPER_TABLE = {  # Tran et al. 2021, SRN-Deblur, PSNR dB
    "imgaug": {"imgaug": 28.64, "REDS": 24.22, "GOPRO": 22.96},
    "comb.": {"imgaug": 28.30, "REDS": 28.37, "GOPRO": 23.92},
}
RUNS = {"imgaug": 1.0, "comb.": 0.5, "learned": 0.0}   # run -> share of imgaug blur
OWN_TESTS = {"imgaug": ("imgaug",), "comb.": ("imgaug", "learned"), "learned": ("learned",)}
REFERENCE_SEED = 2026        # the seed of the synthetic data the synth-small bank was learned from
OTHER_SEED = 2027
TEST_SEED = 4242             # test-set blurs: fixed, whatever the training seeds
TRAIN_STREAM = 7             # spawn key of the synthetic sharp training images


@dataclass(frozen=True)
class AugmentBenchPreset:
    """Sizes of one benchmark run (``steps`` of ``batch_size`` crops of ``crop`` px after ``scale``)."""

    name: str
    steps: int
    batch_size: int
    crop: int
    scale: float
    nets: dict = field(default_factory=dict)   # net -> config preset of kernelaug.deblurrers.nets
    motion_k: tuple[int, int] = (3, 25)        # imgaug MotionBlur kernel sizes, camera pixels
    test_crop: int = 128                       # held-out sharp images: centre crops of this size (after scale)
    test_images: int = 40
    synthetic_pairs: int = 40                  # pairs per synthetic test family
    synthetic_size: int = 256
    train_images: int = 400                    # synthetic sharp images when no --sharp folder is given
    workers: int = 1
    lr: float | None = None                    # None: the network's reference learning rate
    figure_rows: int = 1


PRESETS = {
    "smoke": AugmentBenchPreset("smoke", steps=4, batch_size=2, crop=32, scale=0.5, nets={"nafnet": "tiny", "srn": "tiny"},
                                test_crop=32, test_images=3, synthetic_pairs=2, synthetic_size=64, train_images=6),
    "quick": AugmentBenchPreset("quick", steps=500, batch_size=8, crop=64, scale=0.5,
                                nets={"nafnet": "cpu", "srn": "cpu"}),
    # sized from the quick run (0.33 s per 64-px step, one thread): about 0.75 s per 96-px step, 70 min in all
    "cpu": AugmentBenchPreset("cpu", steps=1800, batch_size=8, crop=96, scale=0.5, nets={"nafnet": "cpu", "srn": "cpu"}),
    "paper": AugmentBenchPreset("paper", steps=200_000, batch_size=32, crop=256, scale=1.0,
                                nets={"nafnet": "gopro", "srn": "paper"}, test_crop=256, test_images=200,
                                synthetic_pairs=200, synthetic_size=512, train_images=4000, workers=8),
}


# -- images -----------------------------------------------------------------------------------------
def _uint8(image: np.ndarray) -> np.ndarray:
    return np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)


def downscale(image: np.ndarray, scale: float) -> np.ndarray:
    """uint8 HWC image shrunk by ``scale`` with area interpolation (identity at 1)."""
    if scale == 1.0:
        return image
    size = (max(1, int(round(image.shape[1] * scale))), max(1, int(round(image.shape[0] * scale))))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def centre_crop(image: np.ndarray, height: int, width: int | None = None) -> np.ndarray:
    width = height if width is None else width
    top, left = (image.shape[0] - height) // 2, (image.shape[1] - width) // 2
    return image[top:top + height, left:left + width]


def sharp_photos(folder, test_every: int | None = 5) -> tuple[list[np.ndarray], list[np.ndarray], list[str]]:
    """(train, held-out, held-out names) uint8 photographs of ``folder``; every ``test_every``-th file
    (sorted by path) is held out (None: none)."""
    from ..data.pairs import read_image
    from ..tools.augment import list_images

    train, test, names = [], [], []
    for i, path in enumerate(list_images(folder)):
        held_out = test_every is not None and i % test_every == test_every - 1
        (test if held_out else train).append(_uint8(read_image(path)))
        if held_out:
            names.append(path.relative_to(folder).as_posix())
    return train, test, names


def synthetic_sharp(count: int, size: int, split: str, seed: int = 0) -> list[np.ndarray]:
    """Sharp photo crops and dead-leaves images of the synthetic generator's ``split``."""
    from ..data.synthetic import sharp_source

    return [_uint8(sharp_source(np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(TRAIN_STREAM, i))),
                                size, split)[0]) for i in range(count)]


class ImgaugMotion:
    """imgaug ``MotionBlur`` as a uint8 HWC -> uint8 callable; its generator is reseeded in workers."""

    def __init__(self, k: tuple[int, int], seed: int):
        import imgaug.augmenters as iaa

        self.augmenter = iaa.MotionBlur(k=tuple(k), angle=(0, 360), seed=seed)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        return self.augmenter(image=image)


def run_blur(run: str, model, bank, motion_k, seed: int):
    """The training blur of ``run``: one LearnedBlur with the run's share of imgaug MotionBlur."""
    from ..transforms import LearnedBlur

    ratio = RUNS[run]
    parametric = ImgaugMotion(motion_k, seed) if ratio > 0 else None
    return LearnedBlur(model, bank, parametric=parametric, parametric_ratio=ratio, seed=seed)


# -- test sets --------------------------------------------------------------------------------------
def blurred_test_set(sharps: list[np.ndarray], blur, preset: AugmentBenchPreset) -> PairArrays:
    """Centre crops of held-out images blurred at camera resolution, then downscaled and cropped."""
    side = native_size(preset.test_crop, preset.scale, MARGIN)
    sharp_out, blurry_out = [], []
    for image in sharps:
        if min(image.shape[:2]) < side:
            continue
        crop = np.ascontiguousarray(centre_crop(image, side))
        blurred = blur(crop)
        sharp_out.append(centre_crop(downscale(crop, preset.scale), preset.test_crop))
        blurry_out.append(centre_crop(downscale(blurred, preset.scale), preset.test_crop))
        if len(sharp_out) == preset.test_images:
            break
    if not sharp_out:
        raise ValueError(f"no held-out sharp image is at least {side} px on its shorter side")
    return PairArrays(np.stack(sharp_out), np.stack(blurry_out))


def paired_test_set(pairs, scale: float, crop: int | None = None) -> PairArrays:
    """Real pairs downscaled by ``scale`` (whole frames, or centre crops of ``crop`` px after scaling);
    frames of different sizes are centre-cropped to the smallest."""
    from ..data.pairs import read_pair

    sharp, blurry = [], []
    for pair in pairs:
        s, b = (downscale(_uint8(x), scale) for x in read_pair(pair))
        sharp.append(s)
        blurry.append(b)
    height = min(s.shape[0] for s in sharp) if crop is None else crop
    width = min(s.shape[1] for s in sharp) if crop is None else crop
    if crop is not None and min(min(s.shape[:2]) for s in sharp) < crop:
        raise ValueError(f"reference pairs are smaller than the crop {crop} after scaling by {scale}")
    return PairArrays(np.stack([centre_crop(s, height, width) for s in sharp]),
                      np.stack([centre_crop(b, height, width) for b in blurry]))


def reference_pairs(reference, exclude: tuple[str, ...] = ()) -> list:
    """Pairs of the reference folder whose ids match none of the ``exclude`` glob patterns."""
    from ..data.pairs import find_pairs

    pairs = [p for p in find_pairs(reference) if not any(fnmatch.fnmatch(p.pair_id, pat) for pat in exclude)]
    if not pairs:
        raise ValueError(f"no reference pairs left in {reference} after excluding {list(exclude)}")
    return pairs


FIXED_TESTS = ("imgaug", "learned", "reference", "other (object)")


def check_also_test(also_test) -> tuple[tuple[str, str], ...]:
    """``also_test`` as ((name, folder), ...); names must be new, unique and not empty."""
    checked = []
    for item in also_test:
        name, folder = (str(x) for x in item)
        if not name.strip() or name in FIXED_TESTS or name in [n for n, _ in checked]:
            raise ValueError(f"extra test set name {name!r} is empty, repeated or one of {list(FIXED_TESTS)}")
        checked.append((name, folder))
    return tuple(checked)


def build_test_sets(work: Path, preset: AugmentBenchPreset, held_out: list[np.ndarray], model, bank,
                    reference=None, exclude: tuple[str, ...] = (), reference_crop: int | None = None,
                    progress: bool = True, also_test: tuple[tuple[str, str], ...] = ()
                    ) -> tuple[dict[str, PairArrays], dict[str, list[str]]]:
    """{"imgaug", "learned", "reference", "other (object)", *also_test names} test sets, and the
    pair ids of each real test set. ``exclude`` globs apply to every real folder."""
    from ..data.pairs import find_pairs
    from ..data.synthetic import make_synthetic
    from ..transforms import LearnedBlur

    def real_test_set(folder) -> tuple[PairArrays, list[str]]:
        pairs = reference_pairs(folder, exclude)
        return paired_test_set(pairs, preset.scale, reference_crop), [p.pair_id for p in pairs]

    sets = {"imgaug": blurred_test_set(held_out, ImgaugMotion(preset.motion_k, TEST_SEED), preset),
            "learned": blurred_test_set(held_out, LearnedBlur(model, bank, seed=TEST_SEED), preset)}
    pair_ids = {}
    families = [("object", OTHER_SEED, "other (object)")]
    if reference is None:
        families.insert(0, ("shake", REFERENCE_SEED, "reference"))
    else:
        sets["reference"], pair_ids["reference"] = real_test_set(reference)
    for family, data_seed, name in families:
        root = work / family
        make_synthetic(root, pairs=2 * preset.synthetic_pairs, size=preset.synthetic_size, seed=data_seed,
                       family=family, test_fraction=0.5, progress=progress)
        pairs = find_pairs(root, split="test")
        sets[name] = paired_test_set(pairs, preset.scale)
        if name == "reference":
            pair_ids["reference"] = [p.pair_id for p in pairs]
    for name, folder in also_test:
        sets[name], pair_ids[name] = real_test_set(folder)
    return sets, pair_ids


# -- the runs ---------------------------------------------------------------------------------------
def train_one(net: str, preset: AugmentBenchPreset, run: str, images: list[np.ndarray], model, bank, seed: int,
              device: str, gpu_blur: bool, progress: bool):
    """One training of ``net`` with the blur of ``run``; returns (network, summary)."""
    from ..transforms import LearnedBlurBatch
    from .nets import build_deblurrer
    from .training import train_with_fresh_blur

    torch.manual_seed(seed)
    network = build_deblurrer(net, preset.nets[net])
    batch_blur = LearnedBlurBatch(model, bank, seed=seed, device=device) if gpu_blur else None
    return train_with_fresh_blur(network, images, run_blur(run, model, bank, preset.motion_k, seed), preset.steps,
                                 preset.batch_size, preset.crop, preset.scale, seed=seed, workers=preset.workers,
                                 device=device, batch_blur=batch_blur, lr=preset.lr, progress=progress,
                                 desc=f"train {net} ({run})")


def run_augment_bench(net: str = "nafnet", preset: str | AugmentBenchPreset = "quick", out="benchmarks/results",
                      model=DEFAULT_MODEL, bank=None, seeds: int = 1, seed: int = 0, sharp=None, reference=None,
                      exclude: tuple[str, ...] = (), reference_crop: int | None = None, device: str = "cpu",
                      gpu_blur: bool = False, work=None, save_models=None, progress: bool = True,
                      command: str | None = None, also_test=()) -> dict:
    """Run the benchmark and write ``out/augment_<net>_<preset>.{json,md,png}``; return the results.

    ``sharp``: a folder of sharp photographs (every 5th held out for testing; default: the
    synthetic generator's photo crops and dead-leaves images). ``reference``: a paired folder of
    the reference camera, used only for testing, minus pairs matching ``exclude`` globs.
    ``also_test``: (name, folder) pairs of further real test sets of that camera (same globs).
    ``save_models``: folder for the trained networks (safetensors).
    """
    from ..bank import resolve_bank
    from ..models import resolve_model
    from ..runinfo import machine_info
    from .nets import NETS, save_deblurrer
    from .training import evaluate_deblurrer

    if net not in NETS:
        raise ValueError(f"unknown net {net!r}; choose from {sorted(NETS)}")
    if isinstance(preset, str):
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; choose from {sorted(PRESETS)}")
        preset = PRESETS[preset]
    if seeds < 1:
        raise ValueError(f"seeds must be >= 1, got {seeds}")
    also_test = check_also_test(also_test)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    own_work = work is None
    work = Path(tempfile.mkdtemp(prefix="kernelaug-bench-")) if own_work else Path(work)
    if not own_work and work.exists() and any(work.iterdir()):
        raise ValueError(f"work folder {work} is not empty; give an empty or new folder")
    work.mkdir(parents=True, exist_ok=True)
    try:
        blur_model = resolve_model(model)
        blur_bank = resolve_bank(bank, model if isinstance(model, str) else None)
        blur_bank.check(blur_model)
        if sharp is not None:
            train_images, held_out, held_out_names = sharp_photos(sharp)
        else:
            side = native_size(max(preset.crop, preset.test_crop), preset.scale, MARGIN)
            size = 64 * math.ceil(side / 64)
            train_images = synthetic_sharp(preset.train_images, size, "train")
            held_out, held_out_names = synthetic_sharp(preset.test_images, size, "test", seed=1), []
        tests, pair_ids = build_test_sets(work, preset, held_out, blur_model, blur_bank, reference, exclude,
                                          reference_crop, progress, also_test)
        records = []
        for k in range(seeds):
            for run in RUNS:
                network, summary = train_one(net, preset, run, train_images, blur_model, blur_bank, seed + k,
                                             device, gpu_blur, progress)
                scores = {name: evaluate_deblurrer(network, test, progress=False, keep=preset.figure_rows)
                          for name, test in tests.items()}
                if save_models is not None:
                    path = Path(save_models) / f"{net}_{preset.name}_{run.strip('.')}_seed{seed + k}.safetensors"
                    save_deblurrer(network, path, provenance={"bench": preset.name, "run": run, "seed": seed + k,
                                                              "blur_model": str(model), "scale": preset.scale,
                                                              "steps": preset.steps})
                records.append({"run": run, "seed": seed + k, **summary, "tests": scores})
        result = {"net": net, "preset": preset.name, "command": command or "kernelaug " + " ".join(sys.argv[1:]),
                  "machine": machine_info(), "wall_time_s": time.perf_counter() - start,
                  "settings": {**asdict(preset), "seeds": list(range(seed, seed + seeds)), "device": device,
                               "gpu_blur": gpu_blur, "blur_model": str(model),
                               "bank": str(getattr(blur_bank, "path", bank)), "sharp": str(sharp) if sharp else
                               "synthetic photo crops and dead-leaves images", "reference": str(reference) if reference
                               else "synthetic shake family (make-synthetic --seed 2026), test split",
                               "reference_exclude": list(exclude), "reference_pairs": pair_ids["reference"],
                               "also_test": {name: {"folder": folder, "pairs": pair_ids[name]}
                                             for name, folder in also_test},
                               "held_out_sharp": held_out_names, "test_pairs": {n: len(t) for n, t in tests.items()},
                               "test_sizes": {n: list(t.sharp.shape[1:3]) for n, t in tests.items()}},
                  "paper": PAPER_TABLE}
        result["summary"] = summarise(records)
        result["figure"] = figures(tests, records, out / f"augment_{net}_{preset.name}.png").name
        result["runs"] = [{k: v for k, v in r.items() if k != "tests"} | {"tests": {
            name: {k: v for k, v in t.items() if k != "outputs"} for name, t in r["tests"].items()}} for r in records]
        (out / f"augment_{net}_{preset.name}.json").write_text(json.dumps(result, indent=2) + "\n")
        (out / f"augment_{net}_{preset.name}.md").write_text(markdown(result) + "\n")
        return result
    finally:
        if own_work:
            shutil.rmtree(work, ignore_errors=True)


# -- reading the results ----------------------------------------------------------------------------
def summarise(records: list[dict]) -> dict:
    """Mean PSNR per run and test over seeds, each seed's comb. - imgaug gaps, and the bars."""
    tests = list(records[0]["tests"])
    seeds = sorted({r["seed"] for r in records})
    by = {(r["run"], r["seed"]): r["tests"] for r in records}
    mean = {run: {t: float(np.mean([by[run, s][t]["psnr"] for s in seeds])) for t in tests} for run in RUNS}
    ssim = {run: {t: float(np.mean([by[run, s][t]["ssim"] for s in seeds])) for t in tests} for run in RUNS}
    blurry = {t: records[0]["tests"][t]["blurry_psnr"] for t in tests}
    gap = {t: [by["comb.", s][t]["psnr"] - by["imgaug", s][t]["psnr"] for s in seeds] for t in tests}
    own = {run: float(np.mean([mean[run][t] - blurry[t] for t in OWN_TESTS[run]])) for run in RUNS}
    reference_gap = float(np.mean(gap["reference"]))
    spreads = {t: float(max(g) - min(g)) if len(seeds) > 1 else None for t, g in gap.items()}
    spread = spreads["reference"]
    bars = {"every network beats its blurry input by >= 1.5 dB on its own training blur":
            all(v >= 1.5 for v in own.values()),
            "comb. beats imgaug on the reference by >= 0.5 dB": reference_gap >= 0.5,
            "comb. loses at most 0.5 dB on the imgaug test": float(np.mean(gap["imgaug"])) >= -0.5}
    if spread is not None:
        # comb. ahead by more than the seeds disagree: a gap of -0.01 dB with no spread is no lead
        bars["comb. leads imgaug on the reference by more than its spread between seeds"] = reference_gap > spread
    return {"psnr": mean, "ssim": ssim, "blurry_psnr": blurry, "blurry_ssim":
            {t: records[0]["tests"][t]["blurry_ssim"] for t in tests}, "comb_minus_imgaug": gap,
            "own_blur_gain": own, "reference_gap_spread": spread, "gap_spread": spreads, "bars": bars}


def markdown(result: dict) -> str:
    """The measured table (mean over seeds, PSNR / SSIM), each seed's gap, the bars, and the paper's table."""
    s, settings = result["summary"], result["settings"]
    tests = list(s["blurry_psnr"])
    lines = [f"# Augmentation benchmark: {result['net']}, preset `{result['preset']}`", "",
             f"Command: `{result['command']}`  ", f"Machine: {json.dumps(result['machine'])}  ",
             f"Wall time: {result['wall_time_s'] / 60:.1f} min; seeds {settings['seeds']}", "",
             f"PSNR dB / SSIM of the deblurred test images (mean over seeds); all images downscaled by "
             f"{settings['scale']} (area) after blurring at camera resolution:", "",
             "| training blur | " + " | ".join(f"test: {t} ({settings['test_pairs'][t]})" for t in tests) + " |",
             "|---|" + "---|" * len(tests),
             "| (blurry input) | " + " | ".join(f"{s['blurry_psnr'][t]:.2f} / {s['blurry_ssim'][t]:.3f}"
                                                for t in tests) + " |"]
    for run in RUNS:
        lines.append(f"| {run} | " + " | ".join(f"{s['psnr'][run][t]:.2f} / {s['ssim'][run][t]:.3f}" for t in tests) + " |")
    lines.append("| comb. - imgaug, per seed | " + " | ".join(", ".join(f"{g:+.2f}" for g in s["comb_minus_imgaug"][t])
                                                             for t in tests) + " |")
    lines += ["", "Gain over the blurry input on each network's own training blur: "
              + ", ".join(f"{run} {v:+.2f} dB" for run, v in s["own_blur_gain"].items()) + ".", "", "Bars:", ""]
    lines += [f"- [{'x' if ok else ' '}] {bar}" for bar, ok in s["bars"].items()]
    for name, extra in settings.get("also_test", {}).items():
        gap = s["comb_minus_imgaug"][name]
        spread = s["gap_spread"][name]
        lines.append(f"- (not a bar) comb. - imgaug on `{name}` ({extra['folder']}): {np.mean(gap):+.2f} dB"
                     + ("" if spread is None else f", spread between seeds {spread:.2f} dB"))
    lines += ["", "Paper (Tran et al. 2021, SRN-Deblur, PSNR dB; GoPro-sized training, real test sets):", "",
              "| training blur | test: imgaug | test: REDS | test: GOPRO |", "|---|---|---|---|"]
    for run, row in PAPER_TABLE.items():
        lines.append(f"| {run} | " + " | ".join(f"{v:.2f}" for v in row.values()) + " |")
    lines += ["", f"Settings: {settings['nets'][result['net']]} {result['net']}, {settings['steps']} steps of "
              f"{settings['batch_size']} crops of {settings['crop']} px, blur drawn per sample in "
              f"{settings['workers']} DataLoader worker(s){' (learned blur on the device)' if settings['gpu_blur'] else ''}; "
              f"imgaug MotionBlur k={tuple(settings['motion_k'])} (camera px); blur model {settings['blur_model']}, "
              f"bank {settings['bank']}; sharp images: {settings['sharp']}; reference: {settings['reference']} "
              f"(excluded: {settings['reference_exclude'] or 'none'})"
              + "".join(f"; {n}: {e['folder']}" for n, e in settings.get("also_test", {}).items()) + ".", "",
              f"Figure: `{result['figure']}` (loss curves; per test set: blurry, each run's output, sharp)."]
    return "\n".join(lines)


def figures(tests: dict[str, PairArrays], records: list[dict], path: Path) -> Path:
    """Loss curves (first seed) over rows of test samples: blurry, each run's output, sharp."""
    from ..tools.pictures import label, write_picture

    first = [r for r in records if r["seed"] == records[0]["seed"]]
    rows = []
    for name, test in tests.items():
        for i in range(len(first[0]["tests"][name].get("outputs", []))):
            tiles = [test.blurry[i]] + [r["tests"][name]["outputs"][i] for r in first] + [test.sharp[i]]
            side = 160
            tiles = [cv2.resize(t, (side, int(round(side * t.shape[0] / t.shape[1]))), interpolation=cv2.INTER_AREA)
                     for t in tiles]
            names = [f"{name}: blurry"] + [f"trained {r['run']}" for r in first] + ["sharp"]
            rows.append(np.concatenate([label(t, n) for t, n in zip(tiles, names)], axis=1))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    picture = np.concatenate([loss_plot(first, width)] + rows, axis=0)
    return write_picture(path, picture)


def loss_plot(records: list[dict], width: int, height: int = 200) -> np.ndarray:
    """The training losses of ``records`` drawn with OpenCV (no plotting library needed)."""
    canvas = np.full((height, width, 3), 255, np.uint8)
    curves = [np.asarray(r["loss_history"], np.float64) for r in records]
    lo, hi = min(c.min() for c in curves), max(c.max() for c in curves)
    colours = ((31, 119, 180), (255, 127, 14), (44, 160, 44))
    for k, (record, curve) in enumerate(zip(records, curves)):
        xs = 40 + (width - 60) * np.arange(len(curve)) / max(len(curve) - 1, 1)
        ys = height - 30 - (height - 50) * (curve - lo) / max(hi - lo, 1e-12)
        points = np.stack([xs, ys], 1).round().astype(np.int32)
        cv2.polylines(canvas, [points], False, colours[k % 3], 2)
        cv2.putText(canvas, f"{record['run']} loss", (50 + 150 * k, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    colours[k % 3], 1, cv2.LINE_AA)
    cv2.putText(canvas, f"{hi:.3g}", (2, 25), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 0), 1)
    cv2.putText(canvas, f"{lo:.3g}", (2, height - 30), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 0), 1)
    return canvas
