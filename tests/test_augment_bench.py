"""The augmentation benchmark: blur drawn per sample in DataLoader workers, deblurrers by name, the bench commands."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

import kernelaug as ka
from conftest import textured_image
from kernelaug.cli import main
from kernelaug.deblurrers.benchmark import ImgaugMotion, run_blur, summarise
from kernelaug.deblurrers.blurred_crops import BlurredCrops, finish_batch, make_loader, native_size
from kernelaug.deblurrers.nets import NETS, build_deblurrer, load_deblurrer, save_deblurrer
from kernelaug.deblurrers.training import train_deblurrer
from kernelaug.transforms import _find_seedables


@pytest.fixture(scope="module")
def blur_model_and_bank():
    return ka.load_model("synth-small"), ka.resolve_bank("synth-small")


@pytest.fixture(scope="module")
def sharp_images():
    rng = np.random.default_rng(5)
    return [textured_image(rng, 160) for _ in range(4)]


def batches(loader):
    return [tuple(t.clone() for t in batch) for batch in loader]


class TestBlurredCrops:
    def test_crops_depend_on_seed_and_index_not_on_workers(self, sharp_images, blur_model_and_bank):
        model, bank = blur_model_and_bank
        blur = run_blur("imgaug", model, bank, (3, 9), seed=0)
        a = BlurredCrops(sharp_images, blur, crop=32, length=6, scale=0.5, seed=3)
        b = BlurredCrops(sharp_images, blur, crop=32, length=6, scale=0.5, seed=3)
        c = BlurredCrops(sharp_images, blur, crop=32, length=6, scale=0.5, seed=4)
        assert a.size == native_size(32, 0.5, 24) == 112
        assert all(np.array_equal(a.sharp_crop(i), b.sharp_crop(i)) for i in range(6))
        assert not all(np.array_equal(a.sharp_crop(i), c.sharp_crop(i)) for i in range(6))

    def test_loader_with_workers_repeats_for_a_seed(self, sharp_images, blur_model_and_bank):
        model, bank = blur_model_and_bank
        runs = []
        for seed in (0, 0, 1):
            blur = run_blur("comb.", model, bank, (3, 9), seed=0)
            dataset = BlurredCrops(sharp_images, blur, crop=32, length=8, scale=0.5, seed=0)
            runs.append(batches(make_loader(dataset, batch_size=2, workers=2, seed=seed)))
        same = all(torch.equal(x, y) for p, q in zip(runs[0], runs[1]) for x, y in zip(p, q))
        assert same, "two loaders with the same seed and workers must give the same batches"
        blurry_differs = any(not torch.equal(p[0], q[0]) for p, q in zip(runs[0], runs[2]))
        assert blurry_differs, "another loader seed must draw other blurs"
        for blurry, sharp, deferred in runs[0]:
            assert blurry.shape == sharp.shape == (2, 3, 112, 112) and not deferred.any()

    def test_seed_worker_reaches_a_parametric_augmenter_inside_learned_blur(self, blur_model_and_bank):
        model, bank = blur_model_and_bank
        motion = ImgaugMotion((3, 9), seed=0)

        class Holder(Dataset):
            def __init__(self):
                self.blur = ka.LearnedBlur(model, bank, parametric=motion, parametric_ratio=0.5)

        found = _find_seedables(Holder())
        assert motion.augmenter in found, "workers would all draw the same imgaug blurs"

    def test_deferred_learned_blur_is_applied_on_the_device(self, sharp_images, blur_model_and_bank):
        model, bank = blur_model_and_bank
        blur = run_blur("learned", model, bank, (3, 9), seed=0)
        dataset = BlurredCrops(sharp_images, blur, crop=32, length=4, scale=0.5, seed=0, defer_learned=True)
        blurry, sharp, deferred = next(iter(make_loader(dataset, batch_size=4, workers=0, seed=0)))
        assert deferred.all() and torch.equal(blurry, sharp)  # nothing blurred in the worker
        network = build_deblurrer("nafnet", "tiny")
        batch_blur = ka.LearnedBlurBatch(model, bank, seed=0, device="cpu")
        _, summary = train_deblurrer(network, [(blurry, sharp, deferred)], steps=1, scale=0.5, crop=32,
                                     batch_blur=batch_blur, progress=False)
        assert summary["steps"] == 1 and np.isfinite(summary["loss_history"][0])

    def test_checkpoint_callback_sees_the_model_in_eval_mode(self, sharp_images):
        batch = (torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64), torch.zeros(2, dtype=torch.bool))
        seen = []
        network, _ = train_deblurrer(build_deblurrer("nafnet", "tiny"), [batch] * 5, steps=5, scale=0.5, crop=32,
                                     progress=False, checkpoint_every=2,
                                     on_checkpoint=lambda step, net: seen.append((step, net.training)))
        assert seen == [(2, False), (4, False)] and not network.training

    def test_finish_batch_downscales_by_area_and_centre_crops(self):
        x = torch.rand(2, 3, 40, 40)
        blurry, sharp = finish_batch(x, x.clone(), 0.5, 16)
        expected = F.avg_pool2d(x, 2)[..., 2:18, 2:18]
        assert torch.allclose(sharp, expected, atol=1e-6) and torch.allclose(blurry, expected.clamp(0, 1), atol=1e-6)

    def test_bad_arguments_are_clear_errors(self, sharp_images):
        with pytest.raises(ValueError, match="scale"):
            BlurredCrops(sharp_images, None, crop=32, length=4, scale=2.0)
        with pytest.raises(ValueError, match="at least 400 px"):
            BlurredCrops(sharp_images, None, crop=176, length=4, scale=0.5)


class TestNets:
    @pytest.mark.parametrize("net", sorted(NETS))
    def test_save_and_load_by_file_format(self, net, tmp_path):
        network = build_deblurrer(net, "tiny").eval()
        path = save_deblurrer(network, tmp_path / f"{net}.safetensors", provenance={"note": "test"})
        loaded = load_deblurrer(path)
        assert type(loaded) is type(network)
        x = torch.rand(1, 3, 24, 24)
        assert torch.equal(loaded.deblur(x), network.deblur(x))

    def test_other_files_are_clear_errors(self, tmp_path):
        with pytest.raises(ValueError, match="not a kernelaug deblurrer"):
            load_deblurrer(ka.pretrained.model_path("synth-small"))
        with pytest.raises(FileNotFoundError):
            load_deblurrer(tmp_path / "missing.safetensors")
        with pytest.raises(ValueError, match="unknown deblurrer"):
            build_deblurrer("unet")
        with pytest.raises(ValueError, match="unknown nafnet preset"):
            build_deblurrer("nafnet", "huge")

    def test_training_on_fresh_blurs_reduces_the_loss(self, sharp_images, blur_model_and_bank):
        model, bank = blur_model_and_bank
        torch.manual_seed(0)
        dataset = BlurredCrops(sharp_images, run_blur("imgaug", model, bank, (5, 9), seed=0), crop=32,
                               length=60 * 4, scale=0.5, seed=0)
        _, summary = train_deblurrer(build_deblurrer("nafnet", "tiny"), make_loader(dataset, 4, 0, 0), steps=60,
                                     scale=0.5, crop=32, progress=False, log_every=10)
        assert summary["loss_history"][-1] < summary["loss_history"][0] - 1.0  # PSNR loss: dB


class TestSummary:
    def test_bars_and_seed_spread(self):
        def record(run, seed, imgaug, learned, reference):
            tests = {name: {"psnr": v, "ssim": 0.9, "blurry_psnr": 20.0, "blurry_ssim": 0.8}
                     for name, v in (("imgaug", imgaug), ("learned", learned), ("reference", reference))}
            return {"run": run, "seed": seed, "tests": tests}
        records = [record("imgaug", s, 25.0, 21.0, 22.0) for s in (0, 1)]
        records += [record("comb.", 0, 24.8, 23.0, 22.9), record("comb.", 1, 24.8, 23.0, 22.7)]
        records += [record("learned", s, 21.0, 24.0, 23.0) for s in (0, 1)]
        s = summarise(records)
        assert s["comb_minus_imgaug"]["reference"] == pytest.approx([0.9, 0.7])
        assert s["reference_gap_spread"] == pytest.approx(0.2)
        assert all(s["bars"].values())
        assert s["own_blur_gain"]["comb."] == pytest.approx((4.8 + 3.0) / 2)

    def test_a_negative_gap_with_no_spread_is_no_lead(self):
        def record(run, seed, reference):
            tests = {name: {"psnr": v, "ssim": 0.9, "blurry_psnr": 20.0, "blurry_ssim": 0.8}
                     for name, v in (("imgaug", 25.0), ("learned", 24.0), ("reference", reference))}
            return {"run": run, "seed": seed, "tests": tests}
        records = [record(run, seed, 22.0 - 0.01 * (run == "comb.")) for run in ("imgaug", "comb.", "learned")
                   for seed in (0, 1)]
        s = summarise(records)
        assert s["comb_minus_imgaug"]["reference"] == pytest.approx([-0.01, -0.01])
        assert s["reference_gap_spread"] == pytest.approx(0.0, abs=1e-9)
        assert not s["bars"]["comb. leads imgaug on the reference by more than its spread between seeds"]


class TestCommands:
    def test_bench_augment_smoke_with_a_reference_folder(self, pair_root, tmp_path, capsys):
        rc = main(["bench", "augment", "--preset", "smoke", "--out", str(tmp_path), "--reference", str(pair_root),
                   "--reference-exclude", "train/*", "--save-models", str(tmp_path / "models"),
                   "--also-test", f"held-out frames={pair_root}"])
        assert rc == 0, capsys.readouterr().err
        result = json.loads((tmp_path / "augment_nafnet_smoke.json").read_text())
        assert [r["run"] for r in result["runs"]] == ["imgaug", "comb.", "learned"]
        assert result["settings"]["reference_pairs"] and all(p.startswith("test/") for p in
                                                             result["settings"]["reference_pairs"])
        assert result["settings"]["test_sizes"]["reference"] == [64, 64]  # 128-px pairs at scale 0.5
        for run in result["runs"]:
            assert set(run["tests"]) == {"imgaug", "learned", "reference", "other (object)", "held-out frames"}
            assert run["tests"]["held-out frames"]["psnr"] == run["tests"]["reference"]["psnr"]  # the same pairs
            assert all(np.isfinite(t["psnr"]) and 0 < t["ssim"] <= 1 for t in run["tests"].values())
        markdown = (tmp_path / "augment_nafnet_smoke.md").read_text()
        assert "28.37" in markdown and "comb. - imgaug" in markdown and "Bars:" in markdown
        assert "test: held-out frames (" in markdown and "(not a bar) comb. - imgaug on `held-out frames`" in markdown
        assert result["settings"]["also_test"]["held-out frames"]["pairs"] == result["settings"]["reference_pairs"]
        assert (tmp_path / "augment_nafnet_smoke.png").stat().st_size > 1000
        assert len(list((tmp_path / "models").glob("nafnet_smoke_*_seed0.safetensors"))) == 3
        assert "comb. vs imgaug" in capsys.readouterr().out

    def test_bench_srn_is_bench_augment_with_srn_and_gpu_blur_runs_on_the_cpu(self, tmp_path, capsys):
        assert main(["bench", "srn", "--preset", "smoke", "--out", str(tmp_path), "--gpu-blur"]) == 0
        result = json.loads((tmp_path / "augment_srn_smoke.json").read_text())
        assert result["net"] == "srn" and result["settings"]["gpu_blur"] is True

    def test_also_test_needs_a_new_name_and_a_folder(self, tmp_path, capsys):
        from kernelaug.deblurrers.benchmark import check_also_test

        with pytest.raises(SystemExit):
            main(["bench", "augment", "--preset", "smoke", "--out", str(tmp_path), "--also-test", "no-folder"])
        assert "NAME=DIR" in capsys.readouterr().err
        for bad in ([("reference", "x")], [("a", "x"), ("a", "y")], [(" ", "x")]):
            with pytest.raises(ValueError, match="repeated or one of"):
                check_also_test(bad)
        assert check_also_test([("a", tmp_path)]) == (("a", str(tmp_path)),)

    def test_unknown_preset_and_busy_work_folder_are_clear_errors(self, tmp_path, capsys):
        with pytest.raises(SystemExit):
            main(["bench", "augment", "--preset", "huge", "--out", str(tmp_path)])
        (tmp_path / "work").mkdir()
        (tmp_path / "work" / "keep.txt").write_text("mine")
        assert main(["bench", "augment", "--preset", "smoke", "--out", str(tmp_path), "--work",
                     str(tmp_path / "work")]) == 2
        assert "not empty" in capsys.readouterr().err
        assert (tmp_path / "work" / "keep.txt").read_text() == "mine"

    def test_deblurrer_train_on_sharp_images_then_eval_on_pairs(self, pair_root, tmp_path, capsys):
        import cv2

        sharp = tmp_path / "sharp"
        sharp.mkdir()
        rng = np.random.default_rng(0)
        for i in range(3):
            cv2.imwrite(str(sharp / f"{i}.png"), textured_image(rng, 128))
        out = tmp_path / "net.safetensors"
        assert main(["deblurrer", "train", "--net", "nafnet", "--preset", "tiny", "--sharp", str(sharp), "--blur",
                     "comb.", "--steps", "3", "--batch-size", "2", "--crop", "32", "--scale", "0.5",
                     "--workers", "0", "--out", str(out), "--device", "cpu"]) == 0
        assert main(["deblurrer", "eval", "--model", str(out), "--data", str(pair_root), "--split", "test",
                     "--scale", "0.5", "--json", str(tmp_path / "eval.json"), "--device", "cpu"]) == 0
        result = json.loads((tmp_path / "eval.json").read_text())
        assert result["pairs"] == 4 and np.isfinite(result["psnr"]) and result["scale"] == 0.5
        assert main(["deblurrer", "train", "--preset", "tiny", "--data", str(pair_root), "--steps", "2",
                     "--batch-size", "2", "--crop", "32", "--out", str(tmp_path / "paired.safetensors"),
                     "--device", "cpu"]) == 0
        assert main(["deblurrer", "train", "--out", str(out)]) == 2
        assert "either --data" in capsys.readouterr().err
