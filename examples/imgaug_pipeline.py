"""Deblur training pairs with imgaug: blur the full frame, then one deterministic crop/flip on both.

``geometric.to_deterministic()`` applies the same crop and flips to the sharp and the blurred
frame, so the pair stays aligned and the blur at the crop borders comes from real image content.

    python examples/imgaug_pipeline.py                       # pretrained synth-small
    python examples/imgaug_pipeline.py --model m.safetensors --bank b.h5
    python examples/imgaug_pipeline.py --untrained           # smoke run, meaningless blurs
"""

from __future__ import annotations

import time

import imgaug.augmenters as iaa
import torch
from torch.utils.data import DataLoader, Dataset

from _common import model_and_bank, parser, save_preview, sharp_images
from kernelaug.integrations.imgaug import LearnedBlur, make_pair
from kernelaug.transforms import seed_worker


class DeblurPairs(Dataset):
    def __init__(self, images, model, bank, crop: int, seed: int):
        # Blurring a whole frame costs more than a crop: keep frames modest.
        self.images = [iaa.Resize({"shorter-side": 2 * crop, "longer-side": "keep-aspect-ratio"})(image=im)
                       for im in images]
        self.geometric = iaa.Sequential([iaa.CropToFixedSize(crop, crop), iaa.Fliplr(0.5), iaa.Flipud(0.5)])
        self.blur = iaa.Sometimes(0.9, LearnedBlur(model, bank, mode="mix", strength=(0.6, 1.0)))
        self.geometric.seed_(seed)
        self.blur.seed_(seed + 1)

    def __len__(self):
        return 64

    def __getitem__(self, index):
        blurred, sharp = make_pair(self.images[index % len(self.images)], self.geometric, self.blur, blur_first=True)
        return torch.from_numpy(blurred), torch.from_numpy(sharp)


def main() -> None:
    args = parser(__doc__).parse_args()
    model, bank = model_and_bank(args)
    dataset = DeblurPairs(sharp_images(args.images, args.crop), model, bank, args.crop, args.seed)
    loader = DataLoader(dataset, batch_size=4, num_workers=args.workers, worker_init_fn=seed_worker,
                        generator=torch.Generator().manual_seed(args.seed))
    start = time.perf_counter()
    for step, (blurred, sharp) in enumerate(loader):
        if step == 0:
            preview = list(zip(blurred.numpy(), sharp.numpy()))
        if step + 1 >= args.steps:
            break
    path = save_preview(preview, args.out, "imgaug_pairs.png")
    print(f"{step + 1} batches of {tuple(blurred.shape)} uint8 (blurred, sharp) pairs in "
          f"{time.perf_counter() - start:.1f} s with {args.workers} workers; preview: {path}")


if __name__ == "__main__":
    main()
