"""Kernel-bank benchmark: extraction pairs/s, random-access codes/s, file size per 1000 codes.

    python benchmarks/bench_bank.py                       # tiny psf model, synthetic 256 px pairs
    python benchmarks/bench_bank.py --model pretrained/synth-small.safetensors --data DIR

Writes ``benchmarks/results/bank.json`` and ``bank.md`` (machine, versions, the exact command).
Extraction runs G and F (the per-code PSNR) over every crop, once per storage dtype. Sizes per
1000 codes are measured on a large bank of codes drawn from the Gaussian fitted to the extracted
codes (same statistics, so the same compressibility), with provenance as an extraction writes it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import torch

import kernelaug as ka
from kernelaug.bank import BankWriter, KernelBank
from kernelaug.learn.extract import extract_bank

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict:
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(), "cpu_count": os.cpu_count(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "h5py": h5py.version.version,
            "hdf5": h5py.version.hdf5_version, "numpy": np.__version__,
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}


def build_model(spec: str | None):
    if spec:
        return ka.load_model(spec), spec
    torch.manual_seed(0)
    return ka.build_model("psf-tiny").eval(), "psf-tiny preset (random weights, seed 0)"


def bench_extraction(model, data, work: Path, args) -> dict:
    """Pairs/s of a full extraction (read, G, F for the PSNR, write), per storage dtype."""
    extract_bank(model, data, work / "warmup.h5", crop=args.crop, batch_size=args.batch_size, limit=2,
                 progress=False)  # one-time costs (kernel selection, imports) out of the timings
    out = {}
    for dtype in ("float16", "float32"):
        path = work / f"extract-{dtype}.h5"
        summary = extract_bank(model, data, path, crop=args.crop, batch_size=args.batch_size, dtype=dtype,
                               limit=args.pairs, progress=False)
        out[dtype] = {"pairs": summary["pairs"], "codes": summary["codes"], "wall_s": summary["wall_time_s"],
                      "pairs_per_s": round(summary["pairs_per_s"], 2),
                      "mean_psnr_db": round(summary["mean_psnr"], 4), "file_bytes": path.stat().st_size,
                      "path": path}
    return out


def write_like_extraction(path: Path, model, crop: int, codes: np.ndarray, dtype: str) -> int:
    n = len(codes)
    rng = np.random.default_rng(0)
    with BankWriter(path, model, crop_size=crop, source="benchmark", dtype=dtype) as writer:
        for start in range(0, n, 1024):
            stop = min(n, start + 1024)
            ids = [f"train/shake_{i // 10:04d}/{i:06d}" for i in range(start, stop)]
            boxes = np.column_stack([rng.integers(0, 512, (stop - start, 2)), np.full((stop - start, 2), crop)])
            writer.append(codes[start:stop], pair_ids=ids, crop_boxes=boxes,
                          psnr=rng.normal(30, 2, stop - start), pair_index=np.arange(start, stop))
    return path.stat().st_size


def bench_access(path: Path, reads: int) -> dict:
    """Random single-code reads ``bank[i]`` and batched ``sample(64)`` in a freshly opened bank."""
    bank = KernelBank(path)
    rng = np.random.default_rng(1)
    index = rng.integers(0, len(bank), reads)
    bank[0]
    tic = time.perf_counter()
    for i in index:
        bank[int(i)]
    single = reads / (time.perf_counter() - tic)
    batches = max(1, reads // 64)
    tic = time.perf_counter()
    for _ in range(batches):
        bank.sample(64, rng=rng)
    batched = batches * 64 / (time.perf_counter() - tic)
    return {"random_single_codes_per_s": round(single), "sample64_codes_per_s": round(batched)}


def markdown(result: dict) -> str:
    m, e, s, a = result["machine"], result["extraction"], result["size"], result["access"]
    lines = [
        "# Kernel bank benchmark", "",
        f"Command: `{result['command']}`  ", f"Date: {result['date']}  ",
        f"Machine: {m['platform']}, {m['cpu_count']} CPUs, torch {m['torch']} ({m['torch_threads']} threads), "
        f"h5py {m['h5py']} / HDF5 {m['hdf5']}; load average at start {m['load_average_at_start']}  ",
        f"Model: {result['model']} (code {tuple(result['code_shape'])} per {result['crop']} px crop)  ",
        f"Data: {result['data']}", "",
        "| measure | float16 | float32 |", "|---|---|---|",
        f"| extraction, pairs/s (read + G + F + write, batch {result['batch_size']}) | "
        f"{e['float16']['pairs_per_s']} | {e['float32']['pairs_per_s']} |",
        f"| mean reconstruction PSNR of the stored codes, dB | {e['float16']['mean_psnr_db']} | "
        f"{e['float32']['mean_psnr_db']} |",
        f"| file size per 1000 codes ({s['codes']} codes + provenance) | {s['float16']['kib_per_1000']} KiB | "
        f"{s['float32']['kib_per_1000']} KiB |",
        f"| raw code bytes per 1000 codes (uncompressed) | {s['float16']['raw_kib_per_1000']} KiB | "
        f"{s['float32']['raw_kib_per_1000']} KiB |",
        f"| random `bank[i]`, codes/s | {a['float16']['random_single_codes_per_s']} | "
        f"{a['float32']['random_single_codes_per_s']} |",
        f"| `bank.sample(64)`, codes/s | {a['float16']['sample64_codes_per_s']} | "
        f"{a['float32']['sample64_codes_per_s']} |",
        "",
        "Sizes are measured on a bank of codes drawn from the Gaussian fitted to the extracted codes "
        "(extracted banks of a few codes are dominated by the fixed HDF5 overhead). The machine runs other "
        "jobs: compare timings only within one results file.",
    ]
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a .safetensors model or pretrained name (default: tiny psf preset)")
    parser.add_argument("--data", help="paired dataset folder (default: synthetic, generated in a temp folder)")
    parser.add_argument("--pairs", type=int, default=32, help="pairs to extract (and to generate)")
    parser.add_argument("--image-size", type=int, default=256, help="synthetic image side")
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--size-codes", type=int, default=20000, help="codes in the bank measured for size/access")
    parser.add_argument("--reads", type=int, default=20000, help="random reads timed")
    parser.add_argument("--out", default=str(RESULTS), help="folder for bank.json and bank.md")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    model, model_name = build_model(args.model)
    result = {"command": "python " + shlex.join([sys.argv[0], *(sys.argv[1:] if argv is None else argv)]),
              "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "machine": machine(), "model": model_name, "crop": args.crop, "batch_size": args.batch_size,
              "code_shape": list(model.code_shape(args.crop, args.crop))}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = args.data
        if data is None:
            from kernelaug.data.synthetic import make_synthetic

            data = work / "data"
            make_synthetic(data, pairs=args.pairs, size=args.image_size, seed=0, test_fraction=0.0, progress=False)
            result["data"] = f"synthetic shake, {args.pairs} pairs of {args.image_size} px (kernelaug.data.synthetic, seed 0)"
        else:
            result["data"] = str(data)
        extraction = bench_extraction(model, data, work, args)
        fitted = KernelBank(extraction["float32"]["path"]).sample(args.size_codes, rng=0, mode="gaussian")
        size, access = {"codes": args.size_codes}, {}
        for dtype in ("float16", "float32"):
            path = work / f"size-{dtype}.h5"
            nbytes = write_like_extraction(path, model, args.crop, fitted, dtype)
            raw = fitted[:1].astype(dtype).nbytes * 1000 / 1024
            size[dtype] = {"bytes": nbytes, "kib_per_1000": round(nbytes / args.size_codes * 1000 / 1024, 1),
                           "raw_kib_per_1000": round(raw, 1)}
            access[dtype] = bench_access(path, args.reads)
        for entry in extraction.values():
            entry["kib_per_1000_codes_small_bank"] = round(entry["file_bytes"] / entry["codes"] * 1000 / 1024, 1)
            del entry["path"]
    result.update(extraction=extraction, size=size, access=access)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bank.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "bank.md").write_text(markdown(result))
    print(markdown(result))
    return result


if __name__ == "__main__":
    main()
