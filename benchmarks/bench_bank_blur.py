"""How strongly each shipped bank blurs textured photographs, next to the blur of real camera pairs.

Run: python benchmarks/bench_bank_blur.py --photos ../shared/data/sharp --pairs ../shared/data/gopro/pairs
Writes benchmarks/results/bank_blur.{json,md}: PSNR(F(x, k), x) over centre 256x256 crops of every 25th
photo and codes drawn from each model's own bank (seeded), and PSNR(blurry, sharp) of the real pairs'
centre 256x256 crops. A bank that reproduces a camera should blur new images about as much as the
camera blurs its own (texture-rich content shows any PSF; low-texture content hides it). The fair
comparison holds the content fixed: the same bank codes applied to the real pairs' own sharp crops,
whose PSNR against those crops sits beside the real blur's (PSNR depends as much on the content as on
the blur: the same blur scores far lower on a texture-rich photo than on a green court).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

import kernelaug as ka
from _common import write_results
from kernelaug.data.pairs import find_pairs, read_image, read_pair
from kernelaug.metrics import psnr
from kernelaug.tools.augment import list_images


def centre(image: np.ndarray, side: int = 256) -> torch.Tensor:
    top, left = (image.shape[0] - side) // 2, (image.shape[1] - side) // 2
    return torch.from_numpy(np.ascontiguousarray(image[top:top + side, left:left + side])).permute(2, 0, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--photos", required=True)
    parser.add_argument("--pairs", required=True)
    parser.add_argument("--models", nargs="+", default=["synth-small", "gopro-small"])
    parser.add_argument("--images", type=int, default=6)
    parser.add_argument("--draws", type=int, default=8)
    args = parser.parse_args()
    photos = [read_image(f) for f in list_images(args.photos)[::25]]
    x = torch.stack([centre(p) for p in photos if min(p.shape[:2]) >= 256][:args.images])
    pairs = [read_pair(p) for p in find_pairs(args.pairs)]
    real_sharp = torch.stack([centre(s) for s, _ in pairs])
    real = [psnr(centre(b)[None], centre(s)[None]).item() for s, b in pairs]
    rows = [{"what": f"real pairs of {args.pairs}: blurry vs sharp", "psnr": real}]
    for name in args.models:
        model, bank = ka.load_model(name), ka.resolve_bank(name)
        rng = np.random.default_rng(0)
        values = []
        with torch.no_grad():
            for _ in range(args.draws):
                codes = torch.from_numpy(bank.sample(len(x), rng=rng).astype(np.float32))
                values += psnr(model.apply(x, codes), x).tolist()
        rows.append({"what": f"{name} bank codes on {len(x)} photos: F(x, k) vs x", "psnr": values})
        values = []
        with torch.no_grad():
            for _ in range(args.draws):
                codes = torch.from_numpy(bank.sample(len(real_sharp), rng=rng).astype(np.float32))
                values += psnr(model.apply(real_sharp, codes), real_sharp).tolist()
        rows.append({"what": f"{name} bank codes on the {len(real_sharp)} real pairs' sharp crops: F(x, k) vs x",
                     "psnr": values})
    lines = ["| blur | images | PSNR p10 | median | p90 |", "|---|---|---|---|---|"]
    for row in rows:
        p10, p50, p90 = np.percentile(row["psnr"], [10, 50, 90])
        lines.append(f"| {row['what']} | {len(row['psnr'])} | {p10:.2f} dB | {p50:.2f} dB | {p90:.2f} dB |")
    print(write_results("bank_blur", {"rows": rows}, "\n".join(lines)))


if __name__ == "__main__":
    main()
