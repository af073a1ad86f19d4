"""Build a model from its config: the architecture is named by ``config.arch``."""

from __future__ import annotations

from .base import BlurModel
from .config import ModelConfig, check_config, get_preset
from .paper import PaperBlurModel
from .psf import PsfBlurModel

_ARCHITECTURES = {"paper": PaperBlurModel, "psf": PsfBlurModel}


def build_model(config: ModelConfig | str) -> BlurModel:
    """Build an untrained model from a config or a preset name (see ``PRESETS``)."""
    if isinstance(config, str):
        config = get_preset(config)
    return _ARCHITECTURES[config.arch](check_config(config))
