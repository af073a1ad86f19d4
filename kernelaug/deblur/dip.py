"""Deep Image Prior networks for blind deblurring: untrained networks that re-parameterise x and k.

Ulyanov et al.'s observation: an encoder-decoder fitted from *fixed* noise reproduces natural image
structure long before it reproduces noise or ringing, so optimising its weights instead of pixels
regularises the sharp image. Tran et al. re-parameterise the blur code the same way.

* :class:`SkipNet` -- the image DIP: a U-Net-like encoder-decoder with 1x1 skip branches, reflection
  padding, bilinear upsampling and a sigmoid output in [0, 1].
* :class:`CodeNet` -- the code DIP: a small convolutional network from a noise grid to a code grid
  (B, C, rows, cols) at the model's cell resolution; unbounded output (codes are real vectors).
* :func:`dip_noise` -- the fixed input noise, drawn from an explicit ``torch.Generator``.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["SkipNet", "CodeNet", "dip_noise"]


def dip_noise(channels: int, height: int, width: int, generator: torch.Generator, scale: float = 0.1,
              device=None) -> torch.Tensor:
    """Fixed DIP input: (1, channels, height, width) uniform noise in [0, scale)."""
    noise = torch.rand(1, channels, height, width, generator=generator)
    return (noise * scale).to(device or "cpu")


def _conv(in_channels: int, out_channels: int, kernel: int, stride: int = 1) -> list[nn.Module]:
    pad = (kernel - 1) // 2
    layers: list[nn.Module] = [nn.ReflectionPad2d(pad)] if pad else []
    return layers + [nn.Conv2d(in_channels, out_channels, kernel, stride), nn.BatchNorm2d(out_channels),
                     nn.LeakyReLU(0.2, inplace=True)]


class _Level(nn.Module):
    """One level of :class:`SkipNet`: skip branch and (down, deeper, up) branch, concatenated."""

    def __init__(self, in_channels: int, down: int, up: int, skip: int, deeper: nn.Module | None, deeper_out: int):
        super().__init__()
        self.skip = nn.Sequential(*_conv(in_channels, skip, 1)) if skip else None
        self.down = nn.Sequential(*_conv(in_channels, down, 3, 2), *_conv(down, down, 3))
        self.deeper = deeper
        self.upsample = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
        merged = skip + (deeper_out if deeper is not None else down)
        self.merge = nn.Sequential(nn.BatchNorm2d(merged), *_conv(merged, up, 3), *_conv(up, up, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        deep = self.down(x)
        if self.deeper is not None:
            deep = self.deeper(deep)
        deep = self.upsample(deep)
        if self.skip is not None:
            deep = torch.cat((self.skip(x), deep), dim=1)
        return self.merge(deep)


class SkipNet(nn.Module):
    """DIP encoder-decoder with skips: (1, in_channels, H, W) noise -> (1, out_channels, H, W) in [0, 1].

    ``down``/``up``/``skip``: channels per level (same length; the DIP paper uses five levels of
    128/128/16). H and W must be multiples of ``2 ** len(down)`` (:attr:`multiple`).
    """

    def __init__(self, in_channels: int = 8, out_channels: int = 3, down: tuple[int, ...] = (128,) * 5,
                 up: tuple[int, ...] = (128,) * 5, skip: tuple[int, ...] = (16,) * 5):
        super().__init__()
        if not (len(down) == len(up) == len(skip)) or not down:
            raise ValueError(f"down, up and skip must list the same number (>= 1) of levels, got "
                             f"{len(down)}, {len(up)}, {len(skip)}")
        self.multiple = 2 ** len(down)
        inputs = [in_channels] + list(down[:-1])
        deeper, deeper_out = None, 0
        for level in reversed(range(len(down))):
            deeper = _Level(inputs[level], down[level], up[level], skip[level], deeper, deeper_out)
            deeper_out = up[level]
        self.body = deeper
        self.head = nn.Conv2d(up[0], out_channels, 1)

    def forward(self, noise: torch.Tensor) -> torch.Tensor:
        height, width = noise.shape[-2:]
        if height % self.multiple or width % self.multiple:
            raise ValueError(f"SkipNet input must be a multiple of {self.multiple} in height and width, "
                             f"got {height}x{width}")
        return torch.sigmoid(self.head(self.body(noise)))


class CodeNet(nn.Module):
    """Code DIP: (1, in_channels, rows, cols) noise -> (1, code_channels, rows, cols) code grid.

    1x1 convolutions let each cell have its own code; one 3x3 layer (replicate padding) couples
    neighbouring cells, as blur varies smoothly across a frame.
    """

    def __init__(self, code_channels: int, in_channels: int = 32, width: int = 128):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, width, 1), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(width, width, 3, padding=1, padding_mode="replicate"), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(width, width, 1), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(width, code_channels, 1))

    def forward(self, noise: torch.Tensor) -> torch.Tensor:
        return self.body(noise)
