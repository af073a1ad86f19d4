"""`make demo`: offline augmentation of a few sharp photos with the shipped model and bank, and pictures.

Sharp sources, written to OUT/sharp/: the paper's sharp sample ``examples/images/mushishi.png``
and four photos bundled with scikit-image (astronaut, coffee and chelsea as 256x256 crops, rocket
at 192x288 to show a size that is not a multiple of the model's cell). The other seed samples
(``blur1.png``, ``blur2.png``, ``face01.png``) are real blurry photos with no sharp counterpart, so
they are not used as sharp sources.

Then it runs these commands with the default model, ``kernelaug.models.pretrained.DEFAULT_MODEL``
(gopro-small; printed as it goes; the same lines work in a shell):

    kernelaug augment --model gopro-small --images OUT/sharp --out OUT/dataset --per-image 4 --mix 0.25 --seed 0
    kernelaug sample-grid --model gopro-small --images OUT/sharp --out OUT/samples.png --limit 5 --seed 0
    kernelaug show-psf --model gopro-small --bank gopro-small --index 0 --out OUT/psf.png
    kernelaug show-bank --model gopro-small --out OUT/bank_map.png

    python examples/demo.py --out demo_out [--seed 0]
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
import time
from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
PHOTOS = {"astronaut": (256, 256), "coffee": (256, 256), "chelsea": (256, 256), "rocket": (192, 288)}


def write_sharp_images(folder: Path) -> list[Path]:
    """The demo's sharp sources (see the module docstring) as PNGs in ``folder``."""
    from skimage import data

    from kernelaug.tools.pictures import square_crop

    folder.mkdir(parents=True, exist_ok=True)
    written = [Path(shutil.copyfile(HERE / "images" / "mushishi.png", folder / "mushishi.png"))]
    for name, (height, width) in PHOTOS.items():
        photo = np.asarray(getattr(data, name)())[..., :3]
        side = max(height, width)
        tile = square_crop(photo, side)
        top, left = (side - height) // 2, (side - width) // 2
        path = folder / f"{name}.png"
        cv2.imwrite(str(path), np.ascontiguousarray(tile[top:top + height, left:left + width, ::-1]))
        written.append(path)
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="demo_out")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from kernelaug.cli import main as kernelaug
    from kernelaug.models.pretrained import DEFAULT_MODEL as model

    out = Path(args.out)
    sharp = write_sharp_images(out / "sharp")
    print(f"wrote {len(sharp)} sharp images to {out / 'sharp'}")
    seed = str(args.seed)
    commands = [
        ["augment", "--model", model, "--images", str(out / "sharp"), "--out", str(out / "dataset"),
         "--per-image", "4", "--mix", "0.25", "--seed", seed],
        ["sample-grid", "--model", model, "--images", str(out / "sharp"), "--out", str(out / "samples.png"),
         "--limit", "5", "--seed", seed],
        ["show-psf", "--model", model, "--bank", model, "--index", "0", "--out", str(out / "psf.png")],
        ["show-bank", "--model", model, "--out", str(out / "bank_map.png")],
    ]
    start = time.perf_counter()
    for command in commands:
        print(f"$ kernelaug {shlex.join(command)}", flush=True)
        status = kernelaug(command)
        if status:
            return status
    print(f"demo done in {time.perf_counter() - start:.1f} s: paired dataset in {out / 'dataset'}, "
          f"pictures {', '.join(str(out / n) for n in ('samples.png', 'psf.png', 'bank_map.png'))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
