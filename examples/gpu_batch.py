"""Blur whole batches on the GPU after collation: workers only crop and draw codes.

The DataLoader workers return sharp crops and one bank code each (a ``CodeSampler``, reseeded per
worker by ``seed_worker``); the training step moves the batch to the device and
``LearnedBlurBatch`` blurs it in one forward pass. CUDA never runs inside a worker. A toy
deblurring network trains for a few steps to show where the pair goes. Falls back to the CPU.

    python examples/gpu_batch.py                             # pretrained synth-small
    python examples/gpu_batch.py --model m.safetensors --bank b.h5
    python examples/gpu_batch.py --untrained                 # smoke run, meaningless blurs
"""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

import kernelaug as ka
from _common import model_and_bank, parser, save_preview, sharp_images
from kernelaug.transforms import CodeSampler, seed_worker


class SharpCrops(Dataset):
    """Random sharp crops (float CHW in [0, 1]) and a bank code for each."""

    def __init__(self, images, bank, crop: int, seed: int):
        self.images, self.crop = images, crop
        self.codes = CodeSampler(bank, mode="bank", seed=seed)   # reseeded per worker by seed_worker

    def __len__(self):
        return 256

    def __getitem__(self, index):
        image = self.images[index % len(self.images)]
        # torch's RNG: DataLoader seeds it differently in every worker
        top = int(torch.randint(0, image.shape[0] - self.crop + 1, ()))
        left = int(torch.randint(0, image.shape[1] - self.crop + 1, ()))
        crop = np.ascontiguousarray(image[top:top + self.crop, left:left + self.crop])
        return torch.from_numpy(crop).permute(2, 0, 1).float() / 255, self.codes()


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args()
    model_ref, bank_ref = model_and_bank(args)
    device = torch.device(args.device)
    model = ka.load_model(model_ref, device=device)        # the blur operator F, on the device
    bank = ka.KernelBank(bank_ref)
    batch_blur = ka.LearnedBlurBatch(model, bank, strength=(0.6, 1.0), seed=args.seed)

    loader = DataLoader(SharpCrops(sharp_images(args.images, args.crop), bank, args.crop, args.seed),
                        batch_size=args.batch_size, num_workers=args.workers, worker_init_fn=seed_worker,
                        generator=torch.Generator().manual_seed(args.seed), pin_memory=device.type == "cuda")
    deblur = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 3, 3, padding=1)).to(device)
    optimiser = torch.optim.Adam(deblur.parameters(), lr=1e-3)
    start = time.perf_counter()
    for step, (sharp, codes) in enumerate(loader):
        sharp = sharp.to(device, non_blocking=True)
        blurred, sharp, codes = batch_blur(sharp, codes=codes)   # one forward pass for the batch
        loss = nn.functional.l1_loss(blurred + deblur(blurred), sharp)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        print(f"step {step}: blurred {tuple(blurred.shape)} on {blurred.device}, L1 {loss.item():.4f}")
        if step + 1 >= args.steps:
            break
    as_uint8 = lambda t: (t.detach().permute(1, 2, 0).cpu() * 255).round().byte().numpy()  # noqa: E731
    path = save_preview([(as_uint8(b), as_uint8(s)) for b, s in zip(blurred[:4], sharp[:4])], args.out,
                        "gpu_batch_pairs.png")
    print(f"{step + 1} training steps of batch {args.batch_size} on {device} in {time.perf_counter() - start:.1f} s; "
          f"preview: {path}")


if __name__ == "__main__":
    main()
