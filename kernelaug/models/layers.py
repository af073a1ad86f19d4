"""Building blocks shared by the architectures."""

from __future__ import annotations

from torch import nn


def lrelu() -> nn.LeakyReLU:
    return nn.LeakyReLU(0.1, inplace=True)


class ResidualBlock(nn.Module):
    """conv-relu-conv with an identity skip and no normalisation (EDVR's ResidualBlock_noBN).

    ``padding_mode='replicate'`` works on 1x1 maps, where the reference code's reflect padding
    crashes for 128x128 inputs.
    """

    def __init__(self, channels: int, padding_mode: str = "zeros", relu_slope: float = 0.0):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, 1, 1, padding_mode=padding_mode)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, padding_mode=padding_mode)
        self.act = nn.LeakyReLU(relu_slope, inplace=True)
        for conv in (self.conv1, self.conv2):
            nn.init.kaiming_normal_(conv.weight, a=0, mode="fan_in")
            conv.weight.data *= 0.1
            nn.init.zeros_(conv.bias)

    def forward(self, x):
        return x + self.conv2(self.act(self.conv1(x)))


def feature_extractor(in_channels: int, nf: int, blocks: int) -> nn.Sequential:
    """Image -> nf features at 1/4 resolution: two strided convolutions, then residual blocks."""
    layers = [
        nn.Conv2d(in_channels, nf, 3, 1, 1), lrelu(),
        nn.Conv2d(nf, nf, 3, 2, 1), lrelu(),
        nn.Conv2d(nf, nf, 3, 2, 1), lrelu(),
    ]
    layers += [ResidualBlock(nf) for _ in range(blocks)]
    return nn.Sequential(*layers)
