"""Blur operators F and G: a config in, a :class:`BlurModel` out; their file format and pretrained entries."""

from __future__ import annotations

from . import pretrained
from .base import BlurModel
from .build import build_model
from .checkpoint import load_model, model_sha256, resolve_model, save_model
from .config import (PRESETS, ModelConfig, PaperConfig, PsfConfig, config_from_dict, config_to_dict,
                     get_preset)
from .paper import PaperBlurModel
from .psf import PsfBlurModel

__all__ = ["BlurModel", "ModelConfig", "PaperConfig", "PsfConfig", "PRESETS", "build_model",
           "config_from_dict", "config_to_dict", "get_preset", "PaperBlurModel", "PsfBlurModel",
           "load_model", "save_model", "model_sha256", "resolve_model", "pretrained"]
