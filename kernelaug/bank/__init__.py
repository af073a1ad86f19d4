"""Kernel banks: codes of a model's blur stored in one self-describing HDF5 file."""

from .reader import (DTYPES, FORMAT, FORMAT_VERSION, SAMPLE_MODES, BankWriter, CodeGaussian, KernelBank,
                     bank_info, format_bank_info, merge_banks)

__all__ = ["FORMAT", "FORMAT_VERSION", "SAMPLE_MODES", "DTYPES", "BankWriter", "KernelBank", "CodeGaussian",
           "bank_info", "format_bank_info", "merge_banks"]
