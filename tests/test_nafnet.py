"""NAFNet: the network, its config and presets, the PSNR loss, and storage with its checks on files read back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from kernelaug.deblurrers import nafnet
from kernelaug.deblurrers.nafnet import (
    NAFNET_FORMAT,
    NAFNET_PRESETS,
    NAFBlock,
    NAFNet,
    NAFNetConfig,
    check_input,
    count_macs,
    load_nafnet,
    parameter_count,
    psnr_loss,
    save_nafnet,
)
from kernelaug.metrics import psnr

TINY = NAFNET_PRESETS["tiny"]


@pytest.fixture(autouse=True)
def _one_thread():
    # these networks are small: on a busy machine, a second thread costs far more in waiting than it gains
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def build(config: NAFNetConfig = TINY, seed: int = 0) -> NAFNet:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return NAFNet(config)


def images(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def numel(config: NAFNetConfig) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in NAFNet(config).parameters())


class TestNetwork:
    @pytest.mark.parametrize("shape", [(1, 3, 37, 53), (2, 3, 64, 64), (1, 3, 1, 1), (3, 3, 5, 17)])
    def test_output_keeps_any_input_shape(self, shape):
        out = build()(images(*shape))
        assert out.shape == shape and out.dtype == torch.float32 and torch.isfinite(out).all()

    def test_four_level_preset_at_odd_size(self):
        assert build(NAFNET_PRESETS["cpu"])(images(1, 3, 37, 53)).shape == (1, 3, 37, 53)

    def test_blocks_are_the_identity_at_initialisation(self):
        x = images(2, 8, 9, 11)
        assert torch.equal(NAFBlock(8)(x), x)

    def test_zero_ending_conv_gives_the_input_back(self):
        model = build()
        with torch.no_grad():
            model.ending.weight.zero_()
            model.ending.bias.zero_()
        x = images(2, 3, 37, 53)
        assert torch.equal(model(x), x)

    def test_output_is_the_input_plus_a_residual_not_clamped(self):
        model = build()
        with torch.no_grad():
            model.ending.weight.zero_()
            model.ending.bias.fill_(2.0)
        x = images(1, 3, 16, 16)
        torch.testing.assert_close(model(x), x + 2)
        assert torch.equal(model.deblur(x), torch.ones_like(x))

    def test_a_trained_block_changes_its_input(self):
        block = NAFBlock(8)
        with torch.no_grad():
            block.beta.fill_(1.0)
            block.gamma.fill_(1.0)
        x = images(1, 8, 6, 6)
        assert not torch.allclose(block(x), x)

    def test_paper_structure(self):
        model = build()
        assert model.intro.kernel_size == (3, 3) and model.intro.out_channels == 8
        assert model.downs[0].kernel_size == (2, 2) and model.downs[0].stride == (2, 2)
        assert model.downs[0].out_channels == 16 and model.middle[0].beta.shape == (1, 32, 1, 1)
        assert model.ups[0].conv.kernel_size == (1, 1) and model.ups[0].conv.bias is None
        assert model.ups[0].conv.out_channels == 64  # then PixelShuffle(2): 16 channels
        block = model.encoders[0][0]
        assert block.depthwise.groups == 16 and block.depthwise.kernel_size == (3, 3)
        assert not block.beta.any() and not block.gamma.any()
        assert not any(isinstance(m, (nn.ReLU, nn.GELU, nn.Sigmoid)) for m in model.modules())

    def test_gradients_flow_to_the_input_side(self):
        model = build()
        psnr_loss(model(images(1, 3, 12, 12)), images(1, 3, 12, 12, seed=1)).backward()
        assert model.intro.weight.grad.abs().sum() > 0 and model.middle[0].beta.grad.abs().sum() > 0

    @pytest.mark.parametrize("bad, message", [
        (torch.rand(32, 32), r"\(B, 3, H, W\)"),
        (torch.rand(3, 32, 32), r"\(B, 3, H, W\)"),
        (torch.rand(1, 4, 32, 32), r"\(B, 3, H, W\)"),
        ([[0.5]], r"\(B, 3, H, W\) tensor, got list"),
        (torch.zeros(1, 3, 32, 32, dtype=torch.uint8), "float"),
        (torch.full((1, 3, 8, 8), float("nan")), "NaN"),
        (torch.full((1, 3, 8, 8), float("inf")), "infinite"),
        (torch.rand(1, 3, 0, 8), "non-empty"),
    ])
    def test_bad_input_is_a_clear_error(self, bad, message):
        with pytest.raises(ValueError, match=message):
            build()(bad)
        with pytest.raises(ValueError, match=message):
            check_input(bad)


class TestSizes:
    def test_gopro_preset_has_17_1_million_parameters(self):
        assert NAFNET_PRESETS["gopro"] == NAFNetConfig()
        assert abs(numel(NAFNET_PRESETS["gopro"]) - 17.1e6) < 0.2e6

    def test_cpu_preset(self):
        config = NAFNET_PRESETS["cpu"]
        assert config.width == 16 and sum(config.enc_blocks) + config.middle_blocks + sum(config.dec_blocks) == 9
        assert abs(numel(config) - 1.1e6) < 0.1e6

    @pytest.mark.parametrize("name", sorted(NAFNET_PRESETS))
    def test_parameter_count_is_exact(self, name):
        assert parameter_count(NAFNET_PRESETS[name]) == numel(NAFNET_PRESETS[name])

    def test_parameter_count_of_an_uneven_config(self):
        config = NAFNetConfig(width=4, enc_blocks=(2, 1, 3), middle_blocks=2, dec_blocks=(1, 4, 2))
        assert parameter_count(config) == numel(config)

    @pytest.mark.parametrize("size", [(37, 53), (32, 32)])
    def test_count_macs_matches_the_convolutions_run(self, size):
        model, total = build(), []

        def hook(conv, inputs, output):
            total.append(output.numel() * conv.in_channels // conv.groups * conv.kernel_size[0] * conv.kernel_size[1])

        for module in model.modules():
            if isinstance(module, nn.Conv2d):
                module.register_forward_hook(hook)
        model(images(1, 3, *size))
        assert count_macs(TINY, *size) == sum(total)


class TestConfig:
    def test_round_trip_through_json(self):
        for config in NAFNET_PRESETS.values():
            assert NAFNetConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config

    def test_lists_become_tuples(self):
        config = NAFNetConfig(width=8, enc_blocks=[1, 2], middle_blocks=1, dec_blocks=[2, 1])
        assert config.enc_blocks == (1, 2) and config.dec_blocks == (2, 1) and config.levels == 2
        assert hash(config) == hash(NAFNetConfig(8, (1, 2), 1, (2, 1)))

    @pytest.mark.parametrize("changes, message", [
        ({"width": 100000}, "'width' must be at most 256"),
        ({"width": 0}, "'width' must be a positive int"),
        ({"width": "32"}, "'width' must be a positive int, got '32'"),
        ({"width": 32.0}, "'width' must be a positive int"),
        ({"width": True}, "'width' must be a positive int"),
        ({"middle_blocks": -1}, "'middle_blocks'"),
        ({"enc_blocks": (1, 1, 1)}, "one entry per level each, got 3 and 4"),
        ({"enc_blocks": "1111"}, "'enc_blocks' must be a list"),
        ({"enc_blocks": (1, 0, 1, 1)}, r"'enc_blocks\[1\]'"),
        ({"enc_blocks": (), "dec_blocks": ()}, "1 to 6 levels"),
        ({"enc_blocks": (1,) * 7, "dec_blocks": (1,) * 7}, "1 to 6 levels"),
        ({"enc_blocks": (100, 100, 1, 1)}, "blocks in all"),
        ({"width": 256, "enc_blocks": (1,) * 6, "dec_blocks": (1,) * 6}, "parameters"),
    ])
    def test_invalid_config_is_a_clear_error(self, changes, message):
        with pytest.raises(ValueError, match=message):
            NAFNetConfig(**{**NAFNetConfig().to_dict(), **changes})

    def test_from_dict_rejects_unknown_missing_and_non_dicts(self):
        with pytest.raises(ValueError, match="unknown NAFNet config fields"):
            NAFNetConfig.from_dict({**TINY.to_dict(), "widths": 3})
        with pytest.raises(ValueError, match="lacks the fields"):
            NAFNetConfig.from_dict({"width": 8})
        with pytest.raises(ValueError, match="JSON object"):
            NAFNetConfig.from_dict([8])


class TestLoss:
    def test_is_minus_psnr_averaged_over_the_batch(self):
        target = images(3, 3, 16, 16)
        pred = (target + 0.1 * images(3, 3, 16, 16, seed=1) - 0.05).clamp(0, 1)
        torch.testing.assert_close(psnr_loss(pred, target, eps=0.0), -psnr(pred, target).mean())
        assert psnr_loss(pred, target).item() == pytest.approx(-psnr(pred, target).mean().item(), abs=1e-3)

    def test_identical_images_are_finite(self):
        x = images(1, 3, 8, 8)
        assert psnr_loss(x, x).item() == pytest.approx(-80.0)

    def test_shape_mismatch_is_a_clear_error(self):
        with pytest.raises(ValueError, match="same shape"):
            psnr_loss(images(1, 3, 8, 8), images(1, 3, 8, 9))

    def test_a_few_adam_steps_learn_to_deblur_a_fixed_pair(self):
        generator = torch.Generator().manual_seed(0)
        sharp = F.interpolate(torch.rand(2, 3, 8, 8, generator=generator), size=(32, 32), mode="bilinear",
                              align_corners=False)
        blurry = F.conv2d(F.pad(sharp, (3, 3, 0, 0), mode="reflect"), torch.full((3, 1, 1, 7), 1 / 7), groups=3)
        model = build()
        optimiser = torch.optim.Adam(model.parameters(), lr=2e-3)
        losses = []
        for _ in range(100):
            loss = psnr_loss(model(blurry), sharp)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            losses.append(loss.item())
        assert losses[-1] < losses[0] - 10
        assert losses[-1] < psnr_loss(blurry, sharp).item() - 3  # better than returning the blurry image


def rewrite(source: Path, target: Path, metadata: dict | None = None, tensors: dict | None = None,
            drop: tuple[str, ...] = ()) -> Path:
    """Copy a model file with some metadata fields or tensors replaced (or dropped)."""
    with safe_open(str(source), framework="pt") as handle:
        meta = handle.metadata()
        state = {name: handle.get_tensor(name) for name in handle.keys()}
    meta.update(metadata or {})
    state.update(tensors or {})
    for name in drop:
        meta.pop(name, None)
        state.pop(name, None)
    save_file(state, str(target), metadata=meta)
    return target


class TestStorage:
    @pytest.fixture()
    def saved(self, tmp_path) -> tuple[NAFNet, Path]:
        model = build(seed=3)
        with torch.no_grad():  # make every block do something, so that the round trip is tested on all weights
            for name, parameter in model.named_parameters():
                if name.endswith(("beta", "gamma")):
                    parameter.fill_(0.5)
        return model, save_nafnet(model, tmp_path / "sub" / "tiny.safetensors", provenance={"steps": 7})

    def test_round_trip_gives_identical_outputs(self, saved):
        model, path = saved
        loaded = load_nafnet(path)
        assert loaded.config == model.config and loaded.provenance == {"steps": 7} and not loaded.training
        x = images(2, 3, 37, 53)
        with torch.no_grad():
            assert torch.equal(loaded(x), model(x))
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata()
        assert metadata["format"] == NAFNET_FORMAT and metadata["format_version"] == "1"
        assert json.loads(metadata["config"]) == TINY.to_dict()
        assert not list(path.parent.glob("*.tmp"))

    def test_loading_leaves_the_global_random_state_alone(self, saved):
        state = torch.random.get_rng_state()
        load_nafnet(saved[1])
        assert torch.equal(torch.random.get_rng_state(), state)

    @pytest.mark.parametrize("config, message", [
        ({**TINY.to_dict(), "width": 100000}, "'width' must be at most 256"),
        ({**TINY.to_dict(), "enc_blocks": [1, 1, 1]}, "one entry per level"),
        ({**TINY.to_dict(), "width": "8"}, "'width' must be a positive int"),
        ({**TINY.to_dict(), "middle_blocks": 10**9}, "blocks in all"),
        ("a string", "JSON object"),
    ])
    def test_tampered_config_fails_before_any_network_is_built(self, saved, tmp_path, monkeypatch, config, message):
        path = rewrite(saved[1], tmp_path / "bad.safetensors", {"config": json.dumps(config)})

        def forbidden(*args, **kwargs):
            raise AssertionError("a network was built from an invalid config")

        monkeypatch.setattr(nafnet, "NAFNet", forbidden)
        with pytest.raises(ValueError, match=message) as error:
            load_nafnet(path)
        assert "bad.safetensors" in str(error.value) and "'config'" in str(error.value)

    def test_config_not_matching_the_tensors_fails_before_allocating_weights(self, saved, tmp_path, monkeypatch):
        path = rewrite(saved[1], tmp_path / "big.safetensors",
                       {"config": json.dumps(NAFNET_PRESETS["gopro"].to_dict())})

        def forbidden(*args, **kwargs):
            raise AssertionError("weights were allocated before the header was checked")

        monkeypatch.setattr(NAFNet, "to_empty", forbidden)
        with pytest.raises(ValueError, match=r"big.safetensors does not match its own config: missing tensors"):
            load_nafnet(path)

    def test_wrong_tensor_shape_is_named(self, saved, tmp_path):
        path = rewrite(saved[1], tmp_path / "shape.safetensors", tensors={"ending.weight": torch.zeros(3, 8, 5, 5)})
        with pytest.raises(ValueError, match=r"tensor 'ending.weight' has shape \(3, 8, 5, 5\), the config implies "
                                             r"\(3, 8, 3, 3\)"):
            load_nafnet(path)

    def test_wrong_tensor_dtype_and_extra_or_missing_tensors(self, saved, tmp_path):
        path = rewrite(saved[1], tmp_path / "int.safetensors",
                       tensors={"ending.bias": torch.zeros(3, dtype=torch.int64)})
        with pytest.raises(ValueError, match="'ending.bias' has dtype I64"):
            load_nafnet(path)
        path = rewrite(saved[1], tmp_path / "extra.safetensors", tensors={"spare": torch.zeros(2)})
        with pytest.raises(ValueError, match=r"unexpected tensors \['spare'\]"):
            load_nafnet(path)
        path = rewrite(saved[1], tmp_path / "missing.safetensors", drop=("intro.bias",))
        with pytest.raises(ValueError, match=r"missing tensors \['intro.bias'\]"):
            load_nafnet(path)

    def test_other_files_are_clear_errors(self, saved, tmp_path):
        with pytest.raises(FileNotFoundError, match="does not exist"):
            load_nafnet(tmp_path / "absent.safetensors")
        garbage = tmp_path / "garbage.safetensors"
        garbage.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not a header")
        with pytest.raises(ValueError, match="garbage.safetensors is not a readable NAFNet"):
            load_nafnet(garbage)
        other = rewrite(saved[1], tmp_path / "srn.safetensors", {"format": "kernelaug-srn"})
        with pytest.raises(ValueError, match="not a NAFNet model .*'kernelaug-srn'"):
            load_nafnet(other)
        newer = rewrite(saved[1], tmp_path / "newer.safetensors", {"format_version": "2"})
        with pytest.raises(ValueError, match="upgrade kernelaug"):
            load_nafnet(newer)
        no_config = rewrite(saved[1], tmp_path / "noconfig.safetensors", drop=("config",))
        with pytest.raises(ValueError, match="lacks the metadata field 'config'"):
            load_nafnet(no_config)
        bad_json = rewrite(saved[1], tmp_path / "json.safetensors", {"config": "{width: 8"})
        with pytest.raises(ValueError, match="json.safetensors: metadata field 'config' is invalid"):
            load_nafnet(bad_json)
