"""``kernelaug <command>``: every command is a function; heavy modules are imported by the command."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _cmd_train(args) -> None:
    from .train import TrainOptions, train

    options = TrainOptions(data=args.data, out=args.out, preset=args.preset, steps=args.steps,
                           batch_size=args.batch_size, crop=args.crop, lr=args.lr, psf_weight=args.psf_weight, val_every=args.val_every,
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

    from .checkpoint import load_model

    model = load_model(args.model)
    params = sum(p.numel() for p in model.parameters())
    info = {"file": model.source, "config": dataclasses.asdict(model.config),
            "parameters": params, "sha256": model.sha256, "provenance": model.provenance}
    print(json.dumps(info, indent=2))
    print(f"{model.config.arch} model, {params / 1e6:.2f} M parameters, code {model.kernel_dim} x H/{model.cell} "
          f"x W/{model.cell}")


def _cmd_evaluate(args) -> None:
    from .checkpoint import load_model
    from .datasets import find_pairs
    from .device import resolve_device
    from .evaluate import evaluate, load_crops, reconstruction_figure

    model = load_model(args.model, device=resolve_device(args.device))
    pairs = find_pairs(args.data, split=args.split)
    sharps, blurries = load_crops(pairs, args.crop, model.cell, args.limit)
    result = {"model": str(args.model), "data": str(args.data), "split": args.split, "crop": args.crop,
              **evaluate(model, sharps, blurries, per_pair=args.json is not None)}
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    if args.figure:
        reconstruction_figure(model, sharps, blurries, args.figure, rows=args.figure_rows)
    print(f"{result['pairs']} pairs: reconstruction {result['recon_psnr']:.2f} dB vs blurry-vs-sharp "
          f"{result['blurry_psnr']:.2f} dB ({result['recon_psnr'] - result['blurry_psnr']:+.2f} dB)")


def _cmd_make_synthetic(args) -> None:
    from .synthetic import make_synthetic

    summary = make_synthetic(args.out, pairs=args.pairs, size=args.size, seed=args.seed, family=args.family,
                             workers=args.workers, test_fraction=args.test_fraction)
    print(json.dumps(summary))


def _cmd_extract(args) -> None:
    import os

    from .extract import extract_bank

    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    summary = extract_bank(args.model, args.data, args.out, crop=args.crop, crops_per_pair=args.crops_per_pair or 1,
                           tile=args.tile, batch_size=args.batch_size, device=args.device, seed=args.seed,
                           dtype=args.dtype, resume=args.resume, overwrite=args.overwrite, limit=args.limit,
                           split=args.split, progress=not args.no_progress, rank=rank, world=world)
    shard = f" (shard {rank} of {world})" if world > 1 else ""
    print(f"extracted {summary['codes_written']} codes from {summary['pairs_written']} pairs in "
          f"{summary['wall_time_s']:.1f} s ({summary['pairs_per_s']:.2f} pairs/s) -> {summary['out']}{shard}: "
          f"{summary['codes']} {summary['dtype']} codes in all, mean reconstruction PSNR {summary['mean_psnr']:.2f} dB")


def _cmd_bank_info(args) -> None:
    from .bank import bank_info, format_bank_info

    info = bank_info(args.bank)
    print(json.dumps(info, indent=2) if args.json else format_bank_info(info))


def _cmd_bank_merge(args) -> None:
    from .bank import merge_banks

    summary = merge_banks(args.shards, args.out, virtual=args.virtual, overwrite=args.overwrite)
    how = "virtual dataset over" if summary["virtual"] else "copied from"
    order = "interleaved by pair" if summary["interleaved"] else "concatenated"
    print(f"merged {summary['codes']} codes {how} {summary['shards']} shards ({order}) -> {summary['out']}")


# -- deblur (blind deblurring in the learned kernel space) ----------------------------------------
def _load_callable(spec: str, option: str):
    """``module:callable`` -> the object it names, called with no arguments (a factory returning a module)."""
    import importlib

    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"{option} must be 'module:callable', got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(f"{option}: cannot import module {module_name!r}: {error}") from None
    factory = getattr(module, attribute, None)
    if factory is None or not callable(factory):
        raise ValueError(f"{option}: module {module_name!r} has no callable {attribute!r}")
    return factory()


def _floats(text: str, option: str, count: int | None = None) -> tuple:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"{option} must be comma-separated numbers, got {text!r}") from None
    if count is not None and len(values) != count:
        raise ValueError(f"{option} needs {count} comma-separated numbers, got {text!r}")
    return values


def _write_rgb(path: Path, image) -> None:
    """Write a (1, 3, H, W) float tensor in [0, 1] as an 8-bit image, atomically (temp file, then rename)."""
    import os

    import cv2
    import numpy as np

    rgb = (image[0].permute(1, 2, 0).numpy() * 255 + 0.5).clip(0, 255).astype(np.uint8)
    ok, data = cv2.imencode(path.suffix or ".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError(f"cannot encode an image as {path.suffix!r} for {path}")
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(data.tobytes())
    os.replace(tmp, path)


def _cmd_deblur(args) -> None:
    import torch

    from .bank import KernelBank
    from .checkpoint import load_model
    from .datasets import read_image
    from .deblur import deblur_generator, deblur_generic
    from .device import resolve_device
    from .pretrained import PRETRAINED, resolve_bank

    out = Path(args.out)
    if not out.parent.is_dir():
        raise ValueError(f"output folder {out.parent} does not exist")
    if out.suffix.lower() not in (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"):
        raise ValueError(f"--out must end in an image suffix (.png, .jpg, .tif, .bmp), got {out.name!r}")
    blurry = torch.from_numpy(read_image(args.input)).permute(2, 0, 1).contiguous()
    model = load_model(args.model, device=resolve_device(args.device))
    bank = None
    if args.bank:
        bank = KernelBank(args.bank)
    elif args.model in PRETRAINED and PRETRAINED[args.model].bank_file:
        bank = KernelBank(resolve_bank(args.model))
    start = args.start
    if start is None:
        start = "mean" if bank is not None else "extract"

    def on_save(step, image):
        _write_rgb(out.with_name(f"{out.stem}_{step:05d}{out.suffix}"), image)

    common = dict(bank=bank, start_code=start, preset=args.preset, iterations=args.iterations,
                  warmup_iterations=args.warmup, seed=args.seed, save_every=args.save_every,
                  on_save=on_save if args.save_every else None,
                  features=_load_callable(args.features, "--features") if args.features else None)
    if args.prior == "generator":
        if not args.generator:
            raise ValueError("--prior generator needs --generator module:callable")
        generator = _load_callable(args.generator, "--generator").to(next(model.parameters()).device)
        shape = args.latent_shape or getattr(generator, "latent_shape", None)
        if shape is None:
            raise ValueError("give --latent-shape (e.g. 1,512) or a generator with a latent_shape attribute")
        if isinstance(shape, str):
            shape = tuple(int(v) for v in _floats(shape, "--latent-shape"))
        result = deblur_generator(blurry, model, generator, shape, sphere=not args.no_sphere,
                                  output_range=_floats(args.output_range, "--output-range", 2), **common)
    elif args.generator:
        raise ValueError("--generator is only used with --prior generator")
    else:
        result = deblur_generic(blurry, model, **common)
    _write_rgb(out, result.sharp)
    if args.save_code:
        import os

        from safetensors.torch import save_file

        tmp = f"{args.save_code}.tmp{os.getpid()}"
        save_file({"code": result.code.contiguous()}, tmp)
        os.replace(tmp, args.save_code)
    final = result.losses[-1] if result.losses else float("nan")
    print(f"deblurred {args.input} ({blurry.shape[-1]}x{blurry.shape[-2]}) with the {args.prior} prior, "
          f"{len(result.losses)} iterations in {result.seconds:.0f} s, final loss {final:.4f} -> {out}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kernelaug", description="Learn a camera's blur from sharp/blurry pairs and re-apply it as data augmentation.")
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("train", help="train a kernel encoder (G and F) on a paired dataset")
    p.add_argument("--data", required=True, help="paired dataset folder (GoPro, REDS or generic layout)")
    p.add_argument("--out", required=True, help="output .safetensors model file")
    p.add_argument("--preset", default="psf", help="architecture preset: paper, paper-vae, small, psf, tiny, psf-tiny")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--crop", type=int, default=256)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--psf-weight", type=float, default=0.05,
                   help="psf arch: weight of the loss pulling decoded PSFs toward least-squares estimates")
    p.add_argument("--val-every", type=int, default=250)
    p.add_argument("--val-pairs", type=int, default=32)
    p.add_argument("--val-crop", type=int, default=256, help="centre-crop size of held-out pairs for validation")
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

    p = commands.add_parser("evaluate", help="reconstruction PSNR of F(x, G(x, y)) vs y on held-out pairs")
    p.add_argument("--model", required=True, help="a .safetensors file or a pretrained name")
    p.add_argument("--data", required=True, help="paired dataset folder")
    p.add_argument("--split", default=None, help="split to score (e.g. test); default: every pair found")
    p.add_argument("--crop", type=int, default=256, help="centre-crop size (rounded down to the model's cell)")
    p.add_argument("--limit", type=int, default=None, help="score at most this many pairs")
    p.add_argument("--device", default="auto")
    p.add_argument("--json", help="write the numbers (with per-pair PSNRs) to this file")
    p.add_argument("--figure", help="write a PNG: sharp | true blur | reconstruction, one pair per row")
    p.add_argument("--figure-rows", type=int, default=4)
    p.set_defaults(func=_cmd_evaluate)

    p = commands.add_parser("make-synthetic", help="write a synthetic GoPro-layout sharp/blurry dataset")
    p.add_argument("out")
    p.add_argument("--pairs", type=int, default=200)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--family", default="shake", help="blur family (see kernelaug.synthetic.FAMILIES)")
    p.add_argument("--workers", type=int, default=0, help="processes (0: this one)")
    p.add_argument("--test-fraction", type=float, default=0.1)
    p.set_defaults(func=_cmd_make_synthetic)

    p = commands.add_parser("extract", help="extract the blur codes of a paired dataset into an HDF5 kernel bank")
    p.add_argument("--model", required=True, help="a .safetensors model file or a pretrained name")
    p.add_argument("--data", required=True, help="paired dataset folder (GoPro, REDS or generic layout)")
    p.add_argument("--out", required=True, help="output bank .h5 (under torchrun: one OUT.rank{r}-of-{w}.h5 per rank)")
    p.add_argument("--split", help="only this split of a GoPro/REDS dataset (default: all)")
    p.add_argument("--crop", type=int, default=256, help="square crop side, a multiple of the model's cell")
    crops = p.add_mutually_exclusive_group()
    crops.add_argument("--crops-per-pair", type=int, help="random crops per pair, seeded (default 1)")
    crops.add_argument("--tile", action="store_true", help="tile each whole image into non-overlapping crops")
    p.add_argument("--batch-size", type=int, default=8, help="pairs per written batch and crops per forward pass")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dtype", default="float16", choices=["float16", "float32"], help="storage type of the codes")
    p.add_argument("--limit", type=int, help="extract at most this many pairs (the first ones)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted extraction into --out")
    p.add_argument("--overwrite", action="store_true", help="replace an existing bank at --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_extract)

    p = commands.add_parser("bank-info", help="describe a kernel bank: size, model, per-code reconstruction PSNR")
    p.add_argument("bank", help="a bank .h5 file")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=_cmd_bank_info)

    p = commands.add_parser("bank-merge", help="join bank shards (e.g. from torchrun extract) into one bank")
    p.add_argument("shards", nargs="+", help="complete bank files made by one model with one crop size")
    p.add_argument("--out", required=True, help="output bank .h5")
    p.add_argument("--virtual", action="store_true", help="reference the shards' codes (HDF5 virtual dataset) "
                   "instead of copying them; keep the shards beside the output")
    p.add_argument("--overwrite", action="store_true", help="replace an existing bank at --out")
    p.set_defaults(func=_cmd_bank_merge)
    p = commands.add_parser("deblur", help="blind deblurring of one image in the model's learned kernel space")
    p.add_argument("input", help="blurry image file")
    p.add_argument("--out", required=True, help="output image file (PNG recommended)")
    p.add_argument("--model", default="synth-small", help="a .safetensors model file or a pretrained name")
    p.add_argument("--bank", help="kernel bank of the model (default: the pretrained model's own bank)")
    p.add_argument("--start", choices=["mean", "extract"], help="starting code: the bank's mean code "
                   "(default with a bank) or G(y, y)")
    p.add_argument("--preset", default="cpu", choices=["cpu", "gpu"],
                   help="cpu: ~10 min for 256x256 on 2 cores; gpu: the paper's DIP sizes and 5000 iterations")
    p.add_argument("--iterations", type=int, help="main iterations (default: the preset's)")
    p.add_argument("--warmup", type=int, help="warm-up iterations per DIP (default: the preset's)")
    p.add_argument("--save-every", type=int, default=0, help="also write OUT_<step>.<ext> every K iterations")
    p.add_argument("--prior", default="dip", choices=["dip", "generator"],
                   help="dip: Deep Image Prior for x (generic); generator: x = GEN(w) (domain-specific)")
    p.add_argument("--generator", help="module:callable returning the generator nn.Module (latent -> image)")
    p.add_argument("--latent-shape", help="latent shape, e.g. 1,512 (default: the generator's latent_shape)")
    p.add_argument("--output-range", default="0,1", help="value range of the generator's images, e.g. -1,1")
    p.add_argument("--no-sphere", action="store_true", help="do not keep the latent on the sphere (PULSE)")
    p.add_argument("--features", help="module:callable returning a feature network for a perceptual loss")
    p.add_argument("--save-code", help="also write the found code grid to this .safetensors file")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_deblur)
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
