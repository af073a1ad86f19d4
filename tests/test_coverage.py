"""The Table 1 protocol (kernelaug.tools.coverage, `kernelaug coverage` and `kernelaug make-kernels`)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from kernelaug.cli import main
from kernelaug.tools.coverage import blur_with_kernel, read_kernel, shake_kernel, write_kernel
from kernelaug.data.synthetic import make_pair


def test_kernels_round_trip_and_are_normalised(tmp_path):
    kernel = shake_kernel(np.random.default_rng(3), extent=12.0)
    assert kernel.ndim == 2 and kernel.shape[0] == kernel.shape[1] and kernel.shape[0] % 2 == 1
    assert kernel.shape[0] >= 7 and np.isclose(kernel.sum(), 1) and (kernel >= 0).all()
    back = read_kernel(write_kernel(tmp_path / "k.png", kernel))
    assert back.dtype == np.float32 and np.isclose(back.sum(), 1, atol=1e-5)
    np.testing.assert_allclose(back, kernel, atol=1e-4 * kernel.max() + 1e-7)
    # 8-bit colour kernels are read too (channels averaged)
    cv2.imwrite(str(tmp_path / "c.png"), np.dstack([np.eye(5, dtype=np.uint8) * 200] * 3))
    np.testing.assert_allclose(read_kernel(tmp_path / "c.png"), np.eye(5) / 5, atol=1e-6)


def test_bad_kernels_are_clear_errors(tmp_path):
    cv2.imwrite(str(tmp_path / "zero.png"), np.zeros((5, 5), np.uint8))
    with pytest.raises(ValueError, match="zero.png.*all zeros"):
        read_kernel(tmp_path / "zero.png")
    (tmp_path / "junk.png").write_bytes(b"junk")
    with pytest.raises(ValueError, match="junk.png"):
        read_kernel(tmp_path / "junk.png")
    cv2.imwrite(str(tmp_path / "photo.png"), np.ones((300, 300), np.uint8))
    with pytest.raises(ValueError, match="larger than"):
        read_kernel(tmp_path / "photo.png")


def test_blur_is_a_convolution_in_the_chosen_space():
    rng = np.random.default_rng(0)
    image = rng.uniform(0, 1, (32, 40, 3)).astype(np.float32)
    delta = np.zeros((5, 5), np.float32)
    delta[2, 2] = 1
    np.testing.assert_allclose(blur_with_kernel(image, delta, "display"), image, atol=1e-6)
    np.testing.assert_allclose(blur_with_kernel(image, delta, "linear"), image, atol=1e-5)
    shifted = np.zeros((5, 5), np.float32)
    shifted[3, 2] = 1  # a point of light lands one row lower: the image moves down
    np.testing.assert_allclose(blur_with_kernel(image, shifted, "display")[1:], image[:-1], atol=1e-6)
    even = np.zeros((4, 4), np.float32)
    even[1:3, 1:3] = 0.25  # even sides: centre at index 2 (zeros appended), i.e. taps at offsets -1 and 0
    box = np.full((2, 2), 0.25, np.float32)  # so each pixel averages itself and its lower-right neighbours
    expected = cv2.filter2D(image, -1, box, anchor=(0, 0), borderType=cv2.BORDER_REFLECT_101)
    np.testing.assert_allclose(blur_with_kernel(image, even, "display"), expected, atol=1e-6)
    # averaging in linear light keeps a bright/dark edge brighter than averaging display values
    edge = np.zeros((8, 8, 3), np.float32)
    edge[:, 4:] = 1
    box3 = np.full((1, 3), 1 / 3, np.float32)
    assert blur_with_kernel(edge, box3, "linear")[0, 3, 0] > blur_with_kernel(edge, box3, "display")[0, 3, 0] + 0.1
    with pytest.raises(ValueError, match="space"):
        blur_with_kernel(image, delta, "log")


def test_kernels_of_the_training_family_are_covered(tmp_path, capsys):
    assert main(["make-kernels", str(tmp_path / "kernels"), "--count", "2", "--seed", "4", "--extent", "8", "16"]) == 0
    assert sorted(p.name for p in (tmp_path / "kernels").iterdir()) == ["shake_00.png", "shake_01.png"]
    images = tmp_path / "images"
    images.mkdir()
    for index in (0, 1):
        sharp, _, _ = make_pair(2026, "test", index, size=256)  # sources the shipped model never saw
        cv2.imwrite(str(images / f"{index}.png"), sharp[..., ::-1])
    assert main(["coverage", "--model", "synth-small", "--kernels", str(tmp_path / "kernels"), "--images", str(images),
                 "--json", str(tmp_path / "c.json"), "--markdown", str(tmp_path / "c.md"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    result = json.loads((tmp_path / "c.json").read_text())
    assert result["space"] == "linear" and len(result["kernels"]) == 2 and result["images"] == ["0.png", "1.png"]
    for row in result["kernels"]:
        assert len(row["recon_psnr_per_image"]) == 2
        assert row["recon_psnr"] > row["blurry_psnr"] + 8, row  # well above the blurry-vs-sharp baseline
    table = (tmp_path / "c.md").read_text()
    assert "| shake_00 |" in table and "| shake_01 |" in table and table in out
    assert out.strip().splitlines()[-1].startswith("coverage: 2 kernels x 2 images")

    assert main(["coverage", "--kernels", str(tmp_path / "kernels"), "--images", str(images), "--space", "display",
                 "--limit", "1", "--json", str(tmp_path / "d.json"), "--no-progress"]) == 0
    display = json.loads((tmp_path / "d.json").read_text())
    assert display["space"] == "display" and display["images"] == ["0.png"]
    assert display["kernels"][0]["recon_psnr"] != result["kernels"][0]["recon_psnr_per_image"][0]


def test_cli_errors(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["coverage", "--kernels", str(tmp_path / "empty"), "--images", str(tmp_path / "empty")]) == 2
    assert "no kernel PNGs" in capsys.readouterr().err
