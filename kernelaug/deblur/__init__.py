"""Blind deblurring in the learned kernel space: x and k optimised through Deep Image Priors or a generator."""

from .blind import (DATA_TERMS, MIN_SIZE, PRESETS, START_CODES, DeblurPreset, DeblurResult, charbonnier, data_term,
                    deblur_generator, deblur_generic, hyper_laplacian, kernel_norm, prepare_blurry, resolve_preset,
                    sphere_project, ssim)

__all__ = ["DeblurPreset", "PRESETS", "DeblurResult", "deblur_generic", "deblur_generator", "resolve_preset", "ssim",
           "kernel_norm", "hyper_laplacian", "data_term", "charbonnier", "sphere_project", "prepare_blurry",
           "MIN_SIZE", "DATA_TERMS", "START_CODES"]
