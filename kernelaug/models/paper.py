"""The paper's architecture (Tran et al. 2021): generic-CNN G and F, sizes as the reference code."""

from __future__ import annotations

import torch
from torch import nn

from .base import BlurModel
from .config import PaperConfig
from .layers import ResidualBlock, feature_extractor, lrelu


class KernelExtractor(nn.Module):
    """G's head: concatenated sharp/blurry features (1/4) -> code (1/128), optionally mean and log-variance."""

    def __init__(self, nf: int, kernel_dim: int, blocks: int, use_vae: bool):
        super().__init__()
        out_channels = kernel_dim * 2 if use_vae else kernel_dim
        layers = [nn.Conv2d(2 * nf, nf, 7, 1, 3, padding_mode="reflect"), nn.ReLU(inplace=True)]
        for i in range(5):
            layers += [nn.Conv2d(min(nf * 2**i, out_channels), min(nf * 2 ** (i + 1), out_channels), 3, 2, 1),
                       nn.ReLU(inplace=True)]
        layers += [ResidualBlock(out_channels, padding_mode="replicate") for _ in range(blocks)]
        self.body = nn.Sequential(*layers)
        self.kernel_dim = kernel_dim
        self.use_vae = use_vae

    def forward(self, sharp_features, blurry_features):
        out = self.body(torch.cat((sharp_features, blurry_features), dim=1))
        if self.use_vae:
            return out[:, : self.kernel_dim], out[:, self.kernel_dim:]
        return out, None


class UNetLevel(nn.Module):
    """One level of a pix2pix U-Net: 4x4 stride-2 down, the inner levels, 4x4 transposed up, skip concat.

    The innermost level concatenates the blur code to its bottleneck features.
    """

    def __init__(self, outer: int, inner: int, submodule: "UNetLevel | None", code_dim: int = 0,
                 in_channels: int | None = None, outermost: bool = False):
        super().__init__()
        in_channels = outer if in_channels is None else in_channels
        self.down = nn.Sequential(nn.LeakyReLU(0.2, inplace=False) if not outermost else nn.Identity(),
                                  nn.Conv2d(in_channels, inner, 4, 2, 1))
        self.submodule = submodule
        up_in = inner * 2 if submodule is not None else inner + code_dim
        self.up = nn.Sequential(nn.ReLU(inplace=False), nn.ConvTranspose2d(up_in, outer, 4, 2, 1))
        self.outermost = outermost

    def forward(self, x, code):
        inner = self.down(x)
        if self.submodule is None:
            inner = torch.cat((inner, code), dim=1)
        else:
            inner = self.submodule(inner, code)
        out = self.up(inner)
        return out if self.outermost else torch.cat((x, out), dim=1)


class KernelAdapter(nn.Module):
    """F's U-Net over the sharp features (1/4 -> 1/128 and back), code injected at the bottleneck."""

    def __init__(self, nf: int, kernel_dim: int):
        super().__init__()
        level = UNetLevel(nf * 8, nf * 8, None, code_dim=kernel_dim)
        level = UNetLevel(nf * 4, nf * 8, level)
        level = UNetLevel(nf * 2, nf * 4, level)
        level = UNetLevel(nf, nf * 2, level)
        self.unet = UNetLevel(nf, nf, level, outermost=True)

    def forward(self, features, code):
        return self.unet(features, code)


class PaperBlurModel(BlurModel):
    """``arch: paper``: faithful to the reference KernelWizard, device-agnostic, any multiple of 128."""

    def __init__(self, config: PaperConfig):
        super().__init__(config)
        nf = config.nf
        self.features = feature_extractor(3, nf, config.front_blocks)
        self.extractor = KernelExtractor(nf, config.kernel_dim, config.extractor_blocks, config.use_vae)
        self.adapter = KernelAdapter(nf, config.kernel_dim)
        trunk = [ResidualBlock(nf) for _ in range(config.back_blocks)]
        trunk += [nn.Conv2d(nf, nf * 4, 3, 1, 1), nn.PixelShuffle(2), lrelu(),
                  nn.Conv2d(nf, 64 * 4, 3, 1, 1), nn.PixelShuffle(2), lrelu(),
                  nn.Conv2d(64, 64, 3, 1, 1), lrelu(),
                  nn.Conv2d(64, 3, 3, 1, 1)]
        self.reconstruction = nn.Sequential(*trunk)

    def encode(self, sharp, blurry):
        return self.extractor(self.features(sharp), self.features(blurry))

    def apply(self, sharp, code):
        self.check_code(sharp, code)
        out = self.reconstruction(self.adapter(self.features(sharp), code))
        return sharp + out
