"""NAFNet (Chen et al., "Simple Baselines for Image Restoration", ECCV 2022).

A U-Net of NAFBlocks, a second deblurrer beside SRN-Deblur. A block has two residual halves,
each added back with a learned per-channel scale initialised to zero (so every block starts as
the identity):

    x = x + beta  * conv1x1(SCA(SimpleGate(dwconv3x3(conv1x1_2x(LayerNorm2d(x))))))
    x = x + gamma * conv1x1(SimpleGate(conv1x1_2x(LayerNorm2d(x))))

where SimpleGate splits the channels in halves and multiplies them, and the simplified channel
attention (SCA) multiplies by a 1x1 convolution of the global average; there is no other
nonlinearity. A 3x3 convolution maps the image to ``width`` channels; each level down is a 2x2
stride-2 convolution doubling the channels, each level up a 1x1 convolution (no bias) to twice
the channels followed by PixelShuffle(2), which halves them; skips are added; a final 3x3
convolution maps back to 3 channels and is added to the input image. The network is trained by
minimising -PSNR (:func:`psnr_loss`).

Any input size works: the image is zero-padded on the bottom and right to a multiple of
``2**levels`` (as in the official code; reflection cannot pad a 1-pixel image by 7) and the
output is cropped back.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open
from torch import nn

from ..models.checkpoint import checked_state, write_safetensors

NAFNET_FORMAT = "kernelaug-nafnet"
NAFNET_FORMAT_VERSION = 1

# Bounds that keep a config read from a file from asking for unbounded memory.
MAX_WIDTH = 256
MAX_LEVELS = 6
MAX_BLOCKS = 200
MAX_PARAMETERS = 2**28  # 1 GiB of float32 weights; the GoPro model has 17.1 M



def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"NAFNet config field {name!r} must be a positive int, got {value!r}")
    return value


def _block_counts(name: str, value: object) -> tuple[int, ...]:
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"NAFNet config field {name!r} must be a list of positive ints (one per level), "
                         f"got {value!r}")
    return tuple(_positive_int(f"{name}[{i}]", v) for i, v in enumerate(value))


@dataclass(frozen=True)
class NAFNetConfig:
    """Sizes of a NAFNet: channels ``width`` at full resolution (doubled at every level down),
    NAFBlocks per encoder level ``enc_blocks``, at the bottleneck ``middle_blocks``, and per
    decoder level ``dec_blocks`` (listed from the bottleneck up, as in the paper). The defaults
    are the paper's GoPro model."""

    width: int = 32
    enc_blocks: tuple[int, ...] = (1, 1, 1, 28)
    middle_blocks: int = 1
    dec_blocks: tuple[int, ...] = (1, 1, 1, 1)

    def __post_init__(self) -> None:
        width = _positive_int("width", self.width)
        if width > MAX_WIDTH:
            raise ValueError(f"NAFNet config field 'width' must be at most {MAX_WIDTH}, got {width}")
        enc, dec = _block_counts("enc_blocks", self.enc_blocks), _block_counts("dec_blocks", self.dec_blocks)
        middle = _positive_int("middle_blocks", self.middle_blocks)
        if not 1 <= len(enc) <= MAX_LEVELS:
            raise ValueError(f"NAFNet config field 'enc_blocks' must have 1 to {MAX_LEVELS} levels, got {len(enc)}")
        if len(dec) != len(enc):
            raise ValueError(f"NAFNet config fields 'enc_blocks' and 'dec_blocks' must have one entry per level "
                             f"each, got {len(enc)} and {len(dec)}")
        total = sum(enc) + middle + sum(dec)
        if total > MAX_BLOCKS:
            raise ValueError(f"NAFNet config has {total} blocks in all (enc_blocks + middle_blocks + dec_blocks); "
                             f"at most {MAX_BLOCKS} are allowed")
        object.__setattr__(self, "enc_blocks", enc)
        object.__setattr__(self, "dec_blocks", dec)
        count = parameter_count(self)
        if count > MAX_PARAMETERS:
            raise ValueError(f"NAFNet config would have {count:,} parameters; at most {MAX_PARAMETERS:,} are "
                             f"allowed (lower 'width' or the number of levels)")

    @property
    def levels(self) -> int:
        """Number of downsamplings; inputs are padded to a multiple of ``2**levels``."""
        return len(self.enc_blocks)

    def to_dict(self) -> dict:
        """The config as JSON-ready types (lists for the block counts)."""
        return {"width": self.width, "enc_blocks": list(self.enc_blocks), "middle_blocks": self.middle_blocks,
                "dec_blocks": list(self.dec_blocks)}

    @classmethod
    def from_dict(cls, data: object) -> NAFNetConfig:
        """Inverse of :meth:`to_dict`; every field is required, unknown fields and wrong types are
        ValueErrors."""
        if not isinstance(data, dict):
            raise ValueError(f"a NAFNet config must be a JSON object, got {type(data).__name__}")
        names = [f.name for f in dataclasses.fields(cls)]
        unknown, missing = sorted(set(data) - set(names)), [n for n in names if n not in data]
        if unknown:
            raise ValueError(f"unknown NAFNet config fields {unknown}; valid: {names}")
        if missing:
            raise ValueError(f"NAFNet config lacks the fields {missing}")
        return cls(**data)


def _block_parameters(c: int) -> int:
    # two LayerNorms (4c), 1x1 c->2c, depthwise 3x3 on 2c, SCA 1x1 c->c, 1x1 c->c, 1x1 c->2c,
    # 1x1 c->c (all with bias), beta and gamma (2c)
    return 7 * c * c + 33 * c


def parameter_count(config: NAFNetConfig) -> int:
    """Number of parameters of ``NAFNet(config)``, computed without building it."""
    w = config.width
    total = 28 * w + 27 * w + 3  # intro 3x3 3->w, ending 3x3 w->3
    for level, (enc, dec) in enumerate(zip(config.enc_blocks, reversed(config.dec_blocks))):
        c = w << level
        total += (enc + dec) * _block_parameters(c)
        total += 8 * c * c + 2 * c  # down: 2x2 conv c->2c
        total += 8 * c * c  # up: 1x1 conv 2c->4c, no bias
    return total + config.middle_blocks * _block_parameters(w << config.levels)


def count_macs(config: NAFNetConfig, height: int, width: int) -> int:
    """Multiply-accumulates of the convolutions of one forward pass on a ``height`` x ``width``
    image (after padding to a multiple of ``2**levels``); norms, gates and scales not counted."""
    if min(height, width) < 1:
        raise ValueError(f"image size must be at least 1x1, got {height}x{width}")
    multiple = 2**config.levels
    h, w = -(-height // multiple) * multiple, -(-width // multiple) * multiple

    def block(c: int, pixels: int) -> int:
        return pixels * (6 * c * c + 18 * c) + c * c  # the SCA convolution acts on one pixel

    pixels = h * w
    total = 2 * 27 * config.width * pixels  # intro and ending
    for level, (enc, dec) in enumerate(zip(config.enc_blocks, reversed(config.dec_blocks))):
        c = config.width << level
        total += (enc + dec) * block(c, pixels)
        pixels //= 4
        total += pixels * 8 * c * c * 2  # down (2x2, c->2c) and up (1x1, 2c->4c), both at the lower resolution
    return total + config.middle_blocks * block(config.width << config.levels, pixels)


NAFNET_PRESETS: dict[str, NAFNetConfig] = {
    "gopro": NAFNetConfig(width=32, enc_blocks=(1, 1, 1, 28), middle_blocks=1, dec_blocks=(1, 1, 1, 1)),
    # width 16, 9 blocks in all over 4 levels (1.14 M parameters): the size measured to learn
    # fastest per CPU second
    "cpu": NAFNetConfig(width=16, enc_blocks=(1, 1, 1, 1), middle_blocks=1, dec_blocks=(1, 1, 1, 1)),
    "tiny": NAFNetConfig(width=8, enc_blocks=(1, 1), middle_blocks=1, dec_blocks=(1, 1)),
}


class LayerNorm2d(nn.Module):
    """Layer normalisation over the channels of every pixel, with a learned weight and bias."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        var, mean = torch.var_mean(x, dim=1, keepdim=True, correction=0)
        x = (x - mean) * torch.rsqrt(var + self.eps)
        return x * self.weight[:, None, None] + self.bias[:, None, None]


def simple_gate(x: torch.Tensor) -> torch.Tensor:
    """Split the channels in halves and multiply them."""
    a, b = x.chunk(2, dim=1)
    return a * b


class NAFBlock(nn.Module):
    """One NAFBlock on ``channels`` channels; the identity at initialisation."""

    def __init__(self, channels: int):
        super().__init__()
        c = channels
        self.norm1 = LayerNorm2d(c)
        self.expand = nn.Conv2d(c, 2 * c, 1)
        self.depthwise = nn.Conv2d(2 * c, 2 * c, 3, padding=1, groups=2 * c)
        self.attention = nn.Conv2d(c, c, 1)
        self.project = nn.Conv2d(c, c, 1)
        self.beta = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.norm2 = LayerNorm2d(c)
        self.ffn_expand = nn.Conv2d(c, 2 * c, 1)
        self.ffn_project = nn.Conv2d(c, c, 1)
        self.gamma = nn.Parameter(torch.zeros(1, c, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = simple_gate(self.depthwise(self.expand(self.norm1(x))))
        y = y * self.attention(y.mean((2, 3), keepdim=True))
        x = x + self.beta * self.project(y)
        y = simple_gate(self.ffn_expand(self.norm2(x)))
        return x + self.gamma * self.ffn_project(y)


class Up(nn.Module):
    """1x1 convolution (no bias) to twice the channels, then PixelShuffle(2): half the channels,
    twice the resolution."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, 2 * channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(self.conv(x), 2)


class NAFNet(nn.Module):
    """NAFNet: ``forward(blurry)`` returns the restored image, same shape, not clamped. Inputs
    are float (B, 3, H, W) in [0, 1], any H, W >= 1."""

    def __init__(self, config: NAFNetConfig | None = None):
        super().__init__()
        self.config = config if config is not None else NAFNetConfig()
        width = self.config.width
        self.intro = nn.Conv2d(3, width, 3, padding=1)
        self.encoders, self.downs = nn.ModuleList(), nn.ModuleList()
        for level, blocks in enumerate(self.config.enc_blocks):
            c = width << level
            self.encoders.append(nn.Sequential(*[NAFBlock(c) for _ in range(blocks)]))
            self.downs.append(nn.Conv2d(c, 2 * c, 2, stride=2))
        self.middle = nn.Sequential(*[NAFBlock(width << self.config.levels) for _ in range(self.config.middle_blocks)])
        self.ups, self.decoders = nn.ModuleList(), nn.ModuleList()
        for level, blocks in zip(reversed(range(self.config.levels)), self.config.dec_blocks):
            c = width << level
            self.ups.append(Up(2 * c))
            self.decoders.append(nn.Sequential(*[NAFBlock(c) for _ in range(blocks)]))
        self.ending = nn.Conv2d(width, 3, 3, padding=1)

    def forward(self, blurry: torch.Tensor) -> torch.Tensor:
        check_input(blurry)
        height, width = blurry.shape[-2:]
        multiple = 2**self.config.levels
        x = F.pad(blurry, (0, -width % multiple, 0, -height % multiple))
        image = x
        x = self.intro(x)
        skips = []
        for encoder, down in zip(self.encoders, self.downs):
            x = encoder(x)
            skips.append(x)
            x = down(x)
        x = self.middle(x)
        for up, decoder, skip in zip(self.ups, self.decoders, reversed(skips)):
            x = decoder(up(x) + skip)
        return (image + self.ending(x))[..., :height, :width]

    @torch.no_grad()
    def deblur(self, blurry: torch.Tensor) -> torch.Tensor:
        """The restored image, clamped to [0, 1], without gradients."""
        return self(blurry).clamp(0, 1)


def check_input(blurry: object) -> None:
    """Raise a clear ValueError unless ``blurry`` is a finite float (B, 3, H, W) tensor, B, H, W >= 1."""
    if not isinstance(blurry, torch.Tensor) or blurry.ndim != 4 or blurry.shape[1] != 3:
        got = tuple(blurry.shape) if isinstance(blurry, torch.Tensor) else type(blurry).__name__
        raise ValueError(f"NAFNet expects a (B, 3, H, W) tensor, got {got}")
    if not blurry.is_floating_point():
        raise ValueError(f"NAFNet expects a float tensor in [0, 1], got dtype {blurry.dtype}")
    if blurry.numel() == 0:
        raise ValueError(f"NAFNet needs a non-empty batch of images of at least 1x1 pixels, got {tuple(blurry.shape)}")
    if not bool(torch.isfinite(blurry).all()):
        raise ValueError("NAFNet input contains NaN or infinite values")


def psnr_loss(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """The paper's training loss, -PSNR for images in [0, 1]: 10 * log10(MSE + eps) per image,
    averaged over the batch."""
    if pred.shape != target.shape or pred.ndim < 2:
        raise ValueError(f"psnr_loss needs two batches of the same shape, got {tuple(pred.shape)} and "
                         f"{tuple(target.shape)}")
    mse = (pred - target).square().flatten(1).mean(1)
    return 10 * torch.log10(mse + eps).mean()


def save_nafnet(model: NAFNet, path: str | os.PathLike, provenance: dict | None = None) -> Path:
    """Write a NAFNet to a safetensors file (format, config and provenance in the metadata), atomically."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    metadata = {"format": NAFNET_FORMAT, "format_version": str(NAFNET_FORMAT_VERSION),
                "config": json.dumps(model.config.to_dict()), "provenance": json.dumps(provenance or {})}
    return write_safetensors(path, tensors, metadata)


def _read_metadata(path: Path, metadata: dict[str, str]) -> tuple[NAFNetConfig, dict]:
    if metadata.get("format") != NAFNET_FORMAT:
        raise ValueError(f"{path} is not a NAFNet model (metadata field 'format' is {metadata.get('format')!r}, "
                         f"expected {NAFNET_FORMAT!r})")
    version = metadata.get("format_version", "")
    if not version.isdigit():
        raise ValueError(f"{path}: metadata field 'format_version' must be an integer, got {version!r}")
    if int(version) > NAFNET_FORMAT_VERSION:
        raise ValueError(f"{path} has NAFNet format version {version}; this kernelaug reads up to "
                         f"{NAFNET_FORMAT_VERSION}: upgrade kernelaug")
    try:
        config = NAFNetConfig.from_dict(json.loads(metadata["config"]))
    except KeyError:
        raise ValueError(f"{path} lacks the metadata field 'config'") from None
    except (json.JSONDecodeError, ValueError) as error:
        raise ValueError(f"{path}: metadata field 'config' is invalid: {error}") from None
    try:
        provenance = json.loads(metadata.get("provenance", "{}"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: metadata field 'provenance' is not JSON: {error}") from None
    if not isinstance(provenance, dict):
        raise ValueError(f"{path}: metadata field 'provenance' must be a JSON object")
    return config, provenance


def load_nafnet(path: str | os.PathLike, device: str | torch.device = "cpu") -> NAFNet:
    """Read a NAFNet written by :func:`save_nafnet`, in eval mode, with ``.provenance``.

    The config, tensor names, dtypes and shapes are checked against the header before any weight
    is read or allocated; any mismatch is a ValueError naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"NAFNet model file {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as handle:
            config, provenance = _read_metadata(path, handle.metadata() or {})
            with torch.device("meta"):
                model = NAFNet(config)
            state = checked_state(handle, path, model)
    except (SafetensorError, OSError) as error:
        raise ValueError(f"{path} is not a readable NAFNet safetensors file (truncated?): {error}") from None
    model = model.to_empty(device="cpu")  # no random initialisation: every weight is overwritten
    model.load_state_dict(state)
    model.provenance = provenance
    return model.to(device).eval()
