"""Models and banks the project trained itself, shipped in ``pretrained/``: entries are data.

Files are found, in order, under ``$KERNELAUG_PRETRAINED``, the ``pretrained/`` folder of a source
checkout (editable installs), and ``<prefix>/share/kernelaug/pretrained`` (wheel installs).
"""

from __future__ import annotations

import hashlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class PretrainedEntry:
    name: str
    model_file: str
    bank_file: str | None
    sha256: str          # of the model file
    description: str


PRETRAINED: dict[str, PretrainedEntry] = {
    entry.name: entry for entry in (
        PretrainedEntry(
            name="synth-small",
            model_file="synth-small.safetensors",
            bank_file="synth-small.bank.h5",
            sha256="8a137bbd42c86a3049e37a25cb71d296f85c33f29f4c4ff55f4685075f152742",
            description="psf-fast preset trained on the synthetic camera-shake set (make-synthetic --seed 2026); "
                        "see pretrained/README.md",
        ),
        PretrainedEntry(
            name="gopro-small",
            model_file="gopro-small.safetensors",
            bank_file="gopro-small.bank.h5",
            sha256="d198c10b10ca3f2803d15ca1d151d21bf171de48287d3d8b0a2c7cf177716b00",
            description="psf-wide-fast preset trained on real GoPro Hero4 240 fps frames (GoPro dataset, Nah et al. "
                        "CVPR 2017, sequence GOPR0477_11_00); see pretrained/README.md",
        ),
        PretrainedEntry(
            name="synth-lean",
            model_file="synth-lean.safetensors",
            bank_file="synth-lean.bank.h5",
            sha256="17164406be5ef984c00b47dfb4d429050a1da87b7f5d5955ecff0c7d62fed323",
            description="psf-lean preset (fixed gamma-2 curve, quarter-resolution residual): synth-small's stage 1 "
                        "fine-tuned on the same synthetic set, 0.74-0.87x its LearnedBlur time; see pretrained/README.md",
        ),
        PretrainedEntry(
            name="gopro-lean",
            model_file="gopro-lean.safetensors",
            bank_file="gopro-lean.bank.h5",
            sha256="c43988c48e24de1735b22b45a1a32b5f3fc0b568c5c68a53c877adeccaf6958d",
            description="psf-wide-lean-display preset (no tone curve: the frames' pairs are display-space "
                        "averages; quarter-resolution residual): gopro-small's stage 1 fine-tuned on the same real "
                        "GoPro frames, 0.72-0.87x its LearnedBlur time; see pretrained/README.md",
        ),
    )
}

#: The model (and its bank) used wherever none is named: a real camera. Its bank codes, applied to the
#: sharp frames of real GoPro pairs, blur them as strongly as the camera did (pretrained/README.md).
DEFAULT_MODEL = "gopro-small"


def search_dirs() -> list[Path]:
    dirs = []
    if os.environ.get("KERNELAUG_PRETRAINED"):
        dirs.append(Path(os.environ["KERNELAUG_PRETRAINED"]))
    dirs.append(Path(__file__).resolve().parents[2] / "pretrained")
    dirs.append(Path(sys.prefix) / "share" / "kernelaug" / "pretrained")
    return dirs


def find_file(filename: str) -> Path:
    for folder in search_dirs():
        if (folder / filename).is_file():
            return folder / filename
    looked = ", ".join(str(d) for d in search_dirs())
    raise FileNotFoundError(f"pretrained file {filename!r} not found; looked in {looked}")


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def model_path(name: str) -> Path:
    """Path of a pretrained model by name, its SHA-256 checked."""
    if name not in PRETRAINED:
        raise ValueError(f"{name!r} is neither a file nor a pretrained model; known: {sorted(PRETRAINED)}")
    entry = PRETRAINED[name]
    path = find_file(entry.model_file)
    if file_sha256(path) != entry.sha256:
        raise ValueError(f"pretrained model {path} does not match its recorded SHA-256 {entry.sha256}: "
                         "the file is damaged or was replaced")
    return path


def bank_path(name: str) -> Path:
    """Path of the bank shipped with pretrained model ``name``."""
    if name not in PRETRAINED or PRETRAINED[name].bank_file is None:
        raise ValueError(f"no pretrained bank named {name!r}; known: "
                         f"{sorted(n for n, e in PRETRAINED.items() if e.bank_file)}")
    return find_file(PRETRAINED[name].bank_file)
