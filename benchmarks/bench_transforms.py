"""Images per second of the learned-blur transforms at 256x256 on this machine, beside the usual blurs.

Measured in one run, on one 256x256 RGB uint8 image (float32 CHW for the torch paths):

* the raw operator ``model.apply`` (batch 1): the floor under every learned-blur path;
* the engine ``kernelaug.LearnedBlur`` per image (numpy uint8 HWC, torch float CHW), and with the
  built-in parametric motion blur (``parametric="motion", parametric_ratio=1``);
* ``kernelaug.LearnedBlurBatch`` on batches of ``--batch`` images (time per image);
* the Albumentations, imgaug and torchvision adapters inside their frameworks' pipelines;
* Albumentations ``MotionBlur`` (default and ``blur_limit=(3, 15)``), imgaug ``MotionBlur``
  and Kornia ``RandomMotionBlur`` (batches of ``--batch``), where installed.

Ratios are against Albumentations ``MotionBlur`` (default settings) measured in the same run. The
model is ``--model`` (a path or pretrained name) or, by default, an untrained ``psf`` preset: the
same architecture and cost as the trained one. Each entry is the best of ``--repeats`` rounds of
``--calls`` calls (the machine may be shared; best-of is the least disturbed estimate). The whole
table is measured once per value of ``--threads`` (default 1 and 2), with torch and OpenCV both
given that many threads: 1 is what each DataLoader worker gets; 2 is what a lone process gets by
default on a 2-core machine (OpenCV, behind Albumentations and imgaug, uses every core unless told
otherwise). Ratios compare rows measured with the same thread count.

Each row also gives the best CPU time per image of the whole process (all its threads), which
other jobs on a shared machine disturb less than the wall clock.

Run: python benchmarks/bench_transforms.py [--model synth-small] [--repeats 5] [--threads 1 2] [--profile]
Writes benchmarks/results/transforms.{json,md}.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from _common import write_results
import kernelaug as ka
from kernelaug.bank import BankWriter


def best_per_call(fn, calls: int, repeats: int) -> tuple[float, float]:
    """Best wall-clock and best process CPU seconds per call over ``repeats`` rounds of ``calls``.

    CPU time (all threads of this process) is the steadier figure on a shared machine: time spent
    waiting for a core while other jobs run is not counted in it."""
    fn()  # warm-up
    best, best_cpu = float("inf"), float("inf")
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - start) / calls)
        best_cpu = min(best_cpu, (time.process_time() - start_cpu) / calls)
    return best, best_cpu


def test_image(size: int) -> np.ndarray:
    try:
        from skimage import data
        import cv2
        return np.ascontiguousarray(cv2.resize(data.astronaut(), (size, size), interpolation=cv2.INTER_AREA))
    except ImportError:
        return np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)


def model_and_bank(args, folder: Path):
    if args.model:
        model = ka.load_model(args.model)
        bank = ka.KernelBank(args.bank) if args.bank else ka.KernelBank(ka.pretrained.bank_path(args.model))
        return model, bank, str(args.model)
    torch.manual_seed(0)
    model = ka.build_model(args.preset).eval()
    codes = np.random.default_rng(0).normal(size=(64, *model.code_shape(args.size, args.size))).astype(np.float32)
    with BankWriter(folder / "bench.h5", model, crop_size=args.size, source="random") as writer:
        writer.append(codes)
    return model, ka.KernelBank(folder / "bench.h5"), f"untrained preset {args.preset!r}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="model path or pretrained name (default: untrained --preset)")
    parser.add_argument("--bank", default=None)
    parser.add_argument("--preset", default="psf")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2],
                        help="torch and OpenCV thread counts to measure with (default: 1 2)")
    parser.add_argument("--profile", action="store_true", help="print a torch profile of the engine path")
    args = parser.parse_args()
    import cv2
    load_start = os.getloadavg() if hasattr(os, "getloadavg") else None
    folder = Path(tempfile.mkdtemp(prefix="bench_transforms_"))
    model, bank, model_name = model_and_bank(args, folder)
    image = test_image(args.size)
    tensor = torch.from_numpy(image).permute(2, 0, 1).float() / 255
    batch = tensor[None].repeat(args.batch, 1, 1, 1)
    rows, sections = [], []
    for threads in args.threads:
        torch.set_num_threads(threads)
        cv2.setNumThreads(threads)  # the same thread budget for OpenCV-based blurs
        print(f"-- {threads} thread(s)", flush=True)
        table = measure_all(args, threads, model, bank, image, tensor, batch)
        rows += table
        sections.append(summarise(table, threads))
    profile_table = None
    if args.profile:
        from torch.profiler import ProfilerActivity, profile
        torch.set_num_threads(args.threads[0])
        engine = ka.LearnedBlur(model, bank, seed=0)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(5):
                engine(image)
        profile_table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12)
        print(profile_table)

    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    lines = [f"Learned blur vs. parametric blurs, {args.size}x{args.size} RGB, model: {model_name} "
             f"({sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters, cell {model.cell}), "
             f"best of {args.repeats} rounds. Load average (1, 5, 15 min) at the start: {load_start}; "
             f"at the end: {load}.", ""]
    for section in sections:
        lines += section
    if profile_table:
        lines += ["", f"Profile of 5 engine calls (numpy uint8 in, {args.threads[0]} thread(s)), by self CPU time:",
                  "", "```", profile_table.strip(), "```"]
    payload = {"size": args.size, "batch": args.batch, "model": model_name, "threads": args.threads,
               "load_average_start": load_start, "load_average": load, "rows": rows}
    print(write_results("transforms", payload, "\n".join(lines)).read_text())


def measure_all(args, threads: int, model, bank, image, tensor, batch) -> list[dict]:
    """Every row of the table, measured with the current thread settings."""
    rows = []

    def measure(name: str, fn, images_per_call: int = 1, calls: int | None = None, note: str = "") -> None:
        seconds, cpu = (t / images_per_call for t in best_per_call(fn, calls or args.calls, args.repeats))
        rows.append({"transform": name, "threads": threads, "ms_per_image": round(seconds * 1000, 3),
                     "cpu_ms_per_image": round(cpu * 1000, 3), "images_per_s": round(1 / seconds, 1),
                     "batch": images_per_call, "note": note})
        print(f"{name:55s} {seconds * 1000:9.3f} ms/img {1 / seconds:9.1f} img/s (CPU {cpu * 1000:.3f} ms)",
              flush=True)

    # Reference blurs first: the ratios' denominator.
    try:
        import albumentations as A
        motion = A.Compose([A.MotionBlur(p=1.0)], seed=0)
        measure("albumentations MotionBlur (default, blur_limit (3, 7))", lambda: motion(image=image), calls=100)
        motion15 = A.Compose([A.MotionBlur(blur_limit=(3, 15), p=1.0)], seed=0)
        measure("albumentations MotionBlur (blur_limit (3, 15))", lambda: motion15(image=image), calls=100)
    except ImportError:
        A = None
    try:
        import imgaug.augmenters as iaa
        iaa_motion = iaa.MotionBlur(seed=0)
        measure("imgaug MotionBlur (default, k (3, 7))", lambda: iaa_motion(image=image), calls=100)
    except ImportError:
        iaa = None
    try:
        import kornia.augmentation as K
        kornia_motion = K.RandomMotionBlur(kernel_size=(3, 7), angle=(-180.0, 180.0), direction=(-1.0, 1.0), p=1.0)
        with torch.inference_mode():
            measure(f"kornia RandomMotionBlur (k (3, 7), batch {args.batch})", lambda: kornia_motion(batch),
                    images_per_call=args.batch)
    except ImportError:
        pass

    code = torch.from_numpy(bank.sample(1, rng=0, grid=model.code_shape(args.size, args.size)[1:]))
    with torch.inference_mode():
        measure("model.apply alone (batch 1, float32 CHW)", lambda: model.apply(tensor[None], code))
    engine = ka.LearnedBlur(model, bank, seed=0)
    measure("kernelaug.LearnedBlur, numpy uint8 HWC", lambda: engine(image))
    measure("kernelaug.LearnedBlur, torch float32 CHW", lambda: engine(tensor))
    parametric = ka.LearnedBlur(model, bank, parametric="motion", parametric_ratio=1.0, seed=0)
    measure("kernelaug.LearnedBlur, parametric='motion' (ratio 1)", lambda: parametric(image), calls=100)
    batch_blur = ka.LearnedBlurBatch(model, bank, seed=0)
    measure(f"kernelaug.LearnedBlurBatch (batch {args.batch})", lambda: batch_blur(batch),
            images_per_call=args.batch, calls=1)
    if A is not None:
        from kernelaug.integrations.albumentations import LearnedBlur as AlbumentationsBlur
        album = A.Compose([AlbumentationsBlur(model, bank, p=1.0)], seed=0)
        measure("albumentations adapter in A.Compose", lambda: album(image=image))
    if iaa is not None:
        from kernelaug.integrations.imgaug import LearnedBlur as ImgaugBlur
        imgaug_blur = ImgaugBlur(model, bank, seed=0)
        measure("imgaug adapter", lambda: imgaug_blur(image=image))
    try:
        from torchvision import tv_tensors
        from torchvision.transforms import v2
        from kernelaug.integrations.torchvision import LearnedBlur as TorchvisionBlur
        tv_pipeline = v2.Compose([TorchvisionBlur(model, bank, seed=0)])
        tv_image = tv_tensors.Image(torch.from_numpy(image).permute(2, 0, 1).contiguous())
        measure("torchvision adapter in v2.Compose (uint8 tv_tensors.Image)", lambda: tv_pipeline(tv_image))
    except ImportError:
        pass

    return rows


def summarise(rows: list[dict], threads: int) -> list[str]:
    """Ratios against Albumentations MotionBlur and the markdown section of one thread count."""
    reference = next((r["ms_per_image"] for r in rows if r["transform"].startswith("albumentations MotionBlur")), None)
    for row in rows:
        row["ratio_vs_albumentations_motionblur"] = round(row["ms_per_image"] / reference, 2) if reference else None
    apply_row = next(r for r in rows if r["transform"].startswith("model.apply"))
    engine_row = next(r for r in rows if r["transform"].startswith("kernelaug.LearnedBlur, numpy"))
    engine_ms = engine_row["ms_per_image"]
    # CPU times: the wall-clock best-of of two rows can be disturbed differently by other jobs.
    apply_cpu, engine_cpu = apply_row["cpu_ms_per_image"], engine_row["cpu_ms_per_image"]
    lines = [f"### torch and OpenCV threads: {threads}", "",
             "| transform | ms / image | images / s | ms ratio vs A.MotionBlur | CPU ms / image |",
             "|---|---|---|---|---|"]
    lines += [f"| {r['transform']} | {r['ms_per_image']} | {r['images_per_s']} | "
              f"{r['ratio_vs_albumentations_motionblur']} | {r['cpu_ms_per_image']} |" for r in rows]
    lines += ["", f"Engine overhead over the bare operator (numpy uint8 in and out, padding, blending), in CPU "
                  f"time: {engine_cpu - apply_cpu:.2f} ms per image ({100 * (engine_cpu / apply_cpu - 1):.1f} %)."]
    if reference:
        lines += [f"Per-image learned blur: {engine_ms / reference:.0f}x the time of Albumentations MotionBlur "
                  f"(default settings) in this run; {engine_ms:.1f} ms against the design card's 19 ms target."]
    return lines + [""]


if __name__ == "__main__":
    main()
