"""The ``kernelaug`` command line: one module per command group, the parser in :mod:`.main`."""

from .main import build_parser, main

__all__ = ["build_parser", "main"]
