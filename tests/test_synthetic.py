import json
import os

import cv2
import numpy as np
import pytest

from kernelaug.data import synthetic as S


def _files(root):
    out = {}
    for d, _, names in os.walk(root):
        for n in names:
            p = os.path.join(d, n)
            with open(p, "rb") as f:
                out[os.path.relpath(p, root)] = f.read()
    return out


def _read_rgb(path):
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _linear_response():
    return S.CameraResponse(gamma=1.0, s_curve=0.0)


def test_deterministic_for_seed_and_workers(tmp_path):
    kw = dict(pairs=3, size=64, seed=7, test_fraction=0.34, progress=False)
    S.make_synthetic(tmp_path / "a", **kw)
    S.make_synthetic(tmp_path / "b", **kw)
    S.make_synthetic(tmp_path / "c", workers=2, **kw)
    a, b, c = (_files(tmp_path / x) for x in "abc")
    assert sum(k.endswith(".png") for k in a) == 6
    assert a == b
    assert a == c
    S.make_synthetic(tmp_path / "d", **{**kw, "seed": 8})
    d = _files(tmp_path / "d")
    assert d.keys() == a.keys()
    assert all(d[k] != a[k] for k in a if k.endswith(".png"))


def test_layout_recipe_and_summary(tmp_path):
    out = tmp_path / "ds"
    summary = S.make_synthetic(out, pairs=12, size=64, seed=1, family="object", progress=False)
    assert summary["pairs"] == {"train": 11, "test": 1}
    assert summary["families"] == ["object"] and summary["seed"] == 1
    assert summary["elapsed_s"] >= 0 and 10 < summary["mean_psnr_db"] <= 100

    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["test", "train"]
    assert not [k for k in _files(out) if ".tmp" in k]
    n = 0
    for split, count in summary["pairs"].items():
        seqs = sorted((out / split).iterdir())
        assert [s.name for s in seqs] == [f"object_{i:04d}" for i in range((count + 9) // 10)]
        for seq in seqs:
            sharp = sorted(p.name for p in (seq / "sharp").iterdir())
            blur = sorted(p.name for p in (seq / "blur").iterdir())
            assert sharp == blur and sharp
            for name in sharp:
                for kind in ("sharp", "blur"):
                    img = _read_rgb(seq / kind / name)
                    assert img.shape == (64, 64, 3) and img.dtype == np.uint8
                n += 1
    assert n == 12

    recipe = json.loads((out / "recipe.json").read_text())
    assert recipe["generator"] == "kernelaug synthetic v1"
    assert (recipe["seed"], recipe["family"], recipe["size"], recipe["pairs"]) == (1, "object", 64, 12)
    assert not set(recipe["sources"]["train_photos"]) & set(recipe["sources"]["test_photos"])
    manifest = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert len(manifest) == 12 and {m["split"] for m in manifest} == {"train", "test"}


def test_png_matches_make_pair(tmp_path):
    S.make_synthetic(tmp_path, pairs=2, size=64, seed=3, test_fraction=0.5, progress=False)
    sharp, blurry, _ = S.make_pair(3, "test", 0, 64, "shake")
    np.testing.assert_array_equal(_read_rgb(tmp_path / "test/shake_0000/sharp/000000.png"), sharp)
    np.testing.assert_array_equal(_read_rgb(tmp_path / "test/shake_0000/blur/000000.png"), blurry)


def test_sources_disjoint_between_splits():
    assert not set(S.TRAIN_PHOTOS) & set(S.TEST_PHOTOS)
    names = {"train": set(), "test": set()}
    for split in names:
        for i in range(40):
            img, name = S.sharp_source(np.random.default_rng(i), 64, split)
            assert img.shape == (64, 64, 3) and img.dtype == np.float32
            assert 0 <= img.min() and img.max() <= 1
            names[split].add(name)
    assert names["train"] - {"dead_leaves"} <= set(S.TRAIN_PHOTOS)
    assert names["test"] - {"dead_leaves"} <= set(S.TEST_PHOTOS)
    assert "dead_leaves" in names["train"] and "dead_leaves" in names["test"]


def test_dead_leaves_statistics():
    img = S.dead_leaves(np.random.default_rng(0), 128)
    assert img.shape == (128, 128, 3) and img.dtype == np.float32
    assert 0 <= img.min() and img.max() <= 1
    assert img.std() > 0.1
    np.testing.assert_array_equal(img, S.dead_leaves(np.random.default_rng(0), 128))


def test_camera_trajectory_hits_extent_and_rests_mid_exposure():
    traj = S.camera_trajectory(np.random.default_rng(0), 256, extent=12.0, n_sub=21)
    assert traj.shape == (21, 3, 3)
    np.testing.assert_allclose(traj[10], np.eye(3), atol=1e-9)
    assert S.blur_extent(traj, 256) == pytest.approx(12.0, rel=0.05)


def _psf_spread(img, cx, cy, half=16):
    patch = img[cy - half:cy + half, cx - half:cx + half].astype(np.float64).sum(axis=2)
    yy, xx = np.mgrid[-half:half, -half:half]
    w = patch / patch.sum()
    mx, my = (w * xx).sum(), (w * yy).sum()
    return float(np.sqrt((w * ((xx - mx) ** 2 + (yy - my) ** 2)).sum()))


def test_blur_is_non_uniform_across_frame():
    t = np.linspace(-0.5, 0.5, 31)[:, None]
    poses = np.hstack([8 * t, 0 * t, 0.08 * t, 0.01 * t, 0 * t])  # pan right while rolling
    traj = S.trajectory_from_poses(poses, 256)
    chart = S.point_lights(256, spacing=32)
    sharp, blurry = S.render_pair(chart, traj, np.random.default_rng(0),
                                  response=_linear_response(), noise=(0, 0))
    corners = [(16, 16), (240, 16), (16, 240), (240, 240)]
    sharp_spread = [_psf_spread(sharp, x, y) for x, y in corners]
    spread = [_psf_spread(blurry, x, y) for x, y in corners]
    assert max(sharp_spread) < 0.1
    assert min(spread) > 1.0
    assert max(spread) / min(spread) > 1.5

    roll_only = S.trajectory_from_poses(np.hstack([0 * t, 0 * t, 0.08 * t, 0 * t, 0 * t]), 256)
    _, blurry = S.render_pair(chart, roll_only, np.random.default_rng(0),
                              response=_linear_response(), noise=(0, 0))
    near_centre = _psf_spread(blurry, 112, 112)
    assert near_centre < 0.5 * min(_psf_spread(blurry, x, y) for x, y in corners)


def test_highlights_saturate_into_streaks():
    t = np.linspace(-0.5, 0.5, 21)[:, None]
    traj = S.trajectory_from_poses(np.hstack([20 * t, 0 * t, 0 * t, 0 * t, 0 * t]), 64)
    rng = np.random.default_rng(0)
    for value, saturates in ((50.0, True), (1.0, False)):
        chart = S.point_lights(64, spacing=64, value=value, radius=1)
        sharp, blurry = S.render_pair(chart, traj, rng, response=S.CameraResponse(2.2, 0.2), noise=(0, 0))
        assert (sharp[32] == 255).all(axis=1).sum() == 3  # the 3-px light itself
        streak = (blurry[32] == 255).all(axis=1).sum()
        if saturates:
            assert streak >= 15
        else:
            assert streak == 0 and blurry[32].max() > 0


def test_object_family_keeps_static_background():
    size = 96
    rng = np.random.default_rng(0)
    bg = S.to_linear(S.dead_leaves(rng, size))
    sprite = S.to_linear(S.dead_leaves(rng, 20))
    rgba = np.concatenate([sprite, np.ones((20, 20, 1), np.float32)], 2)
    obj = S.MovingObject(rgba, centre=(20.0, 48.0), velocity=(0.0, 12.0))
    sharp, blurry = S.render_object_pair(bg, [obj], 21, rng, response=_linear_response(), noise=(0, 0))
    np.testing.assert_array_equal(sharp[:, 40:], blurry[:, 40:])
    swept = (slice(30, 67), slice(10, 31))  # the sprite's path
    assert (np.abs(sharp[swept].astype(int) - blurry[swept]) > 2).mean() > 0.3

    traj = S.trajectory_from_poses(np.hstack([np.linspace(-6, 6, 21)[:, None], np.zeros((21, 4))]), size)
    s2, b2 = S.render_pair(bg, traj, rng, response=_linear_response(), noise=(0, 0))
    assert np.abs(s2[:, 40:].astype(int) - b2[:, 40:]).mean() > 3


def test_families_differ_on_generated_pairs():
    def unchanged(family):
        fracs = []
        for i in range(4):
            sharp, blurry, _ = S.make_pair(0, "train", i, 64, family)
            fracs.append((np.abs(sharp.astype(int) - blurry).max(axis=2) <= 4).mean())
        return np.mean(fracs)

    assert unchanged("object") > unchanged("shake") + 0.2


@pytest.mark.parametrize("kwargs, match", [
    (dict(pairs=0), "pairs"),
    (dict(pairs=2.5), "pairs"),
    (dict(size=100), "multiple of 64"),
    (dict(size=0), "multiple of 64"),
    (dict(family="defocus"), "shake, object"),
    (dict(workers=-1), "workers"),
    (dict(test_fraction=1.0), "test_fraction"),
    (dict(seed=-1), "seed"),
])
def test_bad_arguments(tmp_path, kwargs, match):
    args = dict(out=tmp_path / "x", pairs=1, size=64, progress=False) | kwargs
    with pytest.raises(ValueError, match=match):
        S.make_synthetic(**args)
    assert not (tmp_path / "x").exists()
