"""`make demo`: blur sharp photos with the shipped model and bank, and write a picture of the result.

Rows: sharp images (the paper's mushishi.png and two scikit-image photos); columns: the sharp image,
three learned blurs drawn from the shipped bank (seeded), and a parametric motion blur for contrast.

    python examples/demo.py --out demo_out [--model synth-small] [--bank synth-small] [--seed 0]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

import kernelaug as ka
from kernelaug.datasets import read_image

HERE = Path(__file__).resolve().parent


def sharp_images(size: int = 256) -> dict[str, np.ndarray]:
    """uint8 RGB sharp sources: the seed sample, plus two photos bundled with scikit-image."""
    images = {"mushishi": (read_image(HERE / "images" / "mushishi.png") * 255).round().astype(np.uint8)}
    try:
        from skimage import data

        for name in ("astronaut", "coffee"):
            photo = getattr(data, name)()
            side = min(photo.shape[:2])
            images[name] = cv2.resize(photo[:side, :side], (size, size), interpolation=cv2.INTER_AREA)
    except ImportError:
        pass
    return images


def label(image: np.ndarray, text: str) -> np.ndarray:
    bgr = np.ascontiguousarray(image[..., ::-1])
    cv2.putText(bgr, text, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(bgr, text, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return bgr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="demo_out")
    parser.add_argument("--model", default="synth-small")
    parser.add_argument("--bank", default="synth-small")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    learned = ka.LearnedBlur(args.model, args.bank, seed=args.seed)
    parametric = ka.LearnedBlur(args.model, args.bank, parametric="motion", parametric_ratio=1.0, seed=args.seed)
    out = Path(args.out)
    (out / "blurred").mkdir(parents=True, exist_ok=True)
    rows = []
    for name, sharp in sharp_images().items():
        tiles = [label(sharp, name)]
        for i in range(3):
            blurred = learned(sharp)
            cv2.imwrite(str(out / "blurred" / f"{name}_learned{i}.png"), blurred[..., ::-1])
            tiles.append(label(blurred, f"learned blur {i + 1}"))
        tiles.append(label(parametric(sharp), "parametric motion"))
        rows.append(np.hstack([cv2.resize(t, (256, 256)) for t in tiles]))
    figure = out / "samples.png"
    cv2.imwrite(str(figure), np.vstack(rows))
    print(f"wrote {figure} ({len(rows)} images x 3 learned blurs from {learned.bank.path}) "
          f"and the blurred images under {out / 'blurred'}")


if __name__ == "__main__":
    main()
