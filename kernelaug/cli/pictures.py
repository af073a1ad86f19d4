"""Pictures of codes and banks: ``show-psf``, ``show-bank``, ``sample-grid``."""

from __future__ import annotations

from pathlib import Path

from .common import NON_NEGATIVE, POSITIVE, SEED, add_model_args, bank_code, int_in, model_and_bank
from ..paths import IMAGE_SUFFIXES, check_output


def _cmd_show_psf(args) -> None:
    from ..data.pairs import read_image
    from ..tools.pictures import code_psfs, psf_mosaic, write_picture
    from ..tools.transfer import extract_pair_code, to_tensor

    check_output(args.out, "--out", IMAGE_SUFFIXES, inputs=args.pair or ())
    if (args.pair is None) == (args.bank is None):
        raise ValueError("give either --bank BANK [--index I] or --pair SHARP BLURRY")
    model, bank = model_and_bank(args, need_bank=args.pair is None)
    if args.pair is not None:
        code = extract_pair_code(model, *(to_tensor(read_image(p)) for p in args.pair))
        origin = f"pair {args.pair[0]}, {args.pair[1]}"
    else:
        code = bank_code(bank, args.index)
        origin = f"code {args.index} of {bank.path}"
    psfs = code_psfs(model, code, size=args.size)
    write_picture(args.out, psf_mosaic(psfs, scale=args.scale))
    how = "decoded" if hasattr(model, "psf") else "point-light responses of F"
    print(f"drew {psfs.shape[0]}x{psfs.shape[1]} PSFs ({how}, {psfs.shape[-1]}x{psfs.shape[-1]} px) of {origin} -> {args.out}")


def _cmd_show_bank(args) -> None:
    from tqdm import tqdm

    from ..tools.pictures import bank_map, bank_pca, code_psfs, manifest_sources, source_groups, spread_points, write_picture

    import numpy as np

    check_output(args.out, "--out", IMAGE_SUFFIXES, inputs=[args.manifest])
    model, bank = model_and_bank(args)
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

    check_output(args.out, "--out", IMAGE_SUFFIXES)
    if args.motion_length[0] > args.motion_length[1]:
        raise ValueError(f"--motion-length MIN MAX needs MIN <= MAX, got {args.motion_length}")
    model, bank = model_and_bank(args)
    files = list_images(args.images)[:args.limit]
    sharps = {f.stem: square_crop((read_image(f) * 255 + 0.5).astype(np.uint8), args.size) for f in files}
    rng = as_generator(args.seed)
    codes = bank.sample(args.learned, rng=rng, mode=args.mode)
    motions = [(int(rng.integers(args.motion_length[0], args.motion_length[1] + 1)), float(rng.uniform(0, 180)))
               for _ in range(args.parametric)]
    write_picture(args.out, sample_grid(model, sharps, codes, motions))
    print(f"sample grid: {len(sharps)} images x ({args.learned} learned + {args.parametric} parametric) -> {args.out}")


def add_parsers(commands) -> None:
    p = commands.add_parser("show-psf", help="draw the spatially varying blur of a code as PSFs on its cell grid")
    add_model_args(p, "take the code from this bank (with --index)")
    p.add_argument("--index", type=int, default=0)
    p.add_argument("--pair", nargs=2, metavar=("SHARP", "BLURRY"), help="extract the code of this pair")
    p.add_argument("--out", required=True)
    p.add_argument("--scale", type=int_in(1, 64), default=4, help="pixels per PSF tap in the picture (1 to 64)")
    p.add_argument("--size", type=int_in(1, 255, odd=True), default=31,
                   help="PSF window of point-light responses (paper arch), odd")
    p.set_defaults(func=_cmd_show_psf)

    p = commands.add_parser("show-bank", help="map a bank's codes in 2-D (PCA), coloured by source, with PSFs")
    add_model_args(p, "kernel bank .h5 or pretrained name (default: the pretrained model's bank)")
    p.add_argument("--out", required=True)
    p.add_argument("--thumbnails", type=NON_NEGATIVE, default=6, help="codes whose (mean) PSF is drawn")
    p.add_argument("--manifest", help="make-synthetic manifest.jsonl: colour by its 'source' field")
    p.add_argument("--max-codes", type=int_in(2), default=20000, help="map at most this many codes (evenly spaced)")
    p.set_defaults(func=_cmd_show_bank)

    p = commands.add_parser("sample-grid", help="picture: sharp | learned blurs | parametric blur, one row per image")
    add_model_args(p)
    p.add_argument("--images", required=True, help="folder of sharp images")
    p.add_argument("--out", required=True)
    p.add_argument("--learned", type=int_in(0, 64), default=3)
    p.add_argument("--parametric", type=int_in(0, 64), default=1)
    p.add_argument("--mode", default="bank", choices=["bank", "gaussian", "mix"])
    p.add_argument("--motion-length", type=POSITIVE, nargs=2, default=[3, 15], metavar=("MIN", "MAX"))
    p.add_argument("--size", type=int_in(8, 4096), default=256, help="tile side (images resized and centre-cropped)")
    p.add_argument("--limit", type=POSITIVE, default=4, help="at most this many images")
    p.add_argument("--seed", type=SEED, default=0)
    p.set_defaults(func=_cmd_sample_grid)
