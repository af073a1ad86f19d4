"""Images per second of the learned-blur transforms at 256x256 on this machine, beside the usual blurs.

Measured in one run, on one 256x256 RGB uint8 image (float32 CHW for the torch paths), for each of
``--models`` (default: both shipped models):

* the raw operator ``model.apply`` (batch 1): the floor under every learned-blur path;
* the engine ``kernelaug.LearnedBlur`` per image (numpy uint8 HWC, torch float CHW);
* ``kernelaug.LearnedBlurBatch`` on batches of ``--batch`` images (time per image);
* the Albumentations, imgaug and torchvision adapters inside their frameworks' pipelines;

beside Albumentations ``MotionBlur`` (blur_limit (3, 7), (3, 15), (3, 31)), imgaug ``MotionBlur``,
Kornia ``RandomMotionBlur(kernel_size=(3, 31))`` on batches of ``--batch``, and the engine's own
parametric motion blur. Ratios are against Albumentations ``MotionBlur(3, 31)`` and Kornia (3, 31)
measured in the same run (the machines are shared: absolute times drift, ratios less). Each entry
is the best of ``--repeats`` rounds of ``--calls`` calls, every round making the same random draws.
The ranged motion blurs draw an odd kernel size uniformly, and their cost grows with its square
(Kornia at 256x256 on 2026-12-04: 0.41 ms per image at 3, 3.84 ms at 31); their rows are the expected
cost, the mean over the sizes timed one by one, with the largest size's own row beside it. (Until
2026-12-04 these rows were the best round of random draws: Kornia draws one size per batch, so its
row was the luckiest round's, 0.8-2.0 ms, where the expected cost measured that day is 1.6 ms.) The whole table is measured once per value
of ``--threads`` (default 1 and 2), with torch and OpenCV both given that many threads: 1 is what each
DataLoader worker gets; 2 is what a lone process gets by default on a 2-core machine. A last section
times LearnedBlur at ``--scaling`` sizes (default up to 720x1280) on one thread: the cost per
megapixel should stay flat.

Each row also gives the best CPU time per image of the whole process (all its threads), which
other jobs on a shared machine disturb less than the wall clock.

Run: python benchmarks/bench_transforms.py [--models gopro-small synth-small preset:psf-fast] [--threads 1]
Writes benchmarks/results/transforms.{json,md}.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from _common import add_allocator_option, apply_allocator_option, best_per_call, write_results
import kernelaug as ka
from kernelaug.bank import BankWriter


def test_image(size: int) -> np.ndarray:
    try:
        from skimage import data
        import cv2
        return np.ascontiguousarray(cv2.resize(data.astronaut(), (size, size), interpolation=cv2.INTER_AREA))
    except ImportError:
        return np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)


def model_and_bank(spec: str, size: int, folder: Path):
    """A model and its bank from a pretrained name or a file (its pretrained bank), or ``preset:NAME``:
    an untrained preset (the same architecture and cost as a trained one) with a bank of random codes."""
    if spec.startswith("preset:"):
        preset = spec.split(":", 1)[1]
        torch.manual_seed(0)
        model = ka.build_model(preset).eval()
        codes = np.random.default_rng(0).normal(size=(64, *model.code_shape(size, size))).astype(np.float32)
        with BankWriter(folder / f"{preset}.h5", model, crop_size=size, source="random") as writer:
            writer.append(codes)
        return model, ka.KernelBank(folder / f"{preset}.h5"), f"untrained preset {preset!r}"
    return ka.load_model(spec), ka.resolve_bank(None, spec), spec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["gopro-small", "synth-small"],
                        help="pretrained names, model files (with their pretrained bank) or preset:NAME (untrained)")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--scaling", type=str, nargs="*", default=["256x256", "512x512", "720x1280"],
                        help="image sizes HxW of the scaling section (LearnedBlur, one thread); none: skip it")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2],
                        help="torch and OpenCV thread counts to measure with (default: 1 2)")
    parser.add_argument("--profile", action="store_true", help="print a torch profile of the engine path")
    add_allocator_option(parser)
    args = parser.parse_args()
    allocator = apply_allocator_option(args)
    import cv2
    load_start = os.getloadavg() if hasattr(os, "getloadavg") else None
    folder = Path(tempfile.mkdtemp(prefix="bench_transforms_"))
    models = [model_and_bank(spec, args.size, folder) for spec in args.models]
    image = test_image(args.size)
    tensor = torch.from_numpy(image).permute(2, 0, 1).float() / 255
    batch = tensor[None].repeat(args.batch, 1, 1, 1)
    rows, sections = [], []
    for threads in args.threads:
        torch.set_num_threads(threads)
        cv2.setNumThreads(threads)  # the same thread budget for OpenCV-based blurs
        print(f"-- {threads} thread(s)", flush=True)
        table = measure_all(args, threads, models, image, tensor, batch)
        rows += table
        sections.append(summarise(table, threads, [name for _, _, name in models]))
    scaling = measure_scaling(args, models) if args.scaling else []
    profile_table = None
    if args.profile:
        from torch.profiler import ProfilerActivity, profile
        torch.set_num_threads(args.threads[0])
        engine = ka.LearnedBlur(models[0][0], models[0][1], seed=0)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(5):
                engine(image)
        profile_table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12)
        print(profile_table)

    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    described = "; ".join(f"{name} ({sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters, "
                          f"PSF {getattr(model.config, 'psf_size', '-')}, cell {model.cell})" for model, _, name in models)
    lines = [f"Learned blur vs. parametric blurs, {args.size}x{args.size} RGB, models: {described}; best of "
             f"{args.repeats} rounds. Load average (1, 5, 15 min) at the start: {load_start}; at the end: {load}. "
             f"{allocator}", ""]
    for section in sections:
        lines += section
    if scaling:
        lines += ["### Scaling with image size (kernelaug.LearnedBlur, numpy uint8, one thread)", "",
                  "| model | size | ms / image | ms / megapixel |", "|---|---|---|---|"]
        lines += [f"| {r['model']} | {r['size']} | {r['ms_per_image']} | {r['ms_per_megapixel']} |" for r in scaling]
        lines.append("")
    if profile_table:
        lines += ["", f"Profile of 5 engine calls ({models[0][2]}, numpy uint8 in, {args.threads[0]} thread(s)), "
                      f"by self CPU time:", "", "```", profile_table.strip(), "```"]
    payload = {"size": args.size, "batch": args.batch, "models": [name for _, _, name in models],
               "threads": args.threads, "keep_freed_memory": args.keep_freed_memory,
               "load_average_start": load_start, "load_average": load, "rows": rows,
               "scaling": scaling}
    print(write_results("transforms", payload, "\n".join(lines)).read_text())


def measure_scaling(args, models) -> list[dict]:
    torch.set_num_threads(1)
    rows = []
    for model, bank, name in models:
        engine = ka.LearnedBlur(model, bank, seed=0)
        for size in args.scaling:
            height, width = (int(v) for v in size.split("x"))
            picture = np.ascontiguousarray(np.resize(test_image(max(height, width)), (height, width, 3)))
            seconds, _ = best_per_call(lambda: engine(picture), max(1, args.calls // 4), args.repeats)
            rows.append({"model": name, "size": size, "ms_per_image": round(seconds * 1e3, 2),
                         "ms_per_megapixel": round(seconds * 1e3 / (height * width / 1e6), 2)})
            print(f"{name} {size}: {seconds * 1e3:.2f} ms", flush=True)
    return rows


def measure_all(args, threads: int, models, image, tensor, batch) -> list[dict]:
    """Every row of the table, measured with the current thread settings."""
    rows = []

    def add_row(name: str, seconds: float, cpu: float, images_per_call: int, model: str = "", **extra) -> None:
        rows.append({"transform": name, "model": model, "threads": threads, "ms_per_image": round(seconds * 1000, 3),
                     "cpu_ms_per_image": round(cpu * 1000, 3), "images_per_s": round(1 / seconds, 1),
                     "batch": images_per_call, **extra})
        print(f"{model + ' ' if model else ''}{name:55s} {seconds * 1000:9.3f} ms/img {1 / seconds:9.1f} img/s "
              f"(CPU {cpu * 1000:.3f} ms)", flush=True)

    def time_per_image(fn, images_per_call: int, calls: int | None, reset=None) -> tuple[float, float]:
        return tuple(t / images_per_call for t in best_per_call(fn, calls or args.calls, args.repeats, reset))

    def measure(name: str, fn, images_per_call: int = 1, calls: int | None = None, model: str = "",
                reset=None) -> None:
        add_row(name, *time_per_image(fn, images_per_call, calls, reset), images_per_call, model)

    def expected_over_sizes(name: str, make, sizes, images_per_call: int = 1, calls: int | None = None) -> None:
        """A blur that draws its kernel size uniformly from ``sizes``: each size timed on its own (the
        cost grows with the size squared), the row the mean over sizes, i.e. the expected cost per
        image; the largest size gets a row of its own."""
        per_size = {size: time_per_image(make(size), images_per_call, calls) for size in sizes}
        by_size = {size: round(wall * 1000, 3) for size, (wall, _) in per_size.items()}
        mean = tuple(sum(times) / len(sizes) for times in zip(*per_size.values()))
        add_row(f"{name}, expected over its {len(sizes)} kernel sizes", *mean, images_per_call,
                ms_per_image_by_kernel_size=by_size)
        add_row(f"{name}, kernel {sizes[-1]} only", *per_size[sizes[-1]], images_per_call,
                ms_per_image_by_kernel_size=by_size)

    # Reference blurs first: the ratios' denominators. Their cost depends on the kernel size they draw,
    # so the ranged ones are timed size by size (a best-of-rounds time of random draws would report
    # the luckiest round's small kernels: Kornia draws one size per batch).
    try:
        import albumentations as A
        for low, high in ((3, 7), (3, 15), (3, 31)):
            def album_motion(k):
                motion = A.Compose([A.MotionBlur(blur_limit=(k, k), p=1.0)], seed=0)
                return lambda: motion(image=image)
            expected_over_sizes(f"albumentations MotionBlur (blur_limit ({low}, {high}))", album_motion,
                                list(range(low, high + 1, 2)))
    except ImportError:
        A = None
    try:
        import imgaug.augmenters as iaa
        iaa_motion = iaa.MotionBlur(seed=0)
        measure("imgaug MotionBlur (default, k (3, 7))", lambda: iaa_motion(image=image), calls=100,
                reset=lambda: iaa_motion.seed_(0))
    except ImportError:
        iaa = None
    try:
        import kornia.augmentation as K

        def kornia_motion(k):
            motion = K.RandomMotionBlur(kernel_size=k, angle=(-180.0, 180.0), direction=(-1.0, 1.0), p=1.0)

            def blur():
                with torch.inference_mode():
                    return motion(batch)
            return blur
        expected_over_sizes(f"kornia RandomMotionBlur (k (3, 31), batch {args.batch})", kornia_motion,
                            list(range(3, 32, 2)), images_per_call=args.batch, calls=max(1, args.calls // 5))
    except ImportError:
        pass

    for model, bank, name in models:
        code = torch.from_numpy(bank.sample(1, rng=0, grid=model.code_shape(args.size, args.size)[1:]))
        with torch.inference_mode():
            measure("model.apply alone (batch 1, float32 CHW)", lambda: model.apply(tensor[None], code), model=name)
        engine = ka.LearnedBlur(model, bank, seed=0)
        measure("kernelaug.LearnedBlur, numpy uint8 HWC", lambda: engine(image), model=name)
        measure("kernelaug.LearnedBlur, torch float32 CHW", lambda: engine(tensor), model=name)
        batch_blur = ka.LearnedBlurBatch(model, bank, seed=0)
        measure(f"kernelaug.LearnedBlurBatch (batch {args.batch})", lambda: batch_blur(batch),
                images_per_call=args.batch, calls=1, model=name)
        if A is not None:
            from kernelaug.integrations.albumentations import LearnedBlur as AlbumentationsBlur
            album = A.Compose([AlbumentationsBlur(model, bank, p=1.0)], seed=0)
            measure("albumentations adapter in A.Compose", lambda: album(image=image), model=name)
        if iaa is not None:
            from kernelaug.integrations.imgaug import LearnedBlur as ImgaugBlur
            imgaug_blur = ImgaugBlur(model, bank, seed=0)
            measure("imgaug adapter", lambda: imgaug_blur(image=image), model=name)
        try:
            from torchvision import tv_tensors
            from torchvision.transforms import v2
            from kernelaug.integrations.torchvision import LearnedBlur as TorchvisionBlur
            tv_pipeline = v2.Compose([TorchvisionBlur(model, bank, seed=0)])
            tv_image = tv_tensors.Image(torch.from_numpy(image).permute(2, 0, 1).contiguous())
            measure("torchvision adapter in v2.Compose (uint8 tv_tensors.Image)", lambda: tv_pipeline(tv_image),
                    model=name)
        except ImportError:
            pass
    engine = ka.LearnedBlur(models[0][0], models[0][1], parametric="motion", parametric_ratio=1.0, seed=0)
    measure("kernelaug.LearnedBlur, parametric='motion' (ratio 1)", lambda: engine(image), calls=100,
            reset=lambda: engine.reseed(0))
    return rows


def summarise(rows: list[dict], threads: int, names: list[str]) -> list[str]:
    """Ratios against Albumentations MotionBlur (3, 31) and Kornia RandomMotionBlur (3, 31), and the
    markdown section of one thread count."""
    def find(prefix, model=""):
        return next((r for r in rows if r["transform"].startswith(prefix) and r["model"] == model), None)

    album = find("albumentations MotionBlur (blur_limit (3, 31)), expected")
    kornia = find("kornia RandomMotionBlur (k (3, 31)")  # its expected row comes first
    for row in rows:
        row["ratio_vs_albumentations_motionblur_3_31"] = round(row["ms_per_image"] / album["ms_per_image"], 2) if album else None
        row["ratio_vs_kornia_3_31"] = round(row["ms_per_image"] / kornia["ms_per_image"], 2) if kornia else None
    lines = [f"### torch and OpenCV threads: {threads}", "",
             "| model | transform | ms / image | images / s | vs A.MotionBlur (3, 31) | vs Kornia (3, 31) | CPU ms / image |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['model'] or '-'} | {r['transform']} | {r['ms_per_image']} | {r['images_per_s']} | "
              f"{r['ratio_vs_albumentations_motionblur_3_31']} | {r['ratio_vs_kornia_3_31']} | {r['cpu_ms_per_image']} |"
              for r in rows]
    lines.append("")
    for name in names:
        engine, batched = find("kernelaug.LearnedBlur, numpy", name), find("kernelaug.LearnedBlurBatch", name)
        text = (f"{name}: LearnedBlur {engine['ms_per_image']:.2f} ms per image (target 4), LearnedBlurBatch "
                f"{batched['ms_per_image']:.2f} ms per image (target 3)")
        if album and kornia:
            text += (f"; against A.MotionBlur (3, 31) / Kornia (3, 31), both their expected costs: LearnedBlur "
                     f"{engine['ms_per_image'] / album['ms_per_image']:.2f}x / "
                     f"{engine['ms_per_image'] / kornia['ms_per_image']:.2f}x, LearnedBlurBatch "
                     f"{batched['ms_per_image'] / album['ms_per_image']:.2f}x / "
                     f"{batched['ms_per_image'] / kornia['ms_per_image']:.2f}x")
        lines.append(f"* {text}.")
    return lines + [""]


if __name__ == "__main__":
    main()
