"""``kernelaug <command>``: the parser, built from one module per command group; heavy modules are imported by
the command that needs them."""

from __future__ import annotations

import argparse
import sys

from ..allocator import keep_freed_memory
from . import bank, data, deblur, deblurrers, learn, pictures, tools

GROUPS = (learn, data, bank, deblurrers, tools, pictures, deblur)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kernelaug", description="Learn a camera's blur from sharp/blurry pairs and re-apply it as data augmentation.")
    commands = parser.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.add_parsers(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """The ``kernelaug`` command. It owns its process, so it keeps freed memory for reuse (see
    kernelaug.allocator; its DataLoader workers inherit the setting through fork)."""
    args = build_parser().parse_args(argv)
    keep_freed_memory()
    try:
        args.func(args)
    except (ValueError, FileNotFoundError, TypeError) as error:
        print(f"kernelaug {args.command}: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
