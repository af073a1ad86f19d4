"""Joint training of G and F on paired data: min sum_i rho(y_i, F(x_i, G(x_i, y_i))), rho = Charbonnier.

Adam with a cosine schedule, validation PSNR of F(x, G(x, y)) against y on held-out pairs (next to the
blurry-vs-sharp PSNR of the same pairs), periodic checkpoints and exact resume, CPU or CUDA, and
data-parallel training under ``torchrun`` (DDP; gloo on the CPU, NCCL on GPUs).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from safetensors import safe_open
from safetensors.torch import save_file
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from .. import __version__
from ..models.checkpoint import load_model, model_sha256, read_metadata, save_model
from ..data.pairs import PairedDataset, find_pairs, split_pairs
from ..device import resolve_device
from .evaluate import evaluate, load_crops
from ..metrics import charbonnier
from ..models import BlurModel, build_model, config_to_dict, get_preset


@dataclass(frozen=True)
class TrainOptions:
    data: str
    out: str
    preset: str | None = None    # architecture preset (default "psf"); with init: the architecture to fine-tune into
    steps: int = 2000
    batch_size: int = 8
    crop: int = 256
    lr: float = 2e-4
    min_lr_ratio: float = 0.01
    kl_weight: float = 1e-3
    basis_pairs: int = 256       # psf arch: training crops whose PSFs initialise the PSF basis (PCA)
    psf_weight: float = 0.05     # psf arch: weight of the decoded-PSF vs least-squares-estimate loss
    psf_prior: float = 0.0       # psf arch: weight of the sparsity prior on decoded PSFs (psf_spread)
    val_every: int = 250
    val_pairs: int = 32
    val_fraction: float = 0.1
    val_crop: int = 256          # held-out pairs are scored on centre crops of this size (whole frames)
    checkpoint_every: int = 250
    resume: bool = False
    init: str | None = None      # start from the weights of this model file (fine-tuning)
    device: str = "auto"
    workers: int = 2
    seed: int = 0
    progress: bool = True


def state_path(out: str | os.PathLike) -> Path:
    """Where the optimizer state for ``--resume`` lives, beside the model file."""
    out = Path(out)
    return out.with_name(out.name.removesuffix(".safetensors") + ".state.safetensors")


class _KeyedPairs(Dataset):
    """Items keyed by (draw, index): the crop and flips of each draw depend only on the seed and key,
    so training is reproducible whatever the number of workers, and resumes exactly."""

    def __init__(self, dataset: PairedDataset):
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, key):
        draw, index = key
        self.dataset.set_epoch(draw)
        return self.dataset[index]


def _batches(num_pairs: int, batch_size: int, start: int, steps: int, seed: int, rank: int, world: int):
    for step in range(start, steps):
        indices = np.random.default_rng([seed, step]).integers(0, num_pairs, size=batch_size)
        keys = [(step * batch_size + slot, int(i)) for slot, i in enumerate(indices)]
        yield keys[rank::world]


def _basis_crops(dataset: PairedDataset, count: int):
    """The first crops of a seeded pass over the training pairs, as two (N, 3, H, W) batches."""
    items = [dataset[i] for i in range(min(count, len(dataset)))]
    return torch.stack([s for s, _ in items]), torch.stack([b for _, b in items])


def transfer_weights(source: BlurModel, target: BlurModel) -> BlurModel:
    """Copy every tensor of ``source`` whose name and shape ``target`` shares (fine-tuning into a
    related architecture, e.g. a fast preset); ValueError when they share none."""
    own = target.state_dict()
    shared = {name: tensor for name, tensor in source.state_dict().items()
              if name in own and own[name].shape == tensor.shape}
    if not shared:
        raise ValueError(f"--init model ({source.config.arch}) shares no weights with the preset's architecture")
    target.load_state_dict(shared, strict=False)
    return target


def _cosine_lr(options: TrainOptions, step: int) -> float:
    low = options.lr * options.min_lr_ratio
    return low + 0.5 * (options.lr - low) * (1 + math.cos(math.pi * step / max(options.steps, 1)))


def _save_state(path: Path, optimizer: torch.optim.Optimizer, model: BlurModel, step: int, elapsed: float,
                options: TrainOptions) -> None:
    names = {id(p): n for n, p in model.named_parameters()}
    tensors = {}
    for group in optimizer.param_groups:
        for param in group["params"]:
            for key, value in optimizer.state.get(param, {}).items():
                tensors[f"{key}/{names[id(param)]}"] = torch.as_tensor(value).detach().cpu().contiguous()
    metadata = {"step": str(step), "elapsed": str(elapsed),
                "options": json.dumps(dataclasses.asdict(options))}
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=metadata)
    os.replace(tmp, path)


def _load_state(path: Path, optimizer: torch.optim.Optimizer, model: BlurModel) -> tuple[int, float]:
    params = dict(model.named_parameters())
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
        for key in handle.keys():
            field, name = key.split("/", 1)
            optimizer.state[params[name]][field] = handle.get_tensor(key)
    return int(metadata["step"]), float(metadata["elapsed"])


def _distributed() -> tuple[int, int]:
    """(rank, world size); joins the process group when launched by torchrun."""
    if dist.is_available() and not dist.is_initialized() and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def train(options: TrainOptions) -> dict:
    """Train a model; return a summary (steps, time, validation PSNRs, output path)."""
    rank, world = _distributed()
    device = resolve_device(options.device, world)
    if options.batch_size % world:
        raise ValueError(f"batch size {options.batch_size} is not divisible by the {world} processes")
    torch.manual_seed(options.seed)

    preset = options.preset or "psf"
    config = get_preset(preset)
    out = Path(options.out)
    start, elapsed = 0, 0.0
    fresh = False  # built here from the preset (not loaded): its PSF basis still needs initialising
    if options.resume and out.is_file():
        config_dict, _ = read_metadata(out)
        if config_dict != config_to_dict(config):
            raise ValueError(f"--resume: {out} was trained with another config ({config_dict}) "
                             f"than preset {preset!r}")
        model = load_model(out)
    elif options.init:
        model = load_model(options.init)
        if options.preset is None or config == model.config:
            config = model.config
        else:
            model = transfer_weights(model, build_model(config))
    else:
        model = build_model(config)
        fresh = True
    model.to(device).train()
    if options.crop % model.cell:
        raise ValueError(f"crop {options.crop} must be a multiple of the model's cell ({model.cell} px)")

    pairs = find_pairs(options.data)
    test_split = [p for p in pairs if p.pair_id.startswith("test/")]
    if test_split:
        train_pairs, val_pairs = [p for p in pairs if not p.pair_id.startswith("test/")], test_split
    else:
        train_pairs, val_pairs = split_pairs(pairs, options.val_fraction, seed=options.seed)
    if not train_pairs or not val_pairs:
        raise ValueError(f"{options.data}: need both training and held-out pairs, found "
                         f"{len(train_pairs)} and {len(val_pairs)}")
    dataset = PairedDataset(options.data, pairs=train_pairs, crop=options.crop, augment=True, seed=options.seed)

    if fresh and hasattr(model, "initialise_basis"):
        model.initialise_basis(*_basis_crops(dataset, options.basis_pairs))
    optimizer = torch.optim.Adam(model.parameters(), lr=options.lr, betas=(0.9, 0.99))
    if options.resume and state_path(out).is_file():
        start, elapsed = _load_state(state_path(out), optimizer, model)
    network = model
    if world > 1:
        network = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)

    loader = DataLoader(_KeyedPairs(dataset),
                        batch_sampler=list(_batches(len(dataset), options.batch_size, start, options.steps,
                                                    options.seed, rank, world)),
                        num_workers=options.workers, persistent_workers=False,
                        pin_memory=device.type == "cuda")
    val_sharps, val_blurries = load_crops(val_pairs, options.val_crop, model.cell, options.val_pairs)
    history: list[dict] = []
    is_main = rank == 0

    def checkpoint(step: int, validation: dict | None) -> None:
        provenance = {
            "dataset": str(options.data), "train_pairs": len(train_pairs), "val_pairs": len(val_pairs),
            "preset": preset, "steps": step, "batch_size": options.batch_size, "crop": options.crop,
            "lr": options.lr, "psf_weight": options.psf_weight, "psf_prior": options.psf_prior,
            "init": options.init, "seed": options.seed, "processes": world, "wall_time_s": round(elapsed, 1),
            "validation": validation or {}, "kernelaug_version": __version__,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        }
        save_model(model, out, provenance)
        _save_state(state_path(out), optimizer, model, step, elapsed, options)

    bar = tqdm(total=options.steps, initial=start, disable=not (options.progress and is_main),
               desc="train", unit="step", dynamic_ncols=True)
    validation = None
    tic = time.perf_counter()
    step = start
    for step, (sharp, blurry) in enumerate(loader, start=start + 1):
        for group in optimizer.param_groups:
            group["lr"] = _cosine_lr(options, step - 1)
        sharp, blurry = sharp.to(device, non_blocking=True), blurry.to(device, non_blocking=True)
        reconstruction, code, kl = network(sharp, blurry, sample=True)
        loss = charbonnier(reconstruction, blurry) + options.kl_weight * kl
        if options.psf_weight and hasattr(model, "psf_target_loss"):
            loss = loss + options.psf_weight * model.psf_target_loss(sharp, blurry, code)
        if options.psf_prior and hasattr(model, "psf_spread"):
            loss = loss + options.psf_prior * model.psf_spread(code)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.4f}", **({"val": f"{validation['recon_psnr']:.2f}dB"} if validation else {}))
        last = step == options.steps
        if is_main and (step % options.val_every == 0 or last):
            validation = evaluate(model, val_sharps, val_blurries, device)
            history.append({"step": step, **validation})
        if step % options.checkpoint_every == 0 or last:
            elapsed, tic = elapsed + time.perf_counter() - tic, time.perf_counter()
            if is_main:
                checkpoint(step, validation)
    bar.close()
    if step == start and is_main and not out.is_file():
        checkpoint(step, None)
    if world > 1:
        dist.barrier()
    summary = {"out": str(out), "steps": step, "wall_time_s": round(elapsed + time.perf_counter() - tic, 1),
               "validation": validation, "history": history, "rank": rank, "world": world,
               "model_sha256": model_sha256(model)}
    return summary
