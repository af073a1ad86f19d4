"""The fast paths of the structured operator F, pinned to straightforward reference implementations.

``nonuniform_blur``, the gamma curve, the soft clip, the residual's last convolution and the
grid upsampling of ``PsfBlurModel.render`` were rewritten for speed (see benchmarks/results/
transforms.md). The references below are the plain forms they replaced: a spatial convolution per
cell blended by tent weights, ``pow`` curves, one ``F.interpolate`` per map and ``nn.Conv2d``. The fast
paths must give the same images and gradients up to float32 round-off.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import textured_image
from kernelaug.models.checkpoint import load_model
from kernelaug.functional import learned_blur
from kernelaug.models import build_model
from kernelaug.models.nonuniform import nonuniform_blur
from kernelaug.models.psf import (FixedCurve, GammaCurve, add_upsampled, conv3x3_by_taps, soft_clip,
                                  soft_clip_quadratic, to_display, to_linear, upsample_bilinear)

EPS = 1e-3  # the gamma curve's offset at black (kernelaug.models.psf._GAMMA_EPS)


# -- references ----------------------------------------------------------------------------------
def tent_weights(cells: int, cell: int, band: int | None = None) -> torch.Tensor:
    """(cells, cells * cell): weight of each cell at each pixel. band None: bilinear weights of the
    cell centres, constant past the first and last centres; else 1 inside the cell, linear ramps
    across a band centred on each inner cell boundary."""
    centres = torch.arange(cells * cell, dtype=torch.float64) + 0.5
    if band is None:
        t = (centres / cell - 0.5).clamp(0, cells - 1)
        return (1 - (t[None, :] - torch.arange(cells, dtype=torch.float64)[:, None]).abs()).clamp_min(0)
    weights = torch.zeros(cells, cells * cell, dtype=torch.float64)
    for i in range(cells):
        start = 1.0 if i == 0 else (0.5 + (centres - i * cell) / band).clamp(0, 1)
        end = 1.0 if i == cells - 1 else (0.5 + ((i + 1) * cell - centres) / band).clamp(0, 1)
        weights[i] = start * end
    return weights


def reference_nonuniform_blur(image: torch.Tensor, psfs: torch.Tensor, cell: int, band: int | None = None) -> torch.Tensor:
    """Every cell's PSF convolved (spatially, replicated borders) with the whole image, blended by tent weights."""
    batch, channels, height, width = image.shape
    rows, cols, size = psfs.shape[1:4]
    radius = size // 2
    padded = F.pad(image.double(), (radius,) * 4, mode="replicate")
    w_rows, w_cols = tent_weights(rows, cell, band), tent_weights(cols, cell, band)
    out = torch.zeros(batch, channels, height, width, dtype=torch.float64)
    for b in range(batch):
        for i in range(rows):
            for j in range(cols):
                kernel = psfs[b, i, j].double().flip(-1, -2).expand(channels, 1, size, size)
                blurred = F.conv2d(padded[b:b + 1], kernel, groups=channels)  # convolution, not correlation
                out[b] += blurred[0] * w_rows[i][:, None] * w_cols[j][None, :]
    return out.to(image.dtype)


def reference_to_linear(x, gamma):
    low, high = EPS ** (1 / gamma), (1 + EPS) ** (1 / gamma)
    return (x * (high - low) + low) ** gamma - EPS


def reference_to_display(y, gamma):
    low, high = EPS ** (1 / gamma), (1 + EPS) ** (1 / gamma)
    return ((y.clamp_min(0) + EPS) ** (1 / gamma) - low) / (high - low)


def reference_quadratic_clip(y, sharpness):
    """The lean operators' soft clip, piece by piece: identity, parabola over (1, 1 + 6 / s), flat."""
    width = 6 / sharpness
    return torch.where(y <= 1, y, torch.where(y < 1 + width, y - (y - 1) ** 2 / (2 * width), 1 + width / 2))


def reference_render(model, sharp, params):
    """PsfBlurModel.render as first written: one interpolation per map, pow curves, nn.Conv2d."""
    def upsample(grid):
        return F.interpolate(grid, size=sharp.shape[-2:], mode="bilinear", align_corners=False)

    # The fixed curves are gamma 1 and 2 of the same family, with the quadratic clip.
    fixed = model.config.tone_curve != "gamma"
    gamma = {"linear": 1.0, "square": 2.0}[model.config.tone_curve] if fixed \
        else model.gamma * upsample(params.log_gamma).exp()
    knee = torch.sigmoid(model.knee_raw)
    linear = reference_to_linear(sharp, gamma)
    linear = linear + upsample(params.boost) * F.relu(linear - knee) / (1 - knee)
    linear = nonuniform_blur(linear, params.psf, model.cell, model.config.blend_band or None) \
        * upsample(params.log_gain).exp()
    sharpness = model.sharpness_raw.exp()
    if fixed:
        linear = reference_quadratic_clip(linear, sharpness)
    else:
        linear = linear - F.softplus(sharpness * (linear - 1) - 3) / sharpness
    blurred = reference_to_display(linear, gamma)
    if model.residual is None:
        return blurred
    inputs = F.avg_pool2d(torch.cat((blurred, sharp), dim=1), model.config.residual_scale)
    features = F.interpolate(params.features, size=inputs.shape[-2:], mode="bilinear", align_corners=False)
    correction = model.residual[1:](model.residual[0](inputs) + features)
    return blurred + F.interpolate(correction, size=sharp.shape[-2:], mode="bilinear", align_corners=False)


# -- fixtures ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def shipped():
    return load_model("synth-small")


def images(batch: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    side = max(height, width, 64)
    stack = [textured_image(rng, side)[:height, :width] for _ in range(batch)]
    return torch.from_numpy(np.stack(stack)).permute(0, 3, 1, 2).float() / 255


def random_psfs(batch, rows, cols, size, seed=0):
    psfs = torch.rand(batch, rows, cols, size, size, generator=torch.Generator().manual_seed(seed)) ** 4
    return psfs / psfs.sum((-1, -2), keepdim=True)


# -- the pieces ----------------------------------------------------------------------------------
@pytest.mark.parametrize("shape,cell,size", [((1, 3, 128, 128), 64, 31), ((2, 1, 64, 192), 32, 9),
                                             ((1, 2, 16, 16), 8, 7), ((1, 3, 128, 64), 64, 1)])
def test_nonuniform_blur_matches_per_cell_spatial_convolution(shape, cell, size):
    image = images(shape[0], shape[2], shape[3])[:, :shape[1]]
    psfs = random_psfs(shape[0], shape[2] // cell, shape[3] // cell, size)
    expected = reference_nonuniform_blur(image, psfs, cell)
    assert torch.allclose(nonuniform_blur(image, psfs, cell), expected, atol=2e-6)


@pytest.mark.parametrize("shape,cell,size,band", [((1, 3, 128, 192), 64, 31, 16), ((2, 1, 64, 96), 32, 9, 32),
                                                  ((1, 2, 48, 16), 16, 7, 2), ((1, 1, 64, 64), 64, 3, 64)])
def test_nonuniform_blur_with_a_narrow_band_matches_per_cell_spatial_convolution(shape, cell, size, band):
    image = images(shape[0], shape[2], shape[3])[:, :shape[1]]
    psfs = random_psfs(shape[0], shape[2] // cell, shape[3] // cell, size)
    expected = reference_nonuniform_blur(image, psfs, cell, band)
    assert torch.allclose(nonuniform_blur(image, psfs, cell, band), expected, atol=2e-6)


@pytest.mark.parametrize("chunk_bytes,chunks", [(1, 5), (450_000, 3)])  # columns of cells 1 or 2 at a time
def test_nonuniform_blur_in_column_chunks_equals_one_pass(monkeypatch, chunk_bytes, chunks):
    """Large images go through the transforms a few columns of cells at a time (to stay in cache):
    the same values and gradients as one pass over the whole image."""
    import kernelaug.models.nonuniform as nonuniform

    image = images(2, 64, 160)[:, :3].requires_grad_()
    psfs = random_psfs(2, 2, 5, 15).requires_grad_()
    whole = nonuniform_blur(image, psfs, 32, 16)
    whole_grads = torch.autograd.grad(whole.square().sum(), (image, psfs))
    monkeypatch.setattr(nonuniform, "CHUNK_BYTES", chunk_bytes)
    inverse, calls = torch.fft.irfft, []
    monkeypatch.setattr(torch.fft, "irfft", lambda *args, **kwargs: calls.append(1) or inverse(*args, **kwargs))
    chunked = nonuniform_blur(image, psfs, 32, 16)
    assert len(calls) == chunks  # one last inverse transform per chunk
    chunked_grads = torch.autograd.grad(chunked.square().sum(), (image, psfs))
    assert torch.allclose(chunked, whole, atol=1e-6)  # equal here; other layouts round differently
    for got, expected in zip(chunked_grads, whole_grads):
        assert torch.allclose(got, expected, atol=1e-6)


def test_fft_sizes_are_even_smooth_and_at_most_an_eighth_above_the_smooth_size():
    from kernelaug.models.nonuniform import fast_fft_size

    even_smooth = sorted(2 ** a * 3 ** b * 5 ** c for a in range(1, 12) for b in range(8) for c in range(6))
    for n in range(2, 700):
        size = fast_fft_size(n)
        nearest = next(m for m in even_smooth if m >= n)
        assert size in even_smooth and nearest <= size <= nearest * 9 / 8, n
    # the shipped windows: synth-small's 110 px (PSF 31) and gopro-small's 126 px (PSF 47) both take 128
    assert (fast_fft_size(110), fast_fft_size(126), fast_fft_size(125), fast_fft_size(174)) == (128, 128, 128, 180)


@pytest.mark.parametrize("band", [0, 3, 96])
def test_nonuniform_blur_rejects_a_bad_band(band):
    with pytest.raises(ValueError, match="blending band"):
        nonuniform_blur(torch.rand(1, 3, 64, 64), random_psfs(1, 1, 1, 3), 64, band)


def test_gamma_curve_matches_pow_form():
    x = torch.linspace(0, 1, 1001).view(1, 1, 1, -1).expand(1, 3, 4, -1)
    gamma = 2.2 * torch.exp(0.3 * torch.linspace(-1, 1, 4)).view(1, 1, 4, 1)
    curve = GammaCurve(gamma)
    assert torch.allclose(curve.to_linear(x), reference_to_linear(x, gamma), atol=1e-6)
    y = torch.linspace(-0.1, 1.3, 1001).view(1, 1, 1, -1).expand(1, 3, 4, -1)
    assert torch.allclose(curve.to_display(y), reference_to_display(y, gamma), atol=1e-6)
    assert torch.allclose(to_display(to_linear(x, gamma), gamma), x, atol=1e-5)
    assert y.min() < 0  # the input is not modified by the in-place arithmetic
    assert float(to_linear(torch.tensor(1.0), torch.tensor(1.7))) == pytest.approx(1.0, abs=1e-6)


def test_soft_clip_matches_softplus_form():
    y = torch.linspace(-0.5, 2.0, 5001)
    before = y.clone()
    sharpness = torch.tensor(55.1)
    expected = y - F.softplus(sharpness * (y - 1) - 3) / sharpness
    assert torch.allclose(soft_clip(y, sharpness), expected, atol=1e-7)
    assert torch.equal(y, before)


@pytest.mark.parametrize("power", [1, 2])
def test_fixed_curves_are_the_pow_form_of_gamma_1_and_2(power):
    x = torch.linspace(0, 1, 1001).view(1, 1, 1, -1).expand(1, 3, 2, -1)
    curve = FixedCurve(power)
    linear = curve.to_linear(x)
    assert torch.allclose(linear, reference_to_linear(x, float(power)), atol=1e-6)
    y = torch.linspace(-0.1, 1.3, 1001).view(1, 1, 1, -1).expand(1, 3, 2, -1)
    before = y.clone()
    assert torch.allclose(curve.to_display(y), reference_to_display(y, float(power)), atol=1e-6)
    assert torch.equal(y, before)  # in-place arithmetic on its own copies only
    assert torch.allclose(curve.to_display(linear), x, atol=1e-5)
    graph = curve.to_display(curve.to_linear(x.clone().requires_grad_(True)))
    assert torch.allclose(graph.detach(), x, atol=1e-5)


def test_fixed_curve_refuses_other_powers():
    with pytest.raises(ValueError, match="power 1 or 2"):
        FixedCurve(3)


def test_quadratic_soft_clip_matches_its_pieces_and_gradients():
    y = torch.linspace(-0.5, 2.0, 5001, dtype=torch.float64)
    before = y.clone()
    sharpness = torch.tensor(50.4, dtype=torch.float64)
    clipped = soft_clip_quadratic(y, sharpness)
    assert torch.equal(y, before)
    assert torch.allclose(clipped, reference_quadratic_clip(y, sharpness), atol=1e-12)
    assert torch.equal(clipped[y <= 1], y[y <= 1])  # the identity up to 1, to the bit
    assert float(clipped.max()) == pytest.approx(1 + 3 / 50.4)
    y.requires_grad_(True)
    sharpness.requires_grad_(True)
    fast = torch.autograd.grad(soft_clip_quadratic(y, sharpness).sum(), (y, sharpness))
    plain = torch.autograd.grad(reference_quadratic_clip(y, sharpness).sum(), (y, sharpness))
    for a, b in zip(fast, plain):
        assert torch.allclose(a, b, atol=1e-9)


def test_soft_clip_is_exact_far_past_the_knee():
    """Outside autograd the softplus is max(log(1 + exp(min(z, 80))), z): saturated highlights
    (z in the thousands) must clip to the knee, not overflow to infinity or stop at z = 80."""
    y = torch.linspace(1.5, 60.0, 2001)
    sharpness = torch.tensor(55.1)
    expected = (y.double() - F.softplus(sharpness.double() * (y.double() - 1) - 3) / sharpness.double()).float()
    clipped = soft_clip(y, sharpness)
    assert torch.isfinite(clipped).all()
    assert torch.allclose(clipped, expected, atol=2e-5)
    assert clipped.max() < 1 + 3 / 55.1 + 1e-4


def test_soft_clip_gradients_match_softplus_form():
    y = torch.linspace(-0.5, 2.0, 5001, dtype=torch.float64).requires_grad_(True)
    sharpness = torch.tensor(55.1, dtype=torch.float64, requires_grad=True)
    fast = torch.autograd.grad(soft_clip(y, sharpness).sum(), (y, sharpness))
    plain = torch.autograd.grad((y - F.softplus(sharpness * (y - 1) - 3) / sharpness).sum(), (y, sharpness))
    for a, b in zip(fast, plain):
        assert torch.allclose(a, b, atol=1e-8)  # F.softplus is linear past z = 20; this form is exact there


@pytest.mark.parametrize("shape", [(1, 16, 37, 53), (3, 4, 1, 1), (2, 6, 1, 9), (1, 16, 8, 1)])
def test_conv3x3_by_taps_matches_conv2d(shape):
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(*shape, generator=generator)
    weight, bias = torch.randn(3, shape[1], 3, 3, generator=generator), torch.randn(3, generator=generator)
    assert torch.allclose(conv3x3_by_taps(x, weight, bias), F.conv2d(x, weight, bias, padding=1), atol=1e-5)


@pytest.mark.parametrize("shape,size", [((1, 19, 4, 4), (256, 256)), ((2, 5, 3, 5), (191, 320)),
                                        ((1, 2, 1, 1), (64, 64)), ((1, 3, 2, 7), (2, 7)), ((1, 1, 4, 4), (3, 1))])
def test_upsample_bilinear_matches_interpolate(shape, size):
    grid = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    expected = F.interpolate(grid, size=size, mode="bilinear", align_corners=False)
    assert torch.allclose(upsample_bilinear(grid, size), expected, atol=1e-6)
    base = torch.randn(shape[0], shape[1], *size, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(add_upsampled(base, grid), base + expected, atol=1e-5)


# -- the whole operator --------------------------------------------------------------------------
@pytest.mark.parametrize("batch,height,width", [(1, 256, 256), (3, 256, 256), (2, 128, 320)])
def test_shipped_render_matches_reference(shipped, batch, height, width):
    sharp = images(batch, height, width, seed=batch)
    codes = torch.randn(batch, shipped.kernel_dim, height // 64, width // 64,
                        generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        params = shipped.decode(codes)
        fast = shipped.render(sharp, params)
        reference = reference_render(shipped, sharp, params)
    assert (fast - reference).abs().max() < 1e-4


@pytest.mark.parametrize("batch,height,width", [(1, 173, 301), (3, 5, 7), (2, 300, 190)])
def test_learned_blur_at_any_size_matches_reference(shipped, monkeypatch, batch, height, width):
    sharp = images(batch, height, width, seed=3)
    codes = torch.randn(batch, shipped.kernel_dim, 4, 4, generator=torch.Generator().manual_seed(4))
    fast = learned_blur(sharp, codes, shipped)
    monkeypatch.setattr(shipped, "render", lambda image, params: reference_render(shipped, image, params))
    reference = learned_blur(sharp, codes, shipped)
    assert (fast - reference).abs().max() < 1e-4


def test_learned_blur_hands_the_operator_a_contiguous_batch(shipped, monkeypatch):
    """Every stage of F is slower on channels-last views (numpy HWC images seen as BCHW): to_rgb_batch
    converts numpy images to a contiguous batch, and learned_blur copies any other view first (the
    result is the same)."""
    from kernelaug.functional import to_rgb_batch

    hwc = (images(1, 128, 128, seed=7)[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    assert to_rgb_batch(hwc)[0].is_contiguous() and to_rgb_batch(hwc.astype(np.float32) / 255)[0].is_contiguous()
    rgb = torch.from_numpy(hwc).permute(2, 0, 1)[None].float() / 255
    assert not rgb.is_contiguous()
    codes = torch.randn(1, shipped.kernel_dim, 2, 2, generator=torch.Generator().manual_seed(8))
    seen = []
    render = shipped.render
    monkeypatch.setattr(shipped, "render", lambda image, params: seen.append(image.is_contiguous()) or render(image, params))
    blurred = learned_blur(rgb, codes, shipped)
    assert seen == [True]
    assert torch.equal(blurred, learned_blur(rgb.contiguous(), codes, shipped))


@pytest.mark.parametrize("tone_curve", ["linear", "square"])
def test_lean_render_matches_reference(tone_curve):
    import dataclasses

    from kernelaug.models.config import PRESETS

    torch.manual_seed(0)
    model = build_model(dataclasses.replace(PRESETS["psf-tiny"], tone_curve=tone_curve, residual_scale=4)).eval()
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 0.05)
    sharp = images(2, 128, 192, seed=9)
    codes = torch.randn(2, model.kernel_dim, 2, 3, generator=torch.Generator().manual_seed(10))
    with torch.inference_mode():
        params = model.decode(codes)
        fast = model.render(sharp, params)
        reference = reference_render(model, sharp, params)
    assert (fast - reference).abs().max() < 1e-5


@pytest.mark.parametrize("tone_curve", ["gamma", "linear", "square"])
def test_gradients_match_reference(tone_curve):
    import dataclasses

    from kernelaug.models.config import PRESETS

    torch.manual_seed(0)
    model = build_model(dataclasses.replace(PRESETS["psf-tiny"], tone_curve=tone_curve)).train()
    with torch.no_grad():  # non-trivial heads, so that every map carries a gradient
        for head in (model.gain_head, model.tone_head, model.feature_head, model.residual[-1]):
            head.weight.normal_(0, 0.1)
    # Away from black: where the blurred linear light is 0, the clamp before the display curve makes
    # the gradient jump between 0 and the curve's slope on float round-off, in either implementation.
    sharp = 0.05 + 0.9 * images(2, 64, 128, seed=5)
    code = torch.randn(2, model.kernel_dim, 1, 2, generator=torch.Generator().manual_seed(6))

    def grads(render):
        model.zero_grad()
        image = sharp.clone().requires_grad_(True)
        render(image, model.decode(code)).square().sum().backward()
        named = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
        return named, image.grad

    fast, fast_image = grads(model.render)
    reference, reference_image = grads(lambda image, params: reference_render(model, image, params))
    assert fast.keys() == reference.keys() and len(fast) > 10
    for name in fast:
        scale = reference[name].abs().max().clamp_min(1e-6)
        assert (fast[name] - reference[name]).abs().max() / scale < 1e-4, name
    assert (fast_image - reference_image).abs().max() / reference_image.abs().max() < 1e-4
    assert math.isfinite(float(fast_image.sum()))


@pytest.mark.parametrize("shape,factor", [((2, 3, 8, 12), 2), ((1, 6, 128, 64), 2), ((1, 1, 9, 6), 3)])
def test_mean_pool_matches_avg_pool2d(shape, factor):
    from kernelaug.models.psf import mean_pool

    x = torch.randn(*shape, generator=torch.Generator().manual_seed(2))
    assert torch.allclose(mean_pool(x, factor), F.avg_pool2d(x, factor), atol=1e-6)


def test_cached_weights_built_in_inference_mode_still_train():
    """bilinear_matrix and cell_weights are cached: a first call under inference_mode (the transforms)
    must not leave inference tensors that a later autograd pass (training, blind deblurring) refuses."""
    from kernelaug.models.nonuniform import cell_weights
    from kernelaug.models.psf import bilinear_matrix

    bilinear_matrix.cache_clear()
    cell_weights.cache_clear()
    model = build_model("psf-tiny")
    sharp = torch.rand(1, 3, 64, 64)
    with torch.inference_mode():
        model.apply(sharp, torch.randn(1, *model.code_shape(64, 64)))
    code = torch.randn(1, *model.code_shape(64, 64), requires_grad=True)
    model.apply(sharp, code).sum().backward()
    assert code.grad is not None and torch.isfinite(code.grad).all()


def test_in_place_inference_paths_equal_the_autograd_paths():
    """Outside autograd the tone curves and the soft clip work in place; they must give the same
    images as the out-of-place forms autograd uses, and leave their inputs alone."""
    model = build_model("psf-tiny")
    sharp = torch.rand(2, 3, 64, 128, generator=torch.Generator().manual_seed(4)) * 1.1
    code = torch.randn(2, *model.code_shape(64, 128), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 0.05)
        before = sharp.clone()
        fast = model.apply(sharp.clamp(0, 1), code)
    assert torch.equal(sharp, before)
    graph = model.apply(sharp.clamp(0, 1).requires_grad_(True), code)
    assert torch.allclose(fast, graph.detach(), atol=1e-6)
    gamma = torch.tensor(2.2, requires_grad=True)  # a curve with a trainable gamma on a plain image
    curve = to_display(torch.linspace(0, 1, 11), gamma)
    curve.sum().backward()
    assert gamma.grad is not None and torch.allclose(curve.detach(), reference_to_display(torch.linspace(0, 1, 11), 2.2),
                                                     atol=1e-6)
    y = torch.linspace(-0.5, 2.0, 501)
    assert torch.allclose(soft_clip(y, torch.tensor(40.0)),
                          soft_clip(y.clone().requires_grad_(True), torch.tensor(40.0)).detach(), atol=1e-7)


@pytest.mark.parametrize("factor", [2, 4])
@pytest.mark.parametrize("shape", [(1, 3, 128, 128), (2, 1, 5, 7), (1, 2, 1, 3), (1, 3, 1, 1)])
def test_upsample_matches_interpolate(shape, factor):
    from kernelaug.models.psf import upsample

    x = torch.randn(*shape, generator=torch.Generator().manual_seed(3))
    expected = F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)
    assert torch.allclose(upsample(x, factor), expected, atol=1e-6)


@pytest.mark.parametrize("factor", [2, 4])
@pytest.mark.parametrize("shape", [(1, 3, 64, 64), (2, 1, 5, 7), (1, 2, 1, 3), (1, 3, 1, 1)])
def test_add_upsampled_in_place_matches_interpolate(shape, factor):
    from kernelaug.models.psf import add_upsampled_

    low = torch.randn(*shape, generator=torch.Generator().manual_seed(5))
    x = torch.randn(*shape[:2], shape[2] * factor, shape[3] * factor, generator=torch.Generator().manual_seed(6))
    expected = x + F.interpolate(low, scale_factor=factor, mode="bilinear", align_corners=False)
    out = add_upsampled_(x, low, factor)
    assert out is x and torch.allclose(x, expected, atol=1e-6)
