"""Deblur training pairs with torchvision.transforms.v2 and tv_tensors.

The geometry runs once on the sharp ``tv_tensors.Image``; the learned blur then runs on that
result only (never on a sample holding both images: v2 would blur both). ``LearnedBlur`` with
``seed=None`` draws from torch's RNG like every v2 transform, so DataLoader workers differ and
``torch.manual_seed`` / the loader's ``generator`` reproduce a run.

    python examples/torchvision_pipeline.py                  # pretrained synth-small
    python examples/torchvision_pipeline.py --model m.safetensors --bank b.h5
    python examples/torchvision_pipeline.py --untrained      # smoke run, meaningless blurs
"""

from __future__ import annotations

import time

import torch
from torch.utils.data import DataLoader, Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

from _common import model_and_bank, parser, save_preview, sharp_images
from kernelaug.integrations.torchvision import LearnedBlur, make_pair


class DeblurPairs(Dataset):
    def __init__(self, images, model, bank, crop: int):
        self.images = [tv_tensors.Image(torch.from_numpy(im).permute(2, 0, 1)) for im in images]
        self.geometric = v2.Compose([v2.RandomCrop(crop), v2.RandomHorizontalFlip(), v2.RandomVerticalFlip()])
        self.blur = v2.Compose([LearnedBlur(model, bank, p=0.95, strength=(0.6, 1.0)),
                                v2.ToDtype(torch.float32, scale=True)])
        self.to_float = v2.ToDtype(torch.float32, scale=True)

    def __len__(self):
        return 64

    def __getitem__(self, index):
        blurred, sharp = make_pair(self.images[index % len(self.images)], self.geometric, self.blur)
        return blurred, self.to_float(sharp)


def main() -> None:
    args = parser(__doc__).parse_args()
    model, bank = model_and_bank(args)
    dataset = DeblurPairs(sharp_images(args.images, args.crop), model, bank, args.crop)
    loader = DataLoader(dataset, batch_size=4, num_workers=args.workers,
                        generator=torch.Generator().manual_seed(args.seed))
    start = time.perf_counter()
    for step, (blurred, sharp) in enumerate(loader):
        if step == 0:
            as_uint8 = lambda t: (t.permute(1, 2, 0) * 255).round().byte().numpy()  # noqa: E731
            preview = [(as_uint8(b), as_uint8(s)) for b, s in zip(blurred, sharp)]
        if step + 1 >= args.steps:
            break
    path = save_preview(preview, args.out, "torchvision_pairs.png")
    print(f"{step + 1} batches of {tuple(blurred.shape)} float (blurred, sharp) pairs in "
          f"{time.perf_counter() - start:.1f} s with {args.workers} workers; preview: {path}")


if __name__ == "__main__":
    main()
