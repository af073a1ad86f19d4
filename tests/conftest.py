"""Shared fixtures: tiny paired datasets with a known blur, written in GoPro layout."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch


def textured_image(rng: np.random.Generator, size: int) -> np.ndarray:
    """A random uint8 RGB image with edges at many scales (rectangles over smooth noise)."""
    image = cv2.resize(rng.uniform(0, 255, (size // 8, size // 8, 3)).astype(np.float32), (size, size))
    for _ in range(12):
        x0, y0 = rng.integers(0, size, 2)
        w, h = rng.integers(size // 16, size // 3, 2)
        image[y0:y0 + h, x0:x0 + w] = rng.uniform(0, 255, 3)
    return np.clip(image, 0, 255).astype(np.uint8)


def motion_kernel(length: int, angle: float) -> np.ndarray:
    kernel = np.zeros((length, length), np.float32)
    kernel[length // 2, :] = 1
    rotation = cv2.getRotationMatrix2D(((length - 1) / 2, (length - 1) / 2), angle, 1.0)
    kernel = cv2.warpAffine(kernel, rotation, (length, length))
    return kernel / kernel.sum()


def write_pairs(root: Path, count: int, size: int = 128, seed: int = 0, split: str = "train",
                length: int = 9, angle: float | None = None) -> Path:
    """Write ``count`` pairs blurred by one motion kernel each (random angle unless given)."""
    rng = np.random.default_rng(seed)
    for i in range(count):
        sharp = textured_image(rng, size)
        kernel = motion_kernel(length, float(rng.uniform(0, 180)) if angle is None else angle)
        blurry = cv2.filter2D(sharp, -1, kernel, borderType=cv2.BORDER_REPLICATE)
        for kind, image in (("sharp", sharp), ("blur", blurry)):
            folder = root / split / f"seq{i // 4:02d}" / kind
            folder.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(folder / f"{i:04d}.png"), image)
    return root


def tiny_model(seed: int = 0):
    """A psf-tiny model with weights moved off their initialisation (codes and blurs are then non-trivial)."""
    import kernelaug as ka

    torch.manual_seed(seed)
    model = ka.build_model("psf-tiny")
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model.eval()


@pytest.fixture(autouse=True)
def _few_threads():
    torch.set_num_threads(2)


@pytest.fixture(scope="session")
def pair_root(tmp_path_factory) -> Path:
    """12 training and 4 held-out 128x128 pairs with motion blur, GoPro layout."""
    root = tmp_path_factory.mktemp("pairs")
    write_pairs(root, 12, seed=0, split="train")
    write_pairs(root, 4, seed=1, split="test")
    return root
