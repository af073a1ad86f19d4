"""``arch: psf``: a structured blur operator whose codes decode to explicit, spatially varying PSFs.

F(x, k), per code cell: a K x K PSF (non-negative, sums to one), an exposure gain; globally: a learned
gamma and a soft saturation. The sharp image is taken to linear light, blurred with the PSFs blended
between cell centres, scaled by the gain, softly clipped, returned to display gamma, and corrected by a
small code-conditioned residual network for what PSFs cannot express (noise, response curves).
G is the paper's (shared features of both images reduced to one code per cell), optionally helped by a
closed-form least-squares PSF estimate of each cell (``ls_estimate``), which makes it learn far faster.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .base import BlurModel
from .config import PsfConfig
from .layers import ResidualBlock, feature_extractor, lrelu
from .nonuniform import estimate_psfs, nonuniform_blur

_GAMMA_EPS = 1e-3  # offset that keeps the gamma curve's slope finite at black


def to_linear(x: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """Display -> linear light; exact inverse of :func:`to_display`, 0 -> 0 and 1 -> 1."""
    low, high = _GAMMA_EPS ** (1 / gamma), (1 + _GAMMA_EPS) ** (1 / gamma)
    return (x * (high - low) + low) ** gamma - _GAMMA_EPS


def to_display(y: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    low, high = _GAMMA_EPS ** (1 / gamma), (1 + _GAMMA_EPS) ** (1 / gamma)
    return ((y.clamp_min(0) + _GAMMA_EPS) ** (1 / gamma) - low) / (high - low)


def soft_clip(y: torch.Tensor, sharpness: torch.Tensor) -> torch.Tensor:
    """A smooth min(y, 1 + 3 / sharpness): sensor saturation with a learned knee, within 0.1 % of
    the identity up to 1."""
    return y - F.softplus(sharpness * (y - 1) - 3) / sharpness


@dataclass
class BlurParameters:
    """What one code grid decodes to (cells at the code's resolution)."""

    psf: torch.Tensor        # (B, h, w, K, K), non-negative, each sums to 1
    log_gain: torch.Tensor   # (B, 1, h, w)
    features: torch.Tensor   # (B, R, h, w), conditions the residual network
    log_gamma: torch.Tensor | None = None   # (B, 1, h, w), local_tone only: gamma = global * exp(.)
    boost: torch.Tensor | None = None       # (B, 1, h, w), local_tone only: highlight expansion


class PsfBlurModel(BlurModel):
    """Structured F behind the paper's ``extract``/``apply`` API; ``psf(code)`` exposes the PSFs."""

    def __init__(self, config: PsfConfig):
        super().__init__(config)
        if config.psf_size % 2 == 0 or config.cell % 4 or config.cell < 8 or config.cell & (config.cell - 1):
            raise ValueError("psf_size must be odd and cell a power of two >= 8")
        nf, dim = config.nf, config.kernel_dim
        self.features = feature_extractor(3, nf, config.front_blocks)
        downs = int(math.log2(config.cell // 4))
        layers, channels = [], 2 * nf
        for i in range(downs):
            out = min(2 * nf * 2 ** (i + 1), 8 * nf)
            layers += [nn.Conv2d(channels, out, 3, 2, 1), lrelu()]
            channels = out
        layers += [ResidualBlock(channels, padding_mode="replicate", relu_slope=0.1)
                   for _ in range(config.extractor_blocks)]
        layers += [nn.Conv2d(channels, dim * 2 if config.use_vae else dim, 1)]
        self.extractor = nn.Sequential(*layers)
        self.estimate_head = None
        if config.ls_estimate:
            width = config.decoder_width
            self.estimate_head = nn.Sequential(nn.Conv2d(config.psf_size ** 2, width, 1), lrelu(),
                                               nn.Conv2d(width, width, 1), lrelu(),
                                               nn.Conv2d(width, dim * 2 if config.use_vae else dim, 1))

        width = config.decoder_width
        self.decoder = nn.Sequential(nn.Conv2d(dim, width, 1), lrelu(), nn.Conv2d(width, width, 1), lrelu())
        size = config.psf_size
        self.psf_head = nn.Conv2d(width, size * size, 1)
        self.mix_head = nn.Conv2d(width, 1, 1)  # how much of the PSF is spread out vs. a delta
        self.gain_head = nn.Conv2d(width, 1, 1)
        self.feature_head = nn.Conv2d(width, config.residual_width, 1)
        for head in (self.psf_head, self.gain_head, self.feature_head):
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)
        nn.init.zeros_(self.mix_head.weight)
        nn.init.constant_(self.mix_head.bias, -3.0)  # starts near a delta: training starts from identity
        # A broad Gaussian prior on the spread-out part so that early gradients reach every tap.
        grid = torch.arange(size, dtype=torch.float32) - size // 2
        r2 = grid[:, None] ** 2 + grid[None, :] ** 2
        self.log_prior = nn.Parameter((-r2 / (2 * (size / 6) ** 2)).flatten())
        delta = torch.zeros(size * size)
        delta[(size * size) // 2] = 1
        self.register_buffer("delta", delta, persistent=False)

        self.gamma_raw = nn.Parameter(torch.tensor(math.log(math.expm1(1.2))))  # gamma = 1 + softplus = 2.2
        self.sharpness_raw = nn.Parameter(torch.tensor(math.log(50.0)))
        r = config.residual_width
        if config.local_tone:
            self.tone_head = nn.Conv2d(width, 2, 1)  # log-gamma offset, highlight boost
            nn.init.zeros_(self.tone_head.weight)
            nn.init.constant_(self.tone_head.bias, -6.0)
            with torch.no_grad():
                self.tone_head.bias[0] = 0.0
            self.knee_raw = nn.Parameter(torch.tensor(math.log(0.9 / 0.1)))  # sigmoid -> 0.9
            # the code enters as a per-cell bias of the first layer: cheap at full resolution
            self.residual = nn.Sequential(nn.Conv2d(6, r, 3, 1, 1), lrelu(), nn.Conv2d(r, 3, 3, 1, 1))
        else:
            self.residual = nn.Sequential(nn.Conv2d(6 + r, r, 3, 1, 1), lrelu(), nn.Conv2d(r, 3, 3, 1, 1))
        nn.init.zeros_(self.residual[-1].weight)
        nn.init.zeros_(self.residual[-1].bias)

    @property
    def gamma(self) -> torch.Tensor:
        return 1 + F.softplus(self.gamma_raw)

    # -- G -----------------------------------------------------------------------------------
    def encode(self, sharp, blurry):
        out = self.extractor(torch.cat((self.features(sharp), self.features(blurry)), dim=1))
        if self.estimate_head is not None:
            gamma, size = self.gamma, self.config.psf_size
            estimate = estimate_psfs(to_linear(sharp, gamma), to_linear(blurry, gamma), self.cell, size)
            out = out + self.estimate_head(estimate.flatten(-2).permute(0, 3, 1, 2) * size)
        if self.config.use_vae:
            return out[:, : self.kernel_dim], out[:, self.kernel_dim:]
        return out, None

    # -- F -----------------------------------------------------------------------------------
    def decode(self, code: torch.Tensor) -> BlurParameters:
        """Code grid -> PSFs, gains and residual features per cell."""
        hidden = self.decoder(code)
        batch, _, rows, cols = code.shape
        size = self.config.psf_size
        spread = torch.softmax(self.psf_head(hidden) + self.log_prior[None, :, None, None], dim=1)
        mix = torch.sigmoid(self.mix_head(hidden))
        psf = (1 - mix) * self.delta[None, :, None, None] + mix * spread
        psf = psf.permute(0, 2, 3, 1).reshape(batch, rows, cols, size, size)
        params = BlurParameters(psf, self.gain_head(hidden), self.feature_head(hidden))
        if self.config.local_tone:
            tone = self.tone_head(hidden)
            params.log_gamma = 0.3 * torch.tanh(tone[:, :1])
            params.boost = 4 * torch.sigmoid(tone[:, 1:])
        return params

    def psf(self, code: torch.Tensor) -> torch.Tensor:
        """The PSF of every cell of ``code``: (B, h, w, K, K), non-negative, each summing to 1."""
        return self.decode(code).psf

    def render(self, sharp: torch.Tensor, params: BlurParameters) -> torch.Tensor:
        """Apply decoded blur parameters to a sharp image (the physical part of F, then the residual)."""
        size = sharp.shape[-2:]

        def upsample(grid):
            return F.interpolate(grid, size=size, mode="bilinear", align_corners=False)

        gamma = self.gamma
        if not self.config.local_tone:
            linear = nonuniform_blur(to_linear(sharp, gamma), params.psf, self.cell)
            blurred = to_display(soft_clip(linear * upsample(params.log_gain).exp(), self.sharpness_raw.exp()), gamma)
            features = upsample(params.features)
            return blurred + self.residual(torch.cat((blurred, sharp, features), dim=1))
        gamma = gamma * upsample(params.log_gamma).exp()
        linear = to_linear(sharp, gamma)
        knee = torch.sigmoid(self.knee_raw)
        linear = linear + upsample(params.boost) * F.relu(linear - knee) / (1 - knee)
        linear = nonuniform_blur(linear, params.psf, self.cell)
        blurred = to_display(soft_clip(linear * upsample(params.log_gain).exp(), self.sharpness_raw.exp()), gamma)
        first, last = self.residual[0], self.residual[1:]
        hidden = first(torch.cat((blurred, sharp), dim=1)) + upsample(params.features)
        return blurred + last(hidden)

    def apply(self, sharp, code):
        self.check_code(sharp, code)
        return self.render(sharp, self.decode(code))
