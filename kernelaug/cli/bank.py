"""Kernel banks: ``extract``, ``bank-info``, ``bank-merge``."""

from __future__ import annotations

import json

from .common import NON_NEGATIVE, POSITIVE, SEED
from ..paths import BANK_SUFFIXES, check_output


def _cmd_extract(args) -> None:
    import os

    from ..learn.extract import extract_bank

    check_output(args.out, "--out", BANK_SUFFIXES, inputs=[args.model])
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    summary = extract_bank(args.model, args.data, args.out, crop=args.crop, crops_per_pair=args.crops_per_pair or 1,
                           tile=args.tile, batch_size=args.batch_size, device=args.device, seed=args.seed,
                           dtype=args.dtype, resume=args.resume, overwrite=args.overwrite, limit=args.limit,
                           split=args.split, progress=not args.no_progress, rank=rank, world=world,
                           refine=args.refine)
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

    check_output(args.out, "--out", BANK_SUFFIXES, inputs=args.shards)
    summary = merge_banks(args.shards, args.out, virtual=args.virtual, overwrite=args.overwrite)
    how = "virtual dataset over" if summary["virtual"] else "copied from"
    order = "interleaved by pair" if summary["interleaved"] else "concatenated"
    print(f"merged {summary['codes']} codes {how} {summary['shards']} shards ({order}) -> {summary['out']}")


def add_parsers(commands) -> None:
    p = commands.add_parser("extract", help="extract the blur codes of a paired dataset into an HDF5 kernel bank")
    p.add_argument("--model", required=True, help="a .safetensors model file or a pretrained name")
    p.add_argument("--data", required=True, help="paired dataset folder (GoPro, REDS or generic layout)")
    p.add_argument("--out", required=True, help="output bank .h5 (under torchrun: one OUT.rank{r}-of-{w}.h5 per rank)")
    p.add_argument("--split", help="only this split of a GoPro/REDS dataset (default: all)")
    p.add_argument("--crop", type=POSITIVE, default=256, help="square crop side, a multiple of the model's cell")
    crops = p.add_mutually_exclusive_group()
    crops.add_argument("--crops-per-pair", type=POSITIVE, help="random crops per pair, seeded (default 1)")
    crops.add_argument("--tile", action="store_true", help="tile each whole image into non-overlapping crops")
    p.add_argument("--batch-size", type=POSITIVE, default=8, help="pairs per written batch and crops per forward pass "
                   "(a resumed run must use the same)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--seed", type=SEED, default=0)
    p.add_argument("--dtype", default="float16", choices=["float16", "float32"], help="storage type of the codes")
    p.add_argument("--limit", type=POSITIVE, help="extract at most this many pairs (the first ones)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted extraction into --out")
    p.add_argument("--overwrite", action="store_true", help="replace an existing bank at --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--refine", type=NON_NEGATIVE, default=0, metavar="STEPS",
                   help="refine each code by this many gradient steps on |F(x, k) - y| before storing it "
                        "(closer codes, about 3 x STEPS applications of F per crop; default 0: G's code)")
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
