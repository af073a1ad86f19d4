"""Training: learning happens, resume is exact, data-parallel ranks agree, the CLI works."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
import torch
import torch.multiprocessing as mp

import kernelaug as ka
from kernelaug.learn.train import TrainOptions, train

from conftest import write_pairs


def _options(root, out, **changes) -> TrainOptions:
    base = dict(data=str(root), out=str(out), preset="psf-tiny", steps=8, batch_size=2, crop=64, lr=2e-3,
                val_every=1000, val_pairs=2, val_crop=128, checkpoint_every=4, workers=0, progress=False)
    return TrainOptions(**{**base, **changes})


class TestLearning:
    def test_tiny_model_overfits_one_pair_in_seconds(self, tmp_path):
        write_pairs(tmp_path, 1, size=128, seed=3, split="train", angle=30)
        write_pairs(tmp_path, 1, size=128, seed=3, split="test", angle=30)   # the same pair, held out
        summary = train(_options(tmp_path, tmp_path / "m.safetensors", steps=30, batch_size=4, crop=128,
                                 val_every=30))
        val = summary["validation"]
        assert val["recon_psnr"] > val["blurry_psnr"] + 3, val

    def test_checkpoint_carries_provenance(self, pair_root, tmp_path):
        out = tmp_path / "m.safetensors"
        train(_options(pair_root, out, steps=4, val_every=4))
        model = ka.load_model(out)
        assert model.provenance["steps"] == 4
        assert model.provenance["validation"]["pairs"] == 2
        assert model.provenance["dataset"] == str(pair_root)

    def test_psf_prior_makes_decoded_psfs_sparser(self, pair_root, tmp_path):
        """--psf-prior: the same run with the sparsity prior ends with a smaller psf_spread."""
        spreads = []
        for prior in (0.0, 0.05):
            out = tmp_path / f"m{prior}.safetensors"
            train(_options(pair_root, out, steps=8, val_every=8, psf_prior=prior))
            model = ka.load_model(out)
            assert model.provenance["psf_prior"] == prior
            with torch.no_grad():
                spreads.append(model.psf_spread(torch.randn(4, *model.code_shape(64, 64),
                                                            generator=torch.Generator().manual_seed(0))).item())
        assert spreads[1] < spreads[0]


class TestResume:
    def test_seeded_runs_are_identical(self, pair_root, tmp_path):
        first = train(_options(pair_root, tmp_path / "a.safetensors"))
        second = train(_options(pair_root, tmp_path / "b.safetensors", workers=2))
        assert first["model_sha256"] == second["model_sha256"]

    def test_resume_after_kill_midway(self, pair_root, tmp_path):
        out = tmp_path / "m.safetensors"
        reference = train(_options(pair_root, tmp_path / "ref.safetensors"))
        code = (
            "import os, sys, torch\n"
            f"torch.set_num_threads({torch.get_num_threads()})\n"  # same arithmetic as this process
            "from kernelaug.learn.train import TrainOptions, train\n"
            "import kernelaug.learn.train as t\n"
            "original = t._save_state\n"
            "def save_then_die(*a, **k):\n"
            "    original(*a, **k)\n"
            "    os._exit(17)\n"
            "t._save_state = save_then_die\n"
            f"train(TrainOptions(**{_options(pair_root, out).__dict__!r}))\n"
        )
        killed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert killed.returncode == 17, killed.stderr
        assert ka.load_model(out).provenance["steps"] == 4
        resumed = train(_options(pair_root, out, resume=True))
        assert resumed["steps"] == 8
        assert resumed["model_sha256"] == reference["model_sha256"]

    def test_resume_with_other_preset_is_an_error(self, pair_root, tmp_path):
        out = tmp_path / "m.safetensors"
        train(_options(pair_root, out, steps=1))
        with pytest.raises(ValueError, match="another config"):
            train(_options(pair_root, out, preset="tiny", crop=128, resume=True))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, options: TrainOptions, results) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        results[rank] = train(options)["model_sha256"]
    finally:
        dist.destroy_process_group()


class TestDataParallel:
    def test_two_gloo_processes_end_with_identical_weights(self, pair_root, tmp_path):
        options = _options(pair_root, tmp_path / "ddp.safetensors", steps=3, checkpoint_every=3)
        with mp.Manager() as manager:
            results = manager.dict()
            mp.spawn(_ddp_worker, args=(2, _free_port(), options, results), nprocs=2, join=True)
            hashes = dict(results)
        assert len(hashes) == 2 and hashes[0] == hashes[1]
        assert ka.load_model(tmp_path / "ddp.safetensors").sha256 == hashes[0]
        assert ka.load_model(tmp_path / "ddp.safetensors").provenance["processes"] == 2

    def test_batch_not_divisible_by_processes(self, pair_root, tmp_path, monkeypatch):
        monkeypatch.setattr("kernelaug.learn.train._distributed", lambda: (0, 3))
        with pytest.raises(ValueError, match="not divisible"):
            train(_options(pair_root, tmp_path / "m.safetensors"))


class TestCommandLine:
    def test_train_command(self, pair_root, tmp_path):
        out = tmp_path / "cli.safetensors"
        result = subprocess.run(
            [sys.executable, "-m", "kernelaug", "train", "--data", str(pair_root), "--out", str(out),
             "--preset", "psf-tiny", "--steps", "2", "--batch-size", "2", "--crop", "64", "--workers", "0"],
            capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert result.returncode == 0, result.stderr
        assert "trained 2 steps" in result.stdout and out.is_file()

    def test_bad_data_folder(self, tmp_path):
        result = subprocess.run([sys.executable, "-m", "kernelaug", "train", "--data", str(tmp_path / "none"),
                                 "--out", str(tmp_path / "m.safetensors")], capture_output=True, text=True)
        assert result.returncode == 2 and "none" in result.stderr


class TestFineTuneIntoAnotherPreset:
    def test_init_with_a_fast_preset_copies_the_shared_weights(self, pair_root, tmp_path, monkeypatch):
        import dataclasses

        from kernelaug.models import PRESETS

        source = tmp_path / "source.safetensors"
        train(_options(pair_root, source, steps=2))
        fast = dataclasses.replace(PRESETS["psf-tiny"], blend_band=16, residual_width=0)
        monkeypatch.setitem(PRESETS, "psf-tiny-fast", fast)
        out = tmp_path / "fast.safetensors"
        train(_options(pair_root, out, steps=0, init=str(source), preset="psf-tiny-fast"))
        before, after = ka.load_model(source), ka.load_model(out)
        assert after.config == fast and after.residual is None
        assert torch.equal(before.basis, after.basis) and torch.equal(before.decoder[0].weight, after.decoder[0].weight)
