"""Blur-kernel encoders: a config in, a :class:`BlurModel` out."""

from __future__ import annotations

from .base import BlurModel
from .config import (PRESETS, ModelConfig, PaperConfig, PsfConfig, config_from_dict, config_to_dict,
                     get_preset)
from .paper import PaperBlurModel
from .psf import PsfBlurModel

_ARCHITECTURES = {"paper": PaperBlurModel, "psf": PsfBlurModel}


def build_model(config: ModelConfig | str) -> BlurModel:
    """Build an untrained model from a config or a preset name (see ``PRESETS``)."""
    if isinstance(config, str):
        config = get_preset(config)
    return _ARCHITECTURES[config.arch](config)


__all__ = ["BlurModel", "ModelConfig", "PaperConfig", "PsfConfig", "PRESETS", "build_model",
           "config_from_dict", "config_to_dict", "get_preset", "PaperBlurModel", "PsfBlurModel"]
