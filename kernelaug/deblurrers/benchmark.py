"""``kernelaug bench srn``: the paper's augmentation experiment, end to end, with one command.

Two SRN-Deblur trainings with the same budget, seed and sharp training images differ only in
their training blur:

* (a) ``imgaug``: imgaug's ``MotionBlur`` only;
* (b) ``comb.``: half imgaug ``MotionBlur``, half ``LearnedBlur`` from the shipped model and bank
  (one :class:`kernelaug.LearnedBlur` with ``parametric=`` and ``parametric_ratio=``).

Both are tested on three sets built from held-out sharp images (scikit-image test photos and
dead-leaves images that no training step ever sees): imgaug ``MotionBlur``; the synthetic
reference blur (held-out pairs of the family the bank was learned from); and the other synthetic
family. The SRN training images are fresh crops and dead-leaves images drawn from their own seed
stream, never the pairs the bank was extracted from.

Every stage is seeded; the two trainings run in parallel processes when ``jobs >= 2``.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch

from .srn import SRNConfig
from .training import PairArrays, SRNTraining

PAPER_TABLE = {  # Tran et al. 2021, SRN-Deblur, PSNR dB
    "imgaug": {"imgaug": 28.64, "REDS": 24.22, "GOPRO": 22.96},
    "comb.": {"imgaug": 28.30, "REDS": 28.37, "GOPRO": 23.92},
}
RUNS = ("imgaug", "comb.")
REFERENCE_SEED = 2026        # the seed of the synthetic data the shipped bank was learned from
OTHER_SEED = 2027
TRAIN_STREAM = 7             # spawn key of the SRN training images' seed stream


@dataclass(frozen=True)
class SRNBenchPreset:
    """Sizes of one benchmark run."""

    name: str
    srn: SRNConfig
    training: SRNTraining
    train_images: int            # sharp training images, each blurred once per run
    image_size: int = 256        # side of training and test images (a multiple of 64)
    test_pairs: int = 50         # pairs per test set
    motion_k: tuple[int, int] = (5, 25)  # imgaug MotionBlur kernel sizes (the synthetic extents are 5-25 px)
    learned_ratio: float = 0.5   # share of learned blur in the comb. run
    figure_rows: int = 2         # sample images per test set in the figure


PRESETS = {
    "smoke": SRNBenchPreset("smoke", SRNConfig(widths=(4, 8, 16), blocks=1),
                            SRNTraining(steps=6, batch_size=2, crop=32, lr=1e-3), train_images=8,
                            image_size=64, test_pairs=2, figure_rows=1),
    "cpu": SRNBenchPreset("cpu", SRNConfig(widths=(16, 32, 64), blocks=2),
                          SRNTraining(steps=2000, batch_size=4, crop=96, lr=5e-4), train_images=800,
                          test_pairs=40),
    "paper": SRNBenchPreset("paper", SRNConfig(widths=(32, 64, 128), blocks=3),
                            SRNTraining(steps=200_000, batch_size=16, crop=256, lr=1e-4), train_images=4000,
                            image_size=384, test_pairs=200),
}


def _uint8(image: np.ndarray) -> np.ndarray:
    return np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)


def training_images(count: int, size: int, seed: int) -> np.ndarray:
    """Sharp training images (uint8 (N, size, size, 3)): train-split photo crops and dead-leaves
    images from their own seed stream, so none is an image the bank was extracted from."""
    from ..data.synthetic import sharp_source

    return np.stack([_uint8(sharp_source(np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(TRAIN_STREAM, i))),
                                         size, "train")[0]) for i in range(count)])


class ImgaugMotion:
    """imgaug ``MotionBlur`` as a numpy HWC uint8 -> uint8 callable with its own seeded stream."""

    def __init__(self, k: tuple[int, int], seed: int):
        import imgaug.augmenters as iaa

        self.augmenter = iaa.MotionBlur(k=tuple(k), angle=(0, 360), seed=seed)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        return self.augmenter(image=image)


def blur_training_set(sharp: np.ndarray, preset: SRNBenchPreset, run: str, model, bank, seed: int,
                      progress: bool = True) -> np.ndarray:
    """Blur every training image once with the run's blur ("imgaug" or "comb.") through the
    library's own transform."""
    from tqdm.auto import tqdm

    from ..transforms import LearnedBlur

    ratio = 1.0 if run == "imgaug" else 1.0 - preset.learned_ratio
    blur = LearnedBlur(model, bank, parametric=ImgaugMotion(preset.motion_k, seed), parametric_ratio=ratio, seed=seed)
    return np.stack([blur(image) for image in tqdm(sharp, desc=f"blur {run} training set", disable=not progress,
                                                   dynamic_ncols=True)])


def build_test_sets(work: Path, preset: SRNBenchPreset, seed: int, jobs: int, progress: bool) -> dict[str, PairArrays]:
    """The three test sets: {"imgaug", "reference (shake)", "other (object)"}."""
    from ..data.pairs import find_pairs
    from .training import load_pair_arrays
    from ..data.synthetic import make_synthetic

    sets = {}
    for family, data_seed in (("shake", REFERENCE_SEED), ("object", OTHER_SEED)):
        root = work / family
        make_synthetic(root, pairs=2 * preset.test_pairs, size=preset.image_size, seed=data_seed, family=family,
                       workers=jobs if jobs > 1 else 0, test_fraction=0.5, progress=progress)
        sets[family] = load_pair_arrays(find_pairs(root, split="test"))
    motion = ImgaugMotion(preset.motion_k, seed + 101)
    shake = sets["shake"]
    sets = {"imgaug": PairArrays(shake.sharp, np.stack([motion(image) for image in shake.sharp])),
            "reference (shake)": shake, "other (object)": sets["object"]}
    return sets


def _train_and_test(run: str, preset: SRNBenchPreset, arrays: dict[str, str], threads: int, out: str,
                    progress: bool, device: str) -> dict:
    """One run in its own process: train on the saved arrays, save the model, evaluate on the test sets."""
    from .training import evaluate_srn, save_srn, train_srn

    torch.set_num_threads(threads)
    pairs = PairArrays(np.load(arrays["sharp"]), np.load(arrays[run]))
    model, summary = train_srn(pairs, preset.srn, preset.training, progress=progress, desc=f"train SRN ({run})",
                               device=device)
    save_srn(model, out, provenance={"bench": preset.name, "run": run, **asdict(preset.training)})
    results = {}
    for name in json.loads(arrays["tests"]):
        test = PairArrays(np.load(arrays[f"{name}/sharp"]), np.load(arrays[f"{name}/blurry"]))
        results[name] = evaluate_srn(model, test, progress=progress, desc=f"test {run} on {name}",
                                     keep=preset.figure_rows)
    return {"run": run, "model": out, **summary, "tests": results}


def run_srn_bench(preset: str | SRNBenchPreset = "cpu", out: str | Path = "benchmarks/results", model="synth-small",
                  bank=None, seed: int = 0, jobs: int = 2, work: str | Path | None = None, progress: bool = True,
                  command: str | None = None, device: str = "cpu") -> dict:
    """Run the benchmark and write ``out/srn_<preset>.{json,md,png}``; return the results dict.

    ``device`` trains and tests SRN there ("cuda" for the paper preset); the training blurs are
    made on the CPU, as inside DataLoader workers."""
    from ..runinfo import machine_info
    from ..bank import resolve_bank
    from ..models import resolve_model

    if isinstance(preset, str):
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; choose from {sorted(PRESETS)}")
        preset = PRESETS[preset]
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    own_work = work is None
    work = Path(tempfile.mkdtemp(prefix="kernelaug-srn-")) if own_work else Path(work)
    if not own_work and work.exists() and any(work.iterdir()):
        raise ValueError(f"work folder {work} is not empty; give an empty or new folder")
    work.mkdir(parents=True, exist_ok=True)
    try:
        blur_model = resolve_model(model)
        blur_bank = resolve_bank(bank, model if isinstance(model, str) else None)
        tests = build_test_sets(work, preset, seed, jobs, progress)
        sharp = training_images(preset.train_images, preset.image_size, seed)
        arrays = {"sharp": str(work / "train_sharp.npy"), "tests": json.dumps(list(tests))}
        np.save(arrays["sharp"], sharp)
        for i, run in enumerate(RUNS):
            arrays[run] = str(work / f"train_{i}.npy")
            np.save(arrays[run], blur_training_set(sharp, preset, run, blur_model, blur_bank, seed + 1, progress))
        for i, (name, test) in enumerate(tests.items()):
            for kind in ("sharp", "blurry"):
                arrays[f"{name}/{kind}"] = str(work / f"test_{i}_{kind}.npy")
                np.save(arrays[f"{name}/{kind}"], getattr(test, kind))
        threads = max(1, torch.get_num_threads() // min(jobs, len(RUNS)))
        calls = [(run, preset, arrays, threads, str(work / f"srn_{i}.safetensors"), progress, device)
                 for i, run in enumerate(RUNS)]
        if jobs >= 2:
            with ProcessPoolExecutor(max_workers=len(RUNS), mp_context=get_context("spawn")) as pool:
                runs = list(pool.map(_train_and_test, *zip(*calls)))
        else:
            runs = [_train_and_test(*call) for call in calls]
        figure = sample_figure(tests, runs, out / f"srn_{preset.name}.png")
        result = {"preset": preset.name, "command": command or "kernelaug " + " ".join(sys.argv[1:]),
                  "machine": machine_info(), "wall_time_s": time.perf_counter() - start,
                  "settings": {**asdict(preset), "seed": seed, "jobs": jobs, "device": device, "blur_model": str(model),
                               "bank": str(getattr(blur_bank, "path", bank))},
                  "paper": PAPER_TABLE, "figure": figure.name,
                  "runs": {r["run"]: {k: v for k, v in r.items() if k != "tests"} | {"tests": {
                      name: {k: v for k, v in t.items() if k != "outputs"} for name, t in r["tests"].items()}}
                      for r in runs}}
        (out / f"srn_{preset.name}.json").write_text(json.dumps(result, indent=2) + "\n")
        (out / f"srn_{preset.name}.md").write_text(markdown(result) + "\n")
        return result
    finally:
        if own_work:
            shutil.rmtree(work, ignore_errors=True)


def markdown(result: dict) -> str:
    """The measured table (PSNR / SSIM) with the paper's beside it."""
    runs = result["runs"]
    names = list(next(iter(runs.values()))["tests"])
    lines = [f"# SRN-Deblur augmentation benchmark, preset `{result['preset']}`", "",
             f"Command: `{result['command']}`  ", f"Machine: {json.dumps(result['machine'])}  ",
             f"Wall time: {result['wall_time_s'] / 60:.1f} min", "",
             "Measured (PSNR dB / SSIM of SRN-Deblur's output against the sharp image):", "",
             "| training kernels | " + " | ".join(f"test: {n}" for n in names) + " |",
             "|---|" + "---|" * len(names)]
    first = next(iter(runs.values()))["tests"]
    lines.append("| (blurry input) | " + " | ".join(f"{first[n]['blurry_psnr']:.2f} / {first[n]['blurry_ssim']:.3f}"
                                                  for n in names) + " |")
    for run, record in runs.items():
        cells = [f"{record['tests'][n]['psnr']:.2f} / {record['tests'][n]['ssim']:.3f}" for n in names]
        lines.append(f"| {run} | " + " | ".join(cells) + " |")
    a, b = (runs[r]["tests"] for r in RUNS)
    lines.append("| comb. - imgaug | " + " | ".join(f"{b[n]['psnr'] - a[n]['psnr']:+.2f} dB / "
                                                     f"{b[n]['ssim'] - a[n]['ssim']:+.3f}" for n in names) + " |")
    lines += ["", "Paper (Tran et al. 2021, SRN-Deblur, PSNR dB; trained on GoPro-sized data, real test sets):", "",
              "| training kernels | test: imgaug | test: REDS | test: GOPRO |", "|---|---|---|---|"]
    for run, row in PAPER_TABLE.items():
        lines.append(f"| {run} | " + " | ".join(f"{v:.2f}" for v in row.values()) + " |")
    settings = result["settings"]
    lines += ["", f"Settings: SRN widths {tuple(settings['srn']['widths'])}, {settings['srn']['blocks']} residual "
              f"blocks; {settings['training']['steps']} steps, batch {settings['training']['batch_size']}, crop "
              f"{settings['training']['crop']}, lr {settings['training']['lr']}; {settings['train_images']} training "
              f"images of {settings['image_size']} px; {settings['test_pairs']} pairs per test set; imgaug "
              f"MotionBlur k={tuple(settings['motion_k'])}; learned share in comb. {settings['learned_ratio']}; "
              f"blur model {settings['blur_model']}; seed {settings['seed']}.",
              "", f"Samples: `{result['figure']}` (rows: test images; columns: blurry, imgaug-trained, "
              "comb.-trained, sharp)."]
    return "\n".join(lines)


def sample_figure(tests: dict[str, PairArrays], runs: list[dict], path: Path) -> Path:
    """Rows of test images: blurry, each run's output (with its PSNR), sharp."""
    from ..tools.pictures import label, write_picture

    rows = []
    for name, test in tests.items():
        for i in range(len(runs[0]["tests"][name].get("outputs", []))):
            tiles = [label(test.blurry[i], f"{name}: blurry")]
            for record in runs:
                tiles.append(label(record["tests"][name]["outputs"][i], f"trained {record['run']}"))
            tiles.append(label(test.sharp[i], "sharp"))
            rows.append(np.concatenate(tiles, axis=1))
    return write_picture(path, np.concatenate(rows, axis=0))
