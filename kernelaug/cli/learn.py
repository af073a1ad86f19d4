"""Training and evaluating a blur model: ``train``, ``info``, ``evaluate``."""

from __future__ import annotations

import json
from pathlib import Path

from .common import NON_NEGATIVE, POSITIVE, SEED, float_in
from ..paths import IMAGE_SUFFIXES, MODEL_SUFFIXES, check_output


def _cmd_train(args) -> None:
    from ..learn.train import TrainOptions, train

    check_output(args.out, "--out", MODEL_SUFFIXES, inputs=[args.init])
    options = TrainOptions(data=args.data, out=args.out, preset=args.preset, steps=args.steps,
                           batch_size=args.batch_size, crop=args.crop, lr=args.lr, psf_weight=args.psf_weight, psf_prior=args.psf_prior,
                           val_every=args.val_every,
                           val_pairs=args.val_pairs, val_crop=args.val_crop, checkpoint_every=args.checkpoint_every, resume=args.resume,
                           init=args.init, device=args.device, workers=args.workers, seed=args.seed)
    summary = train(options)
    if summary["rank"] == 0:
        val = summary["validation"] or {}
        print(f"trained {summary['steps']} steps in {summary['wall_time_s']:.0f} s -> {summary['out']}; "
              f"validation: reconstruction {val.get('recon_psnr', float('nan')):.2f} dB vs "
              f"blurry {val.get('blurry_psnr', float('nan')):.2f} dB on {val.get('pairs', 0)} held-out pairs")


def _cmd_info(args) -> None:
    import dataclasses

    from ..models.checkpoint import load_model

    model = load_model(args.model)
    params = sum(p.numel() for p in model.parameters())
    info = {"file": model.source, "config": dataclasses.asdict(model.config),
            "parameters": params, "sha256": model.sha256, "provenance": model.provenance}
    print(json.dumps(info, indent=2))
    print(f"{model.config.arch} model, {params / 1e6:.2f} M parameters, code {model.kernel_dim} x H/{model.cell} "
          f"x W/{model.cell}")


def _cmd_evaluate(args) -> None:
    from ..models.checkpoint import load_model
    from ..data.pairs import find_pairs
    from ..device import resolve_device
    from ..learn.evaluate import evaluate, load_crops, reconstruction_figure

    if args.json:
        check_output(args.json, "--json")
    if args.figure:
        check_output(args.figure, "--figure", IMAGE_SUFFIXES)
    model = load_model(args.model, device=resolve_device(args.device))
    pairs = find_pairs(args.data, split=args.split)
    sharps, blurries = load_crops(pairs, args.crop, model.cell, args.limit)
    result = {"model": str(args.model), "data": str(args.data), "split": args.split, "crop": args.crop,
              **evaluate(model, sharps, blurries, per_pair=args.json is not None, refine=args.refine)}
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    if args.figure:
        reconstruction_figure(model, sharps, blurries, args.figure, rows=args.figure_rows, refine=args.refine)
    print(f"{result['pairs']} pairs: reconstruction {result['recon_psnr']:.2f} dB vs blurry-vs-sharp "
          f"{result['blurry_psnr']:.2f} dB ({result['recon_psnr'] - result['blurry_psnr']:+.2f} dB)")


def add_parsers(commands) -> None:
    p = commands.add_parser("train", help="train a kernel encoder (G and F) on a paired dataset")
    p.add_argument("--data", required=True, help="paired dataset folder (GoPro, REDS or generic layout)")
    p.add_argument("--out", required=True, help="output .safetensors model file")
    p.add_argument("--preset", default=None,
                   help="architecture preset (default psf): paper, paper-vae, small, psf, psf-wide, psf-fast, "
                        "psf-wide-fast, psf-faster, psf-wide-faster, psf-lean, psf-wide-lean, psf-wide-lean-display, "
                        "tiny, psf-tiny; with --init, the architecture to fine-tune into (weights of the same name "
                        "and shape are copied)")
    p.add_argument("--steps", type=NON_NEGATIVE, default=2000)
    p.add_argument("--batch-size", type=POSITIVE, default=8)
    p.add_argument("--crop", type=POSITIVE, default=256)
    p.add_argument("--lr", type=float_in(0, low_open=True), default=2e-4)
    p.add_argument("--psf-weight", type=float_in(0), default=0.05,
                   help="psf arch: weight of the loss pulling decoded PSFs toward least-squares estimates")
    p.add_argument("--psf-prior", type=float_in(0), default=0.0,
                   help="psf arch: weight of a sparsity prior on decoded PSFs (prefers thin kernels where "
                        "flat image regions leave the blur unconstrained; 1e-3 is a starting point)")
    p.add_argument("--val-every", type=POSITIVE, default=250)
    p.add_argument("--val-pairs", type=POSITIVE, default=32)
    p.add_argument("--val-crop", type=POSITIVE, default=256, help="centre-crop size of held-out pairs for validation")
    p.add_argument("--checkpoint-every", type=POSITIVE, default=250)
    p.add_argument("--resume", action="store_true", help="continue from --out and its .state.safetensors")
    p.add_argument("--init", help="start from the weights of this model (fine-tuning)")
    p.add_argument("--device", default="auto")
    p.add_argument("--workers", type=NON_NEGATIVE, default=2)
    p.add_argument("--seed", type=SEED, default=0)
    p.set_defaults(func=_cmd_train)

    p = commands.add_parser("info", help="print a model's config, parameter count and provenance")
    p.add_argument("model", help="a .safetensors file or a pretrained name")
    p.set_defaults(func=_cmd_info)

    p = commands.add_parser("evaluate", help="reconstruction PSNR of F(x, G(x, y)) vs y on held-out pairs")
    p.add_argument("--model", required=True, help="a .safetensors file or a pretrained name")
    p.add_argument("--data", required=True, help="paired dataset folder")
    p.add_argument("--split", default=None, help="split to score (e.g. test); default: every pair found")
    p.add_argument("--crop", type=POSITIVE, default=256, help="centre-crop size (rounded down to the model's cell)")
    p.add_argument("--limit", type=POSITIVE, default=None, help="score at most this many pairs")
    p.add_argument("--device", default="auto")
    p.add_argument("--json", help="write the numbers (with per-pair PSNRs) to this file")
    p.add_argument("--figure", help="write a PNG: sharp | true blur | reconstruction, one pair per row")
    p.add_argument("--figure-rows", type=POSITIVE, default=4)
    p.add_argument("--refine", type=NON_NEGATIVE, default=0, metavar="STEPS",
                   help="refine each pair's code by this many gradient steps on |F(x, k) - y| before scoring "
                        "(test-time optimisation of G; about 3 x STEPS applications of F per pair)")
    p.set_defaults(func=_cmd_evaluate)
