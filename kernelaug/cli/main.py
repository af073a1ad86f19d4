"""``kernelaug <command>``: every command is a function; heavy modules are imported by the command."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path


def _cmd_train(args) -> None:
    from ..learn.train import TrainOptions, train

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
    from ..data.synthetic import make_synthetic

    summary = make_synthetic(args.out, pairs=args.pairs, size=args.size, seed=args.seed, family=args.family,
                             workers=args.workers, test_fraction=args.test_fraction)
    print(json.dumps(summary))


def _cmd_extract(args) -> None:
    import os

    from ..learn.extract import extract_bank

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
    from ..bank import bank_info, format_bank_info

    info = bank_info(args.bank)
    print(json.dumps(info, indent=2) if args.json else format_bank_info(info))


def _cmd_bank_merge(args) -> None:
    from ..bank import merge_banks

    summary = merge_banks(args.shards, args.out, virtual=args.virtual, overwrite=args.overwrite)
    how = "virtual dataset over" if summary["virtual"] else "copied from"
    order = "interleaved by pair" if summary["interleaved"] else "concatenated"
    print(f"merged {summary['codes']} codes {how} {summary['shards']} shards ({order}) -> {summary['out']}")


def _cmd_srn_train(args) -> None:
    from ..data.pairs import find_pairs
    from ..deblurrers.srn import SRNConfig
    from ..device import resolve_device
    from ..deblurrers.training import SRNTraining, load_pair_arrays, save_srn, train_srn

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

    result = run_srn_bench(args.preset, out=args.out, model=args.model, bank=args.bank, seed=args.seed,
                           jobs=args.jobs, work=args.work, device=str(resolve_device(args.device)))
    a, b = (result["runs"][run]["tests"] for run in RUNS)
    gains = ", ".join(f"{name} {b[name]['psnr'] - a[name]['psnr']:+.2f} dB" for name in a)
    print(f"bench srn --preset {args.preset}: comb. vs imgaug: {gains} ({result['wall_time_s'] / 60:.1f} min) -> "
          f"{Path(args.out) / ('srn_' + args.preset + '.md')}")


# -- blur transfer, offline augmentation, pictures, coverage (issue 7) ------------------------------
def _model_and_bank(args, need_bank: bool = True):
    """--model (a file or pretrained name) on --device, and --bank (default: the pretrained model's bank)."""
    import os

    from ..device import resolve_device
    from ..bank import resolve_bank
    from ..models import resolve_model

    model = resolve_model(args.model, resolve_device(getattr(args, "device", "auto")))
    bank = None
    if need_bank or getattr(args, "bank", None):
        name = args.model if isinstance(args.model, str) and not os.path.exists(args.model) else None
        bank = resolve_bank(getattr(args, "bank", None), name)
        bank.check(model)
    return model, bank


def _bank_code(bank, index: int):
    """Code ``index`` of ``bank`` as a (1, C, h, w) tensor; ValueError when out of range."""
    import torch

    if not -len(bank) <= index < len(bank):
        raise ValueError(f"--index {index} is out of range for {bank.path} ({len(bank)} codes)")
    return torch.from_numpy(bank[index][None])


def _cmd_transfer(args) -> None:
    from ..data.pairs import read_image
    from ..tools.pictures import write_picture
    from ..tools.transfer import extract_pair_code, to_tensor, to_uint8, transfer_blur

    from_pair = args.sharp is not None or args.blurry is not None
    if from_pair == (args.bank is not None):
        raise ValueError("give either --sharp A --blurry B (extract the pair's code) or --bank BANK --index I")
    if from_pair and (args.sharp is None or args.blurry is None):
        raise ValueError("--sharp and --blurry go together")
    model, bank = _model_and_bank(args, need_bank=not from_pair)
    if from_pair:
        code = extract_pair_code(model, to_tensor(read_image(args.sharp)), to_tensor(read_image(args.blurry)))
        origin = f"the pair ({args.sharp}, {args.blurry})"
    else:
        code = _bank_code(bank, args.index)
        origin = f"code {args.index} of {bank.path}"
    target = read_image(args.onto)
    blurred = transfer_blur(model, code, to_tensor(target), strength=args.strength, grid_mode=args.grid_mode)
    write_picture(args.out, to_uint8(blurred))
    if args.save_code:
        import numpy as np

        np.save(args.save_code, code[0].numpy())
    print(f"blurred {args.onto} ({target.shape[1]}x{target.shape[0]}) with {origin} "
          f"(code grid {tuple(code.shape[-2:])}, {args.grid_mode}) -> {args.out}")


def _cmd_augment(args) -> None:
    from ..tools.augment import AugmentSettings, augment_folder

    if len(args.strength) not in (1, 2):
        raise ValueError(f"--strength takes one value or a LO HI range, got {len(args.strength)} values")
    strength = (args.strength[0], args.strength[-1])
    settings = AugmentSettings(per_image=args.per_image, mix=args.mix, seed=args.seed, mode=args.mode,
                               strength=strength, motion_length=tuple(args.motion_length),
                               grid_mode=args.grid_mode, split=args.split)
    model, bank = _model_and_bank(args)
    summary = augment_folder(model, bank, args.images, args.out, settings, progress=not args.no_progress)
    print(f"augment: {summary['outputs']} pairs from {summary['images']} images "
          f"({summary['learned']} learned, {summary['parametric']} parametric): wrote {summary['written']}, "
          f"skipped {summary['skipped']} already written, in {summary['wall_time_s']:.1f} s "
          f"({summary['written_per_s']:.2f} images/s) -> {summary['out']}")


def _cmd_show_psf(args) -> None:
    from ..data.pairs import read_image
    from ..tools.pictures import code_psfs, psf_mosaic, write_picture
    from ..tools.transfer import extract_pair_code, to_tensor

    if (args.pair is None) == (args.bank is None):
        raise ValueError("give either --bank BANK [--index I] or --pair SHARP BLURRY")
    model, bank = _model_and_bank(args, need_bank=args.pair is None)
    if args.pair is not None:
        code = extract_pair_code(model, *(to_tensor(read_image(p)) for p in args.pair))
        origin = f"pair {args.pair[0]}, {args.pair[1]}"
    else:
        code = _bank_code(bank, args.index)
        origin = f"code {args.index} of {bank.path}"
    psfs = code_psfs(model, code, size=args.size)
    write_picture(args.out, psf_mosaic(psfs, scale=args.scale))
    how = "decoded" if hasattr(model, "psf") else "point-light responses of F"
    print(f"drew {psfs.shape[0]}x{psfs.shape[1]} PSFs ({how}, {psfs.shape[-1]}x{psfs.shape[-1]} px) of {origin} -> {args.out}")


def _cmd_show_bank(args) -> None:
    from tqdm import tqdm

    from ..tools.pictures import bank_map, bank_pca, code_psfs, manifest_sources, source_groups, spread_points, write_picture

    import numpy as np

    model, bank = _model_and_bank(args)
    if args.max_codes < 2:
        raise ValueError(f"--max-codes must be at least 2, got {args.max_codes}")
    rows = np.unique(np.linspace(0, len(bank) - 1, min(len(bank), args.max_codes)).round().astype(np.int64))
    codes = bank[rows]
    pair_ids = bank.column("pair_id")[rows]
    labels = source_groups(pair_ids)
    if args.manifest:
        sources = manifest_sources(args.manifest)
        labels = [sources.get(str(p), label) for p, label in zip(pair_ids, labels)]
    coords, _ = bank_pca(codes)
    chosen = spread_points(coords, args.thumbnails)
    thumbnails = {int(i): code_psfs(model, codes[i][None]).mean((0, 1))
                  for i in tqdm(chosen, desc="show-bank PSFs", disable=not len(chosen))}
    shown = f"{len(codes)} of {len(bank)}" if len(codes) < len(bank) else f"{len(bank)}"
    title = f"{Path(bank.path).name}: {shown} codes {tuple(bank.code_shape)}, mean PSF of marked codes"
    write_picture(args.out, bank_map(codes, labels, thumbnails, title=title))
    print(f"mapped {shown} codes in {len(set(labels))} source group(s), {len(thumbnails)} PSFs drawn -> {args.out}")


def _cmd_sample_grid(args) -> None:
    import numpy as np

    from ..tools.augment import list_images
    from ..bank import as_generator
    from ..data.pairs import read_image
    from ..tools.pictures import sample_grid, square_crop, write_picture

    model, bank = _model_and_bank(args)
    files = list_images(args.images)[:args.limit]
    sharps = {f.stem: square_crop((read_image(f) * 255 + 0.5).astype(np.uint8), args.size) for f in files}
    rng = as_generator(args.seed)
    codes = bank.sample(args.learned, rng=rng, mode=args.mode)
    motions = [(int(rng.integers(args.motion_length[0], args.motion_length[1] + 1)), float(rng.uniform(0, 180)))
               for _ in range(args.parametric)]
    write_picture(args.out, sample_grid(model, sharps, codes, motions))
    print(f"sample grid: {len(sharps)} images x ({args.learned} learned + {args.parametric} parametric) -> {args.out}")


def _cmd_coverage(args) -> None:
    from ..tools.augment import list_images
    from ..tools.coverage import coverage, coverage_markdown, read_kernel
    from ..data.pairs import read_image

    model, _ = _model_and_bank(args, need_bank=False)
    kernel_dir = Path(args.kernels)
    if not kernel_dir.is_dir():
        raise ValueError(f"kernel folder {kernel_dir} does not exist or is not a folder")
    kernel_files = sorted(kernel_dir.glob("*.png"))
    if not kernel_files:
        raise ValueError(f"no kernel PNGs found in {kernel_dir}")
    kernels = {f.stem: read_kernel(f) for f in kernel_files}
    images = {f.relative_to(args.images).as_posix(): read_image(f) for f in list_images(args.images)[:args.limit]}
    result = coverage(model, kernels, images, space=args.space, gamma=args.gamma, crop=args.crop,
                      progress=not args.no_progress)
    result = {"model": str(args.model), "kernels_dir": str(kernel_dir), **result}
    table = coverage_markdown(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    if args.markdown:
        Path(args.markdown).write_text(table)
    print(table, end="")
    print(f"coverage: {len(kernels)} kernels x {len(images)} images: re-blurred {result['mean_recon_psnr']:.2f} dB "
          f"vs blurry-vs-sharp {result['mean_blurry_psnr']:.2f} dB "
          f"({result['mean_recon_psnr'] - result['mean_blurry_psnr']:+.2f} dB)")


def _cmd_make_kernels(args) -> None:
    import numpy as np

    from ..tools.coverage import shake_kernel, write_kernel

    if args.count < 1:
        raise ValueError(f"--count must be at least 1, got {args.count}")
    out = Path(args.out)
    sizes = []
    for i in range(args.count):
        rng = np.random.default_rng(np.random.SeedSequence(args.seed, spawn_key=(i,)))
        extent = None if args.extent is None else float(rng.uniform(*args.extent))
        kernel = shake_kernel(rng, extent)
        write_kernel(out / f"shake_{i:02d}.png", kernel)
        sizes.append(kernel.shape[0])
    print(f"wrote {args.count} camera-shake kernels ({min(sizes)}..{max(sizes)} px) -> {out}")


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


def _cmd_deblur(args) -> None:
    from ..models.checkpoint import write_safetensors
    from ..data.pairs import read_image
    from ..deblur.blind import deblur_generator, deblur_generic, resolve_preset
    from ..tools.pictures import write_picture
    from ..models.pretrained import PRETRAINED
    from ..tools.transfer import to_tensor, to_uint8

    out = Path(args.out)
    if not out.parent.is_dir():
        raise ValueError(f"output folder {out.parent} does not exist")
    if out.suffix.lower() not in (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"):
        raise ValueError(f"--out must end in an image suffix (.png, .jpg, .tif, .bmp), got {out.name!r}")
    blurry = to_tensor(read_image(args.input))
    model, bank = _model_and_bank(args, need_bank=args.model in PRETRAINED and bool(PRETRAINED[args.model].bank_file))
    start = args.start
    if start is None:
        start = "mean" if bank is not None else "extract"

    def on_save(step, image):
        write_picture(out.with_name(f"{out.stem}_{step:05d}{out.suffix}"), to_uint8(image))

    preset = resolve_preset(args.preset)
    if args.centre_weight is not None:
        preset = dataclasses.replace(preset, centre_weight=args.centre_weight)
    common = dict(bank=bank, start_code=start, preset=preset, iterations=args.iterations,
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
    write_picture(out, to_uint8(result.sharp))
    if args.save_code:
        write_safetensors(args.save_code, {"code": result.code.contiguous()}, metadata={})
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
    p.add_argument("--family", default="shake", help="blur family (see kernelaug.data.synthetic.FAMILIES)")
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

    p = commands.add_parser("srn", help="train or evaluate the SRN-Deblur deblurrer on a paired dataset")
    srn = p.add_subparsers(dest="srn_command", required=True)
    p = srn.add_parser("train", help="train SRN-Deblur on a paired dataset (blurry -> sharp)")
    p.add_argument("--data", required=True, help="paired dataset folder (GoPro, REDS or generic layout)")
    p.add_argument("--out", required=True, help="output .safetensors file")
    p.add_argument("--split", default="train")
    p.add_argument("--size", type=int, default=None, help="centre-crop every pair to this size when loading")
    p.add_argument("--limit", type=int, default=None, help="use at most this many pairs")
    p.add_argument("--widths", type=int, nargs=3, default=[32, 64, 128], help="channels of the three encoder stages")
    p.add_argument("--blocks", type=int, default=3, help="residual blocks per stage")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--crop", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    p.set_defaults(func=_cmd_srn_train)
    p = srn.add_parser("eval", help="PSNR and SSIM of SRN-Deblur's output against the sharp images")
    p.add_argument("--model", required=True, help="SRN .safetensors file")
    p.add_argument("--data", required=True, help="paired dataset folder")
    p.add_argument("--split", default="test")
    p.add_argument("--size", type=int, default=None, help="centre-crop every pair to this size")
    p.add_argument("--limit", type=int, default=None)
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
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=2, help="train the two runs in parallel processes (2) or in turn (1)")
    p.add_argument("--device", default="cpu", help="where SRN trains and is tested: cpu, cuda, cuda:N or auto")
    p.add_argument("--work", default=None, help="empty folder for intermediate data and models (default: a "
                   "temporary folder, removed afterwards)")
    p.set_defaults(func=_cmd_bench_srn)
    _add_kernel_space_parsers(commands)

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
    p.add_argument("--centre-weight", type=float, help="weight of the PSF-centring term (default 1e-3; 0: the paper's "
                   "objective, whose result can drift by a few pixels)")
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


def _add_kernel_space_parsers(commands) -> None:
    """transfer, augment, show-psf, show-bank, sample-grid, coverage, make-kernels."""
    def model_args(p, bank_help="kernel bank .h5 or pretrained name (default: the pretrained model's own bank)"):
        p.add_argument("--model", default="synth-small", help="a .safetensors file or a pretrained name")
        p.add_argument("--bank", help=bank_help)
        p.add_argument("--device", default="auto")

    p = commands.add_parser("transfer", help="extract the blur of a pair (or take a bank code) and apply it to an image")
    model_args(p, "take the code from this bank (with --index) instead of a pair")
    p.add_argument("--sharp", help="sharp image A of the source pair")
    p.add_argument("--blurry", help="blurry image B of the source pair")
    p.add_argument("--index", type=int, default=0, help="code index in --bank")
    p.add_argument("--onto", required=True, help="image C to blur (any size)")
    p.add_argument("--out", required=True, help="output image D")
    p.add_argument("--strength", type=float, default=1.0)
    p.add_argument("--grid-mode", default="resize", choices=["resize", "tile"],
                   help="fitting the code grid to C's size")
    p.add_argument("--save-code", help="also save the code as a .npy file")
    p.set_defaults(func=_cmd_transfer)

    p = commands.add_parser("augment", help="write a GoPro-layout paired dataset: sharp images and learned blurs")
    model_args(p)
    p.add_argument("--images", required=True, help="folder of sharp images (searched recursively)")
    p.add_argument("--out", required=True, help="output dataset folder (resumable: finished images are skipped)")
    p.add_argument("--per-image", type=int, default=4, help="blurred versions per sharp image")
    p.add_argument("--mix", type=float, default=0.0, help="fraction of parametric motion blurs (the paper's 'comb.')")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--mode", default="bank", choices=["bank", "gaussian", "mix"], help="how codes are drawn")
    p.add_argument("--strength", type=float, nargs="+", default=[1.0], metavar="S",
                   help="blur strength, or a LO HI range drawn uniformly")
    p.add_argument("--motion-length", type=int, nargs=2, default=[3, 15], metavar=("MIN", "MAX"))
    p.add_argument("--grid-mode", default="resize", choices=["resize", "tile"])
    p.add_argument("--split", default="train", help="split folder name in the output")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_augment)

    p = commands.add_parser("show-psf", help="draw the spatially varying blur of a code as PSFs on its cell grid")
    model_args(p, "take the code from this bank (with --index)")
    p.add_argument("--index", type=int, default=0)
    p.add_argument("--pair", nargs=2, metavar=("SHARP", "BLURRY"), help="extract the code of this pair")
    p.add_argument("--out", required=True)
    p.add_argument("--scale", type=int, default=4, help="pixels per PSF tap in the picture")
    p.add_argument("--size", type=int, default=31, help="PSF window of point-light responses (paper arch)")
    p.set_defaults(func=_cmd_show_psf)

    p = commands.add_parser("show-bank", help="map a bank's codes in 2-D (PCA), coloured by source, with PSFs")
    model_args(p, "kernel bank .h5 or pretrained name (default: the pretrained model's bank)")
    p.add_argument("--out", required=True)
    p.add_argument("--thumbnails", type=int, default=6, help="codes whose (mean) PSF is drawn")
    p.add_argument("--manifest", help="make-synthetic manifest.jsonl: colour by its 'source' field")
    p.add_argument("--max-codes", type=int, default=20000, help="map at most this many codes (evenly spaced)")
    p.set_defaults(func=_cmd_show_bank)

    p = commands.add_parser("sample-grid", help="picture: sharp | learned blurs | parametric blur, one row per image")
    model_args(p)
    p.add_argument("--images", required=True, help="folder of sharp images")
    p.add_argument("--out", required=True)
    p.add_argument("--learned", type=int, default=3)
    p.add_argument("--parametric", type=int, default=1)
    p.add_argument("--mode", default="bank", choices=["bank", "gaussian", "mix"])
    p.add_argument("--motion-length", type=int, nargs=2, default=[3, 15], metavar=("MIN", "MAX"))
    p.add_argument("--size", type=int, default=256, help="tile side (images resized and centre-cropped)")
    p.add_argument("--limit", type=int, default=4, help="at most this many images")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_sample_grid)

    p = commands.add_parser("coverage", help="the paper's Table 1: re-blur PSNR of recorded kernels through the code space")
    p.add_argument("--model", default="synth-small")
    p.add_argument("--device", default="auto")
    p.add_argument("--kernels", required=True, help="folder of kernel PNGs (one kernel each)")
    p.add_argument("--images", required=True, help="folder of sharp images")
    p.add_argument("--space", default="linear", choices=["linear", "display"], help="blur in linear light or display gamma")
    p.add_argument("--gamma", type=float, default=2.2, help="display gamma of the images (linear space)")
    p.add_argument("--crop", type=int, default=256, help="centre-crop side (rounded down to the cell)")
    p.add_argument("--limit", type=int, help="at most this many images")
    p.add_argument("--json", help="write the numbers (with per-image PSNRs) here")
    p.add_argument("--markdown", help="write the table here")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_coverage)

    p = commands.add_parser("make-kernels", help="write uniform kernels of the synthetic camera-shake family as PNGs")
    p.add_argument("out")
    p.add_argument("--count", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--extent", type=float, nargs=2, metavar=("MIN", "MAX"),
                   help="blur size range in px (default: as the shake family draws it)")
    p.set_defaults(func=_cmd_make_kernels)


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
