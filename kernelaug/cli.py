"""``kernelaug <command>``: every command is a function; heavy modules are imported by the command."""

from __future__ import annotations

import argparse
import json
import sys


def _cmd_train(args) -> None:
    from .train import TrainOptions, train

    options = TrainOptions(data=args.data, out=args.out, preset=args.preset, steps=args.steps,
                           batch_size=args.batch_size, crop=args.crop, lr=args.lr, val_every=args.val_every,
                           val_pairs=args.val_pairs, checkpoint_every=args.checkpoint_every, resume=args.resume,
                           init=args.init, device=args.device, workers=args.workers, seed=args.seed)
    summary = train(options)
    if summary["rank"] == 0:
        val = summary["validation"] or {}
        print(f"trained {summary['steps']} steps in {summary['wall_time_s']:.0f} s -> {summary['out']}; "
              f"validation: reconstruction {val.get('recon_psnr', float('nan')):.2f} dB vs "
              f"blurry {val.get('blurry_psnr', float('nan')):.2f} dB on {val.get('pairs', 0)} held-out pairs")


def _cmd_info(args) -> None:
    from .checkpoint import load_model

    model = load_model(args.model)
    params = sum(p.numel() for p in model.parameters())
    info = {"file": model.source, "config": __import__("dataclasses").asdict(model.config),
            "parameters": params, "sha256": model.sha256, "provenance": model.provenance}
    print(json.dumps(info, indent=2))
    print(f"{model.config.arch} model, {params / 1e6:.2f} M parameters, code {model.kernel_dim} x H/{model.cell} "
          f"x W/{model.cell}")


def _cmd_make_synthetic(args) -> None:
    from .synthetic import make_synthetic

    summary = make_synthetic(args.out, pairs=args.pairs, size=args.size, seed=args.seed, family=args.family,
                             workers=args.workers, test_fraction=args.test_fraction)
    print(json.dumps(summary))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kernelaug", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("train", help="train a kernel encoder (G and F) on a paired dataset")
    p.add_argument("--data", required=True, help="paired dataset folder (GoPro, REDS or generic layout)")
    p.add_argument("--out", required=True, help="output .safetensors model file")
    p.add_argument("--preset", default="psf", help="architecture preset: paper, paper-vae, small, psf, tiny, psf-tiny")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--crop", type=int, default=256)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--val-every", type=int, default=250)
    p.add_argument("--val-pairs", type=int, default=32)
    p.add_argument("--checkpoint-every", type=int, default=250)
    p.add_argument("--resume", action="store_true", help="continue from --out and its .state.safetensors")
    p.add_argument("--init", help="start from the weights of this model (fine-tuning)")
    p.add_argument("--device", default="auto")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_train)

    p = commands.add_parser("info", help="print a model's config, parameter count and provenance")
    p.add_argument("model", help="a .safetensors file or a pretrained name")
    p.set_defaults(func=_cmd_info)

    p = commands.add_parser("make-synthetic", help="write a synthetic GoPro-layout sharp/blurry dataset")
    p.add_argument("out")
    p.add_argument("--pairs", type=int, default=200)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--family", default="shake", help="blur family (see kernelaug.synthetic.FAMILIES)")
    p.add_argument("--workers", type=int, default=0, help="processes (0: this one)")
    p.add_argument("--test-fraction", type=float, default=0.1)
    p.set_defaults(func=_cmd_make_synthetic)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (ValueError, FileNotFoundError, TypeError) as error:
        print(f"kernelaug {args.command}: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
