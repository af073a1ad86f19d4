"""Paired datasets: ``make-synthetic``, ``frames-to-pairs``."""

from __future__ import annotations

import json

from .common import NON_NEGATIVE, POSITIVE, SEED, float_in
from ..paths import check_output


def _cmd_make_synthetic(args) -> None:
    from ..data.synthetic import make_synthetic

    check_output(args.out, "out", folder=True)
    summary = make_synthetic(args.out, pairs=args.pairs, size=args.size, seed=args.seed, family=args.family,
                             workers=args.workers, test_fraction=args.test_fraction, overwrite=args.overwrite,
                             progress=not args.no_progress)
    print(json.dumps(summary))


def _cmd_frames_to_pairs(args) -> None:
    from ..data.frames import FramesSettings, frames_to_pairs

    check_output(args.out, "out", folder=True)
    split_at = args.split_at
    if split_at is not None and split_at >= 1:
        if not float(split_at).is_integer():
            raise ValueError(f"--split-at must be a fraction in (0, 1) or a whole frame index, got {split_at}")
        split_at = int(split_at)
    settings = FramesSettings(frames=tuple(args.frames), space=args.space, gamma=args.gamma, stride=args.stride,
                              split_at=split_at, seed=args.seed)
    summary = frames_to_pairs(args.src, args.out, settings, sequence=args.sequence, overwrite=args.overwrite,
                              progress=not args.no_progress)
    counts = summary["pairs"]
    print(f"frames-to-pairs: {counts['train']} train + {counts['test']} test pairs from {summary['frames']} frames "
          f"({summary['width']}x{summary['height']}, N {args.frames[0]}-{args.frames[1]}, {args.space} space) "
          f"in {summary['elapsed_s']:.1f} s -> {summary['out']}")


def add_parsers(commands) -> None:
    p = commands.add_parser("make-synthetic", help="write a synthetic GoPro-layout sharp/blurry dataset")
    p.add_argument("out")
    p.add_argument("--pairs", type=POSITIVE, default=200)
    p.add_argument("--size", type=POSITIVE, default=256, help="image side, a multiple of 64")
    p.add_argument("--seed", type=SEED, default=0)
    p.add_argument("--family", default="shake", help="blur family (see kernelaug.data.synthetic.FAMILIES)")
    p.add_argument("--workers", type=NON_NEGATIVE, default=0, help="processes (0: this one)")
    p.add_argument("--test-fraction", type=float_in(0.0, 1.0, high_open=True), default=0.1)
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder (the whole dataset)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_make_synthetic)

    p = commands.add_parser("frames-to-pairs", help="turn consecutive high-frame-rate frames (a folder or a video) "
                            "into GoPro-layout blur/sharp pairs")
    p.add_argument("src", help="folder of consecutive frames (sorted by name) or a video (.mp4, .mov, .avi, ...)")
    p.add_argument("out", help="output dataset folder (GoPro layout)")
    p.add_argument("--frames", type=POSITIVE, nargs=2, default=[7, 13], metavar=("MIN", "MAX"),
                   help="frames averaged per pair, drawn uniformly per pair (GoPro: 7 13)")
    p.add_argument("--space", default="linear", choices=["linear", "display"],
                   help="average in linear light (undo --gamma first) or on the stored values")
    p.add_argument("--gamma", type=float_in(0, 10, low_open=True), default=2.2,
                   help="camera response approximated as this gamma (linear space)")
    p.add_argument("--stride", type=POSITIVE, help="frames between window starts (default: the largest N, no overlap)")
    p.add_argument("--split-at", type=float_in(0, low_open=True), help="frames from here on go to the test split: a fraction in (0, 1) "
                   "or a frame index; windows across the boundary are dropped")
    p.add_argument("--sequence", help="sequence folder name (default: the source's name)")
    p.add_argument("--seed", type=SEED, default=0)
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_frames_to_pairs)
