"""Blind deblurring: the objective's terms, the DIP and generator-prior loops, the command, bad inputs."""

from __future__ import annotations

import math
from dataclasses import replace

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from conftest import textured_image
from skimage import data as skimage_data
from kernelaug.bank import KernelBank
from kernelaug.models.checkpoint import load_model
from kernelaug.cli import main
from kernelaug.deblur.blind import (MIN_SIZE, PRESETS, data_term, deblur_generator, deblur_generic, hyper_laplacian, kernel_norm,
                                    psf_offset, resolve_preset, sphere_project, ssim)
from kernelaug.deblur.dip import CodeNet, SkipNet, dip_noise
from kernelaug.functional import learned_blur
from kernelaug.metrics import aligned_psnr
from kernelaug.models.pretrained import bank_path


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def model():
    return load_model("synth-small")


@pytest.fixture(scope="module")
def bank():
    return KernelBank(bank_path("synth-small"))


def _image(size: int, seed: int = 0) -> torch.Tensor:
    rgb = textured_image(np.random.default_rng(seed), size).astype(np.float32) / 255
    return torch.from_numpy(rgb).permute(2, 0, 1)[None].contiguous()


def _median_code(bank: KernelBank, model) -> torch.Tensor:
    """Of the bank's first 64 codes, the one whose central PSF has the median peak: a typical blur."""
    codes = torch.from_numpy(bank[:64]).float()
    with torch.no_grad():
        peaks = model.psf(codes)[:, 1, 1].amax((-1, -2))
    return codes[[int(peaks.argsort()[32])]]


# -- the objective -------------------------------------------------------------------------------
def test_aligned_psnr_finds_the_shift():
    image = _image(48, seed=5)
    shifted = torch.roll(image, shifts=(2, -1), dims=(-2, -1))
    value, shift = aligned_psnr(shifted, image)
    assert shift == (2, -1) and value > 60
    assert aligned_psnr(image, image)[1] == (0, 0)
    with pytest.raises(ValueError, match="max_shift"):
        aligned_psnr(image[..., :6, :6], image[..., :6, :6])


def test_objective_terms():
    generator = torch.Generator().manual_seed(0)
    flat = torch.full((1, 3, 32, 32), 0.5)
    noisy = torch.rand(1, 3, 32, 32, generator=generator)
    assert float(ssim(noisy, noisy)) == pytest.approx(1.0, abs=1e-5)
    assert float(ssim(noisy, flat)) < 0.5
    assert float(hyper_laplacian(flat)) == pytest.approx(1e-6 ** 0.33, rel=1e-3)  # only eps is left
    assert float(hyper_laplacian(noisy)) > 10 * float(hyper_laplacian(flat))
    assert float(kernel_norm(torch.zeros(1, 64, 2, 2))) < 1e-5
    assert float(kernel_norm(torch.ones(1, 4, 2, 2))) == pytest.approx(2.0)
    for kind in ("charbonnier", "ssim", "ssim+charbonnier"):
        assert float(data_term(noisy, noisy, kind)) < float(data_term(flat, noisy, kind))
    with pytest.raises(ValueError, match="data term"):
        data_term(noisy, noisy, "l3")
    latent = sphere_project(torch.randn(2, 16, generator=generator))
    assert torch.allclose(latent.norm(dim=-1), torch.full((2,), 4.0))


class _DeltaPSF(nn.Module):
    """A stand-in exposing ``psf``: every cell's PSF a delta at (centre + code[0], centre + code[1])."""

    def psf(self, code):
        batch, _, rows, cols = code.shape
        psf = torch.zeros(batch, rows, cols, 5, 5)
        for b in range(batch):
            for r in range(rows):
                for c in range(cols):
                    psf[b, r, c, 2 + int(code[b, 1, r, c]), 2 + int(code[b, 0, r, c])] = 1
        return psf


def test_psf_offset_is_the_mean_squared_centroid_shift(model):
    code = torch.zeros(1, 2, 2, 2)
    assert float(psf_offset(_DeltaPSF(), code)) == 0
    code[0, 0, 0, 0], code[0, 1, 1, 1] = 2, -1                    # shifts of 2 px in x, 1 px in y
    assert float(psf_offset(_DeltaPSF(), code)) == pytest.approx((4 + 1) / 4)
    assert float(psf_offset(nn.Identity(), code)) == 0               # no PSFs exposed: no term
    shipped = psf_offset(model, torch.zeros(1, model.kernel_dim, 2, 2, requires_grad=True))
    shipped.backward()                                               # differentiable through F's PSFs


def test_centre_weight_pulls_the_psfs_to_the_centre(model, bank):
    """Starting from an off-centre bank blur, the centring term moves the found PSFs toward the centre."""
    codes = torch.from_numpy(bank[:64]).float()
    with torch.no_grad():
        offsets = torch.tensor([float(psf_offset(model, c[None])) for c in codes])
    code = codes[[int((offsets - 3).abs().argmin())]]  # a bank blur about 3 px^2 off centre
    blurry = learned_blur(_image(64, seed=3), code, model)
    offsets = {}
    for weight in (0.0, 1.0):
        result = deblur_generic(blurry, model, start_code=code, preset=replace(SMALL, centre_weight=weight),
                                iterations=30, warmup_iterations=30, progress=False)
        with torch.no_grad():
            offsets[weight] = float(psf_offset(model, result.code))
    with torch.no_grad():
        assert float(psf_offset(model, code)) > 2                  # the start is off centre
    assert offsets[1.0] < 0.5 * offsets[0.0]


def test_dip_networks_shapes():
    generator = torch.Generator().manual_seed(0)
    net = SkipNet(8, 3, (8, 8), (8, 8), (2, 2))
    out = net(dip_noise(8, 32, 48, generator))
    assert out.shape == (1, 3, 32, 48) and 0 <= out.min().item() and out.max().item() <= 1
    with pytest.raises(ValueError, match="multiple of 4"):
        net(dip_noise(8, 30, 48, generator))
    assert CodeNet(64)(dip_noise(32, 2, 3, generator)).shape == (1, 64, 2, 3)
    with pytest.raises(ValueError, match="same number"):
        SkipNet(8, 3, (8, 8), (8,), (2, 2))


# -- generic deblurring --------------------------------------------------------------------------
#: A lighter DIP than the cpu preset's (three levels) so that the test runs in seconds.
SMALL = replace(PRESETS["cpu"], name="test", dip_down=(16, 32, 32), dip_up=(16, 32, 32), dip_skip=(8, 8, 8))


def test_generic_raises_psnr_on_a_bank_blur(model, bank):
    """A photo crop blurred by one of the model's own bank codes: a short run ends clearly above the
    blurry input, and the same run stopped after the warm-up (DIP_x fitted to y) does not. PSNRs
    after the best shift: this blur is 2 px off centre, and the centring term moves x by as much."""
    photo = cv2.resize(skimage_data.astronaut(), (128, 128), interpolation=cv2.INTER_AREA)[24:88, 24:88]
    sharp = torch.from_numpy(photo.astype(np.float32) / 255).permute(2, 0, 1)[None].contiguous()
    blurry = learned_blur(sharp, _median_code(bank, model), model)
    before = aligned_psnr(blurry, sharp)[0]
    assert before < 25  # the blur is visible
    warm_only = deblur_generic(blurry, model, bank=bank, preset=SMALL, iterations=0, warmup_iterations=150,
                               progress=False)
    result = deblur_generic(blurry, model, bank=bank, preset=SMALL, iterations=200, warmup_iterations=150,
                            progress=False)
    assert aligned_psnr(warm_only.sharp, sharp)[0] < before + 0.5
    assert aligned_psnr(result.sharp, sharp)[0] > before + 1.0
    assert result.losses[-1] < result.losses[0]
    assert result.sharp.shape == sharp.shape and result.code.shape == (1, model.kernel_dim, 1, 1)


def test_generic_any_size_seeded_and_model_untouched(model, bank):
    blurry = _image(96, seed=1)[..., :40, :70].contiguous()
    flags = [p.requires_grad for p in model.parameters()]
    weights = next(model.parameters()).detach().clone()
    global_state = torch.random.get_rng_state()
    saved = []
    first = deblur_generic(blurry, model, bank=bank, iterations=4, warmup_iterations=2, seed=5, progress=False,
                           save_every=2, on_save=lambda step, image: saved.append((step, tuple(image.shape))))
    second = deblur_generic(blurry, model, bank=bank, iterations=4, warmup_iterations=2, seed=5, progress=False)
    other = deblur_generic(blurry, model, bank=bank, iterations=4, warmup_iterations=2, seed=6, progress=False)
    assert first.sharp.shape == (1, 3, 40, 70) and first.reblurred.shape == (1, 3, 40, 70)
    assert first.code.shape == (1, model.kernel_dim, 1, 2)  # the padded 64x128 frame's grid
    assert torch.equal(first.sharp, second.sharp) and not torch.equal(first.sharp, other.sharp)
    assert saved == [(2, (1, 3, 40, 70)), (4, (1, 3, 40, 70))]
    assert [p.requires_grad for p in model.parameters()] == flags
    assert torch.equal(next(model.parameters()), weights)
    assert torch.equal(torch.random.get_rng_state(), global_state)
    extracted = deblur_generic(blurry, model, start_code="extract", iterations=1, warmup_iterations=1, progress=False)
    assert torch.isfinite(extracted.sharp).all()


def test_generic_alternate_schedule_and_feature_network(model, bank):
    blurry = _image(64, seed=4)
    common = dict(bank=bank, preset=replace(SMALL, iterations=3, warmup_iterations=1), progress=False)
    joint = deblur_generic(blurry, model, **common)
    alternate = deblur_generic(blurry, model, **common | {"preset": replace(common["preset"], schedule="alternate")})
    assert not torch.equal(joint.sharp, alternate.sharp)
    calls = []

    class Features(nn.Module):
        def forward(self, image):
            calls.append(tuple(image.shape))
            return [image.mean(1, keepdim=True), image[..., ::2, ::2]]

    perceptual = deblur_generic(blurry, model, features=Features(), **common)
    assert calls and calls[0] == (1, 3, 64, 64)
    assert perceptual.losses[0] > joint.losses[0]  # same start, plus a non-negative feature term
    with pytest.raises(ValueError, match="schedule"):
        replace(SMALL, schedule="sometimes")


@pytest.mark.parametrize("image, message", [
    (torch.rand(2, 64, 64), "channels"),
    (torch.rand(5, 64, 64), "channels"),
    (torch.rand(3, 16, 64), f"at least {MIN_SIZE}x{MIN_SIZE}"),
    (torch.full((3, 64, 64), float("nan")), "NaN"),
    (torch.rand(2, 3, 64, 64), "one image at a time"),
    (torch.rand(3, 64, 64) * 3, r"\[0, 1\]"),
])
def test_generic_bad_inputs(model, bank, image, message):
    with pytest.raises(ValueError, match=message):
        deblur_generic(image, model, bank=bank, iterations=1, warmup_iterations=1, progress=False)


def test_bad_options(model, bank):
    image = _image(64)
    with pytest.raises(ValueError, match="unknown deblur preset"):
        deblur_generic(image, model, preset="tpu", progress=False)
    with pytest.raises(ValueError, match="on_save"):
        deblur_generic(image, model, bank=bank, save_every=3, progress=False)
    with pytest.raises(ValueError, match="start code must have shape"):
        deblur_generic(image, model, start_code=torch.zeros(1, 3, 1, 1), iterations=1, progress=False)
    with pytest.raises(ValueError, match="needs a kernel bank"):
        deblur_generic(image, model, start_code="mean", iterations=1, progress=False)
    with pytest.raises(ValueError, match="iterations"):
        resolve_preset("cpu", iterations=-1)


# -- generator prior -----------------------------------------------------------------------------
class TinyGenerator(nn.Module):
    """Latent (1, 8) -> (1, 3, 64, 64) image in (-1, 1): a linear map to 8x8, upsampled, tanh."""

    latent_shape = (1, 8)

    def __init__(self, seed: int = 0):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.linear = nn.Linear(8, 3 * 8 * 8)
        with torch.no_grad():
            self.linear.weight.copy_(torch.randn(self.linear.weight.shape, generator=generator) * 0.5)
            self.linear.bias.zero_()

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        image = self.linear(latent).view(-1, 3, 8, 8)
        return torch.tanh(nn.functional.interpolate(image, size=(64, 64), mode="bilinear", align_corners=False))


def tiny_generator() -> nn.Module:
    """Factory for ``kernelaug deblur --generator test_deblur:tiny_generator``."""
    return TinyGenerator()


def test_generator_prior_end_to_end(model, bank):
    gen = TinyGenerator()
    truth = sphere_project(torch.randn(1, 8, generator=torch.Generator().manual_seed(1)))
    with torch.no_grad():
        sharp = (gen(truth) + 1) / 2
    blurry = learned_blur(sharp, _median_code(bank, model), model)
    weights = gen.linear.weight.detach().clone()
    result = deblur_generator(blurry, model, gen, (1, 8), bank=bank, iterations=60, warmup_iterations=20,
                              output_range=(-1, 1), seed=0, progress=False)
    assert result.sharp.shape == (1, 3, 64, 64) and torch.isfinite(result.sharp).all()
    assert result.losses[-1] < 0.8 * result.losses[0]
    assert float(result.latent.norm()) == pytest.approx(math.sqrt(8), rel=1e-4)
    assert torch.equal(gen.linear.weight, weights) and gen.linear.weight.requires_grad
    free = deblur_generator(blurry, model, gen, (1, 8), bank=bank, iterations=3, warmup_iterations=1,
                            output_range=(-1, 1), sphere=False, progress=False)
    assert free.latent.shape == (1, 8)


def test_generator_prior_bad_generator(model, bank):
    image = _image(64)
    with pytest.raises(TypeError, match="nn.Module"):
        deblur_generator(image, model, lambda w: w, (1, 8), bank=bank, progress=False)
    with pytest.raises(ValueError, match=r"\(1, 3, h, w\)"):
        deblur_generator(image, model, nn.Linear(8, 8), (1, 8), bank=bank, iterations=1, warmup_iterations=1,
                         progress=False)
    with pytest.raises(ValueError, match="output_range"):
        deblur_generator(image, model, TinyGenerator(), (1, 8), bank=bank, output_range=(1, -1), progress=False)


# -- the command ---------------------------------------------------------------------------------
def test_cli_deblur(tmp_path, capsys):
    image = (_image(96, seed=2)[0, :, :50, :70].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    source = tmp_path / "in.png"
    cv2.imwrite(str(source), image[..., ::-1])
    out = tmp_path / "out.png"
    assert main(["deblur", str(source), "--out", str(out), "--iterations", "2", "--warmup", "1",
                 "--save-every", "1", "--save-code", str(tmp_path / "code.safetensors")]) == 0
    assert cv2.imread(str(out)).shape == (50, 70, 3)
    assert (tmp_path / "out_00001.png").is_file() and (tmp_path / "out_00002.png").is_file()
    assert (tmp_path / "code.safetensors").is_file()
    assert "2 iterations" in capsys.readouterr().out
    assert main(["deblur", str(source), "--out", str(tmp_path / "gen.png"), "--prior", "generator",
                 "--generator", "test_deblur:tiny_generator", "--output-range=-1,1", "--iterations", "2",
                 "--warmup", "1"]) == 0
    assert cv2.imread(str(tmp_path / "gen.png")).shape == (50, 70, 3)
    assert main(["deblur", str(source), "--out", str(tmp_path / "x.png"), "--prior", "generator"]) == 2
    assert "needs --generator" in capsys.readouterr().err
    assert main(["deblur", str(source), "--out", str(tmp_path / "missing" / "x.png")]) == 2
    assert "does not exist" in capsys.readouterr().err
