"""Kernel banks: bit-exact round trip, interrupted extraction, clear errors, workers, sampling, merge, CLI."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

import kernelaug as ka
from conftest import tiny_model
import kernelaug.data.pairs  # noqa: F401  (ka.data.pairs below)
from kernelaug.bank import reader as bank_module
from kernelaug.bank import SAMPLE_MODES, BankWriter, KernelBank, merge_banks
from kernelaug.bank.journal import partial_path
from kernelaug.cli import main
from kernelaug.bank.codes import adapt_grid
from kernelaug.learn.extract import crop_boxes, extract_bank, shard_path
from kernelaug.models import PsfConfig

# One setting for every extraction below: 6 pairs, two 64 px crops each, batches of 2 pairs.
SETTINGS = dict(crop=64, crops_per_pair=2, batch_size=2, limit=6, split="train", seed=3, progress=False)
COLUMNS = ("pair_id", "crop_box", "psnr", "pair_index")


def random_codes(n: int, seed: int = 0, shape=(8, 2, 2)) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 2, (n, *shape)).astype(np.float32)


def write_bank(path, codes, dtype="float32", model=None, complete=True):
    """A bank of ``codes`` (crop 128 -> (8, 2, 2) codes for psf-tiny) with simple provenance."""
    n = len(codes)
    writer = BankWriter(path, model or tiny_model(), crop_size=128, source="unit", dtype=dtype)
    writer.append(codes, pair_ids=[f"seq/{i:03d}" for i in range(n)],
                  crop_boxes=np.arange(4 * n).reshape(n, 4), psnr=np.linspace(20, 30, n))
    if complete:
        writer.mark_complete()
    writer.close()
    return path


def columns(bank: KernelBank) -> dict:
    return {name: bank.column(name) for name in COLUMNS}


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    return ka.save_model(tiny_model(), tmp_path_factory.mktemp("model") / "tiny.safetensors")


@pytest.fixture(scope="module")
def reference(tmp_path_factory, model_file, pair_root):
    """An uninterrupted single-process extraction."""
    out = tmp_path_factory.mktemp("reference") / "bank.h5"
    summary = extract_bank(ka.load_model(model_file), pair_root, out, **SETTINGS)
    return out, summary


@pytest.fixture(scope="module")
def small_bank(tmp_path_factory):
    codes = random_codes(50)
    return write_bank(tmp_path_factory.mktemp("small") / "bank.h5", codes), codes


@pytest.fixture(params=["memory", "hdf5"])
def read_from(request, monkeypatch):
    """Both ways a bank reads its codes: small banks from memory, large ones through HDF5."""
    if request.param == "hdf5":
        monkeypatch.setattr(bank_module, "MEMORY_CODES_BYTES", 0)
    return request.param


# ---------------------------------------------------------------------------------------------------
class TestRoundTrip:
    def test_float32_bit_exact(self, small_bank, read_from):
        path, codes = small_bank
        bank = KernelBank(path)
        assert len(bank) == 50 and bank.code_shape == (8, 2, 2) and bank.dtype == np.float32
        assert bank[3].dtype == np.float32 and bank[3].shape == (8, 2, 2)
        assert np.array_equal(bank[:], codes)
        assert np.array_equal(bank[7], codes[7]) and np.array_equal(bank[-1], codes[-1])
        assert np.array_equal(bank[5:40:3], codes[5:40:3])
        assert np.array_equal(bank[[9, 2, 2, 49]], codes[[9, 2, 2, 49]])
        mask = np.arange(50) % 3 == 0
        assert np.array_equal(bank[mask], codes[mask])
        assert bank[[]].shape == (0, 8, 2, 2)
        with pytest.raises(IndexError, match="out of range"):
            bank[50]

    def test_float16_returns_rounded_values_exactly(self, tmp_path, read_from):
        codes = random_codes(20, seed=1)
        bank = KernelBank(write_bank(tmp_path / "b16.h5", codes, dtype="float16"))
        assert bank.dtype == np.float16
        expected = codes.astype(np.float16).astype(np.float32)
        assert np.array_equal(bank[:], expected) and not np.array_equal(bank[:], codes)

    def test_small_banks_read_once_into_memory_and_hand_out_copies(self, small_bank, read_from):
        path, codes = small_bank
        bank = KernelBank(path)
        first = bank[3]
        first[:] = 0
        rows = bank[[3, 4]]
        rows[:] = 0
        assert np.array_equal(bank[3], codes[3]) and np.array_equal(bank[[3, 4]], codes[[3, 4]])
        assert (bank._memory is not None) == (read_from == "memory")
        assert pickle.loads(pickle.dumps(bank))._memory is None  # a pickle carries the path only
        assert np.array_equal(bank.sample(4, rng=0), KernelBank(path).sample(4, rng=0))

    def test_provenance_and_metadata(self, small_bank):
        bank = KernelBank(small_bank[0])
        prov = bank.provenance(4)
        assert prov["pair_id"] == "seq/004" and prov["crop_box"] == (16, 17, 18, 19)
        assert prov["psnr"] == pytest.approx(np.linspace(20, 30, 50)[4], abs=1e-4)
        model = tiny_model()
        assert bank.model_sha256 == ka.model_sha256(model)
        assert bank.model_config["arch"] == "psf" and bank.model_config["kernel_dim"] == 8
        assert bank.crop_size == 128 and bank.source_dataset == "unit"
        attrs = bank.attrs
        assert attrs["format"] == "kernelaug.bank" and attrs["format_version"] == 1 and attrs["complete"] is True
        with h5py.File(small_bank[0], "r") as handle:
            codes = handle["codes"]
            assert codes.maxshape[0] is None and codes.chunks and codes.compression == "gzip"
        bank.check(model)

    def test_writer_rejects_bad_codes(self, tmp_path):
        with pytest.raises(ValueError, match="do not fit"):
            with BankWriter(tmp_path / "a.h5", tiny_model(), crop_size=128) as writer:
                writer.append(np.zeros((2, 8, 1, 1)))
        with BankWriter(tmp_path / "b.h5", tiny_model(), crop_size=128, dtype="float16") as writer:
            with pytest.raises(ValueError, match="float16"):
                writer.append(np.full((1, 8, 2, 2), 1e6))
            with pytest.raises(ValueError, match="NaN"):
                writer.append(np.full((1, 8, 2, 2), np.nan))


# ---------------------------------------------------------------------------------------------------
class TestErrors:
    def test_missing_file(self, tmp_path):
        with pytest.raises(FileNotFoundError, match="does not exist"):
            KernelBank(tmp_path / "nope.h5")

    def test_not_hdf5(self, tmp_path):
        path = tmp_path / "text.h5"
        path.write_text("hello")
        with pytest.raises(ValueError, match=f"{path}.*not a readable HDF5"):
            KernelBank(path)

    def test_truncated(self, tmp_path):
        path = write_bank(tmp_path / "t.h5", random_codes(400))
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        with pytest.raises(ValueError, match=f"{path}.*truncated"):
            KernelBank(path)[:]

    def test_corrupted_header(self, tmp_path):
        path = write_bank(tmp_path / "c.h5", random_codes(10))
        data = bytearray(path.read_bytes())
        data[:64] = b"\xff" * 64
        path.write_bytes(bytes(data))
        with pytest.raises(ValueError, match=f"{path}.*not a readable HDF5"):
            KernelBank(path)

    def test_corrupted_codes(self, tmp_path):
        path = write_bank(tmp_path / "d.h5", random_codes(10))
        with h5py.File(path, "r") as handle:
            info = handle["codes"].id.get_chunk_info(0)
        with open(path, "r+b") as f:
            f.seek(info.byte_offset)
            f.write(b"\x00\x01garbage" * (info.size // 9))
        bank = KernelBank(path)
        with pytest.raises(ValueError, match=f"{path} is damaged: cannot read codes"):
            bank[:]

    def test_not_a_bank_and_newer_version(self, tmp_path):
        other = tmp_path / "other.h5"
        with h5py.File(other, "w") as handle:
            handle["x"] = np.zeros(3)
        with pytest.raises(ValueError, match="not a kernelaug bank"):
            KernelBank(other)
        path = write_bank(tmp_path / "v.h5", random_codes(3))
        with h5py.File(path, "r+") as handle:
            handle.attrs["format_version"] = 99
        with pytest.raises(ValueError, match="version 99.*upgrade"):
            KernelBank(path)

    def test_incomplete_bank(self, tmp_path):
        path = tmp_path / "inc.h5"
        codes = random_codes(6)
        with pytest.raises(RuntimeError):
            with BankWriter(path, tiny_model(), crop_size=128) as writer:
                writer.append(codes[:4])
                writer.commit()
                writer.append(codes[4:])  # never committed
                raise RuntimeError("crash")
        assert not path.exists()  # the bank file appears only when complete
        with pytest.raises(FileNotFoundError, match="does not exist yet.*partial.*--resume"):
            KernelBank(path)
        info = ka.bank.bank_info(path)
        assert info["codes"] == 4 and not info["complete"] and info["file"].endswith(".partial")
        with pytest.raises(ValueError, match="interrupted.*resume"):
            BankWriter(path, tiny_model(), crop_size=128)
        with BankWriter(path, tiny_model(), crop_size=128, resume=True) as writer:
            assert len(writer) == 4  # the uncommitted rows were dropped
            writer.append(codes[4:])
        assert np.array_equal(KernelBank(path)[:], codes.astype(np.float16).astype(np.float32))
        assert not partial_path(path).exists()
        with pytest.raises(ValueError, match="already a complete kernel bank.*overwrite"):
            BankWriter(path, tiny_model(), crop_size=128)

    def test_incomplete_file_refused_unless_allowed(self, tmp_path):
        path = write_bank(tmp_path / "old.h5", random_codes(6))
        with h5py.File(path, "r+") as handle:  # as an older kernelaug left an interrupted bank
            handle.attrs["complete"] = False
            handle.attrs["codes_done"] = 4
        with pytest.raises(ValueError, match="incomplete.*--resume.*allow_incomplete"):
            KernelBank(path)
        shown = KernelBank(path, allow_incomplete=True)
        assert len(shown) == 4 and shown[:].shape[0] == 4 and len(shown._memory) == 4  # committed rows only
        with pytest.raises(ValueError, match="older kernelaug.*overwrite"):
            BankWriter(path, tiny_model(), crop_size=128)

    def test_model_mismatch(self, small_bank):
        bank = KernelBank(small_bank[0])
        with pytest.raises(ValueError, match="model hash mismatch"):
            bank.check(tiny_model(seed=1))
        other = ka.build_model(PsfConfig(nf=8, front_blocks=1, extractor_blocks=1, kernel_dim=4, psf_size=9,
                                         decoder_width=32, residual_width=4))
        with pytest.raises(ValueError, match="code shape mismatch.*kernel_dim is 4"):
            bank.check(other)


# ---------------------------------------------------------------------------------------------------
class TestExtract:
    def test_reference(self, reference, pair_root):
        path, summary = reference
        bank = KernelBank(path)
        assert len(bank) == 12 and summary["codes"] == 12 and summary["pairs"] == 6
        assert bank.code_shape == (8, 1, 1) and bank.dtype == np.float16
        assert bank.attrs["seed"] == 3 and bank.attrs["tiling"] == "random" and bank.attrs["crops_per_pair"] == 2
        ids = bank.column("pair_id")
        assert list(ids[::2]) == [p.pair_id for p in ka.data.pairs.find_pairs(pair_root, split="train")[:6]]
        assert list(bank.column("crop_box")[2]) == list(crop_boxes(128, 128, 64, 1, seed=3, crops_per_pair=2)[0])
        assert np.isfinite(bank.column("psnr")).all()
        assert summary["mean_psnr"] == pytest.approx(float(bank.column("psnr").mean()), abs=1e-4)

    def test_psnr_uses_the_stored_code(self, reference, model_file, pair_root):
        bank = KernelBank(reference[0])
        model = ka.load_model(model_file)
        bank.check(model)
        sharp, blurry = ka.data.pairs.read_pair(ka.data.pairs.find_pairs(pair_root, split="train")[0])
        top, left, h, w = bank.provenance(1)["crop_box"]
        crop = lambda im: torch.from_numpy(im[top:top + h, left:left + w].transpose(2, 0, 1).copy())[None]
        with torch.no_grad():
            rebuilt = model.apply(crop(sharp), torch.from_numpy(bank[1:2]))
        assert ka.metrics.psnr(rebuilt, crop(blurry)).item() == pytest.approx(bank.provenance(1)["psnr"], abs=1e-3)

    def test_killed_then_resumed_equals_uninterrupted(self, tmp_path, reference, model_file, pair_root):
        out = tmp_path / "bank.h5"
        script = (
            "import os, torch, kernelaug.learn.extract as E\n"
            "torch.set_num_threads(2)\n"  # as conftest: float reductions depend on the thread count
            "def hook(path, done):\n"
            "    if done >= 4: os._exit(17)\n"
            "E._batch_flushed = hook\n"
            f"E.extract_bank({str(model_file)!r}, {str(pair_root)!r}, {str(out)!r}, **{SETTINGS!r})\n"
        )
        proc = subprocess.Popen([sys.executable, "-c", script])
        assert proc.wait(timeout=300) == 17
        with pytest.raises(FileNotFoundError, match="interrupted"):
            KernelBank(out)
        assert ka.bank.bank_info(out)["codes"] == 8  # two batches of 2 pairs x 2 crops
        model = ka.load_model(model_file)
        with pytest.raises(ValueError, match="interrupted.*resume"):
            extract_bank(model, pair_root, out, **SETTINGS)
        with pytest.raises(ValueError, match="seed"):
            extract_bank(model, pair_root, out, resume=True, **{**SETTINGS, "seed": 4})
        with pytest.raises(ValueError, match="crop_size"):
            extract_bank(model, pair_root, out, resume=True, **{**SETTINGS, "crop": 128})
        with pytest.raises(ValueError, match=r"model \(weights sha256\)"):
            extract_bank(tiny_model(seed=5), pair_root, out, resume=True, **SETTINGS)
        summary = extract_bank(model, pair_root, out, resume=True, **SETTINGS)
        assert summary["resumed_from_pairs"] == 4 and summary["codes_written"] == 4
        resumed, uninterrupted = KernelBank(out), KernelBank(reference[0])
        assert np.array_equal(resumed[:], uninterrupted[:])
        for name, values in columns(uninterrupted).items():
            assert np.array_equal(columns(resumed)[name], values), name
        again = extract_bank(model, pair_root, out, resume=True, **SETTINGS)  # complete: nothing to do
        assert again["codes_written"] == 0 and again["codes"] == 12

    def test_refuses_complete_bank_without_overwrite(self, reference, model_file, pair_root, tmp_path):
        with pytest.raises(ValueError, match="already a complete kernel bank.*--overwrite"):
            extract_bank(model_file, pair_root, reference[0], **SETTINGS)
        out = tmp_path / "tiled.h5"
        out.write_bytes(b"precious")
        with pytest.raises(ValueError, match="not a readable kernel bank"):
            extract_bank(model_file, pair_root, out, **SETTINGS)
        settings = {**SETTINGS, "crops_per_pair": 1, "limit": 2, "dtype": "float32"}
        summary = extract_bank(model_file, pair_root, out, tile=True, overwrite=True, **settings)
        bank = KernelBank(out)
        assert summary["codes"] == len(bank) == 8 and bank.dtype == np.float32  # 2 pairs x 2x2 tiles
        assert sorted(tuple(b) for b in bank.column("crop_box")[:4]) == [
            (0, 0, 64, 64), (0, 64, 64, 64), (64, 0, 64, 64), (64, 64, 64, 64)]

    def test_crop_must_fit_the_model(self, model_file, pair_root, tmp_path):
        with pytest.raises(ValueError, match="multiple of the model's cell"):
            extract_bank(model_file, pair_root, tmp_path / "x.h5", **{**SETTINGS, "crop": 96})
        with pytest.raises(ValueError, match="smaller than the 192x192 crop"):
            extract_bank(model_file, pair_root, tmp_path / "y.h5", **{**SETTINGS, "crop": 192})


# ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def shards(tmp_path_factory, model_file, pair_root):
    """The reference extraction run as two torchrun-style ranks (given in reverse order)."""
    out = tmp_path_factory.mktemp("shards") / "bank.h5"
    model = ka.load_model(model_file)
    for rank in range(2):
        extract_bank(model, pair_root, out, rank=rank, world=2, **SETTINGS)
    return [shard_path(out, 1, 2), shard_path(out, 0, 2)]


class TestMerge:
    @pytest.mark.parametrize("virtual", [False, True])
    def test_merge_equals_single_process(self, shards, reference, tmp_path, virtual):
        assert shards[0].name == "bank.rank1-of-2.h5"
        out = shards[0].parent / f"merged-{virtual}.h5"
        summary = merge_banks(shards, out, virtual=virtual)
        assert summary["codes"] == 12 and summary["interleaved"]
        merged, single = KernelBank(out), KernelBank(reference[0])
        with h5py.File(out, "r") as handle:
            assert handle["codes"].is_virtual == virtual
        for name in ("pair_id", "crop_box", "pair_index"):
            assert np.array_equal(merged.column(name), single.column(name)), name
        # Shards see other batch compositions than the single process: equal up to float rounding.
        np.testing.assert_allclose(merged[:], single[:], rtol=2e-3, atol=1e-6)
        np.testing.assert_allclose(merged.column("psnr"), single.column("psnr"), atol=1e-3)
        assert merged.attrs["world"] == 1 and merged.model_sha256 == single.model_sha256

    def test_merge_checks(self, shards, tmp_path, small_bank):
        with pytest.raises(ValueError, match="given twice"):
            merge_banks(shards[:1] + shards[:1], tmp_path / "dup.h5")
        with pytest.raises(ValueError, match="different code_shape"):
            merge_banks([shards[0], small_bank[0]], tmp_path / "mixed.h5")
        with BankWriter(tmp_path / "other.h5", tiny_model(seed=1), crop_size=64) as writer:
            writer.append(random_codes(2, shape=(8, 1, 1)))
        with pytest.raises(ValueError, match="different model_sha256"):
            merge_banks([shards[0], tmp_path / "other.h5"], tmp_path / "mixed.h5")
        other = write_bank(tmp_path / "inc.h5", random_codes(2), complete=False)
        with pytest.raises(FileNotFoundError, match="interrupted"):
            merge_banks([small_bank[0], other], tmp_path / "m.h5")
        second = write_bank(tmp_path / "second.h5", random_codes(5, seed=9))
        summary = merge_banks([small_bank[0], second], tmp_path / "cat.h5", virtual=True)
        assert not summary["interleaved"]
        merged = KernelBank(tmp_path / "cat.h5")
        assert np.array_equal(merged[:], np.concatenate([random_codes(50), random_codes(5, seed=9)]))
        second.unlink()
        with pytest.raises(ValueError, match="shard .*second.h5 is missing"):
            KernelBank(tmp_path / "cat.h5")


# ---------------------------------------------------------------------------------------------------
class Owned(Dataset):
    """(code, worker pid) per item, to see that each worker reads through its own handle."""

    def __init__(self, bank):
        self.bank = bank

    def __len__(self):
        return len(self.bank)

    def __getitem__(self, index):
        return self.bank[index], os.getpid()


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_dataloader_workers(small_bank, context):
    path, codes = small_bank
    bank = KernelBank(path)
    assert np.array_equal(bank[0], codes[0])  # the parent holds an open handle before the workers start
    loader = DataLoader(Owned(bank), batch_size=5, num_workers=2, multiprocessing_context=context)
    got, pids = zip(*loader)
    assert np.array_equal(torch.cat(got).numpy(), codes)
    assert len(set(torch.cat(pids).tolist())) == 2 and os.getpid() not in torch.cat(pids).tolist()
    assert np.array_equal(bank[1], codes[1])  # still usable in the parent


# ---------------------------------------------------------------------------------------------------
class TestSampling:
    @pytest.mark.parametrize("mode", SAMPLE_MODES)
    def test_reproducible(self, small_bank, mode):
        bank = KernelBank(small_bank[0])
        state = np.random.get_state()[1].copy()
        first = bank.sample(7, rng=11, mode=mode)
        assert first.shape == (7, 8, 2, 2) and first.dtype == np.float32
        assert np.array_equal(first, bank.sample(7, rng=11, mode=mode))
        assert np.array_equal(first, bank.sample(7, rng=np.random.default_rng(11), mode=mode))
        assert not np.array_equal(first, bank.sample(7, rng=12, mode=mode))
        assert np.array_equal(state, np.random.get_state()[1])  # global state untouched

    def test_modes(self, small_bank):
        bank, codes = KernelBank(small_bank[0]), small_bank[1]
        drawn = bank.sample(20, rng=0)
        assert all(any(np.array_equal(c, k) for k in codes) for c in drawn)
        mixed = bank.sample(200, rng=0, mode="mix")
        assert (mixed >= codes.min(0) - 1e-6).all() and (mixed <= codes.max(0) + 1e-6).all()
        novel = bank.sample(4000, rng=0, mode="gaussian")
        np.testing.assert_allclose(novel.mean(0), codes.mean(0), atol=0.25)
        flat = codes.reshape(50, -1)
        np.testing.assert_allclose(np.cov(novel.reshape(4000, -1).T), np.cov(flat.T), atol=0.8)
        with pytest.raises(ValueError, match="unknown sample mode"):
            bank.sample(1, mode="nope")
        with pytest.raises(TypeError, match="rng"):
            bank.sample(1, rng="seed")

    def test_gram_fit_matches_covariance_fit(self, small_bank, monkeypatch):
        direct = KernelBank(small_bank[0]).gaussian()
        monkeypatch.setattr(bank_module, "_COV_DIM_LIMIT", 0)
        gram = KernelBank(small_bank[0]).gaussian()
        np.testing.assert_allclose(gram.mean, direct.mean, atol=1e-9)
        np.testing.assert_allclose(gram.components.T @ gram.components,
                                   direct.components.T @ direct.components, atol=1e-6)
        full = np.cov(small_bank[1].reshape(50, -1).T)  # rank 32 = D: the Gaussian is the sample covariance
        np.testing.assert_allclose(direct.components.T @ direct.components, full, atol=1e-6)

    @pytest.mark.parametrize("grid_mode", ["resize", "tile"])
    def test_grid(self, small_bank, grid_mode):
        bank = KernelBank(small_bank[0])
        adapted = bank.sample(3, rng=5, mode="bank", grid=(3, 5), grid_mode=grid_mode)
        assert adapted.shape == (3, 8, 3, 5) and adapted.dtype == np.float32
        expected = adapt_grid(torch.from_numpy(bank.sample(3, rng=5)), 3, 5, grid_mode).numpy()
        assert np.array_equal(adapted, expected)


# ---------------------------------------------------------------------------------------------------
class TestCli:
    def test_bank_info(self, reference, capsys):
        assert main(["bank-info", str(reference[0])]) == 0
        text = capsys.readouterr().out
        assert "complete:      yes" in text and "12 x (8, 1, 1) float16" in text and "psf sha256" in text
        assert "median" in text and text.count("|") == 10
        assert main(["bank-info", str(reference[0]), "--json"]) == 0
        info = json.loads(capsys.readouterr().out)
        assert info["codes"] == 12 and info["psnr"]["count"] == 12 and info["model_arch"] == "psf"

    def test_bank_info_errors(self, tmp_path, capsys):
        assert main(["bank-info", str(tmp_path / "missing.h5")]) == 2
        assert "does not exist" in capsys.readouterr().err

    def test_extract_and_merge(self, model_file, pair_root, tmp_path, capsys):
        out = tmp_path / "cli.h5"
        args = ["extract", "--model", str(model_file), "--data", str(pair_root), "--out", str(out), "--crop", "64",
                "--limit", "2", "--split", "train", "--dtype", "float32", "--no-progress"]
        assert main(args) == 0
        line = capsys.readouterr().out.strip()
        assert line.startswith("extracted 2 codes from 2 pairs") and "mean reconstruction PSNR" in line
        assert main(args) == 2 and "--overwrite" in capsys.readouterr().err
        assert main(["bank-merge", str(out), "--out", str(tmp_path / "m.h5")]) == 0
        assert "merged 2 codes" in capsys.readouterr().out
