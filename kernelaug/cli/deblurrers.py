"""Deblurring networks and the augmentation benchmark: ``deblurrer``, ``srn``, ``bench``."""

from __future__ import annotations

from ..models.pretrained import DEFAULT_MODEL

import json
from pathlib import Path

import numpy as np
import torch

from ..paths import MODEL_SUFFIXES, check_output
from .common import POSITIVE, SEED, float_in, int_in


def _cmd_srn_train(args) -> None:
    from ..data.pairs import find_pairs
    from ..deblurrers.srn import SRNConfig
    from ..device import resolve_device
    from ..deblurrers.training import SRNTraining, load_pair_arrays, save_srn, train_srn

    check_output(args.out, "--out", MODEL_SUFFIXES)
    pairs = load_pair_arrays(find_pairs(args.data, split=args.split), size=args.size, limit=args.limit)
    training = SRNTraining(steps=args.steps, batch_size=args.batch_size, crop=args.crop, lr=args.lr, seed=args.seed)
    model, summary = train_srn(pairs, SRNConfig(widths=tuple(args.widths), blocks=args.blocks), training,
                               device=resolve_device(args.device))
    save_srn(model, args.out, provenance={"data": str(args.data), "pairs": len(pairs), **summary,
                                          "loss_history": summary["loss_history"][-5:]})
    print(f"trained SRN-Deblur for {summary['steps']} steps on {len(pairs)} pairs in {summary['wall_time_s']:.0f} s "
          f"(final loss {summary['loss_history'][-1]:.5f}) -> {args.out}")


def _cmd_srn_eval(args) -> None:
    from ..data.pairs import find_pairs
    from ..device import resolve_device
    from ..deblurrers.training import evaluate_srn, load_pair_arrays, load_srn

    if args.json:
        check_output(args.json, "--json", inputs=[args.model])
    model = load_srn(args.model, device=resolve_device(args.device))
    pairs = load_pair_arrays(find_pairs(args.data, split=args.split), size=args.size, limit=args.limit)
    result = evaluate_srn(model, pairs, progress=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"model": str(args.model), "data": str(args.data), **result}, indent=2))
    print(f"{result['pairs']} pairs: SRN-Deblur {result['psnr']:.2f} dB / SSIM {result['ssim']:.3f} vs blurry "
          f"{result['blurry_psnr']:.2f} dB / {result['blurry_ssim']:.3f}")


def _cmd_bench(args) -> None:
    from ..deblurrers.benchmark import run_augment_bench
    from ..device import resolve_device

    net = "srn" if args.bench_command == "srn" else args.net
    check_output(args.out, "--out", folder=True)
    for option, folder in (("--work", args.work), ("--save-models", args.save_models)):
        if folder:
            check_output(folder, option, folder=True)
    result = run_augment_bench(net, args.preset, out=args.out, model=args.model, bank=args.bank, seeds=args.seeds,
                               seed=args.seed, sharp=args.sharp, reference=args.reference,
                               exclude=tuple(args.reference_exclude), reference_crop=args.reference_crop,
                               device=str(resolve_device(args.device)), gpu_blur=args.gpu_blur, work=args.work,
                               save_models=args.save_models, also_test=args.also_test)
    s = result["summary"]
    gaps = ", ".join(f"{t} {np.mean(g):+.2f} dB" for t, g in s["comb_minus_imgaug"].items())
    passed = sum(s["bars"].values())
    print(f"bench augment --net {net} --preset {args.preset}: comb. vs imgaug: {gaps}; bars passed {passed}/"
          f"{len(s['bars'])} ({result['wall_time_s'] / 60:.1f} min) -> "
          f"{Path(args.out) / f'augment_{net}_{args.preset}.md'}")


def _cmd_deblurrer_train(args) -> None:
    from ..deblurrers.nets import build_deblurrer, save_deblurrer
    from ..deblurrers.training import pair_batches, train_deblurrer, train_with_fresh_blur
    from ..device import resolve_device

    if (args.data is None) == (args.sharp is None):
        raise ValueError("give either --data DIR (a paired dataset) or --sharp DIR with --blur")
    check_output(args.out, "--out", suffixes=MODEL_SUFFIXES, inputs=[args.model])
    device = resolve_device(args.device)
    torch.manual_seed(args.seed)
    network = build_deblurrer(args.net, args.preset)
    if args.data is not None:
        batches = pair_batches(_scaled_pairs(args), args.batch_size, args.crop, args.steps, args.seed)
        network, summary = train_deblurrer(network, batches, args.steps, lr=args.lr, device=device, crop=args.crop)
        source = f"pairs of {args.data}"
    else:
        from ..bank import resolve_bank
        from ..deblurrers.benchmark import run_blur, sharp_photos
        from ..models import resolve_model

        model = resolve_model(args.model)
        blur = run_blur(args.blur, model, resolve_bank(args.bank, args.model), tuple(args.motion_k), args.seed)
        images, _, _ = sharp_photos(args.sharp, test_every=None)
        network, summary = train_with_fresh_blur(network, images, blur, args.steps, args.batch_size, args.crop,
                                                 args.scale, seed=args.seed, workers=args.workers, device=device,
                                                 lr=args.lr)
        source = f"sharp images of {args.sharp}, blur {args.blur} ({args.model})"
    save_deblurrer(network, args.out, provenance={"data": source, "scale": args.scale, "seed": args.seed,
                                                  **{k: v for k, v in summary.items() if k != "loss_history"},
                                                  "final_loss": summary["loss_history"][-1]})
    print(f"trained {args.net} ({args.preset}) for {args.steps} steps on {source} in {summary['wall_time_s']:.0f} s "
          f"(final loss {summary['loss_history'][-1]:.4f}) -> {args.out}")


def _scaled_pairs(args):
    """The pairs of --data's --split in memory, each image downscaled by --scale (area)."""
    from ..data.pairs import find_pairs
    from ..deblurrers.benchmark import downscale
    from ..deblurrers.training import PairArrays, load_pair_arrays

    arrays = load_pair_arrays(find_pairs(args.data, split=args.split))
    return PairArrays(np.stack([downscale(x, args.scale) for x in arrays.sharp]),
                      np.stack([downscale(x, args.scale) for x in arrays.blurry]))


def _cmd_deblurrer_eval(args) -> None:
    from ..deblurrers.benchmark import paired_test_set, reference_pairs
    from ..deblurrers.nets import load_deblurrer
    from ..deblurrers.training import evaluate_deblurrer
    from ..device import resolve_device

    if args.json:
        check_output(args.json, "--json", inputs=[args.model])
    model = load_deblurrer(args.model, device=resolve_device(args.device))
    pairs = reference_pairs(args.data, tuple(args.exclude))
    if args.split:
        pairs = [p for p in pairs if p.pair_id.split("/")[0] == args.split]
    result = evaluate_deblurrer(model, paired_test_set(pairs, args.scale, args.crop), progress=True)
    result = {"model": str(args.model), "data": str(args.data), "scale": args.scale, "crop": args.crop,
              "pair_ids": [p.pair_id for p in pairs], **result}
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    print(f"{result['pairs']} pairs: {result['psnr']:.2f} dB / SSIM {result['ssim']:.3f} vs blurry "
          f"{result['blurry_psnr']:.2f} dB / {result['blurry_ssim']:.3f} ({result['psnr'] - result['blurry_psnr']:+.2f} dB)")


def _name_and_folder(text: str) -> tuple[str, str]:
    """An argparse ``type=`` for NAME=DIR."""
    import argparse

    name, sep, folder = text.partition("=")
    if not sep or not name.strip() or not folder:
        raise argparse.ArgumentTypeError(f"must be NAME=DIR, got {text!r}")
    return name.strip(), folder


def _bench_args(p, default_net: str | None) -> None:
    if default_net is None:
        p.add_argument("--net", default="nafnet", choices=["nafnet", "srn"])
    p.add_argument("--preset", default="quick", choices=["smoke", "quick", "cpu", "paper"],
                   help="smoke (seconds), quick (< 10 min on 2 cores), cpu (< 75 min), paper (GPU sizes)")
    p.add_argument("--out", default="benchmarks/results", help="folder for augment_<net>_<preset>.{json,md,png}")
    p.add_argument("--model", default=DEFAULT_MODEL, help="blur model of the reference camera")
    p.add_argument("--bank", default=None, help="its kernel bank (default: the pretrained model's own)")
    p.add_argument("--sharp", help="folder of sharp photographs to train on (every 5th held out for testing; "
                   "default: synthetic photo crops and dead-leaves images)")
    p.add_argument("--reference", help="paired folder of the reference camera, for testing only "
                   "(default: the synthetic shake family)")
    p.add_argument("--reference-exclude", action="append", default=[], metavar="GLOB",
                   help="leave out reference pairs whose id matches (e.g. pairs made from the bank's own frames)")
    p.add_argument("--reference-crop", type=int_in(8), help="centre-crop reference pairs to this size after scaling "
                   "(default: whole frames)")
    p.add_argument("--also-test", action="append", default=[], type=_name_and_folder, metavar="NAME=DIR",
                   help="a further real paired folder of the camera, tested and reported beside the reference "
                   "(repeatable; --reference-exclude applies to it too)")
    p.add_argument("--seeds", type=POSITIVE, default=1, help="repeat the three trainings with this many seeds")
    p.add_argument("--seed", type=SEED, default=0, help="first seed")
    p.add_argument("--device", default="cpu", help="where the deblurrers train: cpu, cuda, cuda:N or auto")
    p.add_argument("--gpu-blur", action="store_true", help="apply learned blurs to whole batches on --device "
                   "(LearnedBlurBatch) instead of in the workers")
    p.add_argument("--save-models", help="also write the trained deblurrers (safetensors) to this folder")
    p.add_argument("--work", default=None, help="empty folder for intermediate data (default: a temporary folder)")
    p.set_defaults(func=_cmd_bench)


def add_parsers(commands) -> None:
    p = commands.add_parser("srn", help="train or evaluate the SRN-Deblur deblurrer on a paired dataset")
    srn = p.add_subparsers(dest="srn_command", required=True)
    p = srn.add_parser("train", help="train SRN-Deblur on a paired dataset (blurry -> sharp)")
    p.add_argument("--data", required=True, help="paired dataset folder (GoPro, REDS or generic layout)")
    p.add_argument("--out", required=True, help="output .safetensors file")
    p.add_argument("--split", default="train")
    p.add_argument("--size", type=POSITIVE, default=None, help="centre-crop every pair to this size when loading")
    p.add_argument("--limit", type=POSITIVE, default=None, help="use at most this many pairs")
    p.add_argument("--widths", type=int_in(1, 1024), nargs=3, default=[32, 64, 128],
                   help="channels of the three encoder stages")
    p.add_argument("--blocks", type=int_in(0, 64), default=3, help="residual blocks per stage")
    p.add_argument("--steps", type=POSITIVE, default=1000)
    p.add_argument("--batch-size", type=POSITIVE, default=8)
    p.add_argument("--crop", type=POSITIVE, default=128)
    p.add_argument("--lr", type=float_in(0, low_open=True), default=1e-4)
    p.add_argument("--seed", type=SEED, default=0)
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    p.set_defaults(func=_cmd_srn_train)
    p = srn.add_parser("eval", help="PSNR and SSIM of SRN-Deblur's output against the sharp images")
    p.add_argument("--model", required=True, help="SRN .safetensors file")
    p.add_argument("--data", required=True, help="paired dataset folder")
    p.add_argument("--split", default="test")
    p.add_argument("--size", type=POSITIVE, default=None, help="centre-crop every pair to this size")
    p.add_argument("--limit", type=POSITIVE, default=None)
    p.add_argument("--json", default=None, help="also write the result here")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    p.set_defaults(func=_cmd_srn_eval)

    p = commands.add_parser("deblurrer", help="train or evaluate a deblurrer (NAFNet or SRN-Deblur)")
    deblurrer = p.add_subparsers(dest="deblurrer_command", required=True)
    p = deblurrer.add_parser("train", help="train on a paired folder, or on sharp images blurred on the fly")
    p.add_argument("--net", default="nafnet", choices=["nafnet", "srn"])
    p.add_argument("--preset", default="cpu", help="network size: nafnet gopro|cpu|tiny, srn paper|cpu|tiny")
    p.add_argument("--out", required=True, help="output .safetensors file")
    p.add_argument("--data", help="paired dataset folder (GoPro, REDS or generic layout)")
    p.add_argument("--split", default="train", help="split of --data to train on")
    p.add_argument("--sharp", help="folder of sharp images, blurred afresh per sample with --blur")
    p.add_argument("--blur", default="comb.", choices=["imgaug", "comb.", "learned"])
    p.add_argument("--model", default=DEFAULT_MODEL, help="blur model for --blur learned / comb.")
    p.add_argument("--bank", help="its kernel bank (default: the pretrained model's own)")
    p.add_argument("--motion-k", type=int, nargs=2, default=[3, 25], metavar=("MIN", "MAX"),
                   help="imgaug MotionBlur kernel sizes")
    p.add_argument("--scale", type=float_in(0.0, 1.0, low_open=True), default=1.0, help="downscale after blurring (area), e.g. 0.5")
    p.add_argument("--steps", type=POSITIVE, default=2000)
    p.add_argument("--batch-size", type=POSITIVE, default=8)
    p.add_argument("--crop", type=int_in(8), default=96)
    p.add_argument("--lr", type=float_in(0.0, low_open=True), help="default: the network's reference learning rate")
    p.add_argument("--workers", type=int_in(0, 64), default=1, help="DataLoader workers that blur (with --sharp)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.set_defaults(func=_cmd_deblurrer_train)
    p = deblurrer.add_parser("eval", help="PSNR and SSIM of a saved deblurrer on a paired folder")
    p.add_argument("--model", required=True, help="a deblurrer .safetensors file (NAFNet or SRN-Deblur)")
    p.add_argument("--data", required=True, help="paired dataset folder")
    p.add_argument("--split", help="only this split")
    p.add_argument("--exclude", action="append", default=[], metavar="GLOB", help="leave out pairs whose id matches")
    p.add_argument("--scale", type=float_in(0.0, 1.0, low_open=True), default=1.0, help="downscale both images first (area)")
    p.add_argument("--crop", type=int_in(8), help="centre-crop to this size after scaling (default: whole images)")
    p.add_argument("--json", help="also write the result here")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=_cmd_deblurrer_eval)

    p = commands.add_parser("bench", help="benchmarks that need the package (see benchmarks/ for speed benchmarks)")
    bench = p.add_subparsers(dest="bench_command", required=True)
    p = bench.add_parser("augment", help="a deblurrer trained with imgaug blur vs comb. vs learned blur, tested on "
                         "imgaug, learned, the reference camera and another blur")
    _bench_args(p, None)
    p = bench.add_parser("srn", help="bench augment --net srn")
    _bench_args(p, "srn")
