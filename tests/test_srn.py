"""SRN-Deblur: the network, its training and storage, and the augmentation benchmark."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from kernelaug.cli import main
from kernelaug.deblurrers.srn import SRNConfig, SRNDeblur, multiscale_loss
from kernelaug.deblurrers.training import PairArrays, SRNTraining, evaluate_srn, load_srn, save_srn, to_tensor, train_srn

TINY = SRNConfig(widths=(4, 8, 8), blocks=1)


def textured_pairs(count: int, size: int, seed: int = 0) -> PairArrays:
    """Smooth random images and a horizontal box blur of them (a blur SRN can learn to undo)."""
    rng = np.random.default_rng(seed)
    import cv2

    sharp = np.stack([cv2.resize(rng.uniform(0, 255, (size // 4, size // 4, 3)).astype(np.float32), (size, size),
                                 interpolation=cv2.INTER_NEAREST) for _ in range(count)])
    blurry = np.stack([cv2.blur(image, (7, 1), borderType=cv2.BORDER_REFLECT) for image in sharp])
    return PairArrays(sharp.round().astype(np.uint8), blurry.round().astype(np.uint8))


class TestNetwork:
    @pytest.mark.parametrize("size", [(32, 32), (64, 48), (36, 52), (128, 128)])
    def test_one_output_per_scale_coarse_to_fine(self, size):
        height, width = size
        outputs = SRNDeblur(TINY)(torch.rand(2, 3, height, width))
        assert [tuple(o.shape) for o in outputs] == [(2, 3, round(height / 4), round(width / 4)),
                                                      (2, 3, height // 2, width // 2), (2, 3, height, width)]

    def test_any_size_even_odd(self):
        assert SRNDeblur(TINY)(torch.rand(1, 3, 23, 37))[-1].shape == (1, 3, 23, 37)

    def test_paper_sizes_by_default(self):
        model = SRNDeblur()
        assert model.config.widths == (32, 64, 128) and model.config.scales == 3
        assert model.enc1[0].kernel_size == (5, 5) and model.lstm.gates.kernel_size == (3, 3)

    def test_deblur_is_clamped_and_keeps_shape(self):
        out = SRNDeblur(TINY).deblur(torch.rand(1, 3, 40, 40))
        assert out.shape == (1, 3, 40, 40) and out.min() >= 0 and out.max() <= 1

    @pytest.mark.parametrize("bad, message", [
        (torch.rand(3, 32, 32), r"\(B, 3, H, W\)"),
        (torch.rand(1, 4, 32, 32), r"\(B, 3, H, W\)"),
        (torch.zeros(1, 3, 32, 32, dtype=torch.uint8), "float"),
        (torch.rand(1, 3, 2, 32), "at least 4x4"),
    ])
    def test_bad_input_is_a_clear_error(self, bad, message):
        with pytest.raises(ValueError, match=message):
            SRNDeblur(TINY)(bad)

    def test_config_validation(self):
        with pytest.raises(ValueError, match="widths"):
            SRNConfig(widths=(4, 8))
        with pytest.raises(ValueError, match="unknown SRN config"):
            SRNConfig.from_dict({"width": 3})


class TestPairArrays:
    def test_batch_crops_and_flips_stay_aligned(self):
        pairs = textured_pairs(3, 32)
        pairs = PairArrays(pairs.sharp, 255 - pairs.sharp)
        sharp, blurry = pairs.batch(np.random.default_rng(0), 16, 20)
        assert sharp.shape == (16, 3, 20, 20)
        torch.testing.assert_close(blurry, 1 - sharp)

    def test_seeded_batches_repeat(self):
        pairs = textured_pairs(3, 32)
        a = pairs.batch(np.random.default_rng(5), 4, 16)[0]
        b = pairs.batch(np.random.default_rng(5), 4, 16)[0]
        assert torch.equal(a, b)

    def test_bad_arrays_are_clear_errors(self):
        pairs = textured_pairs(2, 16)
        with pytest.raises(ValueError, match="uint8"):
            PairArrays(pairs.sharp.astype(np.float32), pairs.blurry)
        with pytest.raises(ValueError, match="shapes differ"):
            PairArrays(pairs.sharp, pairs.blurry[:1])
        with pytest.raises(ValueError, match="larger than the images"):
            pairs.batch(np.random.default_rng(0), 1, 32)


class TestTraining:
    def test_a_few_steps_reduce_the_loss(self):
        torch.set_num_threads(1)
        pairs = textured_pairs(4, 32)
        sharp, blurry = to_tensor(pairs.sharp), to_tensor(pairs.blurry)
        torch.manual_seed(0)
        before = multiscale_loss(SRNDeblur(TINY)(blurry), sharp).item()
        model, summary = train_srn(pairs, TINY, SRNTraining(steps=60, batch_size=4, crop=32, lr=2e-3), progress=False)
        with torch.no_grad():
            after = multiscale_loss(model(blurry), sharp).item()
        assert after < 0.85 * before
        assert len(summary["loss_history"]) == 2  # one mean per 50 steps, then the remainder

    def test_seeded_training_repeats(self):
        pairs = textured_pairs(2, 16)
        training = SRNTraining(steps=3, batch_size=2, crop=16, seed=3)
        a, _ = train_srn(pairs, TINY, training, progress=False)
        b, _ = train_srn(pairs, TINY, training, progress=False)
        for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
            assert torch.equal(x, y), name

    def test_evaluate_reports_psnr_and_ssim_beside_the_input(self):
        pairs = textured_pairs(2, 32)
        result = evaluate_srn(SRNDeblur(TINY), pairs, keep=1)
        assert result["pairs"] == 2 and len(result["outputs"]) == 1
        assert 0 < result["blurry_ssim"] <= 1 and np.isfinite(result["psnr"])


class TestStorage:
    def test_round_trip(self, tmp_path):
        model = SRNDeblur(TINY)
        save_srn(model, tmp_path / "srn.safetensors", provenance={"steps": 3})
        loaded = load_srn(tmp_path / "srn.safetensors")
        assert loaded.config == TINY and loaded.provenance == {"steps": 3}
        x = torch.rand(1, 3, 32, 32)
        torch.testing.assert_close(loaded.deblur(x), model.eval().deblur(x))

    def test_other_files_are_clear_errors(self, tmp_path):
        with pytest.raises(FileNotFoundError):
            load_srn(tmp_path / "missing.safetensors")
        (tmp_path / "junk.safetensors").write_bytes(b"not a model")
        with pytest.raises(ValueError, match="not a readable SRN"):
            load_srn(tmp_path / "junk.safetensors")
        from kernelaug import build_model, save_model

        save_model(build_model("tiny"), tmp_path / "blur.safetensors")
        with pytest.raises(ValueError, match="not an SRN-Deblur model"):
            load_srn(tmp_path / "blur.safetensors")


class TestCommands:
    def test_srn_train_then_eval(self, pair_root, tmp_path, capsys):
        out = tmp_path / "srn.safetensors"
        assert main(["srn", "train", "--data", str(pair_root), "--out", str(out), "--widths", "4", "8", "8",
                     "--blocks", "1", "--steps", "2", "--batch-size", "2", "--crop", "32"]) == 0
        assert main(["srn", "eval", "--model", str(out), "--data", str(pair_root), "--json",
                     str(tmp_path / "eval.json")]) == 0
        result = json.loads((tmp_path / "eval.json").read_text())
        assert result["pairs"] == 4 and np.isfinite(result["psnr"])
        assert "SRN-Deblur" in capsys.readouterr().out

    def test_eval_of_a_missing_model_is_a_clear_error(self, pair_root, tmp_path, capsys):
        assert main(["srn", "eval", "--model", str(tmp_path / "nope.safetensors"), "--data", str(pair_root)]) == 2
        assert "does not exist" in capsys.readouterr().err
