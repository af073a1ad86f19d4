"""Offline dataset augmentation (kernelaug.tools.augment, `kernelaug augment`): layout, manifest, seeds, resuming."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import kernelaug as ka
from kernelaug.tools import augment as KA
from kernelaug import functional as KF
from kernelaug.tools.augment import AugmentSettings, augment_folder, sequence_names
from kernelaug.cli import main
from kernelaug.data.pairs import find_pairs, read_image
from transform_checker import textured, tiny_model, write_bank


@pytest.fixture(scope="module")
def model():
    return tiny_model()


@pytest.fixture(scope="module")
def files(tmp_path_factory, model):
    root = tmp_path_factory.mktemp("augment")
    return ka.save_model(model, root / "tiny.safetensors"), write_bank(root / "bank.h5", model)


@pytest.fixture(scope="module")
def bank(files):
    return ka.KernelBank(files[1])


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Four sharp images of different sizes, one in a subfolder, one a JPEG."""
    root = tmp_path_factory.mktemp("sharp")
    rng = np.random.default_rng(0)
    (root / "sub").mkdir()
    for name, (h, w) in (("a.png", (64, 64)), ("b.jpg", (70, 90)), ("sub/c.png", (128, 64)), ("d.png", (50, 130))):
        cv2.imwrite(str(root / name), textured(rng, h, w)[..., ::-1])
    return root


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _manifest(root: Path) -> list[dict]:
    return [json.loads(line) for line in (root / "manifest.jsonl").read_text().splitlines()]


SETTINGS = AugmentSettings(per_image=3, mix=0.4, seed=5)


def test_layout_manifest_and_pairs(model, bank, images, tmp_path):
    out = tmp_path / "out"
    summary = augment_folder(model, bank, images, out, SETTINGS, progress=False)
    assert summary["outputs"] == summary["written"] == 12 and summary["skipped"] == 0
    assert summary["learned"] + summary["parametric"] == 12 and summary["learned"] > 0 and summary["parametric"] > 0
    pairs = find_pairs(out, split="train")  # GoPro layout, read by the package's own loader
    assert len(pairs) == 12
    assert {p.pair_id.split("/")[1] for p in pairs} == {"a", "b", "sub__c", "d"}
    rows = _manifest(out)
    assert [(r["image_index"], r["k"]) for r in rows] == [(i, k) for i in range(4) for k in range(3)]
    for row in rows:
        sharp = read_image(out / row["sharp"])
        blurry = read_image(out / row["blur"])
        source = read_image(images / row["image"])
        assert sharp.shape == blurry.shape == source.shape
        assert np.abs(sharp - source).max() <= 1 / 255 + 1e-6  # 8-bit copy (the JPEG decodes the same)
        assert not np.array_equal(sharp, blurry)
        # the manifest says exactly which blur made the file: re-apply it
        batch = torch.from_numpy(sharp).permute(2, 0, 1)[None]
        if row["kind"] == "learned":
            assert row["code"]["origin"] == "bank"
            assert row["code"]["bank_pair_id"] == f"pair{row['code']['bank_index']}"
            expected = KF.learned_blur(batch, bank[row["code"]["bank_index"]], model)[0].permute(1, 2, 0).numpy()
        else:
            expected = KF.motion_blur(sharp, row["motion"]["length"], row["motion"]["angle"])
        assert np.abs(expected - blurry).max() <= 1 / 255 + 1e-5, row


def test_same_seed_same_files_other_seed_other_files(model, bank, images, tmp_path):
    augment_folder(model, bank, images, tmp_path / "one", SETTINGS, progress=False)
    augment_folder(model, bank, images, tmp_path / "two", SETTINGS, progress=False)
    one, two = _tree(tmp_path / "one"), _tree(tmp_path / "two")
    assert one == two
    other = AugmentSettings(per_image=3, mix=0.4, seed=6)
    augment_folder(model, bank, images, tmp_path / "three", other, progress=False)
    three = _tree(tmp_path / "three")
    blurs = [name for name in one if "/blur/" in name]
    assert sum(one[n] != three[n] for n in blurs) >= len(blurs) // 2


def test_interrupted_run_resumes_to_the_same_files(model, bank, images, tmp_path, monkeypatch):
    reference = tmp_path / "reference"
    augment_folder(model, bank, images, reference, SETTINGS, progress=False)

    out = tmp_path / "resumed"
    real_write, calls = KA.write_png, []

    def crash_on_tenth_write(path, rgb):
        calls.append(path)
        if len(calls) == 10:
            raise KeyboardInterrupt  # killed between the sharp and blurred files of output (1, 1)
        real_write(path, rgb)

    monkeypatch.setattr(KA, "write_png", crash_on_tenth_write)
    with pytest.raises(KeyboardInterrupt):
        augment_folder(model, bank, images, out, SETTINGS, progress=False)
    monkeypatch.setattr(KA, "write_png", real_write)
    assert not (out / "manifest.jsonl").exists()
    assert (out / "train/b/sharp/000001.png").exists() and not (out / "train/b/blur/000001.png").exists()
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]

    summary = augment_folder(model, bank, images, out, SETTINGS, progress=False)
    assert summary["skipped"] == 4 and summary["written"] == 8  # image 0, and output 0 of image 1; (1, 1) redone
    assert _tree(out) == _tree(reference)
    again = augment_folder(model, bank, images, out, SETTINGS, progress=False)
    assert again["written"] == 0 and again["skipped"] == 12
    assert _tree(out) == _tree(reference)


def test_mix_extremes_and_other_code_modes(model, bank, images, tmp_path):
    learned = augment_folder(model, bank, images, tmp_path / "l", AugmentSettings(per_image=2, mix=0.0), progress=False)
    assert learned["parametric"] == 0
    parametric = augment_folder(model, bank, images, tmp_path / "p", AugmentSettings(per_image=2, mix=1.0), progress=False)
    assert parametric["learned"] == 0
    for mode in ("mix", "gaussian"):
        augment_folder(model, bank, images, tmp_path / mode, AugmentSettings(per_image=2, mode=mode), progress=False)
        rows = _manifest(tmp_path / mode)
        assert {r["code"]["origin"] for r in rows} == {mode}
    assert all(0 <= r["code"]["mix_weight"] <= 1 and "mix_pair_id" in r["code"] for r in _manifest(tmp_path / "mix"))


def test_refuses_to_mix_two_datasets(model, bank, images, tmp_path):
    out = tmp_path / "out"
    augment_folder(model, bank, images, out, SETTINGS, progress=False)
    before = _tree(out)
    with pytest.raises(ValueError, match="different settings"):
        augment_folder(model, bank, images, out, AugmentSettings(per_image=3, mix=0.4, seed=6), progress=False)
    assert _tree(out) == before
    grown = tmp_path / "grown"
    shutil.copytree(images, grown)
    augment_folder(model, bank, grown, tmp_path / "grown_out", SETTINGS, progress=False)
    shutil.copyfile(grown / "a.png", grown / "a2.png")  # would shift the (image, k) keys of later images
    with pytest.raises(ValueError, match="different sources"):
        augment_folder(model, bank, grown, tmp_path / "grown_out", SETTINGS, progress=False)
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty"):
        augment_folder(model, bank, images, tmp_path / "foreign", SETTINGS, progress=False)


def test_bad_settings_and_inputs(model, bank, tmp_path):
    for bad in ({"per_image": 0}, {"mix": 1.5}, {"seed": -1}, {"mode": "novel"}, {"strength": (0.9, 0.1)},
                {"motion_length": (0, 3)}, {"split": "../x"}):
        with pytest.raises(ValueError):
            AugmentSettings(**bad)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no images"):
        augment_folder(model, bank, tmp_path / "empty", tmp_path / "out", SETTINGS, progress=False)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "x.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="x.png"):
        augment_folder(model, bank, tmp_path / "broken", tmp_path / "out2", SETTINGS, progress=False)


def test_sequence_names_are_unique():
    names = sequence_names(["a.png", "a.jpg", "s/b.png", "c d.png"])
    assert names[2] == "s__b" and names[0].startswith("a-") and names[1].startswith("a-") and names[3].startswith("c_d-")
    assert len(set(names)) == 4


def test_cli(files, images, tmp_path, capsys):
    model_path, bank_path = files
    args = ["augment", "--model", str(model_path), "--bank", str(bank_path), "--images", str(images),
            "--out", str(tmp_path / "out"), "--per-image", "2", "--mix", "0.5", "--seed", "1", "--no-progress"]
    assert main(args) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("augment: 8 pairs from 4 images") and "wrote 8" in line
    assert main(args) == 0
    assert "wrote 0, skipped 8" in capsys.readouterr().out
    assert main(args[:-1] + ["--strength", "0.2", "0.5", "0.9", "--no-progress"]) == 2
    assert "--strength" in capsys.readouterr().err
