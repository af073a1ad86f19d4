"""Helpers shared by the command modules: model and bank arguments, option parsing."""

from __future__ import annotations

from ..models.pretrained import DEFAULT_MODEL


def add_model_args(p, bank_help: str = "kernel bank .h5 or pretrained name (default: the pretrained model's own bank)") -> None:
    """--model, --bank and --device, as every command that applies a model takes them."""
    p.add_argument("--model", default=None, help=f"a .safetensors file or a pretrained name (default: the pretrained "
                                                 f"model of a pretrained --bank, else {DEFAULT_MODEL})")
    p.add_argument("--bank", help=bank_help)
    p.add_argument("--device", default="auto")


def model_and_bank(args, need_bank: bool = True):
    """--model (a file or pretrained name) on --device, and --bank (default: the pretrained model's bank).

    Without --model, a pretrained --bank brings its own model (``--bank synth-small`` alone works)."""
    import os

    from ..device import resolve_device
    from ..bank import resolve_bank
    from ..models import resolve_model
    from ..models.pretrained import PRETRAINED

    if args.model is None:
        bank_name = getattr(args, "bank", None)
        args.model = bank_name if bank_name in PRETRAINED else DEFAULT_MODEL

    model = resolve_model(args.model, resolve_device(getattr(args, "device", "auto")))
    bank = None
    if need_bank or getattr(args, "bank", None):
        name = args.model if isinstance(args.model, str) and not os.path.exists(args.model) else None
        bank = resolve_bank(getattr(args, "bank", None), name)
        bank.check(model)
    return model, bank


def bank_code(bank, index: int):
    """Code ``index`` of ``bank`` as a (1, C, h, w) tensor; ValueError when out of range."""
    import torch

    if not -len(bank) <= index < len(bank):
        raise ValueError(f"--index {index} is out of range for {bank.path} ({len(bank)} codes)")
    return torch.from_numpy(bank[index][None])


def load_callable(spec: str, option: str):
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


def floats(text: str, option: str, count: int | None = None) -> tuple:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"{option} must be comma-separated numbers, got {text!r}") from None
    if count is not None and len(values) != count:
        raise ValueError(f"{option} needs {count} comma-separated numbers, got {text!r}")
    return values


# -- argparse types: ranges checked at parse time, with readable messages ---------------------------
def int_in(low: int | None = None, high: int | None = None, odd: bool = False):
    """An argparse ``type=``: an integer in [low, high] (a bound of None is open)."""
    import argparse

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
        if (low is not None and value < low) or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be {_range(low, high)}, got {value}")
        if odd and value % 2 == 0:
            raise argparse.ArgumentTypeError(f"must be odd, got {value}")
        return value

    parse.__name__ = "integer"
    return parse


def float_in(low: float | None = None, high: float | None = None, low_open: bool = False, high_open: bool = False):
    """An argparse ``type=``: a finite number in [low, high] (``low_open``/``high_open``: excluded)."""
    import argparse
    import math

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
        below = low is not None and (value <= low if low_open else value < low)
        above = high is not None and (value >= high if high_open else value > high)
        if not math.isfinite(value) or below or above:
            left, right = ("(" if low_open else "["), (")" if high_open else "]")
            where = (f"in {left}{low}, {high}{right}" if low is not None and high is not None
                     else f"{'>' if low_open else '>='} {low}" if low is not None else f"{'<' if high_open else '<='} {high}")
            raise argparse.ArgumentTypeError(f"must be a finite number {where}, got {text}")
        return value

    parse.__name__ = "number"
    return parse


def _range(low, high) -> str:
    if low is not None and high is not None:
        return f"in [{low}, {high}]"
    return f">= {low}" if low is not None else f"<= {high}"


POSITIVE = int_in(1)
NON_NEGATIVE = int_in(0)
SEED = int_in(0, 2**63 - 1)
UNIT = float_in(0.0, 1.0)
