"""frames-to-pairs: the GoPro recipe on frames and videos the tests make themselves."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import textured_image
from kernelaug.cli import main
from kernelaug.data.frames import FramesSettings, average_frames, frames_to_pairs, list_frames, plan_windows
from kernelaug.data.pairs import find_pairs, read_image, read_pair

SHIFT = 2  # pixels per frame


def shifted_frames(count: int, size: int = 64, seed: int = 0) -> list[np.ndarray]:
    """A textured pattern moving SHIFT px right per frame (BGR uint8, as OpenCV writes them)."""
    base = textured_image(np.random.default_rng(seed), size + SHIFT * count)
    return [np.ascontiguousarray(base[:size, SHIFT * (count - k):SHIFT * (count - k) + size]) for k in range(count)]


def write_frames(folder: Path, frames: list[np.ndarray], ext: str = ".png", first: int = 1) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for k, frame in enumerate(frames):
        params = [cv2.IMWRITE_WEBP_QUALITY, 101] if ext == ".webp" else []
        assert cv2.imwrite(str(folder / f"{first + k:06d}{ext}"), frame, params)
    return folder


def read_raw(path: Path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


class TestRecipe:
    def test_display_blur_is_the_floored_mean_and_sharp_the_middle_frame(self, tmp_path):
        frames = shifted_frames(20)
        src = write_frames(tmp_path / "seq", frames)
        summary = frames_to_pairs(src, tmp_path / "out", FramesSettings(frames=(5, 9), space="display", stride=3),
                                  progress=False)
        rows = [json.loads(line) for line in (tmp_path / "out" / "manifest.jsonl").read_text().splitlines()]
        assert summary["pairs"]["train"] == len(rows) > 3
        for row in rows:
            window = frames[row["start"]:row["start"] + row["n"]]
            folder = tmp_path / "out" / "train" / "seq"
            blurry, sharp = read_raw(folder / "blur" / f"{row['name']}.png"), read_raw(folder / "sharp" / f"{row['name']}.png")
            assert np.array_equal(blurry, np.floor(np.mean(np.stack(window).astype(np.float64), 0)).astype(np.uint8))
            assert np.array_equal(sharp, window[row["n"] // 2])
            assert row["frames"] == [f"{row['start'] + 1 + k:06d}.png" for k in range(row["n"])]
            assert row["sharp_frame"] == f"{row['start'] + 1 + row['n'] // 2:06d}.png" and row["space"] == "display"

    def test_linear_blur_is_the_mean_in_linear_light(self, tmp_path):
        frames = shifted_frames(9)
        src = write_frames(tmp_path / "seq", frames)
        frames_to_pairs(src, tmp_path / "out", FramesSettings(frames=(9, 9), space="linear", gamma=2.2), progress=False)
        blurry = read_raw(tmp_path / "out" / "train" / "seq" / "blur" / "000000_n09.png").astype(np.float64)
        linear = np.mean((np.stack(frames) / 255.0) ** 2.2, axis=0) ** (1 / 2.2) * 255
        assert np.abs(blurry - linear).max() <= 0.5 + 1e-6
        display = np.mean(np.stack(frames).astype(np.float64), 0)
        assert np.abs(blurry - display).max() > 5  # the two spaces really differ on this pattern

    def test_deterministic_for_a_seed_and_n_drawn_in_range(self, tmp_path):
        src = write_frames(tmp_path / "seq", shifted_frames(40))
        runs = []
        for name, seed in (("a", 3), ("b", 3), ("c", 4)):
            frames_to_pairs(src, tmp_path / name, FramesSettings(frames=(3, 7), stride=2, seed=seed), progress=False)
            runs.append((tmp_path / name / "manifest.jsonl").read_text())
        assert runs[0] == runs[1] and runs[0] != runs[2]
        counts = [json.loads(line)["n"] for line in runs[0].splitlines()]
        assert set(counts) <= set(range(3, 8)) and len(set(counts)) > 1
        a = sorted((tmp_path / "a").rglob("*.png"))
        assert [p.read_bytes() for p in a] == [(tmp_path / "b" / p.relative_to(tmp_path / "a")).read_bytes() for p in a]

    def test_split_at_keeps_the_tail_for_testing_and_drops_straddling_windows(self, tmp_path):
        src = write_frames(tmp_path / "seq", shifted_frames(30))
        frames_to_pairs(src, tmp_path / "out", FramesSettings(frames=(4, 4), stride=1, split_at=20), progress=False)
        rows = [json.loads(line) for line in (tmp_path / "out" / "manifest.jsonl").read_text().splitlines()]
        train = [r for r in rows if r["split"] == "train"]
        test = [r for r in rows if r["split"] == "test"]
        assert max(r["start"] + r["n"] - 1 for r in train) < 20 <= min(r["start"] for r in test)
        assert len(train) == 17 and len(test) == 7  # starts 0..16 and 20..26
        assert plan_windows(30, FramesSettings(frames=(4, 4), stride=1, split_at=2 / 3))[-1].split == "test"

    def test_output_is_the_gopro_layout_that_training_reads(self, tmp_path):
        src = write_frames(tmp_path / "clip", shifted_frames(24))
        frames_to_pairs(src, tmp_path / "out", FramesSettings(frames=(5, 7), stride=3, split_at=0.6), progress=False)
        train, test = find_pairs(tmp_path / "out", split="train"), find_pairs(tmp_path / "out", split="test")
        assert train and test and train[0].pair_id.startswith("train/clip/")
        sharp, blurry = read_pair(train[0])
        assert sharp.shape == blurry.shape == (64, 64, 3)

    def test_average_frames_keeps_16_bit(self):
        frames = [np.full((4, 4), v, np.uint16) for v in (1000, 2000, 4000)]
        assert average_frames(frames, "display").dtype == np.uint16
        assert int(average_frames(frames, "display")[0, 0]) == 2333


class TestVideo:
    def test_a_video_gives_the_same_pairs_as_its_frames(self, tmp_path):
        frames = shifted_frames(16)
        path = tmp_path / "clip.avi"
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"FFV1"), 240, (64, 64))
        if not writer.isOpened():
            writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 240, (64, 64))
        assert writer.isOpened()
        for frame in frames:
            writer.write(frame)
        writer.release()
        decoded = []
        capture = cv2.VideoCapture(str(path))
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            decoded.append(frame)
        assert len(decoded) == 16
        settings = FramesSettings(frames=(5, 7), space="display", stride=3, seed=1)
        frames_to_pairs(path, tmp_path / "from_video", settings, progress=False)
        frames_to_pairs(write_frames(tmp_path / "clip", decoded), tmp_path / "from_frames", settings, progress=False)
        video = sorted((tmp_path / "from_video").rglob("*.png"))
        assert video and [p.relative_to(tmp_path / "from_video") for p in video] == \
            [p.relative_to(tmp_path / "from_frames") for p in sorted((tmp_path / "from_frames").rglob("*.png"))]
        for p in video:
            assert np.array_equal(read_raw(p), read_raw(tmp_path / "from_frames" / p.relative_to(tmp_path / "from_video")))
        row = json.loads((tmp_path / "from_video" / "manifest.jsonl").read_text().splitlines()[0])
        assert row["frames"][0] == "clip.avi#0"

    def test_video_with_split_counts_its_frames_first(self, tmp_path):
        path = tmp_path / "clip.avi"
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 240, (64, 64))
        for frame in shifted_frames(20):
            writer.write(frame)
        writer.release()
        summary = frames_to_pairs(path, tmp_path / "out", FramesSettings(frames=(3, 3), stride=3, split_at=0.5),
                                  progress=False)
        assert summary["pairs"] == {"train": 3, "test": 2}  # starts 0, 3, 6 | 9 straddles | 12, 15


class TestErrors:
    def test_fewer_frames_than_n(self, tmp_path):
        src = write_frames(tmp_path / "seq", shifted_frames(5))
        with pytest.raises(ValueError, match="has 5 frames, fewer than the 7"):
            frames_to_pairs(src, tmp_path / "out", FramesSettings(frames=(3, 7)), progress=False)
        assert not (tmp_path / "out").exists()

    def test_frames_of_different_sizes_or_channels(self, tmp_path):
        frames = shifted_frames(8)
        src = write_frames(tmp_path / "seq", frames)
        cv2.imwrite(str(src / "000005.png"), frames[4][:32])
        with pytest.raises(ValueError, match=r"000005.png is 32x64 .* first frame is 64x64"):
            frames_to_pairs(src, tmp_path / "out", FramesSettings(frames=(3, 3)), progress=False)
        src2 = write_frames(tmp_path / "seq2", frames)
        cv2.imwrite(str(src2 / "000003.png"), cv2.cvtColor(frames[2], cv2.COLOR_BGR2GRAY))
        with pytest.raises(ValueError, match=r"000003.png .* 1 channel"):
            frames_to_pairs(src2, tmp_path / "out", FramesSettings(frames=(3, 3)), progress=False)

    def test_unreadable_frame_and_video(self, tmp_path):
        src = write_frames(tmp_path / "seq", shifted_frames(6))
        (src / "000004.png").write_bytes(b"not a png")
        with pytest.raises(ValueError, match="cannot read frame 000004.png"):
            frames_to_pairs(src, tmp_path / "out", FramesSettings(frames=(3, 3)), progress=False)
        bad = tmp_path / "broken.mp4"
        bad.write_bytes(b"\x00" * 100)
        with pytest.raises(ValueError, match="broken.mp4"):
            frames_to_pairs(bad, tmp_path / "out", FramesSettings(frames=(3, 3)), progress=False)
        with pytest.raises(FileNotFoundError):
            frames_to_pairs(tmp_path / "missing", tmp_path / "out", progress=False)

    def test_a_gap_in_numbered_frames_is_named(self, tmp_path):
        src = write_frames(tmp_path / "seq", shifted_frames(8))
        (src / "000004.png").unlink()
        (src / "000005.png").unlink()
        with pytest.raises(ValueError, match=r"frames 4 to 5 missing between 000003.png and 000006.png"):
            list_frames(src)

    def test_non_empty_output_is_refused_then_replaced_whole(self, tmp_path):
        src = write_frames(tmp_path / "seq", shifted_frames(12))
        out = tmp_path / "out"
        (out / "train" / "old" / "blur").mkdir(parents=True)
        (out / "train" / "old" / "blur" / "x.png").write_bytes(b"old")
        with pytest.raises(ValueError, match="not empty"):
            frames_to_pairs(src, out, FramesSettings(frames=(3, 3)), progress=False)
        assert (out / "train" / "old" / "blur" / "x.png").read_bytes() == b"old"
        frames_to_pairs(src, out, FramesSettings(frames=(3, 3)), overwrite=True, progress=False)
        assert not (out / "train" / "old").exists() and find_pairs(out)
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left

    @pytest.mark.parametrize("kwargs, message", [
        ({"frames": (0, 3)}, "frames must be two integers"), ({"frames": (5, 3)}, "low <= high"),
        ({"space": "log"}, "space must be one of"), ({"gamma": 0.0}, "gamma"), ({"stride": 0}, "stride"),
        ({"split_at": 1.5}, "split_at"), ({"split_at": -1}, "split_at"), ({"seed": -1}, "seed")])
    def test_bad_settings(self, kwargs, message):
        with pytest.raises(ValueError, match=message):
            FramesSettings(**kwargs)


class TestCommand:
    def test_cli_writes_pairs_and_reports(self, tmp_path, capsys):
        src = write_frames(tmp_path / "seq", shifted_frames(20), ext=".webp")
        rc = main(["frames-to-pairs", str(src), str(tmp_path / "out"), "--frames", "3", "5", "--space", "display",
                   "--split-at", "0.75", "--no-progress"])
        assert rc == 0
        assert "train +" in capsys.readouterr().out
        assert find_pairs(tmp_path / "out", split="test")
        rc = main(["frames-to-pairs", str(src), str(tmp_path / "out"), "--frames", "3", "5"])
        assert rc == 2 and "not empty" in capsys.readouterr().err


def test_webp_pairs_read_as_png_pairs_do(tmp_path):
    rng = np.random.default_rng(0)
    sharp, blurry = textured_image(rng, 64), textured_image(rng, 64)
    for ext in (".png", ".webp"):
        for kind, image in (("sharp", sharp), ("blur", blurry)):
            folder = tmp_path / ext[1:] / "train" / "seq" / kind
            folder.mkdir(parents=True)
            params = [cv2.IMWRITE_WEBP_QUALITY, 101] if ext == ".webp" else []
            cv2.imwrite(str(folder / f"0001{ext}"), image, params)
    (png,), (webp,) = find_pairs(tmp_path / "png"), find_pairs(tmp_path / "webp")
    assert png.pair_id == webp.pair_id
    for a, b in zip(read_pair(png), read_pair(webp)):
        assert np.array_equal(a, b)
    assert np.array_equal(read_image(webp.sharp), read_image(png.sharp))
