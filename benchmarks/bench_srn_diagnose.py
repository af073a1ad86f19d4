"""Why the cpu preset of ``kernelaug bench srn`` does not train SRN-Deblur past its input.

Short runs on the arrays that ``kernelaug bench srn --preset cpu --work W`` leaves in W, each
varying one suspect while the rest stays at the cpu preset (widths 16/32/64, 2 blocks, batch 4,
crop 96):

* ``overfit``: one fixed batch, 300 steps -- can the network and loss learn at all?
* ``imgaug lr 5e-4``: the preset's learning rate, shortened to --steps;
* ``imgaug lr 1e-3, zero output``: a higher rate, starting exactly at the identity;
* ``imgaug lr 2e-3``: a higher rate still;
* ``reference pairs``: trained on the reference camera's own training pairs (the synthetic set the
  bank was extracted from), the best any augmentation could give on the reference test set.

    kernelaug bench srn --preset cpu --work W
    kernelaug make-synthetic data/synth --pairs 2000 --size 256 --seed 2026 --workers 2
    OMP_NUM_THREADS=1 python benchmarks/bench_srn_diagnose.py --work W --reference data/synth

Writes benchmarks/results/srn_diagnose.{json,md}.
"""

from __future__ import annotations

import argparse
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch

from _common import write_results
from kernelaug.data.pairs import find_pairs
from kernelaug.deblurrers.srn import SRNConfig, SRNDeblur, multiscale_loss, resize
from kernelaug.deblurrers.training import PairArrays, SRNTraining, evaluate_srn, load_pair_arrays, train_srn

CONFIG = SRNConfig(widths=(16, 32, 64), blocks=2)
TESTS = {"imgaug": 0, "reference (shake)": 1}


def overfit(work: str, steps: int = 300) -> dict:
    """Loss on one fixed batch before and after ``steps`` Adam steps, and the identity's loss."""
    torch.set_num_threads(1)
    pairs = PairArrays(np.load(f"{work}/train_sharp.npy"), np.load(f"{work}/train_0.npy"))
    sharp, blurry = pairs.batch(np.random.default_rng(0), 4, 96)
    torch.manual_seed(0)
    model = SRNDeblur(CONFIG)
    optimiser = torch.optim.Adam(model.parameters(), lr=5e-4)
    identity = [blurry if s == 0 else resize(blurry, (96 >> s, 96 >> s)) for s in (2, 1, 0)]
    losses = []
    for _ in range(steps):
        loss = multiscale_loss(model(blurry), sharp)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    return {"case": "overfit one batch", "identity_loss": multiscale_loss(identity, sharp).item(),
            "first_loss": losses[0], "last_loss": float(np.mean(losses[-10:])), "steps": steps}


def short_run(case: str, work: str, reference: str | None, steps: int, lr: float, zero_output: bool,
              test_pairs: int) -> dict:
    torch.set_num_threads(1)
    if case == "reference pairs":
        pairs = load_pair_arrays(find_pairs(reference, split="train"), limit=400)
    else:
        pairs = PairArrays(np.load(f"{work}/train_sharp.npy"), np.load(f"{work}/train_0.npy"))
    training = SRNTraining(steps=steps, batch_size=4, crop=96, lr=lr)
    torch.manual_seed(training.seed)
    model = SRNDeblur(CONFIG)
    if zero_output:
        torch.nn.init.zeros_(model.out.weight)
        torch.nn.init.zeros_(model.out.bias)
    model, summary = train_srn(pairs, CONFIG, training, progress=False, model=model)
    tests = {}
    for name, i in TESTS.items():
        test = PairArrays(np.load(f"{work}/test_{i}_sharp.npy")[:test_pairs],
                          np.load(f"{work}/test_{i}_blurry.npy")[:test_pairs])
        result = evaluate_srn(model, test)
        tests[name] = {"psnr": result["psnr"], "blurry_psnr": result["blurry_psnr"]}
    return {"case": case, "lr": lr, "zero_output": zero_output, "steps": steps,
            "loss_first_50": summary["loss_history"][0], "loss_last_50": summary["loss_history"][-1],
            "wall_time_s": summary["wall_time_s"], "tests": tests}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", required=True, help="the --work folder of a finished `kernelaug bench srn --preset cpu`")
    parser.add_argument("--reference", required=True, help="the reference camera's paired dataset (data/synth)")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--test-pairs", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    if not (Path(args.work) / "train_0.npy").is_file():
        parser.error(f"{args.work} holds no train_0.npy: run `kernelaug bench srn --preset cpu --work {args.work}` first")
    cases = [("imgaug lr 5e-4", 5e-4, False), ("imgaug lr 1e-3, zero output", 1e-3, True),
             ("imgaug lr 2e-3", 2e-3, False), ("reference pairs", 5e-4, False)]
    with ProcessPoolExecutor(max_workers=args.jobs, mp_context=get_context("spawn")) as pool:
        first = pool.submit(overfit, args.work)
        runs = [pool.submit(short_run, case, args.work, args.reference, args.steps, lr, zero, args.test_pairs)
                for case, lr, zero in cases]
        results = [first.result()] + [r.result() for r in runs]
    fit = results[0]
    lines = [f"Overfitting one batch of 4 crops: loss {fit['first_loss']:.4f} -> {fit['last_loss']:.4f} in "
             f"{fit['steps']} steps (returning the input: {fit['identity_loss']:.4f}).", "",
             f"Short runs ({args.steps} steps, batch 4, crop 96; PSNR dB on {args.test_pairs} test pairs, "
             "blurry input in brackets):", "",
             "| case | loss, first 50 steps | loss, last 50 steps | test: imgaug | test: reference (shake) |",
             "|---|---|---|---|---|"]
    for r in results[1:]:
        cells = [f"{r['tests'][n]['psnr']:.2f} ({r['tests'][n]['blurry_psnr']:.2f})" for n in TESTS]
        lines.append(f"| {r['case']} | {r['loss_first_50']:.4f} | {r['loss_last_50']:.4f} | {' | '.join(cells)} |")
    print(write_results("srn_diagnose", {"settings": vars(args), "results": results},
                        "# Why the cpu preset does not train SRN-Deblur\n\n" + "\n".join(lines)))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
