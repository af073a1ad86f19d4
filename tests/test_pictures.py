"""Pictures of the kernel space (kernelaug.tools.pictures, `kernelaug show-psf / show-bank / sample-grid`)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

import kernelaug as ka
from kernelaug.cli import main
from kernelaug.tools.pictures import (bank_map, bank_pca, code_psfs, point_light_psfs, psf_mosaic, psf_support,
                                source_groups, spread_points)
from transform_checker import textured, tiny_model


def _read(path) -> np.ndarray:
    image = cv2.imread(str(path))
    assert image is not None, f"{path} is not a readable image"
    return image


def _not_blank(image: np.ndarray) -> bool:
    return image.size > 0 and float(image.std()) > 5


def test_psf_arch_pictures_use_the_decoded_psfs():
    model = tiny_model()
    code = torch.randn(1, model.kernel_dim, 2, 3, generator=torch.Generator().manual_seed(0))
    psfs = code_psfs(model, code)
    assert psfs.shape == (2, 3, 9, 9)
    with torch.no_grad():
        np.testing.assert_allclose(psfs, model.psf(code)[0].numpy(), atol=1e-6)
    assert np.allclose(psfs.sum((-1, -2)), 1, atol=1e-4)
    mosaic = psf_mosaic(psfs, scale=4, gap=2)
    assert mosaic.shape == (2 * (36 + 2) + 2, 3 * (36 + 2) + 2, 3) and _not_blank(mosaic)


def test_point_lights_of_an_identity_operator_are_deltas():
    model = ka.build_model("psf-tiny").eval()  # fresh: every code decodes to a delta, F is (nearly) the identity
    psfs = point_light_psfs(model, torch.zeros(1, model.kernel_dim, 2, 2), size=15)
    assert psfs.shape == (2, 2, 15, 15)
    assert np.allclose(psfs.sum((-1, -2)), 1, atol=1e-4)
    assert (psfs[..., 7, 7] > 0.95).all()  # the light's own pixel, at the window's centre


def test_paper_arch_psfs_are_point_light_responses():
    torch.manual_seed(0)
    model = ka.build_model("tiny").eval()
    code = torch.randn(1, model.kernel_dim, 1, 2)
    psfs = code_psfs(model, code, size=21)
    assert psfs.shape == (1, 2, 21, 21)
    assert (psfs >= 0).all() and np.allclose(psfs.sum((-1, -2)), 1, atol=1e-4)
    with pytest.raises(ValueError, match="odd"):
        point_light_psfs(model, code, size=20)


def test_pca_finds_the_dominant_directions():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 500))
    directions = np.linalg.qr(rng.normal(size=(24, 2)))[0].T
    codes = (10 * a[:, None] * directions[0] + 3 * b[:, None] * directions[1]).reshape(500, 6, 2, 2)
    codes += 0.01 * rng.normal(size=codes.shape)
    coords, ratio = bank_pca(codes)
    assert coords.shape == (500, 2)
    assert ratio[0] > 0.85 and ratio.sum() > 0.999
    assert abs(np.corrcoef(coords[:, 0], a)[0, 1]) > 0.99 and abs(np.corrcoef(coords[:, 1], b)[0, 1]) > 0.99


def test_groups_spread_points_and_support():
    assert source_groups(["train/shake_0012/000034", "train/object_0001/000003", "pair7"]) == \
        ["train/shake", "train/object", "pair"]
    points = np.array([[0, 0], [0.1, 0], [10, 0], [0, 10], [5, 5]], float)
    chosen = spread_points(points, 3)
    assert len(set(chosen.tolist())) == 3 and {2, 3} <= set(chosen.tolist())
    psf = np.zeros((31, 31))
    psf[15, 14:17] = 1
    assert psf_support(psf).shape == (9, 9)
    psf[15, 2] = 1
    assert psf_support(psf).shape == (27, 27)


def test_bank_map_draws_every_group():
    rng = np.random.default_rng(0)
    codes = rng.normal(size=(60, 4, 1, 1))
    labels = ["x"] * 30 + ["y"] * 30
    picture = bank_map(codes, labels, {0: np.eye(9)}, size=(500, 400))
    assert picture.shape == (400, 500, 3) and _not_blank(picture)
    with pytest.raises(ValueError, match="labels"):
        bank_map(codes, labels[:-1])


@pytest.fixture(scope="module")
def sharp_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("pictures")
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate(((96, 128), (128, 96))):
        cv2.imwrite(str(root / f"im{i}.png"), textured(rng, h, w)[..., ::-1])
    return root


def test_commands_write_pictures(tmp_path, sharp_dir, capsys):
    a, b = sharp_dir / "im0.png", tmp_path / "b.png"
    cv2.imwrite(str(b), cv2.GaussianBlur(cv2.imread(str(a)), (9, 9), 3))
    # a pretrained --bank without --model brings its own model (the default model is another one)
    assert main(["show-psf", "--bank", "synth-small", "--index", "3", "--out", str(tmp_path / "psf.png")]) == 0
    psf = _read(tmp_path / "psf.png")
    assert psf.shape == (4 * (31 * 4 + 2) + 2,) * 2 + (3,) and _not_blank(psf)
    assert main(["show-psf", "--pair", str(a), str(b), "--out", str(tmp_path / "pair.png"), "--scale", "2"]) == 0
    assert _not_blank(_read(tmp_path / "pair.png"))
    assert main(["show-bank", "--out", str(tmp_path / "bank.png"), "--thumbnails", "3"]) == 0
    assert _not_blank(_read(tmp_path / "bank.png"))
    assert main(["show-bank", "--bank", "synth-small", "--out", str(tmp_path / "some.png"), "--thumbnails", "0",
                 "--max-codes", "100"]) == 0
    assert "mapped 100 of 1800 codes" in capsys.readouterr().out
    assert main(["sample-grid", "--images", str(sharp_dir), "--out", str(tmp_path / "grid.png"), "--size", "64",
                 "--learned", "2", "--parametric", "1"]) == 0
    grid = _read(tmp_path / "grid.png")
    assert grid.shape == (2 * 64, 4 * 64, 3) and _not_blank(grid)
    # the learned columns differ from the sharp column
    assert np.abs(grid[:, 64:128].astype(int) - grid[:, :64].astype(int)).mean() > 1
    assert "->" in capsys.readouterr().out


def test_show_psf_for_a_paper_model_file(tmp_path, sharp_dir):
    torch.manual_seed(0)
    path = ka.save_model(ka.build_model("tiny").eval(), tmp_path / "paper.safetensors")
    a = sharp_dir / "im1.png"
    assert main(["show-psf", "--model", str(path), "--pair", str(a), str(a), "--out", str(tmp_path / "p.png")]) == 0
    assert _read(tmp_path / "p.png").shape[:2] == (31 * 4 + 4, 31 * 4 + 4)


def test_show_psf_needs_one_code_source(capsys, tmp_path):
    assert main(["show-psf", "--out", str(tmp_path / "x.png")]) == 2
    assert "either" in capsys.readouterr().err


def test_manifest_sources(tmp_path):
    from kernelaug.tools.pictures import manifest_sources

    path = tmp_path / "manifest.jsonl"
    path.write_text('{"split": "train", "sequence": "shake_0000", "frame": "000001.png", "source": "coins"}\n\n')
    assert manifest_sources(path) == {"train/shake_0000/000001": "coins"}
    path.write_text('{"split": "train"}\n')
    with pytest.raises(ValueError, match="line 1"):
        manifest_sources(path)
