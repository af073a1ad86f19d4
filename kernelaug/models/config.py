"""Model configurations: small frozen dataclasses, one per architecture, and named presets."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Union


@dataclass(frozen=True)
class PaperConfig:
    """The paper's generic-CNN kernel encoder (Tran et al. 2021, "KernelWizard").

    G maps (sharp, blurry) to a code of ``kernel_dim`` x H/128 x W/128; F is a U-Net over the
    sharp image's 1/4-resolution features with the code concatenated at its innermost level.
    """

    arch: str = "paper"
    nf: int = 64
    front_blocks: int = 10
    back_blocks: int = 20
    kernel_dim: int = 512
    extractor_blocks: int = 4
    use_vae: bool = False

    @property
    def cell(self) -> int:
        """Pixels per code cell: 4 (features) x 2**5 (extractor downsamplings)."""
        return 128


@dataclass(frozen=True)
class PsfConfig:
    """The structured blur operator: each code cell decodes to an explicit PSF (see models/psf.py)."""

    arch: str = "psf"
    nf: int = 32
    front_blocks: int = 2
    extractor_blocks: int = 2
    kernel_dim: int = 64
    cell: int = 64
    psf_size: int = 31
    decoder_width: int = 128
    residual_width: int = 16
    use_vae: bool = False


ModelConfig = Union[PaperConfig, PsfConfig]
_CONFIG_CLASSES = {"paper": PaperConfig, "psf": PsfConfig}

PRESETS: dict[str, ModelConfig] = {
    # The reference configuration's sizes (options/GOPRO/woVAE.yml of the authors' code).
    "paper": PaperConfig(),
    "paper-vae": PaperConfig(use_vae=True),
    # The paper architecture shrunk to train on a CPU.
    "small": PaperConfig(nf=32, front_blocks=2, back_blocks=4, kernel_dim=64, extractor_blocks=1),
    # The structured operator: what the shipped model uses.
    "psf": PsfConfig(),
    # PSFs up to 47 px: real 1280x720 footage (GoPro at 240 fps) moves up to ~45 px in 13 frames.
    "psf-wide": PsfConfig(psf_size=47),
    # Tiny variants for tests and smoke runs.
    "tiny": PaperConfig(nf=8, front_blocks=1, back_blocks=1, kernel_dim=8, extractor_blocks=1),
    "psf-tiny": PsfConfig(nf=8, front_blocks=1, extractor_blocks=1, kernel_dim=8, psf_size=9,
                          decoder_width=32, residual_width=4),
}


def config_to_dict(config: ModelConfig) -> dict:
    return dataclasses.asdict(config)


def config_from_dict(data: dict) -> ModelConfig:
    """Rebuild a config from :func:`config_to_dict` output; unknown arch or fields are errors."""
    arch = data.get("arch")
    if arch not in _CONFIG_CLASSES:
        raise ValueError(f"unknown model arch {arch!r}; expected one of {sorted(_CONFIG_CLASSES)}")
    cls = _CONFIG_CLASSES[arch]
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown fields {unknown} in a {arch!r} model config")
    return cls(**data)


def get_preset(name: str) -> ModelConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; expected one of {sorted(PRESETS)}")
    return PRESETS[name]
