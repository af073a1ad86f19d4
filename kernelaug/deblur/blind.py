"""Blind deblurring in the learned kernel space (section 4 of Tran et al.): find x and k with F(x, k) = y.

The blur operator F (a trained :class:`kernelaug.models.BlurModel`) is frozen; only the sharp image x
and the code grid k are searched, minimising

    rho(y, F(x, k)) + lambda * ||k||_2 + gamma * mean((g_u(x)^2 + g_v(x)^2)^(alpha / 2))  [+ feature loss]

* generic (:func:`deblur_generic`): x = DIP_x(z_x), k = DIP_k(z_k), both untrained networks from
  fixed noise (:mod:`kernelaug.deblur.dip`); a warm-up fits DIP_x to y and DIP_k to a starting code (the
  bank's mean code, or G(y, y)), then Adam steps (joint or alternating) with a step-decay schedule
  and DIP's input-noise regularisation (z perturbed by fresh noise every step).
* domain-specific (:func:`deblur_generator`): x = Gen(w) for a user-supplied generator (any
  ``nn.Module`` mapping a latent to an image, e.g. a StyleGAN2), w optimised jointly with k,
  optionally kept on the sphere of radius sqrt(dim) as PULSE does.

The loss terms are pure functions (:func:`charbonnier`, :func:`ssim`, :func:`kernel_norm`,
:func:`hyper_laplacian`, :func:`data_term`). Images of any size: x lives on the blurry image
reflect-padded to a multiple of the model's cell, and the data term compares the *crop* of
F(x, k) with y, so the padding is free to explain blur spilling over the borders.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from ..bank.codes import adapt_grid
from .dip import CodeNet, SkipNet, dip_noise
from ..functional import _model_dtype_device, pad_to_multiple, to_rgb_batch
from ..metrics import charbonnier, ssim

__all__ = ["DeblurPreset", "PRESETS", "DeblurResult", "deblur_generic", "deblur_generator", "ssim",
           "kernel_norm", "hyper_laplacian", "data_term", "charbonnier", "sphere_project", "prepare_blurry",
           "MIN_SIZE", "DATA_TERMS", "START_CODES"]

#: Smallest side accepted: the SSIM window is 11 px and the learned PSFs are up to 31 px wide.
MIN_SIZE = 32
DATA_TERMS = ("charbonnier", "ssim", "ssim+charbonnier")
START_CODES = ("mean", "extract")
SCHEDULES = ("joint", "alternate")


# -- the objective: pure functions ---------------------------------------------------------------
def kernel_norm(code: torch.Tensor) -> torch.Tensor:
    """lambda's term: the L2 norm of each cell's code (B, C, h, w), averaged over cells."""
    return code.square().sum(1).add(1e-12).sqrt().mean()


def hyper_laplacian(x: torch.Tensor, alpha: float = 0.66, eps: float = 1e-6) -> torch.Tensor:
    """gamma's term: mean of (g_u^2 + g_v^2)^(alpha/2) over pixels, forward differences of (B, C, H, W)."""
    gu = x[..., :, 1:] - x[..., :, :-1]
    gv = x[..., 1:, :] - x[..., :-1, :]
    magnitude = gu[..., :-1, :].square() + gv[..., :, :-1].square()
    return (magnitude + eps).pow(alpha / 2).mean()


def data_term(prediction: torch.Tensor, target: torch.Tensor, kind: str = "ssim+charbonnier") -> torch.Tensor:
    """rho(y, F(x, k)): ``charbonnier``, ``ssim`` (1 - SSIM) or their sum ``ssim+charbonnier``."""
    if kind == "charbonnier":
        return charbonnier(prediction, target)
    if kind == "ssim":
        return 1 - ssim(prediction, target)
    if kind == "ssim+charbonnier":
        return 1 - ssim(prediction, target) + charbonnier(prediction, target)
    raise ValueError(f"unknown data term {kind!r}; expected one of {DATA_TERMS}")


def feature_distance(features: Callable[[torch.Tensor], Any], prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean L1 distance between ``features(prediction)`` and ``features(target)`` (a tensor or a
    list/tuple of tensors, e.g. the activations of a user-supplied VGG)."""
    a, b = features(prediction), features(target)
    if isinstance(a, torch.Tensor):
        a, b = [a], [b]
    return sum((p - q.detach()).abs().mean() for p, q in zip(a, b)) / len(a)


def psf_offset(model, code: torch.Tensor) -> torch.Tensor:
    """Mean squared distance (px^2) of each cell's PSF centroid from the PSF's centre, for models
    that expose their PSFs (the ``psf`` family); zero for others. Penalising it removes the
    translation ambiguity of blind deblurring: a shifted x under an off-centre PSF explains y as
    well as the unshifted pair."""
    psf_of = getattr(model, "psf", None)
    if not callable(psf_of):
        return code.new_zeros(())
    psf = psf_of(code)
    size = psf.shape[-1]
    coords = torch.arange(size, device=psf.device, dtype=psf.dtype) - (size - 1) / 2
    cx = (psf.sum(-2) * coords).sum(-1)
    cy = (psf.sum(-1) * coords).sum(-1)
    return (cx * cx + cy * cy).mean()


def sphere_project(latent: torch.Tensor) -> torch.Tensor:
    """PULSE's constraint: rescale each latent vector (last axis) to norm sqrt(dim)."""
    dim = latent.shape[-1]
    return latent * (math.sqrt(dim) / latent.norm(dim=-1, keepdim=True).clamp_min(1e-12))


# -- presets -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DeblurPreset:
    """Every setting of one deblurring run; :data:`PRESETS` holds ``cpu`` and ``gpu``."""

    name: str
    iterations: int                      # main Adam steps
    warmup_iterations: int               # steps fitting DIP_x to y, and again DIP_k to the start code
    lr_x: float = 5e-4                   # Adam learning rate of DIP_x (or of the generator latent)
    lr_k: float = 5e-4                   # Adam learning rate of DIP_k
    lr_decay: float = 0.7                # learning rates x lr_decay ...
    decay_steps: int = 5                 # ... this many times, evenly over the iterations
    dip_down: tuple[int, ...] = (128,) * 5
    dip_up: tuple[int, ...] = (128,) * 5
    dip_skip: tuple[int, ...] = (16,) * 5
    noise_channels: int = 8              # channels of z_x
    noise_std: float = 1e-3              # input-noise regularisation: z + noise_std * N(0, 1) each step
    data: str = "charbonnier"            # rho, one of DATA_TERMS
    kernel_weight: float = 5e-5          # lambda
    prior_weight: float = 2e-2           # gamma
    alpha: float = 0.66                  # hyper-Laplacian exponent
    feature_weight: float = 0.1          # weight of the feature loss when a feature network is given
    centre_weight: float = 1e-3          # weight of psf_offset (px^2): keeps the PSFs centred, x unshifted
    schedule: str = "joint"              # "joint": x and k every step; "alternate": x, then k, ...

    def __post_init__(self):
        if self.iterations < 0 or self.warmup_iterations < 0:
            raise ValueError(f"iterations must be >= 0, got {self.iterations} and warm-up {self.warmup_iterations}")
        if self.data not in DATA_TERMS:
            raise ValueError(f"unknown data term {self.data!r}; expected one of {DATA_TERMS}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; expected one of {SCHEDULES}")


#: ``gpu``: the paper's sizes (DIP_x of five levels of 128 channels with 16-channel skips, 5000 steps
#: after 300 warm-up steps, Adam 5e-4, learning rates x0.7 five times). ``cpu``: a narrower DIP,
#: fewer steps and larger learning rates, sized for about 10 minutes at 256x256 on 2 cores (measured
#: on one thread of a busy 2-core machine: 0.6 s per main step at 256x256, ~12 minutes in all). Both use the
#: Charbonnier data term: in an early trial on a bank-blurred 128x128 crop with the true code held
#: fixed, 1 - SSIM + Charbonnier (narrower DIP, lr 5e-3, 500 steps) ended below the blurry input's
#: PSNR, while with Charbonnier the estimate improved steadily.
PRESETS: dict[str, DeblurPreset] = {
    "gpu": DeblurPreset("gpu", iterations=5000, warmup_iterations=300, data="charbonnier"),
    "cpu": DeblurPreset("cpu", iterations=1000, warmup_iterations=200, lr_x=1e-2, lr_k=1e-3, data="charbonnier",
                        dip_down=(32, 32, 64, 64, 64), dip_up=(32, 32, 64, 64, 64), dip_skip=(16,) * 5),
}


def resolve_preset(preset: str | DeblurPreset, iterations: int | None = None,
                   warmup_iterations: int | None = None) -> DeblurPreset:
    """A preset name or object, with ``iterations``/``warmup_iterations`` overridden when given."""
    if isinstance(preset, str):
        if preset not in PRESETS:
            raise ValueError(f"unknown deblur preset {preset!r}; expected one of {sorted(PRESETS)}")
        preset = PRESETS[preset]
    changes = {}
    if iterations is not None:
        changes["iterations"] = iterations
    if warmup_iterations is not None:
        changes["warmup_iterations"] = warmup_iterations
    return replace(preset, **changes) if changes else preset


@dataclass
class DeblurResult:
    """What a deblurring run found (tensors on the CPU, float32, cropped to the input's size)."""

    sharp: torch.Tensor       # (1, 3, H, W) in [0, 1]
    code: torch.Tensor        # (1, C, rows, cols): the code grid of the padded frame
    reblurred: torch.Tensor   # (1, 3, H, W): F(sharp, code), to compare with the input
    losses: list[float] = field(default_factory=list)   # total objective per main iteration
    seconds: float = 0.0
    latent: torch.Tensor | None = None   # deblur_generator only: the final latent


# -- helpers -------------------------------------------------------------------------------------
def prepare_blurry(image: Any) -> torch.Tensor:
    """The blurry input as a (1, 3, H, W) float32 tensor in [0, 1]: numpy HWC or torch CHW / (1, C, H, W),
    grayscale replicated, alpha dropped; a float32 tensor already in [0, 1] may come back as a view of
    ``image`` (read it, never write into it). ValueError for other channel counts, NaN/Inf, batches
    of several images, or sides under :data:`MIN_SIZE`."""
    batch, _ = to_rgb_batch(image)
    if batch.shape[0] != 1:
        raise ValueError(f"deblurring takes one image at a time, got a batch of {batch.shape[0]}")
    height, width = batch.shape[-2:]
    if min(height, width) < MIN_SIZE:
        raise ValueError(f"image is {height}x{width} (HxW); blind deblurring needs at least "
                         f"{MIN_SIZE}x{MIN_SIZE} pixels")
    return batch.contiguous()


@contextmanager
def _frozen(model: nn.Module, eval_mode: bool = True):
    """A module frozen for the run (no parameter gradients; eval mode unless ``eval_mode=False``);
    the caller's flags restored after."""
    flags = [p.requires_grad for p in model.parameters()]
    training = model.training
    model.requires_grad_(False)
    if eval_mode:
        model.eval()
    try:
        yield model
    finally:
        for param, flag in zip(model.parameters(), flags):
            param.requires_grad_(flag)
        model.train(training)


def _init_weights(module: nn.Module, generator: torch.Generator) -> nn.Module:
    """Re-draw every conv/linear layer's weights from ``generator`` (PyTorch's default scheme), so a
    run is reproducible from its seed without touching the global random state."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
            if layer.bias is not None:
                fan_in = layer.weight[0].numel()
                bound = 1 / math.sqrt(fan_in)
                nn.init.uniform_(layer.bias, -bound, bound, generator=generator)
    return module


def _build(factory: Callable[[], nn.Module], generator: torch.Generator, device) -> nn.Module:
    with torch.random.fork_rng(devices=[]):  # construction draws from the global RNG: leave it untouched
        module = factory()
    return _init_weights(module, generator).to(device)


def _start_code(model, padded: torch.Tensor, start_code, bank) -> torch.Tensor:
    """The code DIP_k is warmed up to, on the padded frame's grid."""
    rows, cols = padded.shape[-2] // model.cell, padded.shape[-1] // model.cell
    if start_code is None:
        start_code = "mean" if bank is not None else "extract"
    if isinstance(start_code, str):
        if start_code == "mean":
            if bank is None:
                raise ValueError("start_code='mean' needs a kernel bank")
            bank.check(model)
            code = torch.from_numpy(bank[:]).float().mean(0, keepdim=True)
        elif start_code == "extract":
            with torch.no_grad():
                code = model.extract(padded, padded)
        else:
            raise ValueError(f"unknown start code {start_code!r}; expected one of {START_CODES} or a tensor")
    else:
        code = torch.as_tensor(start_code, dtype=torch.float32)
        if code.ndim == 3:
            code = code[None]
        if code.ndim != 4 or code.shape[:2] != (1, model.kernel_dim):
            raise ValueError(f"start code must have shape (1, {model.kernel_dim}, h, w), got {tuple(code.shape)}")
        if not bool(torch.isfinite(code).all()):
            raise ValueError("start code contains NaN/Inf")
    return adapt_grid(code.to(padded.device, padded.dtype), rows, cols).detach()


def _learning_rate(base: float, step: int, preset: DeblurPreset) -> float:
    """Step decay: ``base * lr_decay ** (step // (iterations // decay_steps))``."""
    every = max(1, preset.iterations // max(1, preset.decay_steps))
    return base * preset.lr_decay ** (step // every)


def _set_learning_rates(pairs, step: int, preset: DeblurPreset) -> None:
    for optimizer, base in pairs:
        for group in optimizer.param_groups:
            group["lr"] = _learning_rate(base, step, preset)


def _fit(net: nn.Module, noise: torch.Tensor, target: torch.Tensor, steps: int, lr: float, noise_std: float,
         generator: torch.Generator, label: str, progress: bool) -> None:
    """Warm-up: MSE fit of ``net(noise + perturbation)`` to ``target``."""
    if steps <= 0:
        return
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    bar = tqdm(range(steps), desc=label, disable=not progress, leave=False)
    for _ in bar:
        optimizer.zero_grad(set_to_none=True)
        loss = F.mse_loss(net(_perturb(noise, noise_std, generator)), target)
        loss.backward()
        optimizer.step()
    bar.close()


def _perturb(noise: torch.Tensor, std: float, generator: torch.Generator) -> torch.Tensor:
    if std <= 0:
        return noise
    return noise + std * torch.randn(noise.shape, generator=generator).to(noise.device)


def _objective(model, x_full, code, target, crop, preset: DeblurPreset, features) -> torch.Tensor:
    top, left, height, width = crop
    prediction = model.apply(x_full, code)[..., top:top + height, left:left + width]
    x = x_full[..., top:top + height, left:left + width]
    loss = (data_term(prediction, target, preset.data) + preset.kernel_weight * kernel_norm(code)
            + preset.prior_weight * hyper_laplacian(x, preset.alpha))
    if preset.centre_weight > 0:
        loss = loss + preset.centre_weight * psf_offset(model, code)
    if features is not None and preset.feature_weight > 0:
        loss = loss + preset.feature_weight * feature_distance(features, prediction, target)
    return loss


def _check_every(save_every: int, on_save) -> None:
    if isinstance(save_every, bool) or not isinstance(save_every, int) or save_every < 0:
        raise ValueError(f"save_every must be a non-negative int, got {save_every!r}")
    if save_every and on_save is None:
        raise ValueError("save_every needs an on_save callback")


# -- generic deblurring --------------------------------------------------------------------------
def _frame(blurry, model):
    """The checked blurry image on the model's device, its copy padded to the model's cell, the
    crop (top, left, height, width) of the image inside it, and the device."""
    device = _model_dtype_device(model)[1]
    target = prepare_blurry(blurry).to(device)
    height, width = target.shape[-2:]
    padded, (top, left) = pad_to_multiple(target, model.cell)
    return target, padded, (top, left, height, width), device


def _optimise(model, target, crop, preset: DeblurPreset, features, generator: torch.Generator, *,
              image: Callable[[], torch.Tensor], opt_x: torch.optim.Optimizer, k_net: nn.Module,
              z_k: torch.Tensor, save_every: int, on_save, progress: bool, desc: str,
              after_x_step: Callable[[], None] | None = None) -> list[float]:
    """The main loop shared by both priors: Adam steps on x's parameters (through ``image()``) and
    on the code DIP, joint or alternating, with the preset's learning-rate schedule; returns the
    losses."""
    top, left, height, width = crop
    opt_k = torch.optim.Adam(k_net.parameters(), lr=preset.lr_k)
    base_x = opt_x.param_groups[0]["lr"]
    losses: list[float] = []
    bar = tqdm(range(preset.iterations), desc=desc, disable=not progress)
    for step in bar:
        _set_learning_rates(((opt_x, base_x), (opt_k, preset.lr_k)), step, preset)
        opt_x.zero_grad(set_to_none=True)
        opt_k.zero_grad(set_to_none=True)
        x_full = image()
        code = k_net(_perturb(z_k, preset.noise_std, generator))
        loss = _objective(model, x_full, code, target, crop, preset, features)
        loss.backward()
        if preset.schedule == "joint" or step % 2 == 0:
            opt_x.step()
            if after_x_step is not None:
                with torch.no_grad():
                    after_x_step()
        if preset.schedule == "joint" or step % 2 == 1:
            opt_k.step()
        losses.append(loss.item())
        if step % 10 == 0 or step == preset.iterations - 1:
            bar.set_postfix(loss=f"{losses[-1]:.4f}")
        if save_every and (step + 1) % save_every == 0:
            with torch.no_grad():
                on_save(step + 1, x_full[..., top:top + height, left:left + width].detach().cpu())
    bar.close()
    return losses


def deblur_generic(blurry: Any, model, *, bank=None, start_code=None, preset: str | DeblurPreset = "cpu",
                   iterations: int | None = None, warmup_iterations: int | None = None, seed: int = 0,
                   features: nn.Module | None = None, save_every: int = 0,
                   on_save: Callable[[int, torch.Tensor], None] | None = None, progress: bool = True) -> DeblurResult:
    """Blind deblurring with Deep Image Priors for x and k (see the module docstring).

    blurry: one image (numpy HWC or torch CHW / (1, 3, H, W), values in [0, 1] or uint8), any size
    >= :data:`MIN_SIZE`. model: the trained blur model F (frozen during the run, on its own device).
    bank: a :class:`kernelaug.KernelBank` of the model, for the default start code (its mean);
    start_code: ``"mean"``, ``"extract"`` (G(y, y)) or a (1, C, h, w) code. features: optional
    feature network (e.g. a VGG the user loaded) for a perceptual term. on_save(step, sharp) is
    called every ``save_every`` main iterations with the current (1, 3, H, W) estimate.
    """
    preset = resolve_preset(preset, iterations, warmup_iterations)
    _check_every(save_every, on_save)
    started = time.perf_counter()
    target, padded, crop, device = _frame(blurry, model)
    generator = torch.Generator().manual_seed(int(seed))
    with _frozen(model):
        code0 = _start_code(model, padded, start_code, bank)
        x_net = _build(lambda: SkipNet(preset.noise_channels, 3, preset.dip_down, preset.dip_up, preset.dip_skip),
                       generator, device)
        if padded.shape[-1] % x_net.multiple or padded.shape[-2] % x_net.multiple:
            raise ValueError(f"the DIP's {len(preset.dip_down)} levels need sides that are multiples of "
                             f"{x_net.multiple}; the model's cell is {model.cell}")
        k_net = _build(lambda: CodeNet(model.kernel_dim), generator, device)
        z_x = dip_noise(preset.noise_channels, *padded.shape[-2:], generator, device=device)
        z_k = dip_noise(32, *code0.shape[-2:], generator, device=device)

        _fit(x_net, z_x, padded, preset.warmup_iterations, preset.lr_x, preset.noise_std, generator,
             "warm-up x", progress)
        _fit(k_net, z_k, code0, preset.warmup_iterations, preset.lr_k, preset.noise_std, generator,
             "warm-up k", progress)

        losses = _optimise(model, target, crop, preset, features, generator,
                           image=lambda: x_net(_perturb(z_x, preset.noise_std, generator)),
                           opt_x=torch.optim.Adam(x_net.parameters(), lr=preset.lr_x), k_net=k_net, z_k=z_k,
                           save_every=save_every, on_save=on_save, progress=progress, desc="deblur")
        with torch.no_grad():
            x_full = x_net(z_x)
            code = k_net(z_k)
            reblurred = model.apply(x_full, code)
    return _result(x_full, code, reblurred, crop, losses, started)


def _result(x_full, code, reblurred, crop, losses, started) -> DeblurResult:
    top, left, height, width = crop
    window = (..., slice(top, top + height), slice(left, left + width))
    return DeblurResult(sharp=x_full[window].detach().float().cpu().clamp(0, 1),
                        code=code.detach().float().cpu(),
                        reblurred=reblurred[window].detach().float().cpu().clamp(0, 1),
                        losses=losses, seconds=time.perf_counter() - started)


# -- domain-specific deblurring ------------------------------------------------------------------
def deblur_generator(blurry: Any, model, generator: nn.Module, latent_shape: tuple[int, ...], *, bank=None,
                     start_code=None, preset: str | DeblurPreset = "cpu", iterations: int | None = None,
                     warmup_iterations: int | None = None, seed: int = 0, sphere: bool = True,
                     output_range: tuple[float, float] = (0.0, 1.0), features: nn.Module | None = None,
                     save_every: int = 0, on_save: Callable[[int, torch.Tensor], None] | None = None,
                     progress: bool = True) -> DeblurResult:
    """Blind deblurring with x = generator(w): w (shape ``latent_shape``, e.g. (1, 512)) and k searched jointly.

    generator: any ``nn.Module`` mapping a latent to a (1, 3, h, w) image with values in
    ``output_range`` (StyleGAN2: (-1, 1)); its output is resized to the blurry image's padded frame
    when sizes differ. The generator's parameters are frozen, like F's, and left in the mode the
    caller chose. ``sphere``: keep each latent vector on the sphere of radius sqrt(dim) after every
    step (PULSE). k is a code DIP warmed up to the start code, as in :func:`deblur_generic`; the
    preset's ``lr_x`` is the latent's learning rate.
    """
    preset = resolve_preset(preset, iterations, warmup_iterations)
    _check_every(save_every, on_save)
    if not isinstance(generator, nn.Module):
        raise TypeError(f"generator must be a torch.nn.Module mapping a latent to an image, got {type(generator).__name__}")
    latent_shape = tuple(int(v) for v in latent_shape)
    if not latent_shape or min(latent_shape) < 1:
        raise ValueError(f"latent_shape must be non-empty with positive sizes, got {latent_shape}")
    low, high = (float(v) for v in output_range)
    if not high > low:
        raise ValueError(f"output_range must be (low, high) with high > low, got {output_range}")
    started = time.perf_counter()
    target, padded, crop, device = _frame(blurry, model)
    rng = torch.Generator().manual_seed(int(seed))

    def render(latent):
        image = generator(latent)
        if not isinstance(image, torch.Tensor) or image.ndim != 4 or image.shape[:2] != (1, 3):
            got = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
            raise ValueError(f"the generator must return a (1, 3, h, w) image tensor, got {got}")
        image = ((image - low) / (high - low)).clamp(0, 1)
        if image.shape[-2:] != padded.shape[-2:]:
            antialias = image.shape[-2] > padded.shape[-2] or image.shape[-1] > padded.shape[-1]
            image = F.interpolate(image, size=padded.shape[-2:], mode="bilinear", align_corners=False,
                                  antialias=antialias)
        return image

    with _frozen(model), _frozen(generator, eval_mode=False):
        code0 = _start_code(model, padded, start_code, bank)
        k_net = _build(lambda: CodeNet(model.kernel_dim), rng, device)
        z_k = dip_noise(32, *code0.shape[-2:], rng, device=device)
        _fit(k_net, z_k, code0, preset.warmup_iterations, preset.lr_k, preset.noise_std, rng, "warm-up k", progress)
        latent = torch.randn(latent_shape, generator=rng).to(device)
        if sphere:
            latent = sphere_project(latent)
        latent.requires_grad_(True)

        def project():
            latent.copy_(sphere_project(latent))

        losses = _optimise(model, target, crop, preset, features, rng, image=lambda: render(latent),
                           opt_x=torch.optim.Adam([latent], lr=preset.lr_x), k_net=k_net, z_k=z_k,
                           save_every=save_every, on_save=on_save, progress=progress,
                           desc="deblur (generator)", after_x_step=project if sphere else None)
        with torch.no_grad():
            x_full = render(latent)
            code = k_net(z_k)
            reblurred = model.apply(x_full, code)
    result = _result(x_full, code, reblurred, crop, losses, started)
    result.latent = latent.detach().cpu()
    return result
