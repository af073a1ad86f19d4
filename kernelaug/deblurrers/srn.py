"""SRN-Deblur (Tao et al., "Scale-recurrent Network for Deep Image Deblurring", CVPR 2018).

The deblurrer the paper trains to show what learned-blur augmentation buys. Three scales (ratio
0.5) share one network; at each scale the input is the blurry image at that scale concatenated
with the upsampled prediction of the coarser scale (6 channels). The network is an
encoder-decoder: each encoder stage is a 5x5 convolution (strided 2 after the first) and three
residual blocks of 5x5 convolutions; a 3x3 convolutional LSTM sits at the H/4 bottleneck, its
state resized from scale to scale; the decoder mirrors the encoder with 4x4 stride-2 transposed
convolutions and additive skips. Training minimises the MSE summed over scales.

Two deliberate differences from the official TensorFlow code, both for training on small
budgets: the network predicts a residual added to its blurry input (the original predicts the
image), and any input size works (each scale is padded by reflection to a multiple of 4 and
cropped back; the original needs multiples of 16).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

SRN_FORMAT = "kernelaug-srn"
MAX_WIDTH, MAX_BLOCKS, MAX_SCALES = 1024, 64, 8  # bounds of a config read from a file


@dataclass(frozen=True)
class SRNConfig:
    """Sizes of an SRN-Deblur network: ``widths`` of the three encoder stages (the original
    uses 32/64/128), residual ``blocks`` per stage, number of ``scales`` and their ``ratio``."""

    widths: tuple[int, int, int] = (32, 64, 128)
    blocks: int = 3
    scales: int = 3
    ratio: float = 0.5
    lstm: bool = True

    def __post_init__(self):
        def whole(value) -> bool:
            return isinstance(value, (int, np.integer)) and not isinstance(value, bool)

        if (not isinstance(self.widths, (list, tuple)) or len(self.widths) != 3
                or not all(whole(w) and 1 <= w <= MAX_WIDTH for w in self.widths)):
            raise ValueError(f"SRN config field widths must be three channel counts in [1, {MAX_WIDTH}], "
                             f"got {self.widths!r}")
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        if not whole(self.blocks) or not 0 <= self.blocks <= MAX_BLOCKS:
            raise ValueError(f"SRN config field blocks must be an integer in [0, {MAX_BLOCKS}], got {self.blocks!r}")
        if not whole(self.scales) or not 1 <= self.scales <= MAX_SCALES:
            raise ValueError(f"SRN config field scales must be an integer in [1, {MAX_SCALES}], got {self.scales!r}")
        if isinstance(self.ratio, bool) or not isinstance(self.ratio, (int, float)) or not 0.0 < self.ratio < 1.0:
            raise ValueError(f"SRN config field ratio must be a number in (0, 1), got {self.ratio!r}")
        if not isinstance(self.lstm, bool):
            raise ValueError(f"SRN config field lstm must be true or false, got {self.lstm!r}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "SRNConfig":
        if not isinstance(data, dict):
            raise ValueError(f"SRN config must be a JSON object, got {type(data).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown SRN config fields {sorted(unknown)}; valid: {sorted(names)}")
        return cls(**{k: tuple(v) if k == "widths" and isinstance(v, list) else v for k, v in data.items()})


class ResBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 5, padding=2)
        self.conv2 = nn.Conv2d(channels, channels, 5, padding=2)

    def forward(self, x):
        return x + self.conv2(F.relu(self.conv1(x)))


def _stage(conv: nn.Module, channels: int, blocks: int) -> nn.Sequential:
    return nn.Sequential(conv, nn.ReLU(), *[ResBlock(channels) for _ in range(blocks)])


class ConvLSTM(nn.Module):
    """A 3x3 convolutional LSTM cell."""

    def __init__(self, channels: int):
        super().__init__()
        self.gates = nn.Conv2d(2 * channels, 4 * channels, 3, padding=1)

    def forward(self, x, state):
        h, c = state if state is not None else (torch.zeros_like(x), torch.zeros_like(x))
        i, f, o, g = self.gates(torch.cat((x, h), 1)).chunk(4, 1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, (h, c)


class SRNDeblur(nn.Module):
    """SRN-Deblur: ``forward(blurry)`` returns the sharp estimate of every scale, coarse to fine
    (the last is full resolution). Inputs are (B, 3, H, W) in [0, 1], any H, W >= 4."""

    def __init__(self, config: SRNConfig | None = None):
        super().__init__()
        self.config = config if config is not None else SRNConfig()
        c1, c2, c3 = self.config.widths
        n = self.config.blocks
        self.enc1 = _stage(nn.Conv2d(6, c1, 5, padding=2), c1, n)
        self.enc2 = _stage(nn.Conv2d(c1, c2, 5, stride=2, padding=2), c2, n)
        self.enc3 = _stage(nn.Conv2d(c2, c3, 5, stride=2, padding=2), c3, n)
        self.lstm = ConvLSTM(c3) if self.config.lstm else None
        self.dec3 = nn.Sequential(*[ResBlock(c3) for _ in range(n)])
        self.up2 = nn.ConvTranspose2d(c3, c2, 4, stride=2, padding=1)
        self.dec2 = nn.Sequential(*[ResBlock(c2) for _ in range(n)])
        self.up1 = nn.ConvTranspose2d(c2, c1, 4, stride=2, padding=1)
        self.dec1 = nn.Sequential(*[ResBlock(c1) for _ in range(n)])
        self.out = nn.Conv2d(c1, 3, 5, padding=2)

    def _scale(self, blurry, previous, state):
        height, width = blurry.shape[-2:]
        pad_h, pad_w = -height % 4, -width % 4
        x = torch.cat((blurry, previous), 1)
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        e1 = self.enc1(x)
        e2 = self.enc2(e1)
        e3 = self.enc3(e2)
        if self.lstm is not None:
            if state is not None and state[0].shape[-2:] != e3.shape[-2:]:
                state = tuple(F.interpolate(s, size=e3.shape[-2:], mode="bilinear", align_corners=False)
                              for s in state)
            e3, state = self.lstm(e3, state)
        d2 = self.dec2(self.up2(self.dec3(e3)) + e2)
        d1 = self.dec1(self.up1(d2) + e1)
        residual = self.out(d1)[..., :height, :width]
        return blurry + residual, state

    def forward(self, blurry: torch.Tensor) -> list[torch.Tensor]:
        check_input(blurry)
        height, width = blurry.shape[-2:]
        sizes = [(max(1, round(height * self.config.ratio**s)), max(1, round(width * self.config.ratio**s)))
                 for s in reversed(range(self.config.scales))]
        outputs, state, previous = [], None, None
        for size in sizes:
            level = blurry if size == (height, width) else resize(blurry, size)
            previous = level if previous is None else resize(previous, size)
            previous, state = self._scale(level, previous, state)
            outputs.append(previous)
        return outputs

    @torch.no_grad()
    def deblur(self, blurry: torch.Tensor) -> torch.Tensor:
        """The full-resolution estimate, clamped to [0, 1]."""
        return self(blurry)[-1].clamp(0, 1)


def resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)


def check_input(blurry) -> None:
    if not isinstance(blurry, torch.Tensor) or blurry.ndim != 4 or blurry.shape[1] != 3:
        got = tuple(blurry.shape) if isinstance(blurry, torch.Tensor) else type(blurry).__name__
        raise ValueError(f"SRN-Deblur expects a (B, 3, H, W) tensor, got {got}")
    if not blurry.is_floating_point():
        raise ValueError(f"SRN-Deblur expects a float tensor in [0, 1], got dtype {blurry.dtype}")
    if min(blurry.shape[-2:]) < 4:
        raise ValueError(f"SRN-Deblur needs images of at least 4x4 pixels, got {tuple(blurry.shape[-2:])}")


def multiscale_loss(outputs: list[torch.Tensor], sharp: torch.Tensor) -> torch.Tensor:
    """MSE summed over scales, each against the sharp image resized to that scale."""
    return sum(F.mse_loss(out, sharp if out.shape[-2:] == sharp.shape[-2:] else resize(sharp, out.shape[-2:]))
               for out in outputs)
