"""Uses of a model: ``transfer``, ``augment``, ``coverage``, ``make-kernels``."""

from __future__ import annotations

from ..models.pretrained import DEFAULT_MODEL

import json
from pathlib import Path

from .common import NON_NEGATIVE, POSITIVE, SEED, UNIT, add_model_args, bank_code, float_in, model_and_bank
from ..paths import IMAGE_SUFFIXES, check_output


def _cmd_transfer(args) -> None:
    from ..data.pairs import read_image
    from ..tools.pictures import write_picture
    from ..tools.transfer import extract_pair_code, to_tensor, to_uint8, transfer_blur

    check_output(args.out, "--out", IMAGE_SUFFIXES, inputs=[args.onto, args.sharp, args.blurry])
    if args.save_code:
        check_output(args.save_code, "--save-code", (".npy",))
    from_pair = args.sharp is not None or args.blurry is not None
    if from_pair == (args.bank is not None):
        raise ValueError("give either --sharp A --blurry B (extract the pair's code) or --bank BANK --index I")
    if from_pair and (args.sharp is None or args.blurry is None):
        raise ValueError("--sharp and --blurry go together")
    model, bank = model_and_bank(args, need_bank=not from_pair)
    if from_pair:
        code = extract_pair_code(model, to_tensor(read_image(args.sharp)), to_tensor(read_image(args.blurry)),
                                 refine=args.refine)
        origin = f"the pair ({args.sharp}, {args.blurry})"
    else:
        code = bank_code(bank, args.index)
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

    check_output(args.out, "--out", folder=True)
    if len(args.strength) not in (1, 2):
        raise ValueError(f"--strength takes one value or a LO HI range, got {len(args.strength)} values")
    strength = (args.strength[0], args.strength[-1])
    settings = AugmentSettings(per_image=args.per_image, mix=args.mix, seed=args.seed, mode=args.mode,
                               strength=strength, motion_length=tuple(args.motion_length),
                               grid_mode=args.grid_mode, split=args.split)
    model, bank = model_and_bank(args)
    summary = augment_folder(model, bank, args.images, args.out, settings, progress=not args.no_progress)
    print(f"augment: {summary['outputs']} pairs from {summary['images']} images "
          f"({summary['learned']} learned, {summary['parametric']} parametric): wrote {summary['written']}, "
          f"skipped {summary['skipped']} already written, in {summary['wall_time_s']:.1f} s "
          f"({summary['written_per_s']:.2f} images/s) -> {summary['out']}")


def _cmd_coverage(args) -> None:
    from ..tools.augment import list_images
    from ..tools.coverage import coverage, coverage_markdown, read_kernel
    from ..data.pairs import read_image

    for option, path in (("--json", args.json), ("--markdown", args.markdown)):
        if path:
            check_output(path, option)
    model, _ = model_and_bank(args, need_bank=False)
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

    out = check_output(args.out, "out", folder=True)
    sizes = []
    for i in range(args.count):
        rng = np.random.default_rng(np.random.SeedSequence(args.seed, spawn_key=(i,)))
        extent = None if args.extent is None else float(rng.uniform(*args.extent))
        kernel = shake_kernel(rng, extent)
        write_kernel(out / f"shake_{i:02d}.png", kernel)
        sizes.append(kernel.shape[0])
    print(f"wrote {args.count} camera-shake kernels ({min(sizes)}..{max(sizes)} px) -> {out}")


def add_parsers(commands) -> None:
    p = commands.add_parser("transfer", help="extract the blur of a pair (or take a bank code) and apply it to an image")
    add_model_args(p, "take the code from this bank (with --index) instead of a pair")
    p.add_argument("--sharp", help="sharp image A of the source pair")
    p.add_argument("--blurry", help="blurry image B of the source pair")
    p.add_argument("--index", type=int, default=0, help="code index in --bank")
    p.add_argument("--onto", required=True, help="image C to blur (any size)")
    p.add_argument("--out", required=True, help="output image D")
    p.add_argument("--strength", type=UNIT, default=1.0, help="fraction of the blur applied, in [0, 1]")
    p.add_argument("--grid-mode", default="resize", choices=["resize", "tile"],
                   help="fitting the code grid to C's size")
    p.add_argument("--save-code", help="also save the code as a .npy file")
    p.add_argument("--refine", type=NON_NEGATIVE, default=0, metavar="STEPS",
                   help="refine the pair's code by this many gradient steps on |F(x, k) - y| (100: about 10 s "
                        "per 256x256 pair on one CPU thread)")
    p.set_defaults(func=_cmd_transfer)

    p = commands.add_parser("augment", help="write a GoPro-layout paired dataset: sharp images and learned blurs")
    add_model_args(p)
    p.add_argument("--images", required=True, help="folder of sharp images (searched recursively)")
    p.add_argument("--out", required=True, help="output dataset folder (resumable: finished images are skipped)")
    p.add_argument("--per-image", type=POSITIVE, default=4, help="blurred versions per sharp image")
    p.add_argument("--mix", type=UNIT, default=0.0, help="fraction of parametric motion blurs (the paper's 'comb.')")
    p.add_argument("--seed", type=SEED, default=0)
    p.add_argument("--mode", default="bank", choices=["bank", "gaussian", "mix"], help="how codes are drawn")
    p.add_argument("--strength", type=UNIT, nargs="+", default=[1.0], metavar="S",
                   help="blur strength, or a LO HI range drawn uniformly")
    p.add_argument("--motion-length", type=POSITIVE, nargs=2, default=[3, 15], metavar=("MIN", "MAX"))
    p.add_argument("--grid-mode", default="resize", choices=["resize", "tile"])
    p.add_argument("--split", default="train", help="split folder name in the output")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_augment)

    p = commands.add_parser("coverage", help="the paper's Table 1: re-blur PSNR of recorded kernels through the code space")
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--device", default="auto")
    p.add_argument("--kernels", required=True, help="folder of kernel PNGs (one kernel each)")
    p.add_argument("--images", required=True, help="folder of sharp images")
    p.add_argument("--space", default="linear", choices=["linear", "display"], help="blur in linear light or display gamma")
    p.add_argument("--gamma", type=float_in(0, 10, low_open=True), default=2.2,
                   help="display gamma of the images (linear space), in (0, 10]")
    p.add_argument("--crop", type=POSITIVE, default=256, help="centre-crop side (rounded down to the cell)")
    p.add_argument("--limit", type=POSITIVE, help="at most this many images")
    p.add_argument("--json", help="write the numbers (with per-image PSNRs) here")
    p.add_argument("--markdown", help="write the table here")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_coverage)

    p = commands.add_parser("make-kernels", help="write uniform kernels of the synthetic camera-shake family as PNGs")
    p.add_argument("out")
    p.add_argument("--count", type=POSITIVE, default=8)
    p.add_argument("--seed", type=SEED, default=0)
    p.add_argument("--extent", type=float_in(0, 1000, low_open=True), nargs=2, metavar=("MIN", "MAX"),
                   help="blur size range in px (default: as the shake family draws it)")
    p.set_defaults(func=_cmd_make_kernels)
