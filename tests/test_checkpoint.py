"""Models on disk: bit-exact round trip, metadata, and clear errors for bad files."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

import kernelaug as ka
from kernelaug.models.checkpoint import read_metadata
from kernelaug.cli import main


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    model = ka.build_model("psf-tiny")
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    path = ka.save_model(model, tmp_path / "m.safetensors", {"dataset": "unit-test", "steps": 3})
    return model, path


class TestRoundTrip:
    def test_weights_and_outputs_bit_exact(self, saved):
        model, path = saved
        loaded = ka.load_model(path)
        for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
            assert torch.equal(a, b), name
        sharp = torch.rand(1, 3, 128, 128)
        model.eval()
        with torch.no_grad():
            code = model.extract(sharp, sharp)
            assert torch.equal(model.apply(sharp, code), loaded.apply(sharp, loaded.extract(sharp, sharp)))
        assert loaded.sha256 == ka.model_sha256(model)

    def test_config_and_provenance_in_metadata(self, saved):
        model, path = saved
        config, provenance = read_metadata(path)
        assert config["arch"] == "psf" and config["kernel_dim"] == model.kernel_dim
        assert provenance == {"dataset": "unit-test", "steps": 3}
        assert ka.load_model(path).provenance["steps"] == 3

    def test_paper_architecture_round_trip(self, tmp_path):
        model = ka.build_model("tiny")
        loaded = ka.load_model(ka.save_model(model, tmp_path / "p.safetensors"))
        assert loaded.config == model.config

    def test_info_command(self, saved, capsys):
        _, path = saved
        assert main(["info", str(path)]) == 0
        out = capsys.readouterr().out
        assert '"dataset": "unit-test"' in out and "parameters" in out


class TestBadFiles:
    def test_missing_file(self, tmp_path):
        with pytest.raises(FileNotFoundError, match="does not exist"):
            ka.load_model(tmp_path / "nope.safetensors")

    def test_truncated_file(self, saved, tmp_path):
        _, path = saved
        data = path.read_bytes()
        bad = tmp_path / "truncated.safetensors"
        bad.write_bytes(data[: len(data) // 2])
        with pytest.raises(ValueError, match="truncated"):
            ka.load_model(bad)

    def test_not_safetensors(self, tmp_path):
        bad = tmp_path / "junk.safetensors"
        bad.write_bytes(b"this is not a model at all" * 10)
        with pytest.raises(ValueError, match="not a readable safetensors"):
            ka.load_model(bad)

    def test_foreign_safetensors(self, tmp_path):
        other = tmp_path / "other.safetensors"
        save_file({"w": torch.zeros(2)}, str(other))
        with pytest.raises(ValueError, match="not a kernelaug model"):
            ka.load_model(other)

    def test_weights_do_not_match_config(self, saved, tmp_path):
        model, _ = saved
        tensors = {k: v.contiguous() for k, v in model.state_dict().items()}
        config = read_metadata(saved[1])[0]
        config["kernel_dim"] += 1
        bad = tmp_path / "mismatch.safetensors"
        save_file(tensors, str(bad), metadata={"format": "kernelaug.model", "format_version": "1",
                                               "config": json.dumps(config), "provenance": "{}"})
        with pytest.raises(ValueError, match="shape"):
            ka.load_model(bad)

    def test_unknown_pretrained_name(self):
        with pytest.raises(ValueError, match="neither a file nor a pretrained model"):
            ka.load_model("no-such-model")

    def test_info_command_reports_error(self, tmp_path, capsys):
        assert main(["info", str(tmp_path / "missing.safetensors")]) == 2
        assert "does not exist" in capsys.readouterr().err
