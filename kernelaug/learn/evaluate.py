"""How well F(x, G(x, y)) reproduces y on held-out pairs, as numbers and as a picture."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from ..data.pairs import Pair, read_pair
from ..metrics import psnr
from ..models import BlurModel
from .refine import refine_codes


def load_crops(pairs: list[Pair], crop: int, cell: int, limit: int | None = None):
    """Centre crops (sides rounded down to the model's cell) of up to ``limit`` pairs, as CHW tensors."""
    sharps, blurries = [], []
    for pair in pairs[:limit]:
        sharp, blurry = read_pair(pair)
        height = min(crop, sharp.shape[0]) // cell * cell
        width = min(crop, sharp.shape[1]) // cell * cell
        if height == 0 or width == 0:
            raise ValueError(f"image {pair.sharp} ({sharp.shape[1]}x{sharp.shape[0]}) is smaller "
                             f"than one code cell ({cell} px)")
        top, left = (sharp.shape[0] - height) // 2, (sharp.shape[1] - width) // 2
        sharps.append(torch.from_numpy(sharp[top:top + height, left:left + width]).permute(2, 0, 1))
        blurries.append(torch.from_numpy(blurry[top:top + height, left:left + width]).permute(2, 0, 1))
    return sharps, blurries


def reconstruct(model: BlurModel, sharp: torch.Tensor, blurry: torch.Tensor, refine: int = 0) -> torch.Tensor:
    """F(x, G(x, y)) for one CHW pair, clamped to [0, 1]; with ``refine`` steps of
    :func:`.refine.refine_codes` on G's code."""
    device = next(model.parameters()).device
    sharp, blurry = sharp[None].to(device), blurry[None].to(device)
    code = refine_codes(model, sharp, blurry, refine)
    with torch.no_grad():
        return model.apply(sharp, code).clamp(0, 1)[0].cpu()


def evaluate(model: BlurModel, sharps, blurries, device=None, per_pair: bool = False, refine: int = 0) -> dict:
    """Mean reconstruction PSNR of F(x, G(x, y)) vs y, and blurry-vs-sharp PSNR, over the pairs
    (G's code refined by ``refine`` steps, see :mod:`.refine`)."""
    if len(sharps) == 0:
        raise ValueError("no pairs to evaluate (empty split, or --limit 0?)")
    was_training = model.training
    model.eval()
    recon = [psnr(reconstruct(model, s, b, refine)[None], b[None]).item() for s, b in zip(sharps, blurries)]
    baseline = [psnr(s[None], b[None]).item() for s, b in zip(sharps, blurries)]
    model.train(was_training)
    result = {"recon_psnr": float(np.mean(recon)), "blurry_psnr": float(np.mean(baseline)), "pairs": len(recon),
              "refine_steps": refine}
    if per_pair:
        result.update(recon_psnr_per_pair=recon, blurry_psnr_per_pair=baseline)
    return result


def _tile(image: torch.Tensor, label: str) -> np.ndarray:
    rgb = (image.permute(1, 2, 0).numpy() * 255 + 0.5).clip(0, 255).astype(np.uint8)
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    cv2.putText(bgr, label, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(bgr, label, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return bgr


def reconstruction_figure(model: BlurModel, sharps, blurries, out: str | Path, rows: int = 4,
                          refine: int = 0) -> Path:
    """PNG with one row per pair: sharp | true blur | F(x, G(x, y)), PSNRs against the true blur."""
    lines = []
    for sharp, blurry in list(zip(sharps, blurries))[:rows]:
        recon = reconstruct(model, sharp, blurry, refine)
        lines.append(np.hstack([
            _tile(sharp, f"sharp {psnr(sharp[None], blurry[None]).item():.1f} dB"),
            _tile(blurry, "true blur"),
            _tile(recon, f"reconstructed {psnr(recon[None], blurry[None]).item():.1f} dB"),
        ]))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), np.vstack(lines)):
        raise ValueError(f"could not write figure {out}")
    return out
