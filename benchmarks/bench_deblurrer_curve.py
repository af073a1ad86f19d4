"""Does a deblurrer train on the CPU within the augmentation benchmark's budget? Learning curves.

Trains the `bench augment` network (NAFNet, preset `cpu`) exactly as `kernelaug bench augment
--preset quick` does (sharp photographs of --sharp, blur drawn per sample in one DataLoader worker,
blurred at camera resolution then downscaled by --scale, crops of --crop px, batch 8, the
network's own optimiser and cosine schedule) on one training blur, and scores it every --every
steps on held-out photographs blurred the same way (the benchmark's own test-set recipe):

* ``imgaug``: imgaug MotionBlur, k 3-25 camera px, any angle (the benchmark's `imgaug` run);
* ``fixed``: one imgaug MotionBlur kernel, 15 px at 45 degrees, centred (a sanity check: a
  non-blind problem that any working training loop learns fast);
* ``learned``: codes of the --model bank (the benchmark's `learned` run).

Run: python benchmarks/bench_deblurrer_curve.py --sharp ../shared/data/sharp --blur imgaug --steps 2400
Writes benchmarks/results/deblurrer_curve_<blur>.{json,md}.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import torch

from _common import write_results
from kernelaug.deblurrers import benchmark as B
from kernelaug.deblurrers.nets import build_deblurrer
from kernelaug.deblurrers.training import evaluate_deblurrer, train_with_fresh_blur
from kernelaug.transforms import LearnedBlur


class FixedMotion:
    """One imgaug MotionBlur kernel for every image (uint8 HWC -> uint8 HWC)."""

    def __init__(self, seed: int):
        import imgaug.augmenters as iaa

        self.augmenter = iaa.MotionBlur(k=15, angle=45, direction=0.0, seed=seed)

    def __call__(self, image):
        return self.augmenter(image=image)


def training_blur(kind: str, model: str, seed: int):
    if kind == "imgaug":
        return B.run_blur("imgaug", model, None, (3, 25), seed)
    if kind == "fixed":
        return LearnedBlur(model, parametric=FixedMotion(seed), parametric_ratio=1.0, seed=seed)
    return B.run_blur("learned", model, None, (3, 25), seed)


def test_blur(kind: str, model: str):
    if kind == "imgaug":
        return B.ImgaugMotion((3, 25), B.TEST_SEED)
    if kind == "fixed":
        return FixedMotion(B.TEST_SEED)
    return LearnedBlur(model, seed=B.TEST_SEED)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sharp", required=True, help="folder of sharp photographs (every 5th held out)")
    parser.add_argument("--blur", choices=["imgaug", "fixed", "learned"], default="imgaug")
    parser.add_argument("--model", default="gopro-small", help="blur model and bank of the learned blur")
    parser.add_argument("--steps", type=int, default=2400)
    parser.add_argument("--every", type=int, default=400)
    parser.add_argument("--crop", type=int, default=64)
    parser.add_argument("--scale", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr", type=float, default=None, help="peak learning rate (default: the network's own)")
    parser.add_argument("--name", default=None, help="results name (default: deblurrer_curve_<blur>)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    preset = dataclasses.replace(B.PRESETS["quick"], scale=args.scale)
    train, held_out, _ = B.sharp_photos(args.sharp)
    test = B.blurred_test_set(held_out, test_blur(args.blur, args.model), preset)
    torch.manual_seed(args.seed)
    network = build_deblurrer("nafnet", preset.nets["nafnet"])
    curve, start = [], time.perf_counter()

    def score(step, net):
        result = evaluate_deblurrer(net, test)
        curve.append({"step": step, "seconds": round(time.perf_counter() - start, 1), "psnr": result["psnr"],
                      "gain": result["psnr"] - result["blurry_psnr"], "blurry_psnr": result["blurry_psnr"]})
        print(f"step {step}: {result['psnr']:.2f} dB ({curve[-1]['gain']:+.2f} over blurry)", flush=True)

    _, summary = train_with_fresh_blur(network, train, training_blur(args.blur, args.model, args.seed), args.steps,
                                       preset.batch_size, args.crop, args.scale, seed=args.seed, lr=args.lr,
                                       workers=preset.workers, progress=False, on_checkpoint=score,
                                       checkpoint_every=args.every)
    if not curve or curve[-1]["step"] != args.steps:
        score(args.steps, network)  # the curve always ends at the last step
    blurry = curve[-1]["blurry_psnr"]
    lines = [f"NAFNet `{preset.nets['nafnet']}` trained on `{args.blur}` blur: {args.steps} steps of "
             f"{preset.batch_size} crops of {args.crop} px after scale {args.scale}, lr {args.lr or 'default'}, "
             f"one DataLoader worker, {summary['wall_time_s'] / 60:.1f} min; test: {len(test)} held-out photographs blurred the same way, "
             f"blurry input {blurry:.2f} dB.", "", "| step | minutes | PSNR | gain over blurry |", "|---|---|---|---|"]
    lines += [f"| {c['step']} | {c['seconds'] / 60:.1f} | {c['psnr']:.2f} dB | {c['gain']:+.2f} dB |" for c in curve]
    write_results(args.name or f"deblurrer_curve_{args.blur}",
                  {"settings": vars(args), "blurry_psnr": blurry, "curve": curve,
                   "loss_history": summary["loss_history"]}, "\n".join(lines))


if __name__ == "__main__":
    main()
