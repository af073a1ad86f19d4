"""Kernel banks: codes of a model's blur stored in one self-describing HDF5 file."""

from .format import DTYPES, FORMAT, FORMAT_VERSION
from .info import bank_info, format_bank_info
from .reader import SAMPLE_MODES, CodeGaussian, KernelBank, as_generator, resolve_bank
from .writer import BankWriter, merge_banks

__all__ = ["FORMAT", "FORMAT_VERSION", "SAMPLE_MODES", "DTYPES", "BankWriter", "KernelBank", "CodeGaussian",
           "bank_info", "format_bank_info", "merge_banks", "as_generator", "resolve_bank"]
