"""Paired datasets: ``make-synthetic``."""

from __future__ import annotations

import json


def _cmd_make_synthetic(args) -> None:
    from ..data.synthetic import make_synthetic

    summary = make_synthetic(args.out, pairs=args.pairs, size=args.size, seed=args.seed, family=args.family,
                             workers=args.workers, test_fraction=args.test_fraction)
    print(json.dumps(summary))


def add_parsers(commands) -> None:
    p = commands.add_parser("make-synthetic", help="write a synthetic GoPro-layout sharp/blurry dataset")
    p.add_argument("out")
    p.add_argument("--pairs", type=int, default=200)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--family", default="shake", help="blur family (see kernelaug.data.synthetic.FAMILIES)")
    p.add_argument("--workers", type=int, default=0, help="processes (0: this one)")
    p.add_argument("--test-fraction", type=float, default=0.1)
    p.set_defaults(func=_cmd_make_synthetic)
