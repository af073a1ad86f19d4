"""Deblur training pairs with Albumentations: shared crop/flip, then the learned blur on the input only.

Also shows the paper's "comb." setting in one line: half of the blurred inputs get a parametric
motion blur instead of the learned one.

    python examples/albumentations_pipeline.py                       # pretrained synth-small
    python examples/albumentations_pipeline.py --model m.safetensors --bank b.h5
    python examples/albumentations_pipeline.py --untrained           # smoke run, meaningless blurs
"""

from __future__ import annotations

import time

import albumentations as A
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from _common import model_and_bank, parser, save_preview, sharp_images
from kernelaug.integrations.albumentations import LearnedBlur, make_pair
from kernelaug.transforms import seed_worker


class DeblurPairs(Dataset):
    """(blurred, sharp) float32 CHW pairs from sharp images: geometry once, blur a copy."""

    def __init__(self, images, model, bank, crop: int, seed: int):
        self.images = images
        self.geometric = A.Compose([A.RandomCrop(crop, crop), A.HorizontalFlip(), A.RandomRotate90()], seed=seed)
        # model and bank are paths / names: the pipeline pickles cheaply into spawned workers and
        # serialises with A.to_dict.
        self.blur = A.Compose([LearnedBlur(model, bank, p=1.0, strength=(0.6, 1.0),
                                           parametric="motion", parametric_ratio=0.5)], seed=seed)

    def __len__(self):
        return 64

    def __getitem__(self, index):
        blurred, sharp = make_pair(self.images[index % len(self.images)], self.geometric, self.blur)
        to_tensor = lambda x: torch.from_numpy(x).permute(2, 0, 1).float() / 255  # noqa: E731
        return to_tensor(blurred), to_tensor(sharp)


def main() -> None:
    args = parser(__doc__).parse_args()
    model, bank = model_and_bank(args)
    dataset = DeblurPairs(sharp_images(args.images, args.crop), model, bank, args.crop, args.seed)
    print("pipeline:", A.to_dict(dataset.blur)["transform"]["transforms"][0])
    loader = DataLoader(dataset, batch_size=4, num_workers=args.workers, worker_init_fn=seed_worker,
                        generator=torch.Generator().manual_seed(args.seed))
    start, preview = time.perf_counter(), []
    for step, (blurred, sharp) in enumerate(loader):
        if step == 0:
            preview = [((b.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8),
                        (s.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)) for b, s in zip(blurred, sharp)]
        if step + 1 >= args.steps:
            break
    path = save_preview(preview, args.out, "albumentations_pairs.png")
    print(f"{step + 1} batches of {tuple(blurred.shape)} (blurred, sharp) pairs in "
          f"{time.perf_counter() - start:.1f} s with {args.workers} workers; preview: {path}")


if __name__ == "__main__":
    main()
