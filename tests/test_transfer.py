"""Blur transfer: extract the code of a pair, apply it to any image (kernelaug.tools.transfer, `kernelaug transfer`)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

import kernelaug as ka
from kernelaug.cli import main
from kernelaug.data.pairs import read_image
from kernelaug.metrics import psnr
from kernelaug.data.synthetic import make_pair
from kernelaug.tools.transfer import cell_crop, extract_pair_code, to_tensor, transfer_blur


@pytest.fixture(scope="module")
def model():
    return ka.load_model("synth-small")


@pytest.fixture(scope="module")
def shake_pair():
    """A held-out pair of the shipped model's own training family (camera shake), float HWC."""
    sharp, blurry, _ = make_pair(2026, "test", 3, size=256)
    return sharp.astype(np.float32) / 255, blurry.astype(np.float32) / 255


def _write(path, image):
    cv2.imwrite(str(path), (image * 255 + 0.5).astype(np.uint8)[..., ::-1])
    return path


def test_transfer_back_onto_the_source_reproduces_its_blur(model, shake_pair):
    sharp, blurry = (to_tensor(x) for x in shake_pair)
    code = extract_pair_code(model, sharp, blurry)
    assert code.shape == (1, model.kernel_dim, 4, 4)
    reblurred = transfer_blur(model, code, sharp)
    recon, baseline = float(psnr(reblurred, blurry)), float(psnr(sharp, blurry))
    assert recon > baseline + 5, (recon, baseline)
    # the code carries this pair's blur, not just "some blur": another pair's code does worse
    other_sharp, other_blurry, _ = make_pair(2026, "test", 4, size=256)
    other = extract_pair_code(model, to_tensor(other_sharp.astype(np.float32) / 255),
                              to_tensor(other_blurry.astype(np.float32) / 255))
    assert float(psnr(transfer_blur(model, other, sharp), blurry)) < recon - 2


def test_any_size_pair_and_target(model, shake_pair):
    sharp, blurry = shake_pair
    # a pair that is not a multiple of the cell: its centred cell-aligned crop is encoded
    code = extract_pair_code(model, to_tensor(sharp[:200, :250]), to_tensor(blurry[:200, :250]))
    assert code.shape == (1, model.kernel_dim, 3, 3)
    # a pair smaller than one cell is padded to it
    assert extract_pair_code(model, to_tensor(sharp[:40, :50]), to_tensor(blurry[:40, :50])).shape[-2:] == (1, 1)
    for height, width in ((37, 301), (150, 100), (300, 520)):
        target = to_tensor(np.ascontiguousarray(sharp[np.arange(height) % 256][:, np.arange(width) % 256]))
        out = transfer_blur(model, code, target)
        assert out.shape == target.shape and out.dtype == torch.float32
        assert 0 <= float(out.min()) and float(out.max()) <= 1
        assert not torch.equal(out, target)


def test_cell_crop():
    assert cell_crop(256, 256, 64) == (0, 0, 256, 256)
    assert cell_crop(200, 250, 64) == (4, 29, 192, 192)
    assert cell_crop(40, 300, 64) == (0, 22, 40, 256)


def test_pair_shape_mismatch_is_a_clear_error(model):
    with pytest.raises(ValueError, match="differ in shape"):
        extract_pair_code(model, torch.zeros(1, 3, 64, 64), torch.zeros(1, 3, 64, 128))


def test_cli_from_pair_and_from_bank(tmp_path, model, shake_pair, capsys):
    sharp, blurry = shake_pair
    a, b = _write(tmp_path / "a.png", sharp), _write(tmp_path / "b.png", blurry)
    onto = _write(tmp_path / "c.png", np.ascontiguousarray(sharp[:150, :230]))
    assert main(["transfer", "--model", "synth-small", "--sharp", str(a), "--blurry", str(b), "--onto", str(a),
                 "--out", str(tmp_path / "d.png"), "--save-code", str(tmp_path / "code.npy")]) == 0
    assert "blurred" in capsys.readouterr().out
    # D = F(A, G(A, B)) as written matches the library call (8-bit rounding apart) and is close to B
    expected = transfer_blur(model, extract_pair_code(model, to_tensor(read_image(a)), to_tensor(read_image(b))),
                             to_tensor(read_image(a)))
    written = to_tensor(read_image(tmp_path / "d.png"))
    assert float((written - expected).abs().max()) <= 1 / 255 + 1e-6
    assert float(psnr(written, to_tensor(read_image(b)))) > float(psnr(to_tensor(read_image(a)), to_tensor(read_image(b)))) + 5
    assert np.load(tmp_path / "code.npy").shape == (model.kernel_dim, 4, 4)

    assert main(["transfer", "--bank", "synth-small", "--index", "7", "--onto", str(onto), "--out",
                 str(tmp_path / "e.png")]) == 0
    bank = ka.KernelBank(ka.pretrained.bank_path("synth-small"))
    expected = transfer_blur(model, bank[7], to_tensor(read_image(onto)))
    written = to_tensor(read_image(tmp_path / "e.png"))
    assert written.shape == (1, 3, 150, 230)
    assert float((written - expected).abs().max()) <= 1 / 255 + 1e-6


def test_cli_needs_exactly_one_code_source(tmp_path, shake_pair, capsys):
    a = _write(tmp_path / "a.png", shake_pair[0])
    assert main(["transfer", "--sharp", str(a), "--onto", str(a), "--out", str(tmp_path / "d.png")]) == 2
    assert "--blurry" in capsys.readouterr().err
    assert main(["transfer", "--onto", str(a), "--out", str(tmp_path / "d.png")]) == 2
    assert "either" in capsys.readouterr().err
    assert main(["transfer", "--bank", "synth-small", "--index", "1800", "--onto", str(a), "--out",
                 str(tmp_path / "d.png")]) == 2
    assert "out of range" in capsys.readouterr().err
    assert not (tmp_path / "d.png").exists()
