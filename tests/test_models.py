"""The two architectures: shapes, ranges, sizes, the structured operator's PSFs, and input errors."""

from __future__ import annotations

import pytest
import torch

from kernelaug.models import PRESETS, build_model
from kernelaug.models.nonuniform import nonuniform_blur
from kernelaug.models.psf import to_display, to_linear

SIZES = [(128, 128), (256, 256), (128, 384), (256, 128)]


@pytest.fixture(scope="module", params=["tiny", "psf-tiny"])
def model(request):
    torch.manual_seed(0)
    return build_model(request.param).eval()


class TestShapes:
    @pytest.mark.parametrize("size", SIZES)
    def test_extract_apply_shapes_and_range(self, model, size):
        sharp, blurry = torch.rand(2, 3, *size), torch.rand(2, 3, *size)
        with torch.no_grad():
            code = model.extract(sharp, blurry)
            out = model.apply(sharp, code)
        assert code.shape == (2, *model.code_shape(*size))
        assert code.shape[2:] == (size[0] // model.cell, size[1] // model.cell)
        assert out.shape == sharp.shape and out.dtype == sharp.dtype
        assert torch.isfinite(out).all()
        assert out.min() > -0.5 and out.max() < 1.5

    def test_render_of_decoded_slices_is_apply(self, model):
        # learned_blur decodes a batch's codes once and renders the images in chunks
        sharp = torch.rand(3, 3, 128, 256)
        code = torch.randn(3, *model.code_shape(128, 256))
        with torch.no_grad():
            params = model.decode(code)
            whole = model.apply(sharp, code)
            for part in (slice(0, 1), slice(1, 3)):
                torch.testing.assert_close(model.render(sharp[part], params[part]), whole[part], rtol=0, atol=1e-6)

    def test_decoded_parameters_refuse_an_index_that_is_not_a_slice(self):
        # an int would drop the batch dimension of every field and render would misread them
        psf_model = build_model("psf-tiny")
        params = psf_model.decode(torch.randn(2, *psf_model.code_shape(128, 128)))
        with pytest.raises(TypeError, match="slice"):
            params[0]

    def test_paper_code_is_one_cell_per_128_pixels(self):
        assert build_model("tiny").code_shape(128, 256) == (PRESETS["tiny"].kernel_dim, 1, 2)

    def test_paper_preset_has_reference_size(self):
        params = sum(p.numel() for p in build_model("paper").parameters())
        assert abs(params - 49.2e6) < 0.1e6

    def test_vae_head_gives_kl_and_sampled_code(self):
        model = build_model(PRESETS["tiny"].__class__(**{**PRESETS["tiny"].__dict__, "use_vae": True}))
        sharp = torch.rand(1, 3, 128, 128)
        out, code, kl = model(sharp, sharp, sample=True)
        assert out.shape == sharp.shape and kl.item() >= 0
        assert not torch.equal(code, model.extract(sharp, sharp))


class TestStructuredOperator:
    def test_psfs_are_non_negative_and_normalised(self):
        model = build_model("psf-tiny")
        with torch.no_grad():
            model.basis.normal_(0, 0.5)
            psf = model.psf(torch.randn(2, model.kernel_dim, 2, 3))
        size = PRESETS["psf-tiny"].psf_size
        assert psf.shape == (2, 2, 3, size, size)
        assert psf.min() >= 0
        assert torch.allclose(psf.sum((-1, -2)), torch.ones(2, 2, 3), atol=1e-5)

    def test_psf_spread_is_one_for_a_delta_and_k_for_a_flat_psf(self):
        model = build_model("psf-tiny")
        size = model.config.psf_size
        with torch.no_grad():
            delta = model.psf_spread(torch.zeros(1, model.kernel_dim, 1, 1))  # untrained: every PSF a delta
            model.basis_mean.fill_(1.0)
            flat = model.psf_spread(torch.zeros(1, model.kernel_dim, 1, 1))
        assert delta.item() == pytest.approx(1.0, abs=0.02)
        assert flat.item() == pytest.approx(size, rel=0.05)

    def test_delta_psf_is_identity_up_to_rounding(self):
        model = build_model("psf-tiny").eval()
        sharp = torch.rand(1, 3, 128, 192)
        with torch.no_grad():
            params = model.decode(torch.zeros(1, model.kernel_dim, 2, 3))
            params.psf.zero_()
            params.psf[..., model.config.psf_size // 2, model.config.psf_size // 2] = 1
            params.log_gain.zero_()
            params.boost.zero_()
            out = model.render(sharp, params)
        assert (out - sharp).abs().max() < 0.5 / 255

    def test_untrained_model_is_identity(self):
        model = build_model("psf-tiny").eval()
        sharp = torch.rand(1, 3, 128, 128) * 0.9  # below the highlight knee, whose boost starts near 0
        with torch.no_grad():
            out = model.apply(sharp, torch.randn(1, *model.code_shape(128, 128)))
        assert (out - sharp).abs().max() < 0.5 / 255

    def test_basis_initialisation_recovers_a_known_blur(self):
        """PCA of least-squares estimates: the untrained model re-blurs a motion-blurred pair well."""
        from conftest import motion_kernel, textured_image
        import numpy as np
        rng = np.random.default_rng(0)
        model = build_model("psf-tiny").eval()
        kernel = torch.zeros(9, 9)
        kernel[1:8, 1:8] = torch.from_numpy(motion_kernel(7, 30.0))
        sharps = torch.stack([torch.from_numpy(textured_image(rng, 128)).permute(2, 0, 1).float() / 255
                              for _ in range(4)])
        blurries = nonuniform_blur(sharps, kernel.expand(4, 2, 2, 9, 9), 64)
        model.initialise_basis(sharps, blurries)
        with torch.no_grad():
            out = model.apply(sharps, model.extract(sharps, blurries))
        before = ((sharps - blurries) ** 2).mean()
        after = ((out - blurries) ** 2).mean()
        assert 10 * torch.log10(before / after) > 6

    def test_gamma_round_trip(self):
        x = torch.linspace(0, 1, 101)
        gamma = torch.tensor(2.2)
        assert torch.allclose(to_display(to_linear(x, gamma), gamma), x, atol=1e-5)
        assert to_linear(torch.tensor(0.0), gamma).abs() < 1e-6

    def test_nonuniform_blur_matches_uniform_convolution(self):
        image = torch.rand(1, 2, 64, 96)
        kernel = torch.rand(7, 7)
        kernel /= kernel.sum()
        psfs = kernel.expand(1, 2, 3, 7, 7)
        padded = torch.nn.functional.pad(image, (3, 3, 3, 3), mode="replicate")
        expected = torch.nn.functional.conv2d(padded.transpose(0, 1), kernel.flip(0, 1)[None, None]).transpose(0, 1)
        assert torch.allclose(nonuniform_blur(image, psfs, 32), expected, atol=1e-5)

    def test_nonuniform_blur_varies_across_cells(self):
        image = torch.zeros(1, 1, 64, 128)
        image[..., 32, 32] = image[..., 32, 96] = 1  # a point of light in each cell centre
        psfs = torch.zeros(1, 1, 2, 5, 5)
        psfs[0, 0, 0, 2, :] = 0.2   # horizontal streak on the left
        psfs[0, 0, 1, :, 2] = 0.2   # vertical streak on the right
        out = nonuniform_blur(image, psfs, 64)[0, 0]
        assert out[32, 30] > 0.15 and out[30, 32] < 0.01   # left: spread along the row
        assert out[30, 96] > 0.15 and out[32, 94] < 0.01   # right: spread along the column


class TestInputErrors:
    def test_size_not_multiple_of_cell(self, model):
        with pytest.raises(ValueError, match="multiples of"):
            model.extract(torch.rand(1, 3, 100, 128), torch.rand(1, 3, 100, 128))

    def test_wrong_channels(self, model):
        with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
            model.extract(torch.rand(1, 1, 128, 128), torch.rand(1, 1, 128, 128))

    def test_integer_dtype(self, model):
        with pytest.raises(ValueError, match="float"):
            model.apply(torch.zeros(1, 3, 128, 128, dtype=torch.uint8), torch.zeros(1, 8, 1, 1))

    def test_pair_shape_mismatch(self, model):
        with pytest.raises(ValueError, match="differ"):
            model.extract(torch.rand(1, 3, 128, 128), torch.rand(1, 3, 128, 256))

    def test_code_shape_mismatch(self, model):
        with pytest.raises(ValueError, match="code shape"):
            model.apply(torch.rand(1, 3, 128, 128), torch.zeros(1, model.kernel_dim + 1, 5, 5))


class TestFastOperators:
    """The options of the fast presets: a narrow blending band, a half-resolution residual or none."""

    def _randomised(self, **changes):
        import dataclasses

        torch.manual_seed(0)
        model = build_model(dataclasses.replace(PRESETS["psf-tiny"], **changes)).eval()
        with torch.no_grad():
            for param in model.parameters():
                param.add_(torch.randn_like(param) * 0.05)
        return model

    @pytest.mark.parametrize("preset", ["psf-fast", "psf-wide-fast", "psf-lean", "psf-wide-lean", "psf-wide-lean-display"])
    def test_fast_presets_start_as_the_identity(self, preset):
        model = build_model(preset).eval()
        sharp = torch.rand(1, 3, 128, 192) * 0.9
        with torch.no_grad():
            out = model.apply(sharp, torch.randn(1, *model.code_shape(128, 192)))
        assert (out - sharp).abs().max() < 0.5 / 255

    def test_render_blends_over_the_configured_band(self):
        model = self._randomised(blend_band=16, residual_width=0)
        sharp, code = torch.rand(1, 3, 128, 128), torch.randn(1, model.kernel_dim, 2, 2)
        with torch.no_grad():
            params = model.decode(code)
            out = model.render(sharp, params)
            params.psf = params.psf.flip(1)  # another PSF per cell must change the output where bands blend
            assert not torch.allclose(out, model.render(sharp, params))
        assert out.shape == sharp.shape

    @pytest.mark.parametrize("scale", [2, 4])
    def test_reduced_resolution_residual_is_the_plain_form(self, scale):
        import torch.nn.functional as F

        def upsample(x, size):
            return F.interpolate(x, size=size, mode="bilinear", align_corners=False)

        model = self._randomised(residual_scale=scale)
        sharp, code = torch.rand(2, 3, 128, 64), torch.randn(2, model.kernel_dim, 2, 1)
        with torch.no_grad():
            params = model.decode(code)
            out = model.render(sharp, params)
            residual, model.residual = model.residual, None
            blurred = model.render(sharp, params)  # the same operator without its residual network
            model.residual = residual
            first, act, last = residual
            inputs = F.avg_pool2d(torch.cat((blurred, sharp), 1), scale)
            hidden = act(first(inputs) + upsample(params.features, inputs.shape[-2:]))
            expected = blurred + upsample(last(hidden), sharp.shape[-2:])
        assert torch.allclose(out, expected, atol=1e-5)
        assert not torch.allclose(out, blurred)

    @pytest.mark.parametrize("scale", [0, 3, 8])
    def test_config_refuses_a_bad_residual_scale(self, scale):
        from kernelaug.models.config import config_from_dict, config_to_dict

        with pytest.raises(ValueError, match="residual_scale"):
            config_from_dict({**config_to_dict(PRESETS["psf-tiny"]), "residual_scale": scale})

    @pytest.mark.parametrize("band", [3, 128])
    def test_config_refuses_a_bad_band(self, band):
        from kernelaug.models.config import config_from_dict, config_to_dict

        data = {**config_to_dict(PRESETS["psf-tiny"]), "blend_band": band}
        with pytest.raises(ValueError, match="blend_band"):
            config_from_dict(data)

    @pytest.mark.parametrize("curve", ["pow", "", 2])
    def test_config_refuses_an_unknown_tone_curve(self, curve):
        from kernelaug.models.config import config_from_dict, config_to_dict

        with pytest.raises(ValueError, match="tone_curve"):
            config_from_dict({**config_to_dict(PRESETS["psf-tiny"]), "tone_curve": curve})

    @pytest.mark.parametrize("tone_curve", ["linear", "square"])
    def test_fixed_tone_curves_ignore_the_local_gamma(self, tone_curve):
        model = self._randomised(tone_curve=tone_curve)
        sharp, code = torch.rand(1, 3, 64, 64), torch.randn(1, model.kernel_dim, 1, 1)
        with torch.no_grad():
            params = model.decode(code)
            out = model.render(sharp, params)
            params.log_gamma = params.log_gamma + 0.3
            assert torch.equal(out, model.render(sharp, params))

    @pytest.mark.parametrize("tone_curve", ["gamma", "linear", "square"])
    def test_every_trainable_parameter_gets_a_gradient(self, tone_curve):
        """DistributedDataParallel fails on a trainable parameter the loss never reaches (a fixed
        curve's unused gamma did)."""
        model = self._randomised(tone_curve=tone_curve).train()
        sharp, blurry = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
        code, _ = model.encode(sharp, blurry)
        model.apply(sharp, code).square().sum().backward()
        missing = [name for name, p in model.named_parameters() if p.requires_grad and p.grad is None]
        assert missing == []

    def test_configs_written_before_the_fast_options_load_as_before(self):
        from kernelaug.models.config import config_from_dict, config_to_dict

        data = config_to_dict(PRESETS["psf"])
        for name in ("residual_scale", "blend_band", "tone_curve"):
            data.pop(name)
        assert config_from_dict(data) == PRESETS["psf"]
