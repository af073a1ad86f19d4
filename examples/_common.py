"""Shared by the pipeline examples: command-line options, the model and bank, sharp source images.

Model and bank: ``--model`` / ``--bank`` (a ``.safetensors`` / ``.h5`` path or a pretrained name),
by default the pretrained ``synth-small`` and its bank. ``--untrained`` builds a throw-away tiny
model with a random bank instead, so that an example runs anywhere (its blurs mean nothing).

Images: ``--images DIR`` (PNG/JPEG files), by default ``examples/images`` and
``../shared/data/seed_samples`` (the sharp ``mushishi.png``) plus scikit-image's sample photos.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import cv2
import numpy as np

import kernelaug as ka

HERE = Path(__file__).resolve().parent
# Blurry photos shipped beside the sharp one: not sharp sources.
_BLURRY = {"blur1.png", "blur2.png", "face01.png"}
_SKIMAGE = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry")


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="model .safetensors or pretrained name (default: synth-small)")
    p.add_argument("--bank", default=None, help="kernel bank .h5 or pretrained name (default: the model's own)")
    p.add_argument("--untrained", action="store_true", help="use a throw-away tiny model and random bank")
    p.add_argument("--images", default=None, help="folder of sharp images")
    p.add_argument("--out", default=str(Path(tempfile.gettempdir()) / "kernelaug_examples"),
                   help="folder for the preview image (default: %(default)s)")
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers")
    p.add_argument("--steps", type=int, default=3, help="batches to draw")
    p.add_argument("--crop", type=int, default=128, help="training crop size")
    p.add_argument("--seed", type=int, default=0)
    return p


def model_and_bank(args) -> tuple[str, str]:
    """(model, bank) as strings: paths or pretrained names (strings serialise and pickle cheaply)."""
    if args.untrained:
        return _untrained()
    if args.model is None:
        try:
            name = ka.pretrained.DEFAULT_MODEL
            return str(ka.pretrained.model_path(name)), str(ka.pretrained.bank_path(name))
        except (ValueError, FileNotFoundError) as error:
            raise SystemExit(f"the pretrained model {ka.pretrained.DEFAULT_MODEL!r} is not available ({error});\n"
                             f"pass --model MODEL.safetensors --bank BANK.h5, or --untrained for a smoke run")
    if args.bank is None:
        try:
            return args.model, str(ka.pretrained.bank_path(args.model))
        except ValueError:
            raise SystemExit("--bank is required unless --model is a pretrained name") from None
    return args.model, args.bank


def _untrained() -> tuple[str, str]:
    import torch
    from kernelaug.bank import BankWriter
    folder = Path(tempfile.mkdtemp(prefix="kernelaug_example_"))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = ka.build_model("psf-tiny")
        with torch.no_grad():  # an untrained model is the identity; make its PSFs spread out
            for name, param in model.named_parameters():
                if name.startswith(("decoder", "basis")):
                    param.add_(torch.randn_like(param) * 0.5)
        model_path = ka.save_model(model, folder / "untrained.safetensors")
    codes = np.random.default_rng(0).normal(size=(32, model.kernel_dim, 2, 2)).astype(np.float32)
    with BankWriter(folder / "untrained.h5", model, crop_size=2 * model.cell, source="random") as writer:
        writer.append(codes)
    print(f"untrained tiny model and random bank in {folder} (smoke run: the blurs mean nothing)")
    return str(model_path), str(folder / "untrained.h5")


def sharp_images(folder: str | None = None, min_side: int = 128) -> list[np.ndarray]:
    """RGB uint8 images, each at least ``min_side`` on both sides."""
    images = []
    folders = [Path(folder)] if folder else [HERE / "images", HERE.parent.parent / "shared" / "data" / "seed_samples"]
    seen = set()
    for path in sorted(p for d in folders if d.is_dir() for p in d.iterdir()):
        if path.suffix.lower() not in (".png", ".jpg", ".jpeg") or (folder is None and path.name in _BLURRY):
            continue
        if path.name in seen:
            continue
        seen.add(path.name)
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is not None:
            images.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    if folder is None:
        try:
            from skimage import data
            for name in _SKIMAGE:
                image = getattr(data, name)()
                images.append(image[..., :3] if image.ndim == 3 else np.dstack([image] * 3))
        except ImportError:
            pass
    images = [im for im in images if min(im.shape[:2]) >= min_side]
    if not images:
        raise SystemExit(f"no sharp images of at least {min_side} px found (pass --images DIR)")
    return images


def save_preview(pairs, out: str, name: str) -> Path:
    """Write rows of (blurred | sharp) uint8 RGB pairs to ``out/name``."""
    rows = [np.concatenate([np.asarray(b), np.asarray(s)], axis=1) for b, s in pairs]
    path = Path(out) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(np.concatenate(rows, axis=0), cv2.COLOR_RGB2BGR))
    return path
