"""The GPU checks, prepared to run once on a lent CUDA machine (about 8 minutes), or tiny on the CPU.

Run: bash benchmarks/gpu_check.sh            (CUDA: writes benchmarks/results/gpu/)
     bash benchmarks/gpu_check.sh --device cpu --tiny --out /tmp/gpu   (what `make test` runs)

Measures, on one device:
1. LearnedBlurBatch images/s at 256x256, batches of 32 and 128, fp32 and bf16 autocast (bf16 is
   reported as correct when its output is within 1e-2 of fp32's);
2. NAFNet (cpu preset) training steps/s with blur drawn in CPU DataLoader workers vs the learned
   blur applied on the device (--gpu-blur);
3. the augmentation benchmark's quick preset on the device (skipped with --tiny: smoke preset).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

import kernelaug as ka
from kernelaug.deblurrers.benchmark import run_augment_bench, run_blur, synthetic_sharp
from kernelaug.deblurrers.nets import build_deblurrer
from kernelaug.deblurrers.training import train_with_fresh_blur
from kernelaug.runinfo import machine_info


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def blur_throughput(model, bank, device, batches, size, repeats) -> list[dict]:
    rows = []
    for batch in batches:
        sharp = torch.rand(batch, 3, size, size, device=device)
        aug = ka.LearnedBlurBatch(model, bank, seed=0, device=device)
        codes = aug.sample_codes(batch, rng=0)
        reference = aug(sharp, codes=codes)[0]
        for precision in ("fp32", "bf16"):
            context = torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16" else torch.no_grad()
            with context, torch.no_grad():
                out = aug(sharp, codes=codes)[0]
                sync(device)
                start = time.perf_counter()
                for _ in range(repeats):
                    out = aug(sharp, codes=codes)[0]
                sync(device)
                seconds = (time.perf_counter() - start) / repeats
            error = float((out.float() - reference).abs().max())
            rows.append({"batch": batch, "size": size, "precision": precision, "images_per_s": batch / seconds,
                         "max_abs_error_vs_fp32": error, "correct": error <= 1e-2})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def training_speed(model, bank, device, steps, batch, crop, workers) -> list[dict]:
    images = synthetic_sharp(8, 256, "train")
    rows = []
    for gpu_blur in (False, True):
        torch.manual_seed(0)
        network = build_deblurrer("nafnet", "cpu")
        batch_blur = ka.LearnedBlurBatch(model, bank, seed=0, device=device) if gpu_blur else None
        _, summary = train_with_fresh_blur(network, images, run_blur("learned", model, bank, (3, 25), seed=0), steps,
                                           batch, crop, 0.5, workers=workers, device=device, batch_blur=batch_blur,
                                           progress=False)
        rows.append({"blur": "on the device (--gpu-blur)" if gpu_blur else f"in {workers} CPU worker(s)",
                     "steps": steps, "batch": batch, "crop": crop, "steps_per_s": summary["steps_per_s"]})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tiny", action="store_true", help="minute sizes, for a CPU smoke run in the tests")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "gpu"))
    parser.add_argument("--model", default="synth-small")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("gpu_check: no CUDA device here; run with --device cpu --tiny for a smoke run")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model = ka.load_model(args.model, device=device)
    bank = ka.resolve_bank(args.model)
    result = {"command": "bash benchmarks/gpu_check.sh " + " ".join(sys.argv[1:]), "machine": machine_info(),
              "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu", "tiny": args.tiny}
    if args.tiny:
        result["learned_blur_batch"] = blur_throughput(model, bank, device, [2], 64, 1)
        result["training"] = training_speed(model, bank, device, steps=2, batch=2, crop=32, workers=0)
        preset = "smoke"
    else:
        result["learned_blur_batch"] = blur_throughput(model, bank, device, [32, 128], 256, 10)
        result["training"] = training_speed(model, bank, device, steps=60, batch=16, crop=96,
                                            workers=min(8, os.cpu_count() or 1))
        preset = "quick"
    bench = run_augment_bench("nafnet", preset, out=out, model=args.model, device=str(device), progress=not args.tiny,
                              command=result["command"])
    result["quick_preset"] = {"preset": preset, "wall_time_s": bench["wall_time_s"], "summary": bench["summary"]}
    (out / "gpu_check.json").write_text(json.dumps(result, indent=2, default=float) + "\n")
    print(f"gpu_check: wrote {out / 'gpu_check.json'}")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
