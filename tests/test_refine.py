"""Code refinement (kernelaug.learn.refine): better codes than G's, the model untouched, clear errors."""

from __future__ import annotations

import h5py
import pytest
import torch

import kernelaug as ka
from kernelaug.cli import main
from kernelaug.learn.evaluate import evaluate
from kernelaug.learn.extract import extract_bank
from kernelaug.learn.refine import refine_codes
from kernelaug.tools.transfer import extract_pair_code

from conftest import tiny_model, write_pairs


def l1(model, sharp, blurry, code) -> float:
    with torch.no_grad():
        return (model.apply(sharp, code) - blurry).abs().mean().item()


@pytest.fixture(scope="module")
def pair():
    """A pair blurred by the tiny model itself with a known code, which G does not find exactly."""
    model = tiny_model()
    generator = torch.Generator().manual_seed(0)
    sharp = torch.rand(2, 3, 64, 64, generator=generator)
    truth = torch.randn(2, *model.code_shape(64, 64), generator=generator)
    with torch.no_grad():
        blurry = model.apply(sharp, truth).clamp(0, 1)
    return model, sharp, blurry


class TestRefineCodes:
    def test_lowers_the_error_of_gs_code(self, pair):
        model, sharp, blurry = pair
        start = model.extract(sharp, blurry).detach()
        refined = refine_codes(model, sharp, blurry, 30)
        assert refined.shape == start.shape and not refined.requires_grad
        assert l1(model, sharp, blurry, refined) < 0.9 * l1(model, sharp, blurry, start)

    def test_model_weights_and_grads_untouched(self, pair):
        model, sharp, blurry = pair
        before = {k: v.clone() for k, v in model.state_dict().items()}
        model.train()
        refine_codes(model, sharp, blurry, 3)
        assert model.training, "the model's mode is restored"
        model.eval()
        assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
        assert all(p.grad is None for p in model.parameters())

    def test_zero_steps_is_gs_code(self, pair):
        model, sharp, blurry = pair
        assert torch.equal(refine_codes(model, sharp, blurry, 0), model.extract(sharp, blurry).detach())

    def test_starts_from_a_given_code(self, pair):
        model, sharp, blurry = pair
        start = torch.zeros(2, *model.code_shape(64, 64))
        assert torch.equal(refine_codes(model, sharp, blurry, 0, code=start), start)
        assert l1(model, sharp, blurry, refine_codes(model, sharp, blurry, 10, code=start)) < \
            l1(model, sharp, blurry, start)

    def test_inference_tensors_are_accepted(self, pair):
        model, sharp, blurry = pair
        with torch.inference_mode():
            x, y = sharp.clone(), blurry.clone()
        assert refine_codes(model, x, y, 2).shape == (2, *model.code_shape(64, 64))

    @pytest.mark.parametrize("steps", [-1, 1.5, True, "3"])
    def test_bad_steps(self, pair, steps):
        model, sharp, blurry = pair
        with pytest.raises(ValueError, match="refinement steps"):
            refine_codes(model, sharp, blurry, steps)

    @pytest.mark.parametrize("lr", [0, -0.1, float("nan"), float("inf")])
    def test_bad_lr(self, pair, lr):
        model, sharp, blurry = pair
        with pytest.raises(ValueError, match="learning rate"):
            refine_codes(model, sharp, blurry, 1, lr=lr)

    def test_bad_shapes(self, pair):
        model, sharp, blurry = pair
        with pytest.raises(ValueError, match="shapes differ"):
            refine_codes(model, sharp, blurry[:1], 1)
        with pytest.raises(ValueError, match="code shape"):
            refine_codes(model, sharp, blurry, 1, code=torch.zeros(2, 3, 1, 1))

    def test_inside_inference_mode_is_a_clear_error(self, pair):
        model, sharp, blurry = pair
        with torch.inference_mode(), pytest.raises(RuntimeError, match="outside torch.inference_mode"):
            refine_codes(model, sharp, blurry, 1)

    def test_zero_steps_work_inside_inference_mode(self, pair):
        """Every caller goes through refine_codes, also with 0 steps under inference mode."""
        model, sharp, blurry = pair
        with torch.inference_mode():
            assert torch.equal(refine_codes(model, sharp, blurry, 0), model.extract(sharp, blurry))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_pairs(tmp_path_factory.mktemp("refine_pairs"), 4, size=64, length=7)


class TestRefineInCommands:
    """evaluate, extract and transfer take ``refine`` and do better with it."""

    def test_evaluate(self, data):
        from kernelaug.data.pairs import find_pairs
        from kernelaug.learn.evaluate import load_crops

        model = tiny_model()
        sharps, blurries = load_crops(find_pairs(data), 64, model.cell)
        plain, refined = evaluate(model, sharps, blurries), evaluate(model, sharps, blurries, refine=15)
        assert plain["refine_steps"] == 0 and refined["refine_steps"] == 15
        assert refined["recon_psnr"] > plain["recon_psnr"]
        assert refined["blurry_psnr"] == plain["blurry_psnr"]

    def test_extract_records_the_steps(self, data, tmp_path):
        model = tiny_model()
        settings = dict(crop=64, batch_size=2, progress=False)
        plain = extract_bank(model, data, tmp_path / "plain.h5", **settings)
        refined = extract_bank(model, data, tmp_path / "refined.h5", refine=10, **settings)
        assert refined["mean_psnr"] > plain["mean_psnr"]
        with h5py.File(tmp_path / "refined.h5") as handle:
            assert handle.attrs["refine_steps"] == 10
        with pytest.raises(ValueError, match="refine"):
            extract_bank(model, data, tmp_path / "bad.h5", refine=-2, **settings)

    def test_transfer_pair_code(self, pair):
        model, sharp, blurry = pair
        plain = extract_pair_code(model, sharp[:1], blurry[:1])
        refined = extract_pair_code(model, sharp[:1], blurry[:1], refine=10)
        assert l1(model, sharp[:1], blurry[:1], refined) < l1(model, sharp[:1], blurry[:1], plain)

    def test_cli_flags(self, data, tmp_path, capsys):
        model_file = ka.save_model(tiny_model(), tmp_path / "tiny.safetensors")
        main(["evaluate", "--model", str(model_file), "--data", str(data), "--crop", "64", "--refine", "5",
              "--json", str(tmp_path / "eval.json")])
        assert "reconstruction" in capsys.readouterr().out
        main(["extract", "--model", str(model_file), "--data", str(data), "--out", str(tmp_path / "bank.h5"),
              "--crop", "64", "--refine", "3", "--no-progress"])
        assert ka.KernelBank(tmp_path / "bank.h5").attrs["refine_steps"] == 3
        with pytest.raises(SystemExit):
            main(["evaluate", "--model", str(model_file), "--data", str(data), "--refine", "-1"])
