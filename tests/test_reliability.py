"""Reliability: banks survive kills and concurrent use; bad files and bad arguments get clear errors.

Each test guards one failure of issue 16 (data loss, resource exhaustion, unclear errors).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

import kernelaug as ka
from conftest import tiny_model
from kernelaug.bank import BankWriter, KernelBank
from kernelaug.bank.journal import partial_path
from kernelaug.cli import main as cli
from kernelaug.learn.extract import extract_bank

HERE = Path(__file__).parent
# A small extraction: 4 pairs in 2 batches of 2 pairs, two 64 px crops per pair.
SETTINGS = dict(crop=64, crops_per_pair=2, batch_size=2, limit=4, split="train", seed=3, progress=False)
COLUMNS = ("pair_id", "crop_box", "psnr", "pair_index")
VOLATILE = {"created", "finished"}  # timestamps: the only attributes a resumed bank may differ in


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    return ka.save_model(tiny_model(), tmp_path_factory.mktemp("model") / "tiny.safetensors")


def bank_contents(path) -> dict:
    with KernelBank(path) as bank:
        return {"codes": bank[:], **{name: bank.column(name) for name in COLUMNS},
                "attrs": {k: v for k, v in bank.attrs.items() if k not in VOLATILE}}


def assert_same_bank(path, reference) -> None:
    got, want = bank_contents(path), bank_contents(reference)
    assert np.array_equal(got["codes"], want["codes"])
    for name in COLUMNS:
        assert np.array_equal(got[name], want[name]), name
    assert got["attrs"] == want["attrs"]


def run_driver(tmp_path, model_file, pair_root, phase: str) -> dict:
    spec = {"model": str(model_file), "data": str(pair_root), "root": str(tmp_path), "settings": SETTINGS,
            "phase": phase}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(
        [str(HERE.parent), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, str(HERE / "crash_driver.py"), str(tmp_path / "spec.json")],
                          capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


# -- 2. kill -9 during a batch write never corrupts committed codes ------------------------------
def test_extraction_killed_at_every_write_and_flush_resumes_to_the_uninterrupted_bank(tmp_path, model_file,
                                                                                    pair_root):
    report = run_driver(tmp_path, model_file, pair_root, "extract")
    reference = tmp_path / "reference" / "bank.h5"
    calls = set(report["calls"])
    assert {"os.pwrite", "os.fsync", "os.replace", "Dataset.__setitem__", "File.close"} <= calls
    assert len(report["runs"]) > len(report["calls"])  # every call, and torn variants of the writes
    for run in report["runs"]:
        where = f"killed before call {run['k']} ({run['call']}{', torn' if run['torn'] else ''})"
        assert run["killed"] == 17, where
        assert run["resumed"] == 0, where
        assert_same_bank(run["out"], reference)
        assert not partial_path(run["out"]).exists(), where


def test_resume_killed_at_every_write_and_flush_still_resumes(tmp_path, model_file, pair_root):
    report = run_driver(tmp_path, model_file, pair_root, "resume")
    assert len(report["runs"]) == len(report["calls"]) > 20
    for run in report["runs"]:
        where = f"resume killed before call {run['k']} ({run['call']})"
        assert (run["killed"], run["resumed"]) == (17, 0), where
    # the forked runs use one thread, this process may not: compare the runs with each other exactly
    first = report["runs"][0]["out"]
    for run in report["runs"]:
        assert_same_bank(run["out"], first)


# -- 1. --overwrite never destroys a bank in use, and replaces it only when complete --------------
@pytest.fixture()
def old_bank(tmp_path, model_file, pair_root):
    path = tmp_path / "b.h5"
    extract_bank(model_file, pair_root, path, **{**SETTINGS, "limit": 2})
    return path


def hold_open(path):
    """A process that keeps ``path`` open with h5py (as a training job reading the bank does)."""
    proc = subprocess.Popen([sys.executable, "-c", "import sys, h5py\nf = h5py.File(sys.argv[1], 'r')\n"
                             "print('open', flush=True)\nsys.stdin.read()\n", str(path)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "open"
    return proc


def test_overwrite_refuses_a_bank_open_in_another_process_and_leaves_it_untouched(old_bank, model_file,
                                                                                  pair_root, capsys):
    before = old_bank.read_bytes()
    reader = hold_open(old_bank)
    try:
        with pytest.raises(ValueError, match="open in another process.*untouched"):
            extract_bank(model_file, pair_root, old_bank, overwrite=True, **SETTINGS)
        rc = cli(["extract", "--model", str(model_file), "--data", str(pair_root), "--out", str(old_bank),
                          "--overwrite", "--crop", "64", "--limit", "2", "--no-progress", "--device", "cpu"])
        assert rc == 2 and "open in another process" in capsys.readouterr().err
    finally:
        reader.communicate("")
    assert old_bank.read_bytes() == before and not partial_path(old_bank).exists()


def test_overwrite_keeps_the_old_bank_until_the_new_one_is_complete(old_bank, model_file, pair_root,
                                                                    monkeypatch):
    import kernelaug.learn.extract as E

    before = old_bank.read_bytes()

    def interrupted(path, done):
        raise KeyboardInterrupt

    monkeypatch.setattr(E, "_batch_flushed", interrupted)
    with pytest.raises(KeyboardInterrupt):
        extract_bank(model_file, pair_root, old_bank, overwrite=True, **SETTINGS)
    assert old_bank.read_bytes() == before and len(KernelBank(old_bank)) == 4
    monkeypatch.undo()
    summary = extract_bank(model_file, pair_root, old_bank, resume=True, **SETTINGS)
    assert summary["resumed_from_pairs"] == 2 and len(KernelBank(old_bank)) == 8
    assert not partial_path(old_bank).exists()


def test_bank_opened_by_a_reader_before_completion_is_not_replaced(old_bank, model_file, pair_root):
    before = old_bank.read_bytes()
    writer = BankWriter(old_bank, tiny_model(), crop_size=64, overwrite=True)
    writer.append(np.zeros((3, 8, 1, 1), np.float32))
    reader = KernelBank(old_bank)  # opened meanwhile (another handle holds the file)
    with pytest.raises(ValueError, match="open in another process"):
        writer.mark_complete()
    writer.close()
    assert old_bank.read_bytes() == before
    reader.close()
    with BankWriter(old_bank, tiny_model(), crop_size=64, resume=True) as writer:
        assert len(writer) == 3  # mark_complete committed them before it was refused
    assert len(KernelBank(old_bank)) == 3


def test_two_writers_of_one_bank_are_refused_clearly(tmp_path):
    path = tmp_path / "x.h5"
    first = BankWriter(path, tiny_model(), crop_size=64)
    try:
        for kwargs in ({"overwrite": True}, {"resume": True}):
            with pytest.raises(ValueError, match="being written by another process"):
                BankWriter(path, tiny_model(), crop_size=64, **kwargs)
    finally:
        first.close()


# -- 3. NaN/Inf codes never give silent black or NaN images --------------------------------------
@pytest.fixture()
def nan_bank(tmp_path):
    path = tmp_path / "nan.h5"
    with BankWriter(path, tiny_model(), crop_size=128, dtype="float32") as writer:
        writer.append(np.random.default_rng(0).normal(0, 1, (20, 8, 2, 2)).astype(np.float32))
    with h5py.File(path, "r+") as handle:  # damaged or edited by another tool
        handle["codes"][3, 0, 0, 0] = np.nan
        handle["codes"][7, 2, 1, 1] = np.inf
    return path


def test_reader_names_the_nonfinite_rows_of_a_bank(nan_bank, capsys):
    bank = KernelBank(nan_bank)
    assert list(bank.nonfinite_rows()) == [3, 7]
    with pytest.raises(ValueError, match=r"2 code\(s\) with NaN or infinity \(rows 3, 7\)"):
        bank.check(tiny_model())
    assert ka.bank.bank_info(nan_bank)["nonfinite_rows"] == [3, 7]
    assert cli(["bank-info", str(nan_bank)]) == 0
    assert "NON-FINITE:    2 code(s) hold NaN/Inf, rows 3, 7" in capsys.readouterr().out


def test_transforms_and_commands_refuse_a_bank_with_nonfinite_codes(nan_bank, model_file, tmp_path, capsys):
    for make in (lambda: ka.LearnedBlur(tiny_model(), nan_bank), lambda: ka.LearnedBlurBatch(tiny_model(), nan_bank)):
        with pytest.raises(ValueError, match="rows 3, 7"):
            make()
    image = tmp_path / "in.png"
    import cv2
    cv2.imwrite(str(image), np.full((64, 64, 3), 128, np.uint8))
    common = ["--model", str(model_file), "--bank", str(nan_bank), "--device", "cpu"]
    assert cli(["transfer", *common, "--index", "3", "--onto", str(image), "--out", str(tmp_path / "o.png")]) == 2
    assert cli(["augment", *common, "--images", str(tmp_path), "--out", str(tmp_path / "aug"), "--no-progress"]) == 2
    assert capsys.readouterr().err.count("rows 3, 7") == 2
    assert not (tmp_path / "o.png").exists()


def test_engine_never_blurs_with_a_nonfinite_code(tmp_path):
    from kernelaug.functional import learned_blur

    model = tiny_model()
    images = torch.rand(3, 3, 64, 64)
    codes = torch.zeros(3, 8, 1, 1)
    codes[1, 0] = float("nan")
    with pytest.raises(ValueError, match=r"code\(s\) \[1\] of the batch hold NaN or infinity"):
        learned_blur(images, codes, model)
    path = tmp_path / "ok.h5"
    with BankWriter(path, model, crop_size=64) as writer:
        writer.append(np.zeros((2, 8, 1, 1), np.float32))
    with pytest.raises(ValueError, match="NaN or infinity"):
        ka.LearnedBlurBatch(model, path)(images, codes=codes)


def test_bank_merge_refuses_nonfinite_codes(nan_bank, tmp_path):
    good = tmp_path / "good.h5"
    with BankWriter(good, tiny_model(), crop_size=128) as writer:
        writer.append(np.zeros((2, 8, 2, 2), np.float32))
    with pytest.raises(ValueError, match="nan.h5 holds 2 code.*rows 3, 7"):
        ka.bank.merge_banks([good, nan_bank], tmp_path / "merged.h5")
    assert not (tmp_path / "merged.h5").exists()


# -- 6. a crafted .safetensors cannot exhaust memory ----------------------------------------------
def rewrite_metadata(path, out, **changes):
    """Copy model file ``path`` to ``out`` with metadata fields replaced (None removes one)."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(str(path), framework="pt") as handle:
        metadata = dict(handle.metadata())
    for key, value in changes.items():
        if value is None:
            metadata.pop(key, None)
        else:
            metadata[key] = value if isinstance(value, str) else json.dumps(value)
    save_file(load_file(str(path)), str(out), metadata=metadata)
    return out


def with_config(model_file, out, **fields):
    config = ka.models.checkpoint.read_metadata(model_file)[0]
    return rewrite_metadata(model_file, out, config={**config, **fields})


@pytest.mark.parametrize("fields, match", [
    ({"nf": 6000}, r"field nf must be an integer in \[1, 1024\], got 6000"),
    ({"front_blocks": 100000}, r"field front_blocks must be an integer in \[0, 256\]"),
    ({"kernel_dim": 10 ** 9}, r"field kernel_dim"),
    ({"psf_size": 1001}, r"field psf_size"),
    ({"cell": 96}, r"field cell must be a power of two"),
])
def test_crafted_model_config_is_refused_before_anything_is_built(model_file, tmp_path, fields, match, monkeypatch):
    import kernelaug.models.checkpoint as checkpoint

    monkeypatch.setattr(checkpoint, "build_model", lambda config: pytest.fail("built a model"))
    path = with_config(model_file, tmp_path / "crafted.safetensors", **fields)
    with pytest.raises(ValueError, match=f"{path}.*{match}"):
        ka.load_model(path)


def test_model_is_laid_out_on_meta_and_checked_against_the_header_before_allocating(model_file, tmp_path,
                                                                                      monkeypatch):
    import kernelaug.models.checkpoint as checkpoint

    devices = []
    real_build = checkpoint.build_model

    def spy(config):
        devices.append(torch.empty(0).device.type)  # the default device the layers are created on
        return real_build(config)

    monkeypatch.setattr(checkpoint, "build_model", spy)
    # in range, but the file's tensors have other shapes
    path = with_config(model_file, tmp_path / "big.safetensors", nf=1024)
    with pytest.raises(ValueError, match=f"{path}: tensor .* has shape .* the config implies"):
        ka.load_model(path)
    assert devices == ["meta"]
    assert ka.load_model(model_file).sha256 == ka.model_sha256(tiny_model())
    assert devices == ["meta", "meta"]


# -- 8. malformed metadata: a ValueError naming the file and the field ----------------------------
@pytest.mark.parametrize("changes, field", [
    ({"config": [1, 2]}, "config' must be a JSON object"),
    ({"config": "null"}, "config' must be a JSON object"),
    ({"config": json.dumps("psf")}, "config' must be a JSON object"),
    ({"config": "{not json"}, "config' is not JSON"),
    ({"format_version": "abc"}, "format_version' must be an integer"),
    ({"provenance": "[" * 100000 + "]" * 100000}, "provenance' is nested too deeply"),
    ({"provenance": "[" * 200 + "]" * 200}, "provenance' is nested more than 64 levels"),
    ({"provenance": "[]"}, "provenance' must be a JSON object"),
])
def test_malformed_model_metadata_names_the_file_and_field(model_file, tmp_path, changes, field):
    path = rewrite_metadata(model_file, tmp_path / "bad.safetensors", **changes)
    with pytest.raises(ValueError, match=f"{path}.*'{field}"):
        ka.load_model(path)


@pytest.mark.parametrize("value, match", [("64", "got '64'"), (-1, "got -1"), (6.5, "got 6.5"), (True, "got True")])
def test_model_config_field_of_the_wrong_type_names_the_field(model_file, tmp_path, value, match):
    path = with_config(model_file, tmp_path / "bad.safetensors", nf=value)
    with pytest.raises(ValueError, match=f"{path}.*field nf must be an integer.*{match}"):
        ka.load_model(path)


def good_bank(path):
    with BankWriter(path, tiny_model(), crop_size=64) as writer:
        writer.append(np.zeros((3, 8, 1, 1), np.float32))
    return path


@pytest.mark.parametrize("attribute, value, match", [
    ("code_shape", 8, "attribute code_shape is 8, not three positive integers"),
    ("code_shape", np.array([8, -1, 1]), "attribute code_shape"),
    ("codes_done", -5, "attribute codes_done is -5, not a non-negative integer"),
    ("model_config", "{oops", "attribute model_config is not a JSON object"),
    ("model_config", "[1]", "attribute model_config is not a JSON object"),
    ("complete", "False", "attribute complete is 'False', not a boolean"),
    ("format_version", "abc", "attribute format_version is 'abc', not a positive integer"),
    ("crop_size", 0, "attribute crop_size is 0"),
])
def test_malformed_bank_attributes_name_the_file_and_field(tmp_path, attribute, value, match, capsys):
    path = good_bank(tmp_path / "b.h5")
    with h5py.File(path, "r+") as handle:
        handle.attrs[attribute] = value
    with pytest.raises(ValueError, match=f"{path} is a damaged kernel bank: {match}"):
        KernelBank(path)
    assert cli(["bank-info", str(path)]) == 2  # not a traceback
    assert attribute in capsys.readouterr().err


def test_bank_codes_as_an_external_link_is_refused(tmp_path):
    path = good_bank(tmp_path / "b.h5")
    with h5py.File(path, "r+") as handle:
        del handle["codes"]
        handle["codes"] = h5py.ExternalLink("missing.h5", "/codes")
    with pytest.raises(ValueError, match=f"{path} is a damaged kernel bank: dataset codes is a ExternalLink "
                                         r"\(to missing.h5/codes\)"):
        KernelBank(path)


# -- 4. augment: distinct images never share output files -----------------------------------------
def test_augment_output_names_are_unique_and_stable():
    from kernelaug.tools.augment import sequence_names

    listing = ["a b.png", "a_b.png", "x/y.png", "x__y.png", "x/_y.png", "x_/y.png", "c.png", "c.jpg", "d/e.png"]
    names = sequence_names(listing)
    assert len(set(names)) == len(listing)
    assert names == sequence_names(list(listing))  # the same in every run
    assert names[-1] == "d__e" and names[1].startswith("a_b-")  # clean names are kept; clashing ones get a hash


def test_augment_writes_each_colliding_image_to_its_own_files(tmp_path):
    import cv2

    from kernelaug.tools.augment import AugmentSettings, augment_folder

    model = tiny_model()
    bank_path = tmp_path / "bank.h5"
    with BankWriter(bank_path, model, crop_size=64) as writer:
        writer.append(np.zeros((2, 8, 1, 1), np.float32))
    images = tmp_path / "images"
    (images / "x").mkdir(parents=True)
    sources = {"a b.png": 40, "a_b.png": 120, "x/y.png": 200, "x__y.png": 250}
    for name, value in sources.items():
        cv2.imwrite(str(images / name), np.full((32, 32, 3), value, np.uint8))
    out = tmp_path / "out"
    summary = augment_folder(model, KernelBank(bank_path), images, out, AugmentSettings(per_image=1), progress=False)
    assert summary["written"] == 4 and summary["skipped"] == 0
    manifest = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert len({m["sharp"] for m in manifest}) == 4
    for record in manifest:
        sharp = cv2.imread(str(out / record["sharp"]))
        assert int(sharp[0, 0, 0]) == sources[record["image"]], record


# -- 5. make-synthetic never mixes a new dataset into an old one ----------------------------------
def test_make_synthetic_refuses_a_non_empty_dataset_unless_overwrite(tmp_path, capsys):
    from kernelaug.data.synthetic import make_synthetic

    out = tmp_path / "synth"
    make_synthetic(out, pairs=4, size=128, seed=1, progress=False)
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    with pytest.raises(ValueError, match="not empty.*--overwrite"):
        make_synthetic(out, pairs=2, size=64, seed=2, progress=False)
    assert cli(["make-synthetic", str(out), "--pairs", "2", "--size", "64", "--no-progress"]) == 2
    assert "not empty" in capsys.readouterr().err
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
    assert cli(["make-synthetic", str(out), "--pairs", "2", "--size", "64", "--overwrite", "--no-progress"]) == 0
    pngs = list(out.rglob("*.png"))
    assert len(pngs) == 4 and all(cv2_size(p) == 64 for p in pngs)  # the old pairs are gone
    assert len((out / "manifest.jsonl").read_text().splitlines()) == 2


def cv2_size(path) -> int:
    import cv2

    return cv2.imread(str(path)).shape[0]


# -- 7. every output path is checked before any work ---------------------------------------------
@pytest.fixture()
def places(tmp_path):
    """Bad outputs: a missing folder, a folder, a plain file, a read-only folder."""
    (tmp_path / "folder").mkdir()
    (tmp_path / "file.txt").write_text("precious")
    if os.geteuid() == 0:  # root writes through permission bits: use a folder nobody can write
        readonly = Path("/proc")
    else:
        readonly = tmp_path / "readonly"
        readonly.mkdir()
        readonly.chmod(0o555)
    return {"missing": tmp_path / "missing", "folder": tmp_path / "folder", "file": tmp_path / "file.txt",
            "readonly": readonly, "root": tmp_path}


OUTPUT_CASES = [
    # (command line with {missing} / {folder} / {file} / {readonly} / {root}, expected message)
    ("train --data {root} --out {folder}", "--out .*folder is a folder"),
    ("train --data {root} --out {missing}/m.safetensors", "folder .*missing does not exist"),
    ("train --data {root} --out {root}/m.h5", "must end in .safetensors"),
    ("train --data {root} --out {readonly}/m.safetensors", "is not writable"),
    ("deblur {file} --out {root}/x.txt", "must end in .png"),
    ("deblur {file} --out {missing}/x.png", "does not exist"),
    ("extract --model m --data {root} --out {root}/b.png", "must end in .h5"),
    ("bank-merge {file} --out {folder}", "is a folder"),
    ("transfer --onto {file} --out {root}/d.gif", "must end in .png"),
    ("transfer --onto {file} --out {root}/d.png --save-code {root}/c.txt", "--save-code .*must end in .npy"),
    ("augment --images {root} --out {file}", "exists and is not a folder"),
    ("coverage --kernels {root} --images {root} --json {missing}/c.json", "--json .*does not exist"),
    ("make-kernels {file}", "exists and is not a folder"),
    ("show-psf --bank synth-small --out {folder}", "is a folder"),
    ("show-bank --out {readonly}/map.png", "is not writable"),
    ("sample-grid --images {root} --out {root}/g", "must end in .png"),
    ("evaluate --model m --data {root} --figure {root}/f.txt", "--figure .*must end in .png"),
    ("srn train --data {root} --out {root}/s.pt", "must end in .safetensors"),
    ("srn eval --model {file} --data {root} --json {folder}", "--json .*is a folder"),
    ("make-synthetic {file}", "exists and is not a folder"),
    ("frames-to-pairs {root} {file}", "exists and is not a folder"),
    ("bench srn --out {file}", "exists and is not a folder"),
]


@pytest.mark.parametrize("line, message", OUTPUT_CASES, ids=[c[0].split(" --")[0] for c in OUTPUT_CASES])
def test_bad_output_paths_are_refused_before_any_work(places, line, message, capsys, monkeypatch):
    import kernelaug.deblur.blind as blind
    import kernelaug.learn.train as train

    if "{readonly}" in line and not os.access(places["readonly"], os.F_OK):
        pytest.skip("no read-only folder on this machine")
    monkeypatch.setattr(train, "train", lambda options: pytest.fail("trained before checking --out"))
    monkeypatch.setattr(blind, "deblur_generic", lambda *a, **k: pytest.fail("deblurred before checking --out"))
    argv = line.format(**{k: str(v) for k, v in places.items()}).split()
    assert cli(argv) == 2
    err = capsys.readouterr().err
    assert re.search(message, err), err
    assert "Traceback" not in err and (places["root"] / "file.txt").read_text() == "precious"


def test_extract_never_replaces_its_own_model_file(model_file, pair_root, tmp_path):
    copy = tmp_path / "model.h5"
    copy.write_bytes(model_file.read_bytes())
    with pytest.raises(ValueError, match="is the model file itself"):
        extract_bank(copy, pair_root, copy, overwrite=True, **SETTINGS)
    assert copy.read_bytes() == model_file.read_bytes()
    assert cli(["extract", "--model", str(copy), "--data", str(pair_root), "--out", str(copy), "--overwrite"]) == 2


# -- 9. arguments are validated at parse time ------------------------------------------------------
PARSE_CASES = [
    ("transfer --onto a.png --out d.png --strength 2", "--strength: must be a finite number in [0.0, 1.0], got 2"),
    ("transfer --onto a.png --out d.png --strength nan", "--strength: must be a finite number"),
    ("augment --images i --out o --strength 0.5 1.5", "--strength: must be a finite number in [0.0, 1.0]"),
    ("coverage --kernels k --images i --gamma 0", "--gamma: must be a finite number in (0, 10]"),
    ("coverage --kernels k --images i --gamma -1", "--gamma: must be a finite number"),
    ("coverage --kernels k --images i --crop 0", "--crop: must be >= 1, got 0"),
    ("evaluate --model m --data d --limit 0", "--limit: must be >= 1, got 0"),
    ("show-psf --out p.png --scale 1000", "--scale: must be in [1, 64], got 1000"),
    ("show-psf --out p.png --scale 0", "--scale: must be in [1, 64], got 0"),
    ("show-psf --out p.png --size 8", "--size: must be odd, got 8"),
    ("sample-grid --images i --out g.png --size 0", "--size: must be in [8, 4096], got 0"),
    ("extract --model m --data d --out b.h5 --crop 0", "--crop: must be >= 1, got 0"),
    ("extract --model m --data d --out b.h5 --batch-size x", "--batch-size: must be an integer, got 'x'"),
    ("train --data d --out m.safetensors --lr 0", "--lr: must be a finite number > 0"),
    ("make-synthetic o --test-fraction 1", "--test-fraction: must be a finite number in [0.0, 1.0)"),
]


@pytest.mark.parametrize("line, message", PARSE_CASES, ids=[c[0] for c in PARSE_CASES])
def test_arguments_out_of_range_are_refused_at_parse_time(line, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli(line.split())
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_library_refuses_out_of_range_values_before_computing():
    from kernelaug.functional import learned_blur
    from kernelaug.learn.evaluate import evaluate
    from kernelaug.tools.pictures import psf_mosaic

    model = tiny_model()
    for strength in (2.0, -0.1, float("nan"), [0.5, 1.5]):
        with pytest.raises(ValueError, match="strength"):
            learned_blur(torch.rand(2, 3, 64, 64), torch.zeros(2, 8, 1, 1), model, strength=strength)
    with pytest.raises(ValueError, match="more than 16384"):
        psf_mosaic(np.ones((4, 4, 31, 31)), scale=1000)  # 43 GiB were tried
    with pytest.raises(ValueError, match="scale must be a positive integer"):
        psf_mosaic(np.ones((4, 4, 31, 31)), scale=0)
    with pytest.raises(ValueError, match="no pairs to evaluate"):
        evaluate(model, [], [])


# -- 10. smaller ones ---------------------------------------------------------------------------------
@pytest.fixture()
def zero_bank(tmp_path):
    path = tmp_path / "zero.h5"
    with BankWriter(path, tiny_model(), crop_size=64) as writer:
        writer.append(np.zeros((2, 8, 1, 1), np.float32))
    return path


def test_parametric_callable_must_return_the_dtype_and_range_it_was_given(zero_bank):
    image = np.full((32, 32, 3), 100, np.uint8)
    for blur, match in ((lambda x: x.astype(np.float32), "returned float32 for a uint8 image"),
                        (lambda x: x.astype(np.float64) * 2, "returned float64 for a uint8 image")):
        aug = ka.LearnedBlur(tiny_model(), zero_bank, parametric=blur, parametric_ratio=1.0, seed=0)
        with pytest.raises(ValueError, match=match):
            aug(image)
    floats = image.astype(np.float32) / 255
    for blur, match in ((lambda x: x * 255, r"values in \[100, 100\]"), (lambda x: x * np.nan, "NaN"),
                        (lambda x: (x * 255).astype(np.uint8), "returned uint8 for a float image")):
        aug = ka.LearnedBlur(tiny_model(), zero_bank, parametric=blur, parametric_ratio=1.0, seed=0)
        with pytest.raises(ValueError, match=match):
            aug(floats)


def test_output_is_detached_whatever_p_drew(zero_bank):
    image = torch.rand(3, 64, 64, requires_grad=True)
    for p in (0.0, 1.0):
        out = ka.LearnedBlur(tiny_model(), zero_bank, p=p, seed=0)(image)
        assert not out.requires_grad and out.grad_fn is None, p
    assert image.requires_grad  # the input is left as it was


def test_resume_refuses_another_batch_size(model_file, pair_root, tmp_path, monkeypatch):
    import kernelaug.learn.extract as E

    out = tmp_path / "b.h5"
    monkeypatch.setattr(E, "_batch_flushed", lambda path, done: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        extract_bank(model_file, pair_root, out, **SETTINGS)
    monkeypatch.undo()
    with pytest.raises(ValueError, match="batch_size = 2, this run has 3"):
        extract_bank(model_file, pair_root, out, resume=True, **{**SETTINGS, "batch_size": 3})


def test_resume_accepts_the_same_dataset_by_another_path(model_file, pair_root, tmp_path, monkeypatch):
    import kernelaug.learn.extract as E

    reference = tmp_path / "reference.h5"
    extract_bank(model_file, pair_root, reference, **SETTINGS)
    out = tmp_path / "b.h5"
    monkeypatch.chdir(pair_root.parent)
    monkeypatch.setattr(E, "_batch_flushed", lambda path, done: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        extract_bank(model_file, pair_root.name, out, **SETTINGS)  # relative
    monkeypatch.setattr(E, "_batch_flushed", lambda path, done: None)
    extract_bank(model_file, pair_root.resolve(), out, resume=True, **SETTINGS)  # absolute
    got, want = bank_contents(out), bank_contents(reference)
    assert np.array_equal(got["codes"], want["codes"]) and got["attrs"]["source_dataset"] == pair_root.name
    assert extract_bank(model_file, str(pair_root.resolve()) + "/", out, resume=True, **SETTINGS)["codes_written"] == 0


def test_augment_removes_temporaries_of_killed_runs(zero_bank, tmp_path):
    import cv2

    from kernelaug.tools.augment import AugmentSettings, augment_folder

    images = tmp_path / "images"
    images.mkdir()
    cv2.imwrite(str(images / "a.png"), np.full((32, 32, 3), 90, np.uint8))
    out = tmp_path / "out"
    augment_folder(tiny_model(), KernelBank(zero_bank), images, out, AugmentSettings(per_image=1), progress=False)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    stale = out / "train" / "a" / "blur" / f".000000.png.{dead}.tmp"
    live = out / "train" / "a" / "blur" / f".000001.png.{os.getppid()}.tmp"  # a process still running
    stale.write_bytes(b"half a png")
    live.write_bytes(b"being written")
    augment_folder(tiny_model(), KernelBank(zero_bank), images, out, AugmentSettings(per_image=1), progress=False)
    assert not stale.exists() and live.exists()


@pytest.mark.parametrize("device, match", [("meta", "cannot run a model here"), ("cuda:7", "cuda"),
                                           ("gpu", "unknown device")])
def test_unusable_devices_are_clear_errors(zero_bank, device, match, capsys):
    if device == "cuda:7" and torch.cuda.device_count() > 7:
        pytest.skip("this machine has a cuda:7")
    for make in (lambda: ka.LearnedBlur(tiny_model(), zero_bank, device=device),
                 lambda: ka.LearnedBlurBatch(tiny_model(), zero_bank, device=device)):
        with pytest.raises(ValueError, match=match):
            make()
    assert cli(["transfer", "--bank", str(zero_bank), "--onto", "a.png", "--out", str(zero_bank.parent / "d.png"),
                "--device", device]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_bank_merge_refuses_a_shard_given_twice(zero_bank, tmp_path, capsys):
    assert cli(["bank-merge", str(zero_bank), str(zero_bank), "--out", str(tmp_path / "m.h5")]) == 2
    assert "given twice" in capsys.readouterr().err and not (tmp_path / "m.h5").exists()


def test_crafted_srn_file_is_refused_before_anything_is_built(tmp_path):
    from kernelaug.deblurrers.srn import SRNConfig, SRNDeblur
    from kernelaug.deblurrers.training import load_srn, save_srn

    path = save_srn(SRNDeblur(SRNConfig(widths=(4, 4, 4), blocks=1)), tmp_path / "srn.safetensors")
    for config, match in (({"widths": [6000, 4, 4], "blocks": 1}, "field widths"),
                          ({"widths": [4, 4, 4], "blocks": 100000}, "field blocks"),
                          ([4], "must be a JSON object"),
                          ({"widths": [64, 64, 64], "blocks": 1}, "has shape")):
        crafted = rewrite_metadata(path, tmp_path / "crafted.safetensors", config=config)
        with pytest.raises(ValueError, match=f"{crafted}.*{match}|{match}"):
            load_srn(crafted)
    assert load_srn(path).config.widths == (4, 4, 4)
