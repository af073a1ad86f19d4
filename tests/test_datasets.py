"""Tests for kernelaug.data.pairs: discovery, reading, aligned crops, splits."""

from __future__ import annotations

import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kernelaug.data.pairs import (
    LAYOUTS,
    Pair,
    PairedDataset,
    detect_layout,
    find_pairs,
    read_image,
    read_pair,
    split_pairs,
)

H, W = 40, 48


def noise(seed: int, h: int = H, w: int = W, channels: int = 3, dtype=np.uint8) -> np.ndarray:
    """Random image; random content makes any misalignment or wrong orientation visible."""
    top = np.iinfo(dtype).max
    rng = np.random.default_rng(seed)
    return rng.integers(0, top, (h, w, channels), dtype=dtype, endpoint=True)


def write(path: Path, image: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image), path
    return path


def write_pair(root: Path, blur_rel: str, sharp_rel: str | None = None, seed: int = 0, **kw):
    """Write sharp = noise, blurry = 255 - sharp (a pixelwise function of it)."""
    sharp = noise(seed, **kw)
    write(root / (sharp_rel or blur_rel.replace("blur", "sharp")), sharp)
    write(root / blur_rel, 255 - sharp)


@pytest.fixture
def gopro(tmp_path: Path) -> Path:
    root = tmp_path / "GOPRO_Large"
    for i, (split, seq, frame) in enumerate(
        [
            ("train", "GOPR0372_07_00", "000047"),
            ("train", "GOPR0372_07_00", "000048"),
            ("train", "GOPR0374_11_00", "000001"),
            ("test", "GOPR0384_11_00", "000001"),
        ]
    ):
        write_pair(root, f"{split}/{seq}/blur/{frame}.png", seed=i)
        write(root / f"{split}/{seq}/blur_gamma/{frame}.png", noise(99))  # ignored
    (root / "train" / "notes.txt").write_text("not a sequence")
    return root


@pytest.fixture
def reds(tmp_path: Path) -> Path:
    root = tmp_path / "REDS"
    for i, (split, seq, frame) in enumerate(
        [("train", "000", "00000001"), ("train", "000", "00000000"), ("val", "001", "00000000")]
    ):
        write_pair(root, f"{split}_blur/{seq}/{frame}.png", seed=i)
    write(root / "train_blur_bicubic/000/00000000.png", noise(98, 10, 12))  # ignored
    return root


@pytest.fixture
def generic(tmp_path: Path) -> Path:
    root = tmp_path / "phone"
    write_pair(root, "blur/b.PNG", "sharp/b.png", seed=0)  # extension case and kind may differ
    write_pair(root, "blur/a.bmp", "sharp/a.png", seed=1)  # lossless: tests compare pixels
    write_pair(root, "blur/day/2/c.tif", "sharp/day/2/c.bmp", seed=2)
    (root / "blur" / "readme.md").write_text("ignored")
    write(root / "sharp" / ".hidden.png", noise(3))  # dot files ignored
    return root


# --- discovery ---------------------------------------------------------------------------


def test_detect_layout(gopro, reds, generic):
    assert detect_layout(gopro) == "gopro"
    assert detect_layout(str(reds)) == "reds"
    assert detect_layout(generic) == "generic"
    assert set(LAYOUTS) == {"gopro", "reds", "generic"}


def test_find_pairs_gopro(gopro):
    pairs = find_pairs(gopro)
    assert [p.pair_id for p in pairs] == [
        "test/GOPR0384_11_00/000001",
        "train/GOPR0372_07_00/000047",
        "train/GOPR0372_07_00/000048",
        "train/GOPR0374_11_00/000001",
    ]
    p = pairs[1]
    assert p.blurry == gopro / "train/GOPR0372_07_00/blur/000047.png"
    assert p.sharp == gopro / "train/GOPR0372_07_00/sharp/000047.png"
    assert [p.pair_id for p in find_pairs(gopro, "gopro", split="test")] == [pairs[0].pair_id]


def test_find_pairs_reds(reds):
    pairs = find_pairs(reds, "auto")
    ids = ["train/000/00000000", "train/000/00000001", "val/001/00000000"]
    assert [p.pair_id for p in pairs] == ids
    assert pairs[0].blurry == reds / "train_blur/000/00000000.png"
    assert pairs[0].sharp == reds / "train_sharp/000/00000000.png"
    assert len(find_pairs(reds, split="val")) == 1


def test_find_pairs_generic(generic):
    write_pair(generic, "blur/d.JPEG", "sharp/d.jpg", seed=4)
    pairs = find_pairs(generic, split="ignored")
    assert [p.pair_id for p in pairs] == ["a", "b", "d", "day/2/c"]
    assert pairs[3].blurry.name == "c.tif" and pairs[3].sharp.name == "c.bmp"


def test_reds_one_sided_split(reds):
    write(reds / "test_blur/002/00000000.png", noise(5))  # REDS ships test without sharp
    with pytest.warns(UserWarning, match="test_sharp"):
        assert len(find_pairs(reds)) == 3
    with pytest.raises(FileNotFoundError, match="test_sharp"):
        find_pairs(reds, split="test")


def test_unknown_split_lists_present_ones(gopro, reds):
    with pytest.raises(ValueError, match=r"'val'.*test, train"):
        find_pairs(gopro, split="val")
    with pytest.raises(ValueError, match=r"'test'.*train, val"):
        find_pairs(reds, split="test")


def test_unknown_layout(generic):
    with pytest.raises(ValueError, match="'lmdb'.*gopro"):
        find_pairs(generic, layout="lmdb")


def test_missing_root(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match="nowhere"):
        find_pairs(missing)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        PairedDataset(missing)


def test_undetectable_layout_says_what_it_looked_for(tmp_path):
    (tmp_path / "images").mkdir()
    with pytest.raises(ValueError, match=r"(?s)blur.*generic.*reds.*gopro"):
        detect_layout(tmp_path)


def test_gopro_split_folder_gets_a_hint(gopro):
    with pytest.raises(ValueError, match="parent"):
        detect_layout(gopro / "train")


def test_ambiguous_layout(generic):
    (generic / "x_blur").mkdir()
    (generic / "x_sharp").mkdir()
    with pytest.raises(ValueError, match="generic, reds"):
        detect_layout(generic)
    assert len(find_pairs(generic, layout="generic")) == 3


def test_empty_folders(tmp_path):
    (tmp_path / "blur" / "sub").mkdir(parents=True)
    (tmp_path / "sharp").mkdir()
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "blur")):
        find_pairs(tmp_path)


def test_missing_half_generic(tmp_path):
    write(tmp_path / "blur/a.png", noise(0))
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "sharp")):
        find_pairs(tmp_path, layout="generic")


def test_missing_half_gopro_sequence(gopro):
    write(gopro / "train/GOPR0999_00_00/blur/000001.png", noise(0))
    with pytest.raises(FileNotFoundError, match="GOPR0999_00_00/sharp"):
        find_pairs(gopro)


def test_unmatched_files_are_named(gopro):
    orphan_blur = write(gopro / "train/GOPR0372_07_00/blur/000049.png", noise(0))
    orphan_sharp = write(gopro / "test/GOPR0384_11_00/sharp/000002.png", noise(0))
    with pytest.raises(ValueError, match="2 image") as err:
        find_pairs(gopro)
    assert str(orphan_blur) in str(err.value) and str(orphan_sharp) in str(err.value)
    assert "more" not in str(err.value)


def test_many_unmatched_files_are_abbreviated(generic):
    for i in range(8):
        write(generic / f"blur/extra{i}.png", noise(i, 4, 4))
    with pytest.raises(ValueError, match="and 3 more"):
        find_pairs(generic)


def test_duplicate_stem_is_an_error(generic):
    write(generic / "blur/a.png", noise(0))
    with pytest.raises(ValueError, match=r"a\.bmp.*a\.png|a\.png.*a\.bmp"):
        find_pairs(generic)


# --- reading -----------------------------------------------------------------------------


def test_read_image_colour_order_and_range(tmp_path):
    bgr = noise(0)
    rgb = read_image(write(tmp_path / "c.png", bgr))
    assert rgb.dtype == np.float32 and rgb.shape == (H, W, 3)
    np.testing.assert_allclose(rgb, bgr[:, :, ::-1] / 255.0, atol=1e-7)


def test_read_image_gray_alpha_16bit(tmp_path):
    gray = noise(1, channels=1)[:, :, 0]
    out = read_image(write(tmp_path / "g.png", gray))
    assert out.shape == (H, W, 3)
    np.testing.assert_allclose(out, np.repeat(gray[:, :, None], 3, 2) / 255.0, atol=1e-7)

    bgra = noise(2, channels=4)
    out = read_image(write(tmp_path / "a.png", bgra))
    np.testing.assert_allclose(out, bgra[:, :, 2::-1] / 255.0, atol=1e-7)

    deep = noise(3, dtype=np.uint16)
    out = read_image(write(tmp_path / "d.png", deep))
    assert out.dtype == np.float32 and out.max() <= 1.0
    np.testing.assert_allclose(out, deep[:, :, ::-1] / 65535.0, atol=1e-7)


@pytest.mark.parametrize("name", ["trunc.png", "trunc.jpg"])
def test_truncated_image_is_named(tmp_path, name):
    good = write(tmp_path / f"good{Path(name).suffix}", noise(0))
    bad = tmp_path / name
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ValueError, match=name):
        read_image(bad)


@pytest.mark.parametrize("content", [b"", b"definitely not a PNG"])
def test_unreadable_image_is_named(tmp_path, content):
    bad = tmp_path / "bad.png"
    bad.write_bytes(content)
    with pytest.raises(ValueError, match="bad.png"):
        read_image(bad)


def test_unsupported_pixel_type(tmp_path):
    path = write(tmp_path / "f.tiff", np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ValueError, match=r"f\.tiff.*float32"):
        read_image(path)


def test_read_pair_size_mismatch_names_both(generic):
    write(generic / "sharp/a.png", noise(0, H + 2, W))
    (pair,) = [p for p in find_pairs(generic) if p.pair_id == "a"]
    with pytest.raises(ValueError) as err:
        read_pair(pair)
    msg = str(err.value)
    assert str(pair.sharp) in msg and str(pair.blurry) in msg
    assert f"{H + 2}x{W}" in msg and f"{H}x{W}" in msg


def test_read_pair_order(generic):
    sharp, blurry = read_pair(find_pairs(generic)[0])
    np.testing.assert_allclose(blurry, 1.0 - sharp, atol=1e-6)
    assert not np.allclose(sharp, blurry)


# --- PairedDataset -----------------------------------------------------------------------


@pytest.fixture
def identical(tmp_path: Path) -> Path:
    """Generic dataset where blurry == sharp, so any misalignment shows."""
    root = tmp_path / "same"
    for i in range(3):
        image = noise(10 + i)
        write(root / f"sharp/{i}.png", image)
        write(root / f"blur/{i}.png", image)
    return root


def test_identical_pair_stays_identical(identical):
    ds = PairedDataset(identical, crop=24, seed=3)
    seen = set()
    for epoch in range(12):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            sharp, blurry = ds[i]
            assert sharp.dtype == torch.float32 and sharp.shape == (3, 24, 24)
            assert torch.equal(sharp, blurry)
            seen.add(sharp.numpy().tobytes())
    assert len(seen) > 30  # crops and orientations really vary


def test_pixelwise_function_stays_consistent(generic):
    ds = PairedDataset(generic, crop=32)
    for epoch in range(4):
        ds.set_epoch(epoch)
        for sharp, blurry in (ds[i] for i in range(len(ds))):
            torch.testing.assert_close(blurry, 1.0 - sharp, atol=1e-6, rtol=0)


def test_augmented_crop_is_a_dihedral_view_of_the_image(generic):
    """Each item is one of the 8 flips/rotations of some crop of the original image."""
    ds = PairedDataset(generic, crop=32, seed=1)
    full = read_pair(ds.pairs[0])[0]
    orientations = set()
    for epoch in range(24):
        ds.set_epoch(epoch)
        crop = ds[0][0].numpy().transpose(1, 2, 0)
        matches = [
            (k, f)
            for k in range(4)
            for f in (False, True)
            for view in [np.rot90(crop[:, ::-1] if f else crop, -k)]
            for top in range(H - 31)
            for left in range(W - 31)
            if np.array_equal(view, full[top : top + 32, left : left + 32])
        ]
        assert matches
        orientations.add(matches[0])
    assert len(orientations) >= 6


def test_validation_is_centre_crop_without_flips(generic):
    ds = PairedDataset(generic, crop=32, augment=False)
    sharp, _ = read_pair(ds.pairs[0])
    top, left = (H - 32) // 2, (W - 32) // 2
    expected = sharp[top : top + 32, left : left + 32].transpose(2, 0, 1)
    for epoch in range(3):
        ds.set_epoch(epoch)
        np.testing.assert_array_equal(ds[0][0].numpy(), expected)


def test_full_images_keep_their_shape(generic):
    ds = PairedDataset(generic, crop=None)
    for epoch in range(8):
        ds.set_epoch(epoch)
        sharp, blurry = ds[0]
        assert sharp.shape == blurry.shape == (3, H, W)


def test_fixed_seed_gives_identical_items(generic):
    a, b, c = (PairedDataset(generic, crop=16, seed=s) for s in (7, 7, 8))
    for i in range(len(a)):
        for x, y in zip(a[i], b[i]):
            assert torch.equal(x, y)
    assert any(not torch.equal(a[i][0], c[i][0]) for i in range(len(a)))
    a.set_epoch(1)
    assert any(not torch.equal(a[i][0], b[i][0]) for i in range(len(a)))
    assert torch.equal(a[-1][0], a[len(a) - 1][0])
    with pytest.raises(IndexError):
        a[len(a)]


def test_crop_larger_than_image_names_file(generic):
    ds = PairedDataset(generic, crop=64)
    with pytest.raises(ValueError, match=r"a\.png.*40x48.*64x64"):
        ds[0]


def test_dataset_from_pairs_and_validation(generic):
    pairs = find_pairs(generic)[:2]
    ds = PairedDataset(pairs=pairs, crop=8)
    assert len(ds) == 2 and ds.pairs == pairs
    ds.pairs.clear()  # a copy
    assert len(ds) == 2
    with pytest.raises(ValueError, match="crop"):
        PairedDataset(pairs=pairs, crop=0)
    with pytest.raises(ValueError, match="empty"):
        PairedDataset(pairs=[])


def test_pickles_and_loader_workers_agree(generic):
    ds = PairedDataset(generic, crop=16, seed=5)
    ds.set_epoch(2)
    clone = pickle.loads(pickle.dumps(ds))
    assert torch.equal(clone[1][1], ds[1][1])

    def load(workers: int):
        loader = torch.utils.data.DataLoader(ds, batch_size=1, num_workers=workers)
        return [torch.cat(batch) for batch in loader]

    serial, parallel = load(0), load(2)
    assert len(serial) == len(ds)
    for x, y in zip(serial, parallel):
        assert torch.equal(x, y)


# --- split_pairs -------------------------------------------------------------------------


def fake_pairs(sequences: dict[str, int]) -> list[Pair]:
    return [
        Pair(Path(f"s/{seq}/{i}.png"), Path(f"b/{seq}/{i}.png"), f"{seq}/{i:04d}".lstrip("/"))
        for seq, n in sequences.items()
        for i in range(n)
    ]


def test_split_pairs_keeps_sequences_together():
    pairs = fake_pairs({f"train/seq{j}": 10 + j for j in range(10)})
    train, val = split_pairs(pairs, 0.2, seed=1)
    sequences = lambda ps: {p.pair_id.rpartition("/")[0] for p in ps}  # noqa: E731
    assert not sequences(train) & sequences(val)
    assert sorted(train + val, key=lambda p: p.pair_id) == sorted(pairs, key=lambda p: p.pair_id)
    assert 0.2 * len(pairs) <= len(val) < 0.4 * len(pairs)
    assert (train, val) == split_pairs(pairs[::-1], 0.2, seed=1)
    assert (train, val) != split_pairs(pairs, 0.2, seed=2)


def test_split_pairs_single_sequence_and_edges():
    pairs = fake_pairs({"": 10})  # flat generic dataset: ids without "/"
    train, val = split_pairs(pairs, 0.3)
    assert len(val) == 3 and len(train) == 7
    assert split_pairs(pairs, 0.0) == (sorted(pairs, key=lambda p: p.pair_id), [])
    for bad in (-0.1, 1.0):
        with pytest.raises(ValueError, match="val_fraction"):
            split_pairs(pairs, bad)


@settings(max_examples=50, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 6), min_size=1, max_size=6),
    fraction=st.floats(0.01, 0.99),
    seed=st.integers(0, 2**32 - 1),
)
def test_split_pairs_properties(sizes, fraction, seed):
    pairs = fake_pairs({f"seq{j}": n for j, n in enumerate(sizes)})
    train, val = split_pairs(pairs, fraction, seed)
    assert len(train) + len(val) == len(pairs)
    assert {p.pair_id for p in train}.isdisjoint(p.pair_id for p in val)
    if len(pairs) >= 2:
        assert train and val
    if len(sizes) >= 2:
        seq = lambda ps: {p.pair_id.split("/")[0] for p in ps}  # noqa: E731
        assert seq(train).isdisjoint(seq(val))
