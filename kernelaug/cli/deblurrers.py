"""Deblurring networks and the augmentation benchmark: ``srn``, ``bench``."""

from __future__ import annotations

import json
from pathlib import Path

from .common import POSITIVE, SEED, float_in, int_in
from ..paths import MODEL_SUFFIXES, check_output


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


def _cmd_bench_srn(args) -> None:
    from ..device import resolve_device
    from ..deblurrers.benchmark import RUNS, run_srn_bench

    check_output(args.out, "--out", folder=True)
    if args.work:
        check_output(args.work, "--work", folder=True)
    result = run_srn_bench(args.preset, out=args.out, model=args.model, bank=args.bank, seed=args.seed,
                           jobs=args.jobs, work=args.work, device=str(resolve_device(args.device)))
    a, b = (result["runs"][run]["tests"] for run in RUNS)
    gains = ", ".join(f"{name} {b[name]['psnr'] - a[name]['psnr']:+.2f} dB" for name in a)
    print(f"bench srn --preset {args.preset}: comb. vs imgaug: {gains} ({result['wall_time_s'] / 60:.1f} min) -> "
          f"{Path(args.out) / ('srn_' + args.preset + '.md')}")


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

    p = commands.add_parser("bench", help="benchmarks that need the package (see benchmarks/ for speed benchmarks)")
    bench = p.add_subparsers(dest="bench_command", required=True)
    p = bench.add_parser("srn", help="SRN-Deblur trained with imgaug blur vs comb. (imgaug + learned), "
                         "tested on imgaug, reference and other synthetic blur")
    p.add_argument("--preset", default="cpu", help="smoke (< 2 min), cpu (< 90 min on 2 cores), paper (GPU sizes)")
    p.add_argument("--out", default="benchmarks/results", help="folder for srn_<preset>.{json,md,png}")
    p.add_argument("--model", default="synth-small", help="blur model for the learned blur")
    p.add_argument("--bank", default=None, help="kernel bank (default: the pretrained model's own)")
    p.add_argument("--seed", type=SEED, default=0)
    p.add_argument("--jobs", type=int_in(1, 2), default=2, help="train the two runs in parallel processes (2) or in turn (1)")
    p.add_argument("--device", default="cpu", help="where SRN trains and is tested: cpu, cuda, cuda:N or auto")
    p.add_argument("--work", default=None, help="empty folder for intermediate data and models (default: a "
                   "temporary folder, removed afterwards)")
    p.set_defaults(func=_cmd_bench_srn)
