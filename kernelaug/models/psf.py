"""``arch: psf``: a structured blur operator whose codes decode to explicit, spatially varying PSFs.

F(x, k), per code cell: a K x K PSF, non-negative and summing to one, that is *linear* in the code
(normalised relu(mean + k @ basis)); an exposure gain, a local gamma and a highlight boost decoded
from the code. The sharp image is taken to linear light, clipped highlights are boosted (they streak
brighter than 1.0 in a real blur), blurred with the PSFs blended between cell centres, scaled by the
gain, softly clipped, returned to display gamma, and corrected by a small code-conditioned residual
network for what PSFs cannot express (noise, response curves). The lean presets (``tone_curve``
"linear" or "square") replace the learned gamma by a fixed curve and the softplus clip by a quadratic
one: no exp or log per pixel.

G projects a closed-form least-squares PSF estimate of each cell onto a basis and adds a correction
from the paper's CNN over both images' features. Projection and basis start from a PCA of the
estimates of training pairs (:meth:`PsfBlurModel.initialise_basis`): the model re-blurs well before
its first training step, and trains in minutes on a CPU.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass
from typing import Union

import torch
import torch.nn.functional as F
from torch import nn

from .base import BlurModel
from .config import PsfConfig
from .layers import ResidualBlock, feature_extractor, lrelu
from .nonuniform import estimate_psfs, nonuniform_blur

_GAMMA_EPS = 1e-3  # offset that keeps the gamma curve's slope finite at black


class GammaCurve:
    """The display <-> linear-light curve of a (per-pixel) gamma, 0 -> 0 and 1 -> 1 both ways.

    Its constants (powers of the gamma) are computed once, by exp/log, and shared by both
    directions: F converts to linear light and back with the same gamma map. Outside autograd the
    curves (and F's other elementwise stages) work in place on their own first result: each
    full-size temporary costs page faults on the CPU (see kernelaug.allocator).
    """

    def __init__(self, gamma: torch.Tensor):
        self.gamma = gamma
        self.inverse = gamma.reciprocal()
        self.low = (math.log(_GAMMA_EPS) * self.inverse).exp()
        self.span = (math.log1p(_GAMMA_EPS) * self.inverse).exp() - self.low

    def to_linear(self, x: torch.Tensor) -> torch.Tensor:
        """Display -> linear light; exact inverse of :meth:`to_display`."""
        out = torch.addcmul(self.low, x, self.span)
        if out.requires_grad:
            return out.log().mul(self.gamma).exp().sub(_GAMMA_EPS)
        return out.log_().mul_(self.gamma).exp_().sub_(_GAMMA_EPS)

    def to_display(self, y: torch.Tensor, in_place: bool = False) -> torch.Tensor:
        """Linear light -> display. ``in_place``: outside autograd, write into ``y`` (a caller's own temporary)."""
        if y.requires_grad or self.inverse.requires_grad:
            return y.clamp_min(0).add(_GAMMA_EPS).log().mul(self.inverse).exp().sub(self.low).div(self.span)
        out = y.clamp_min_(0) if in_place else y.clamp_min(0)
        return out.add_(_GAMMA_EPS).log_().mul_(self.inverse).exp_().sub_(self.low).div_(self.span)


def to_linear(x: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """Display -> linear light; exact inverse of :func:`to_display`, 0 -> 0 and 1 -> 1."""
    return GammaCurve(torch.as_tensor(gamma, dtype=x.dtype, device=x.device)).to_linear(x)


def to_display(y: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    return GammaCurve(torch.as_tensor(gamma, dtype=y.dtype, device=y.device)).to_display(y)


def soft_clip(y: torch.Tensor, sharpness: torch.Tensor, in_place: bool = False) -> torch.Tensor:
    """A smooth min(y, 1 + 3 / sharpness): sensor saturation with a learned knee, within 0.1 % of
    the identity up to 1. ``in_place``: outside autograd, write into ``y``."""
    # softplus by exp and log: F.softplus and log1p are not vectorised on the CPU (about 60x slower
    # than exp here). Where exp(-|z|) rounds away against 1, the term it drops is below 1e-7 / sharpness.
    if y.requires_grad or sharpness.requires_grad:
        knee = (y - 1).mul(sharpness).sub(3)
        return y - knee.abs().neg().exp().add(1).log().add(knee.relu()).div(sharpness)
    # Outside autograd, in fewer passes over the image: softplus(z) = max(log(1 + exp(min(z, 80))), z)
    # (exp(80) is finite in float32, and past 80 softplus(z) = z to float32 precision).
    s = float(sharpness)
    knee = torch.add(y.new_tensor(-(s + 3)), y, alpha=s)
    softplus = knee.clamp_max(80).exp_().add_(1).log_()
    softplus = torch.maximum(softplus, knee, out=softplus)
    return y.add_(softplus, alpha=-1 / s) if in_place else torch.add(y, softplus, alpha=-1 / s)


class FixedCurve:
    """A fixed display <-> linear-light curve without transcendental functions (the ``tone_curve``
    options of the lean operators): ``"linear"`` blurs display values as they are (pairs averaged in
    display space, like the GoPro dataset's); ``"square"`` is gamma 2 by square and square root, offset
    like :class:`GammaCurve` (0 -> 0, 1 -> 1, a finite slope at black)."""

    def __init__(self, power: int):
        if power not in (1, 2):
            raise ValueError(f"a fixed curve has power 1 or 2, got {power}")
        self.power = power
        self.low = math.sqrt(_GAMMA_EPS)
        self.span = math.sqrt(1 + _GAMMA_EPS) - self.low

    def to_linear(self, x: torch.Tensor) -> torch.Tensor:
        """Display -> linear light; the linear curve returns ``x`` itself (callers must not write into it)."""
        if self.power == 1:
            return x
        out = x.mul(self.span).add_(self.low)
        return out.mul_(out).sub_(_GAMMA_EPS) if not out.requires_grad else out.square().sub(_GAMMA_EPS)

    def to_display(self, y: torch.Tensor, in_place: bool = False) -> torch.Tensor:
        """Linear light -> display. ``in_place``: outside autograd, write into ``y`` (a caller's own temporary)."""
        out = y.clamp_min_(0) if in_place and not y.requires_grad else y.clamp_min(0)
        if self.power == 1:
            return out
        if out.requires_grad:
            return out.add(_GAMMA_EPS).sqrt().sub(self.low).div(self.span)
        return out.add_(_GAMMA_EPS).sqrt_().sub_(self.low).div_(self.span)


Curve = Union[GammaCurve, FixedCurve]


def soft_clip_quadratic(y: torch.Tensor, sharpness: torch.Tensor, in_place: bool = False) -> torch.Tensor:
    """:func:`soft_clip` without exp or log: the identity up to 1, a parabola over (1, 1 + 6 / s)
    whose slope falls from 1 to 0, then flat at the same ceiling, 1 + 3 / s. ``in_place``: outside
    autograd, write into ``y``."""
    width = 6 / sharpness
    if y.requires_grad or sharpness.requires_grad:
        # min(y, 1) as y - relu(y - 1): torch's clamps pass no gradient at their bounds, this keeps slope 1 at y = 1.
        over = (y - 1).relu()
        excess = over.minimum(width)
        return torch.addcmul(y - over, excess, 1 - excess / (2 * width))
    width = float(width)  # outside autograd: Python scalars, in place on its own results (2.4x faster here)
    excess = (y - 1).clamp_(0, width)
    base = y.clamp_max_(1) if in_place else y.clamp_max(1)
    return base.add_(excess).addcmul_(excess, excess, value=-0.5 / width)


@functools.lru_cache(maxsize=64)
def bilinear_matrix(size: int, cells: int, device=None, dtype=None) -> torch.Tensor:
    """(size, cells): the weights of ``F.interpolate(mode="bilinear", align_corners=False)`` along one
    axis, from ``cells`` samples to ``size``. Cached per shape, device and dtype (F builds the same few
    on every call); callers must not write into it."""
    # Built outside inference mode: the cached tensor is also used in autograd graphs.
    with torch.inference_mode(False):
        src = ((torch.arange(size, device=device, dtype=torch.float32) + 0.5) * (cells / size) - 0.5).clamp_min(0)
        lower = src.floor().long().clamp_max(cells - 1)
        upper = (lower + 1).clamp_max(cells - 1)
        frac = src - lower
        rows = torch.arange(size, device=device)
        matrix = torch.zeros(size, cells, device=device, dtype=torch.float32)
        matrix.index_put_((rows, lower), 1 - frac, accumulate=True)
        matrix.index_put_((rows, upper), frac, accumulate=True)
        return matrix.to(dtype or torch.float32)


def upsample_bilinear(grid: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``F.interpolate(grid, size, mode="bilinear", align_corners=False)`` as two matrix products:
    several times faster on the CPU for the large factors (a cell of 64 pixels) of F's maps."""
    rows = bilinear_matrix(size[0], grid.shape[-2], grid.device, grid.dtype)
    cols = bilinear_matrix(size[1], grid.shape[-1], grid.device, grid.dtype)
    return (rows @ grid) @ cols.T


def add_upsampled(x: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """``x + upsample_bilinear(grid, x.shape[-2:])`` in one batched matrix product (no full-size
    temporary for the upsampled grid). x: (B, C, H, W), grid: (B, C, h, w)."""
    batch, channels, height, width = x.shape
    rows = bilinear_matrix(height, grid.shape[-2], grid.device, grid.dtype)
    cols = bilinear_matrix(width, grid.shape[-1], grid.device, grid.dtype)
    wide = (grid @ cols.T).reshape(batch * channels, grid.shape[-2], width)
    out = torch.baddbmm(x.reshape(batch * channels, height, width), rows.expand(batch * channels, -1, -1), wide)
    return out.view(batch, channels, height, width)


def _phase_offsets(factor: int) -> list[float]:
    """Output ``factor * i + j`` of a bilinear upsampling sits at input ``i + offset[j]``: a lerp
    towards the previous (offset < 0) or the next neighbour."""
    return [(j + 0.5) / factor - 0.5 for j in range(factor)]


def upsample(x: torch.Tensor, factor: int) -> torch.Tensor:
    """``F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)`` by fixed weights
    on shifted slices: O(pixels), where a bilinear matrix product costs O(pixels x side)."""
    offsets = _phase_offsets(factor)

    def along(t: torch.Tensor, dim: int) -> torch.Tensor:
        size = t.shape[dim]
        padded = torch.cat((t.narrow(dim, 0, 1), t, t.narrow(dim, size - 1, 1)), dim)
        before, here, after = (padded.narrow(dim, k, size) for k in range(3))
        phases = [torch.lerp(here, before if o < 0 else after, abs(o)) for o in offsets]
        return torch.stack(phases, dim + 1).flatten(dim, dim + 1)
    return along(along(x, x.ndim - 1), x.ndim - 2)


def mean_pool(x: torch.Tensor, factor: int) -> torch.Tensor:
    """``F.avg_pool2d(x, factor)`` for sides divisible by ``factor``, as strided slices added along
    each axis: several times faster on the CPU than avg_pool2d or a mean over a reshaped view. Rows
    first (their slices are contiguous lines), into its own sums: 0.05 vs 0.09 ms for columns first
    at 256x256 and factor 4 here."""
    rows = x[..., 0::factor, :] + x[..., 1::factor, :]
    for i in range(2, factor):
        rows.add_(x[..., i::factor, :])
    out = rows[..., 0::factor] + rows[..., 1::factor]
    for i in range(2, factor):
        out.add_(rows[..., i::factor])
    return out.mul_(1 / factor ** 2)


def add_upsampled_(x: torch.Tensor, low: torch.Tensor, factor: int) -> torch.Tensor:
    """``x += upsample(low, factor)`` in place, for contiguous ``x`` outside autograd: along x by one
    ``F.interpolate(mode="linear")``, along y as ``factor`` lerps added into strided row views of x
    (no full-size temporary): 0.14 vs 0.30 ms for ``x + upsample(low, 4)`` at 256x256 here."""
    batch, channels, rows, cols = low.shape
    wide = F.interpolate(low.reshape(batch, channels * rows, cols), scale_factor=factor, mode="linear",
                         align_corners=False).view(batch, channels, rows, cols * factor)
    padded = torch.cat((wide[..., :1, :], wide, wide[..., -1:, :]), dim=2)
    before, here, after = padded[..., :rows, :], padded[..., 1:rows + 1, :], padded[..., 2:, :]
    phases = x.view(batch, channels, rows, factor, cols * factor)
    for j, offset in enumerate(_phase_offsets(factor)):
        phases[:, :, :, j].add_(torch.lerp(here, before if offset < 0 else after, abs(offset)))
    return x


def conv3x3_by_taps(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``F.conv2d(x, weight, bias, padding=1)`` for a 3x3 kernel with few output channels: one matrix
    product gives every tap's contribution, nine shifted adds sum them. On the CPU several times
    faster than oneDNN's convolution with 3 output channels."""
    batch, channels, height, width = x.shape
    outputs = weight.shape[0]
    taps = (weight.permute(2, 3, 0, 1).reshape(9 * outputs, channels) @ x.reshape(batch, channels, -1))
    taps = taps.view(batch, 3, 3, outputs, height, width)
    out = taps[:, 1, 1] + bias.view(1, outputs, 1, 1)
    for dy in range(3):
        for dx in range(3):
            if dy == 1 and dx == 1:
                continue
            oy, ox = dy - 1, dx - 1  # out[y, x] += taps[dy, dx][y + oy, x + ox], zero outside
            # add_ on the view: `out[...] +=` would also copy the view onto itself (setitem)
            out[:, :, max(-oy, 0):height - max(oy, 0), max(-ox, 0):width - max(ox, 0)].add_(
                taps[:, dy, dx, :, max(oy, 0):height - max(-oy, 0), max(ox, 0):width - max(-ox, 0)])
    return out


@dataclass
class BlurParameters:
    """What one code grid decodes to (cells at the code's resolution)."""

    psf: torch.Tensor        # (B, h, w, K, K), non-negative, each sums to 1
    log_gain: torch.Tensor   # (B, 1, h, w)
    log_gamma: torch.Tensor  # (B, 1, h, w): local gamma = global gamma * exp(log_gamma)
    boost: torch.Tensor      # (B, 1, h, w): highlight expansion above the knee
    features: torch.Tensor | None  # (B, R, h, w): per-cell bias of the residual network (None without one)

    def __getitem__(self, images: slice) -> BlurParameters:
        """The parameters of some images of the batch (``params[i:j]``), as views."""
        if not isinstance(images, slice):
            raise TypeError(f"BlurParameters are sliced by a slice of images (params[i:j]), not {type(images).__name__}")
        values = (getattr(self, field.name) for field in dataclasses.fields(self))
        return BlurParameters(*(None if value is None else value[images] for value in values))


class PsfBlurModel(BlurModel):
    """Structured F behind the paper's ``extract``/``apply`` API; ``psf(code)`` exposes the PSFs."""

    def __init__(self, config: PsfConfig):
        super().__init__(config)
        if config.psf_size % 2 == 0 or config.cell % 4 or config.cell < 8 or config.cell & (config.cell - 1):
            raise ValueError("psf_size must be odd and cell a power of two >= 8")
        nf, dim, taps = config.nf, config.kernel_dim, config.psf_size ** 2
        code_channels = dim * 2 if config.use_vae else dim

        # G: the CNN correction (zero at start) ...
        self.features = feature_extractor(3, nf, config.front_blocks)
        layers, channels = [], 2 * nf
        for i in range(int(math.log2(config.cell // 4))):
            out = min(2 * nf * 2 ** (i + 1), 8 * nf)
            layers += [nn.Conv2d(channels, out, 3, 2, 1), lrelu()]
            channels = out
        layers += [ResidualBlock(channels, padding_mode="replicate", relu_slope=0.1)
                   for _ in range(config.extractor_blocks)]
        layers += [nn.Conv2d(channels, code_channels, 1)]
        self.extractor = nn.Sequential(*layers)
        nn.init.zeros_(self.extractor[-1].weight)
        nn.init.zeros_(self.extractor[-1].bias)
        # ... and the projection of the least-squares estimates; F's basis (both set by initialise_basis)
        self.projection = nn.Parameter(torch.randn(dim, taps) / taps ** 0.5)
        self.projection_mean = nn.Parameter(torch.zeros(taps))
        self.basis = nn.Parameter(torch.zeros(dim, taps))
        self.basis_mean = nn.Parameter(torch.zeros(taps))
        with torch.no_grad():
            self.basis_mean[taps // 2] = 1  # until initialised, every code is a delta: F is the identity

        width = config.decoder_width
        self.decoder = nn.Sequential(nn.Conv2d(dim, width, 1), lrelu(), nn.Conv2d(width, width, 1), lrelu())
        self.gain_head = nn.Conv2d(width, 1, 1)
        self.tone_head = nn.Conv2d(width, 2, 1)  # log-gamma offset, highlight boost
        r = config.residual_width
        self.feature_head = nn.Conv2d(width, r, 1) if r else None
        for head in (self.gain_head, self.tone_head, self.feature_head):
            if head is not None:
                nn.init.zeros_(head.weight)
                nn.init.zeros_(head.bias)
        with torch.no_grad():
            self.tone_head.bias[1] = -6.0  # boost starts near zero
        # A fixed tone curve (the lean operators) or the learned gamma with its per-pixel modulation.
        self.fixed_curve = {"gamma": None, "linear": FixedCurve(1), "square": FixedCurve(2)}[config.tone_curve]
        self.gamma_raw = nn.Parameter(torch.tensor(math.log(math.expm1(1.2))))  # gamma = 1 + softplus = 2.2
        # Kept with a fixed curve (the files of both kinds share their tensors), but frozen: a parameter
        # that gets no gradient stops DistributedDataParallel.
        self.gamma_raw.requires_grad_(self.fixed_curve is None)
        self.sharpness_raw = nn.Parameter(torch.tensor(math.log(50.0)))
        self.knee_raw = nn.Parameter(torch.tensor(math.log(0.9 / 0.1)))  # sigmoid -> 0.9
        # For what PSFs cannot express; at 1 / residual_scale resolution, or not at all (width 0).
        self.residual = nn.Sequential(nn.Conv2d(6, r, 3, 1, 1), lrelu(), nn.Conv2d(r, 3, 3, 1, 1)) if r else None
        if self.residual is not None:
            nn.init.zeros_(self.residual[-1].weight)
            nn.init.zeros_(self.residual[-1].bias)

    @property
    def gamma(self) -> torch.Tensor:
        return 1 + F.softplus(self.gamma_raw)

    # -- G -----------------------------------------------------------------------------------
    def clean_estimate(self, sharp: torch.Tensor, blurry: torch.Tensor, threshold: float = 0.1) -> torch.Tensor:
        """Least-squares PSF of each cell with taps under ``threshold`` x its peak removed, normalised:
        (B, rows, cols, K, K). Measured: these PSFs alone re-blur held-out synthetic pairs (16 pairs,
        gamma 2.2) to about +7 dB over blurry-vs-sharp."""
        with torch.no_grad():
            curve = self.fixed_curve or GammaCurve(self.gamma)
            psf = estimate_psfs(curve.to_linear(sharp), curve.to_linear(blurry), self.cell,
                                self.config.psf_size, regularisation=3e-2).clamp_min(0)
            psf = torch.where(psf > threshold * psf.amax((-1, -2), keepdim=True), psf, torch.zeros_like(psf))
            return psf / psf.sum((-1, -2), keepdim=True).clamp_min(1e-8)

    @torch.no_grad()
    def initialise_basis(self, sharp: torch.Tensor, blurry: torch.Tensor) -> None:
        """Set G's projection and F's PSF basis to the principal components of the cleaned estimates
        of these training pairs (B, 3, H, W), so that training starts from a good linear PSF code."""
        psfs = self.clean_estimate(sharp, blurry).reshape(-1, self.config.psf_size ** 2)
        mean = psfs.mean(0)
        _, _, components = torch.linalg.svd(psfs - mean, full_matrices=False)
        basis = torch.zeros_like(self.basis)
        count = min(self.kernel_dim, components.shape[0])
        basis[:count] = components[:count]
        for param, value in ((self.projection, basis), (self.basis, basis),
                             (self.projection_mean, mean), (self.basis_mean, mean)):
            param.copy_(value)

    def encode(self, sharp, blurry):
        out = self.extractor(torch.cat((self.features(sharp), self.features(blurry)), dim=1))
        estimate = self.clean_estimate(sharp, blurry).flatten(-2)  # B, rows, cols, taps
        projected = ((estimate - self.projection_mean) @ self.projection.T).permute(0, 3, 1, 2)
        if self.config.use_vae:
            return out[:, : self.kernel_dim] + projected, out[:, self.kernel_dim:]
        return out + projected, None

    # -- F -----------------------------------------------------------------------------------
    def decode(self, code: torch.Tensor) -> BlurParameters:
        """Code grid -> PSFs, gains, tone and residual features per cell."""
        batch, _, rows, cols = code.shape
        size = self.config.psf_size
        psf = F.relu(self.basis_mean + code.permute(0, 2, 3, 1) @ self.basis) + 1e-8
        psf = (psf / psf.sum(-1, keepdim=True)).reshape(batch, rows, cols, size, size)
        hidden = self.decoder(code)
        tone = self.tone_head(hidden)
        return BlurParameters(psf=psf, log_gain=self.gain_head(hidden), log_gamma=0.3 * torch.tanh(tone[:, :1]),
                              boost=4 * torch.sigmoid(tone[:, 1:]),
                              features=None if self.feature_head is None else self.feature_head(hidden))

    def psf(self, code: torch.Tensor) -> torch.Tensor:
        """The PSF of every cell of ``code``: (B, h, w, K, K), non-negative, each summing to 1."""
        return self.decode(code).psf

    def psf_target_loss(self, sharp: torch.Tensor, blurry: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        """Training aid: L1 distance between the decoded PSFs and the cleaned least-squares estimates."""
        return (self.psf(code) - self.clean_estimate(sharp, blurry)).abs().sum((-1, -2)).mean()

    def psf_spread(self, code: torch.Tensor) -> torch.Tensor:
        """Training prior: the mean over cells of the sum of the square roots of the PSF taps, 1 for a
        delta and K for a flat K x K PSF. Penalising it prefers sparse kernels (thin trajectories)
        wherever the pairs do not ask for spread: in flat regions, which cannot tell a halo from none."""
        psf = self.psf(code)
        eps = 1e-5  # keeps the gradient finite at zero taps; its constant share is subtracted
        return psf.add(eps).sqrt().sum((-1, -2)).mean() - psf.shape[-1] ** 2 * eps ** 0.5

    # The stages of F, in order (render runs them; benchmarks/bench_operator.py times them one by one).
    def tone_maps(self, params: BlurParameters, size: tuple[int, int]) -> tuple[Curve, torch.Tensor, torch.Tensor]:
        """The per-pixel gamma curve (or the fixed curve), highlight boost and log-gain, upsampled from the cells."""
        # The per-cell maps upsampled at once (bilinear is per channel: the same as one by one).
        if self.fixed_curve is not None:  # no local gamma
            maps = upsample_bilinear(torch.cat((params.boost, params.log_gain), dim=1), size)
            return self.fixed_curve, maps[:, :1], maps[:, 1:2]
        maps = upsample_bilinear(torch.cat((params.log_gamma, params.boost, params.log_gain), dim=1), size)
        return GammaCurve(maps[:, :1].exp().mul(self.gamma)), maps[:, 1:2], maps[:, 2:3]

    def tone_in(self, sharp: torch.Tensor, curve: Curve, boost: torch.Tensor) -> torch.Tensor:
        """Display -> linear light, highlights above the knee boosted (they streak brighter than 1)."""
        knee = torch.sigmoid(self.knee_raw)
        linear = curve.to_linear(sharp)
        if linear.requires_grad or boost.requires_grad:
            return torch.addcmul(linear, boost, F.relu(linear - knee).div(1 - knee))
        # Outside autograd: the division on the one-channel boost map; in place on the curve's result
        # when it is its own (the linear curve returns the input itself).
        above = (linear - knee).relu_()
        boost = boost / (1 - knee)
        return torch.addcmul(linear, boost, above) if linear is sharp else linear.addcmul_(boost, above)

    def blur(self, linear: torch.Tensor, params: BlurParameters) -> torch.Tensor:
        """The spatially varying PSFs, blended between cells."""
        return nonuniform_blur(linear, params.psf, self.cell, self.config.blend_band or None)

    def tone_out(self, linear: torch.Tensor, curve: Curve, log_gain: torch.Tensor) -> torch.Tensor:
        """Exposure gain, sensor saturation, linear light -> display."""
        clip = soft_clip if self.fixed_curve is None else soft_clip_quadratic
        # In place on its own product outside autograd (no full-size temporaries: gopro-lean 0.30 -> 0.21 ms here).
        clipped = clip(linear.mul(log_gain.exp()), self.sharpness_raw.exp(), in_place=True)
        return curve.to_display(clipped, in_place=True)

    def correct(self, blurred: torch.Tensor, sharp: torch.Tensor, features: torch.Tensor | None,
                in_place: bool = False) -> torch.Tensor:
        """The residual network's correction for what PSFs cannot express (at residual_scale).
        ``in_place``: outside autograd, add it into ``blurred`` (render passes its own temporary)."""
        if self.residual is None:
            return blurred
        first, act, last = self.residual
        scale = self.config.residual_scale
        inputs = torch.cat((blurred, sharp) if scale == 1 else (mean_pool(blurred, scale), mean_pool(sharp, scale)), 1)
        hidden = act(add_upsampled(first(inputs), features))
        correction = conv3x3_by_taps(hidden, last.weight, last.bias) if hidden.device.type == "cpu" else last(hidden)
        if not in_place or blurred.requires_grad or correction.requires_grad or not blurred.is_contiguous():
            return blurred + (upsample(correction, scale) if scale > 1 else correction)
        return add_upsampled_(blurred, correction, scale) if scale > 1 else blurred.add_(correction)

    def render(self, sharp: torch.Tensor, params: BlurParameters) -> torch.Tensor:
        """Apply decoded blur parameters to a sharp image (the physical part of F, then the residual)."""
        curve, boost, log_gain = self.tone_maps(params, sharp.shape[-2:])
        linear = self.blur(self.tone_in(sharp, curve, boost), params)
        return self.correct(self.tone_out(linear, curve, log_gain), sharp, params.features, in_place=True)

    def apply(self, sharp, code):
        self.check_code(sharp, code)
        return self.render(sharp, self.decode(code))
