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
    residual_width: int = 16   # 0: no residual network
    residual_scale: int = 1    # 1, 2 or 4: the residual network runs at 1 / residual_scale resolution
    blend_band: int = 0        # pixels over which neighbouring cells' PSFs blend; 0: the whole cell (tent)
    # "gamma": a learned gamma with a per-pixel modulation (exp and log per pixel); "linear" (display values
    # blurred as they are) or "square" (gamma 2): fixed curves by arithmetic alone, with a quadratic soft clip
    tone_curve: str = "gamma"
    use_vae: bool = False


ModelConfig = Union[PaperConfig, PsfConfig]
TONE_CURVES = ("gamma", "linear", "square")
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
    # The fast operators, shipped (benchmarks/results/operator.md): PSFs blended over 16 px at cell
    # boundaries (FFT windows of cell + 16 px instead of two cells), the residual network at half resolution.
    "psf-fast": PsfConfig(blend_band=16, residual_scale=2),
    "psf-wide-fast": PsfConfig(psf_size=47, blend_band=16, residual_scale=2),
    # The residual network at quarter resolution: about 0.5 ms less per 256x256 image. Fine-tuned like the
    # shipped models (pretrained/README.md, their cards); not shipped.
    "psf-faster": PsfConfig(blend_band=16, residual_scale=4),
    "psf-wide-faster": PsfConfig(psf_size=47, blend_band=16, residual_scale=4),
    # The lean operators: the above with a fixed tone curve (no exp or log per pixel; measured, the shipped
    # models' local gammas hardly vary: std 0.006 and 0.003 in log over their banks). "linear" suits pairs
    # averaged in display space (the GoPro dataset's), "square" pairs blurred in linear light.
    "psf-lean": PsfConfig(blend_band=16, residual_scale=4, tone_curve="square"),
    "psf-wide-lean": PsfConfig(psf_size=47, blend_band=16, residual_scale=4, tone_curve="square"),
    "psf-wide-lean-display": PsfConfig(psf_size=47, blend_band=16, residual_scale=4, tone_curve="linear"),
    # Tiny variants for tests and smoke runs.
    "tiny": PaperConfig(nf=8, front_blocks=1, back_blocks=1, kernel_dim=8, extractor_blocks=1),
    "psf-tiny": PsfConfig(nf=8, front_blocks=1, extractor_blocks=1, kernel_dim=8, psf_size=9,
                          decoder_width=32, residual_width=4),
}


def config_to_dict(config: ModelConfig) -> dict:
    return dataclasses.asdict(config)


# Sane bounds of every size field (the paper's configuration is well inside): a file claiming more is
# refused before anything is built, so a crafted config cannot exhaust memory or time.
_BOUNDS = {"nf": (1, 1024), "front_blocks": (0, 256), "back_blocks": (0, 256), "extractor_blocks": (0, 64),
           "kernel_dim": (1, 4096), "cell": (8, 1024), "psf_size": (1, 127), "decoder_width": (1, 4096),
           "residual_width": (0, 1024), "residual_scale": (1, 4), "blend_band": (0, 1024)}


def check_config(config: ModelConfig) -> ModelConfig:
    """ValueError naming the field when a config's types or sizes are out of range; returns it."""
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if field.name == "arch":
            continue
        if field.name == "tone_curve":
            if value not in TONE_CURVES:
                raise ValueError(f"model config field tone_curve must be one of {list(TONE_CURVES)}, got {value!r}")
            continue
        if field.name == "use_vae":
            if not isinstance(value, bool):
                raise ValueError(f"model config field use_vae must be true or false, got {value!r}")
            continue
        low, high = _BOUNDS[field.name]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"model config field {field.name} must be an integer in [{low}, {high}], got {value!r}")
    if isinstance(config, PsfConfig):
        if config.psf_size % 2 == 0:
            raise ValueError(f"model config field psf_size must be odd, got {config.psf_size}")
        if config.cell & (config.cell - 1):
            raise ValueError(f"model config field cell must be a power of two, got {config.cell}")
        if config.residual_scale not in (1, 2, 4):
            raise ValueError(f"model config field residual_scale must be 1, 2 or 4, got {config.residual_scale}")
        if config.blend_band % 2 or config.blend_band > config.cell:
            raise ValueError(f"model config field blend_band must be even and at most the cell "
                             f"({config.cell}), got {config.blend_band}")
    return config


def config_from_dict(data: dict) -> ModelConfig:
    """Rebuild a config from :func:`config_to_dict` output; unknown arch or fields, wrong types and
    sizes out of range (see :func:`check_config`) are ValueErrors naming the field."""
    if not isinstance(data, dict):
        raise ValueError(f"model config must be a JSON object, got {type(data).__name__} {data!r:.60}")
    arch = data.get("arch")
    if not isinstance(arch, str) or arch not in _CONFIG_CLASSES:
        raise ValueError(f"unknown model arch {arch!r}; expected one of {sorted(_CONFIG_CLASSES)}")
    cls = _CONFIG_CLASSES[arch]
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(str(k) for k in set(data) - known)
    if unknown:
        raise ValueError(f"unknown fields {unknown} in a {arch!r} model config")
    return check_config(cls(**data))


def get_preset(name: str) -> ModelConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; expected one of {sorted(PRESETS)}")
    return PRESETS[name]
