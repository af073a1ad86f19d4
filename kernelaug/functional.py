"""Pure functions behind the blur transforms: no randomness, batched, dtype and device kept.

The classes in :mod:`kernelaug.transforms` (and the framework adapters in
:mod:`kernelaug.integrations`) only *draw* parameters -- a code, a strength, a motion length and
angle -- and call these functions, in the style of ``torchvision.transforms.v2.functional`` and
Kornia's ``apply_transform``.

* :func:`learned_blur` -- F(x, k) for images of any size: reflect padding to multiples of the
  model's cell, the code grid fitted to the padded image (:func:`kernelaug.bank.codes.adapt_grid`),
  one forward pass under ``torch.inference_mode``, crop back, blend by ``strength``, clamp to [0, 1].
* :func:`blend` -- ``sharp + strength * (blurred - sharp)``: for a linear blur this is the PSF
  ``(1 - s) * delta + s * k``, a valid kernel (non-negative, sums to one) between "no blur" and
  the learned blur, so ``strength`` means "fraction of the exposure that is blurred".
* :func:`motion_kernel` / :func:`motion_blur` -- the parametric motion blur of the paper's
  "comb." setting (a line kernel applied with OpenCV).
* :func:`pad_reflect` -- reflect padding that never fails on small images (pads in steps,
  replicates 1-pixel sides).
* :func:`to_rgb_batch` / :func:`from_rgb_batch` -- the input conventions of every transform:
  numpy HWC / HW / NHWC (uint8, uint16, float16/32/64 in [0, 1]) and torch HW / CHW / BCHW
  (uint8 or float), with 1 (grayscale), 3 (RGB) or 4 (RGBA) channels, converted to a float32
  (B, 3, H, W) batch and back to exactly the input's type, dtype, layout and device.

Channel policy: grayscale images are replicated to three channels, blurred, and the mean of the
three blurred channels is returned; RGBA images have their RGB blurred and their alpha returned
unchanged. Anything else (2 or 5+ channels, empty images, NaN/Inf, integer types other than
uint8/uint16, floats outside [0, 1]) is a :class:`ValueError` raised before any computation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from .bank.codes import adapt_grid

__all__ = ["learned_blur", "blend", "pad_reflect", "pad_to_multiple", "motion_kernel", "motion_blur",
           "to_rgb_batch", "from_rgb_batch", "ImageSpec", "FLOAT_TOLERANCE"]

#: Float images may exceed [0, 1] by this much (resampling overshoot) and are clipped; beyond, an error.
FLOAT_TOLERANCE = 1e-3

_NUMPY_INTS = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}
_NUMPY_FLOATS = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))
_TORCH_FLOATS = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


# -- input conventions ---------------------------------------------------------------------------
@dataclass
class ImageSpec:
    """How to turn a (B, 3, H, W) float32 batch back into the caller's image(s)."""

    kind: str                  # "numpy" or "torch"
    layout: str                # numpy: "HW", "HWC", "NHWC"; torch: "HW", "CHW", "BCHW"
    channels: int              # 1, 3 or 4
    dtype: Any                 # numpy dtype or torch dtype of the input
    scale: float               # 255 / 65535 for integer inputs, 1 for floats
    device: Any = None         # torch device of the input
    alpha: torch.Tensor | None = None   # (B, 1, H, W) alpha of RGBA inputs, float32
    tensor_type: type | None = None     # the input's tensor subclass (e.g. tv_tensors.Image)

    @property
    def batched(self) -> bool:
        return self.layout in ("NHWC", "BCHW")

    @property
    def integer(self) -> bool:
        return self.scale != 1.0


def _check_values(batch: torch.Tensor, integer: bool) -> torch.Tensor:
    if integer:
        return batch
    # One pass for the common case (min and max propagate NaN and infinity); the count only on failure.
    low, high = (float(v) for v in torch.aminmax(batch))
    if not (math.isfinite(low) and math.isfinite(high)):
        bad = batch[~torch.isfinite(batch)]
        raise ValueError(f"image contains {bad.numel()} NaN/Inf value(s) (e.g. {bad[0].item()}); "
                         "blur transforms need finite pixel values")
    if low < -FLOAT_TOLERANCE or high > 1 + FLOAT_TOLERANCE:
        raise ValueError(f"float images must have values in [0, 1], got [{low:.4g}, {high:.4g}]; "
                         "apply the blur before normalisation (or pass uint8 images)")
    return batch if 0 <= low and high <= 1 else batch.clamp(0, 1)  # (the transforms never write into it)


def to_rgb_batch(image: Any) -> tuple[torch.Tensor, ImageSpec]:
    """Any supported image (see module docstring) -> (float32 (B, 3, H, W) in [0, 1], spec).

    The returned batch is a new tensor whenever a conversion or a clip happens; a float32 torch
    image already in [0, 1] is returned as a view of itself. Read it, never write into it (the
    transforms do not).
    """
    if isinstance(image, np.ndarray):
        return _numpy_to_batch(image)
    if isinstance(image, torch.Tensor):
        return _torch_to_batch(image)
    raise TypeError(f"expected an image as a numpy array (HWC) or a torch tensor (CHW / BCHW), "
                    f"got {type(image).__module__}.{type(image).__name__}")


def _channel_error(shape, kind: str) -> ValueError:
    hint = ""
    if kind == "numpy" and len(shape) == 3 and shape[0] in (1, 3, 4) and shape[-1] not in (1, 3, 4):
        hint = " (this looks channels-first: numpy images are HWC, use image.transpose(1, 2, 0))"
    if kind == "torch" and len(shape) in (3, 4) and shape[-1] in (1, 3, 4) and shape[-3] not in (1, 3, 4):
        hint = " (this looks channels-last: torch images are CHW, use image.permute(2, 0, 1))"
    layouts = "HW, HWC or NHWC" if kind == "numpy" else "HW, CHW or BCHW"
    return ValueError(f"unsupported {kind} image shape {tuple(shape)}: expected {layouts} with 1 "
                      f"(grayscale), 3 (RGB) or 4 (RGBA) channels{hint}")


def _numpy_to_batch(image: np.ndarray) -> tuple[torch.Tensor, ImageSpec]:
    dtype = image.dtype
    if dtype in _NUMPY_INTS:
        scale = _NUMPY_INTS[dtype]
    elif dtype in _NUMPY_FLOATS:
        scale = 1.0
    else:
        raise ValueError(f"unsupported numpy image dtype {dtype}: expected uint8, uint16 or float "
                         "(float16/32/64 with values in [0, 1])")
    if image.ndim == 2:
        layout, nhwc = "HW", image[None, :, :, None]
    elif image.ndim == 3:
        layout, nhwc = "HWC", image[None]
    elif image.ndim == 4:
        layout, nhwc = "NHWC", image
    else:
        raise _channel_error(image.shape, "numpy")
    channels = nhwc.shape[-1]
    if channels not in (1, 3, 4):
        raise _channel_error(image.shape, "numpy")
    if 0 in nhwc.shape:
        raise ValueError(f"empty image of shape {tuple(image.shape)}")
    nhwc = np.ascontiguousarray(nhwc)
    if not nhwc.flags.writeable:  # torch.from_numpy warns on read-only arrays (e.g. from PIL)
        nhwc = nhwc.copy()
    tensor = torch.from_numpy(nhwc).permute(0, 3, 1, 2)
    # Converted and made channels-first in one copy (F is slower on channels-last views).
    batch = torch.empty(tensor.shape, dtype=torch.float32).copy_(tensor)
    if scale != 1.0:
        batch = batch.mul_(1.0 / scale)
    batch = _check_values(batch, scale != 1.0)
    spec = ImageSpec("numpy", layout, channels, dtype, scale)
    return _split_channels(batch, spec)


def _torch_to_batch(image: torch.Tensor) -> tuple[torch.Tensor, ImageSpec]:
    dtype = image.dtype
    if dtype == torch.uint8:
        scale = 255.0
    elif dtype in _TORCH_FLOATS:
        scale = 1.0
    else:
        raise ValueError(f"unsupported torch image dtype {dtype}: expected uint8 or a float dtype "
                         "with values in [0, 1]")
    if image.ndim == 2:
        layout, bchw = "HW", image[None, None]
    elif image.ndim == 3:
        layout, bchw = "CHW", image[None]
    elif image.ndim == 4:
        layout, bchw = "BCHW", image
    else:
        raise _channel_error(image.shape, "torch")
    channels = bchw.shape[1]
    if channels not in (1, 3, 4):
        raise _channel_error(image.shape, "torch")
    if 0 in bchw.shape:
        raise ValueError(f"empty image of shape {tuple(image.shape)}")
    plain = bchw.detach().as_subclass(torch.Tensor)
    batch = plain.to(torch.float32)
    if scale != 1.0:
        batch = batch * (1.0 / scale)
    batch = _check_values(batch, scale != 1.0)
    subclass = type(image) if type(image) is not torch.Tensor else None
    spec = ImageSpec("torch", layout, channels, dtype, scale, device=image.device, tensor_type=subclass)
    return _split_channels(batch, spec)


def _split_channels(batch: torch.Tensor, spec: ImageSpec) -> tuple[torch.Tensor, ImageSpec]:
    if spec.channels == 1:
        batch = batch.expand(-1, 3, -1, -1)
    elif spec.channels == 4:
        spec.alpha = batch[:, 3:4]
        batch = batch[:, :3]
    return batch, spec


def _uint8_planes(batch: torch.Tensor) -> np.ndarray:
    """(B, C, H, W) float values -> (B, C, H, W) uint8: times 255, rounded half to even (as torch.round)
    and saturated, by OpenCV's convertScaleAbs plane by plane. The same values as torch's mul, round,
    clamp and cast; at 256x256 RGB, 0.045 instead of 0.24 ms to a numpy HWC image, 0.057 instead of
    0.117 ms to a torch CHW one."""
    planes = batch.detach().clamp(0, 1).cpu()  # in [0, 1] first: convertScaleAbs takes |255 x|
    out = np.empty(planes.shape, np.uint8)
    side = planes.shape[-2:]
    for source, target in zip(planes.numpy().reshape(-1, *side), out.reshape(-1, *side)):
        cv2.convertScaleAbs(source, dst=target, alpha=255.0)
    return out


def from_rgb_batch(batch: torch.Tensor, spec: ImageSpec) -> Any:
    """Inverse of :func:`to_rgb_batch`: a (B, 3, H, W) float batch in [0, 1] -> the caller's format."""
    batch = batch.to(torch.float32)
    if spec.channels == 1:
        batch = batch.mean(dim=1, keepdim=True)
    elif spec.channels == 4:
        batch = torch.cat((batch, spec.alpha.to(batch.device)), dim=1)
    by_opencv = spec.scale == 255.0 and (spec.kind == "numpy" or batch.device.type == "cpu")
    if by_opencv:
        planes = _uint8_planes(batch)
        if spec.kind == "numpy":
            images = [cv2.merge(list(image)) for image in planes]
            if spec.layout == "HW":
                return images[0]
            images = [image.reshape(*image.shape[:2], spec.channels) for image in images]  # merge drops an axis of 1
            return images[0] if spec.layout == "HWC" else np.stack(images)
        out = torch.from_numpy(planes)
    else:
        integer_dtype = torch.uint8 if spec.scale == 255.0 else torch.int32
        if spec.integer:
            batch = batch.mul(spec.scale).round_().clamp_(0, spec.scale)
        if spec.kind == "numpy":
            # uint16 and float: torch transposes (1, 3, H, W) -> (1, H, W, 3) about twice as fast as
            # numpy.ascontiguousarray, and float32 faster than integers (measured for uint8: 0.16 vs 0.21 ms
            # at 256x256 for the whole conversion): narrow after it.
            nhwc = batch.permute(0, 2, 3, 1).cpu().contiguous()
            nhwc = (nhwc.to(integer_dtype) if spec.integer else nhwc).numpy().astype(spec.dtype, copy=False)
            if spec.layout == "HW":
                return np.ascontiguousarray(nhwc[0, :, :, 0])
            if spec.layout == "HWC":
                return np.ascontiguousarray(nhwc[0])
            return np.ascontiguousarray(nhwc)
        out = batch.to(integer_dtype) if spec.integer else batch
    out = out.to(device=spec.device, dtype=spec.dtype)
    if spec.layout == "HW":
        out = out[0, 0]
    elif spec.layout == "CHW":
        out = out[0]
    out = out.contiguous()
    if spec.tensor_type is not None:
        out = out.as_subclass(spec.tensor_type)
    return out


# -- padding -------------------------------------------------------------------------------------
def _pad_axis(x: torch.Tensor, before: int, after: int, axis: int) -> torch.Tensor:
    """Reflect-pad one spatial axis (-1 width, -2 height) in steps; replicate when the side is 1 px."""
    while before > 0 or after > 0:
        size = x.shape[axis]
        if size == 1:
            pad = (before, after, 0, 0) if axis == -1 else (0, 0, before, after)
            return F.pad(x, pad, mode="replicate")
        step_before, step_after = min(before, size - 1), min(after, size - 1)
        pad = (step_before, step_after, 0, 0) if axis == -1 else (0, 0, step_before, step_after)
        x = F.pad(x, pad, mode="reflect")
        before, after = before - step_before, after - step_after
    return x


def pad_reflect(x: torch.Tensor, top: int, bottom: int, left: int, right: int) -> torch.Tensor:
    """Reflect padding of a (B, C, H, W) tensor by any amount: in steps of at most side - 1
    (what ``F.pad(mode='reflect')`` allows), replicating sides of one pixel."""
    if min(top, bottom, left, right) < 0:
        raise ValueError("padding must be non-negative")
    return _pad_axis(_pad_axis(x, left, right, -1), top, bottom, -2)


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Reflect-pad (B, C, H, W) so that H and W are positive multiples of ``multiple``, centred.

    Returns the padded tensor and the (top, left) offset of the original image in it.
    """
    height, width = x.shape[-2:]
    padded_h = max(1, math.ceil(height / multiple)) * multiple
    padded_w = max(1, math.ceil(width / multiple)) * multiple
    top, left = (padded_h - height) // 2, (padded_w - width) // 2
    if (padded_h, padded_w) == (height, width):
        return x, (0, 0)
    return pad_reflect(x, top, padded_h - height - top, left, padded_w - width - left), (top, left)


# -- the learned blur ----------------------------------------------------------------------------
def _model_dtype_device(model) -> tuple[torch.dtype, torch.device]:
    for param in model.parameters():
        return param.dtype, param.device
    return torch.float32, torch.device("cpu")


def _as_strength(strength, batch: int, device, dtype) -> torch.Tensor | float:
    """A float or (B, 1, 1, 1) values, each finite and in [0, 1] (beyond, the blend extrapolates)."""
    if isinstance(strength, (int, float)) and not isinstance(strength, bool):
        if not 0.0 <= float(strength) <= 1.0:  # NaN fails too
            raise ValueError(f"strength must be in [0, 1], got {strength}")
        return float(strength)
    strength = torch.as_tensor(strength, device=device, dtype=dtype).reshape(-1)
    if strength.numel() and not bool(((strength >= 0) & (strength <= 1)).all()):
        raise ValueError(f"strength values must be in [0, 1], got {strength.tolist()[:8]}")
    if strength.numel() == 1:
        return float(strength)
    if strength.numel() != batch:
        raise ValueError(f"strength has {strength.numel()} values for a batch of {batch} images")
    return strength.view(batch, 1, 1, 1)


def blend(sharp: torch.Tensor, blurred: torch.Tensor, strength) -> torch.Tensor:
    """``sharp + strength * (blurred - sharp)``; ``strength`` a float or one value per image."""
    return _lerp(sharp, blurred, _as_strength(strength, sharp.shape[0], sharp.device, sharp.dtype))


def _lerp(sharp: torch.Tensor, blurred: torch.Tensor, strength: torch.Tensor | float) -> torch.Tensor:
    """:func:`blend` for a strength already checked by :func:`_as_strength`."""
    if isinstance(strength, float) and strength == 1.0:
        return blurred
    return torch.lerp(sharp, blurred, strength)


#: Images per forward pass on the CPU, at most: one per torch thread up to this many. Larger passes
#: fell out of cache and got slower per image (psf preset at 256x256, CPU time per image in two runs,
#: before the blur took columns in chunks: 16.8-16.9 ms for 1 or 2 images per pass, 17.1-23.2 at 4,
#: 20-42 at 8, 43-49 at 16). Measured 2026-12-04, LearnedBlurBatch on 32 images: one thread,
#: 1 image per pass 0.94x the time of 2; two threads, 2 images 0.86-0.89x the time of 1. Re-measured
#: after that day's cuts around F (learned_blur on 32 images, one thread, 4 interleaved rounds):
#: gopro-small 1 image per pass 0.89-0.93x the time of 2; gopro-lean 0.94-0.99x in one run and
#: 1.06x in another, an hour apart: this machine's speed drifts by that much.
CPU_CHUNK = 2


#: Code cells that learned_blur decodes at once, at most (more when one chunk has more): 4096 cells of
#: 47x47 PSFs are 36 MB, the codes of 256 images of 256x256 or 16-17 of 768x1280 (rounded down to whole chunks).
DECODE_CELLS = 4096


def cpu_chunk() -> int:
    """The default images per forward pass on the CPU: one per torch thread, at most :data:`CPU_CHUNK`."""
    return max(1, min(CPU_CHUNK, torch.get_num_threads()))


def learned_blur(images: torch.Tensor, codes, model, strength=1.0, grid_mode: str = "resize",
                 chunk_size: int | None = None) -> torch.Tensor:
    """Blur a batch of sharp images with the model's operator F and one code grid per image.

    images: (B, 3, H, W) float tensor in [0, 1], any H, W >= 1, any device (moved to the model's
    device for the forward pass and back). codes: (B, C, h, w) or (1, C, h, w) tensor or array,
    any grid size; fitted to the padded image's grid with ``grid_mode`` ("resize" or "tile").
    strength: float or (B,) values in [0, 1], see :func:`blend`. chunk_size: images per forward
    pass (default: :func:`cpu_chunk` on the CPU, the whole batch elsewhere). Returns (B, 3, H, W)
    in [0, 1] with the input's dtype and device; the input is not modified. A code holding NaN or
    infinity is a ValueError naming its position in the batch (never a NaN or black image).
    """
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
        got = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images must be a (B, 3, H, W) tensor, got {got} (see kernelaug.functional.to_rgb_batch)")
    if not images.is_floating_point():
        raise ValueError(f"images must be float in [0, 1], got {images.dtype}")
    codes = torch.as_tensor(codes)
    if codes.ndim == 3:
        codes = codes[None]
    batch = images.shape[0]
    if codes.ndim != 4 or codes.shape[0] not in (1, batch):
        raise ValueError(f"codes must have shape (B, C, h, w) with B = {batch} (or 1), got {tuple(codes.shape)}")
    if codes.shape[1] != model.kernel_dim:
        raise ValueError(f"codes have {codes.shape[1]} channels, the model expects kernel_dim = {model.kernel_dim}")
    if not codes.is_floating_point():
        raise ValueError(f"codes must be floating point, got {codes.dtype}")
    finite = torch.isfinite(codes).flatten(1).all(dim=1)
    if not bool(finite.all()):
        bad = torch.nonzero(~finite).flatten().tolist()
        raise ValueError(f"code(s) {bad[:10]} of the batch hold NaN or infinity; a blur with them would be a NaN "
                         f"or black image (check the bank with KernelBank.check_finite or kernelaug bank-info)")
    if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1):
        raise ValueError(f"chunk_size must be a positive int or None, got {chunk_size!r}")
    dtype, device = _model_dtype_device(model)
    strength = _as_strength(strength, batch, device, dtype)  # checked before the forward pass
    if batch == 0:
        return images.clone()  # nothing to blur (F itself cannot take an empty batch)
    # Contiguous: numpy HWC images arrive as channels-last views, and every stage of F is slower on those
    # (about 0.7 ms of 6 at 256x256 on one thread).
    sharp = images.to(device=device, dtype=dtype).contiguous()
    codes = codes.to(device=device, dtype=dtype)
    if codes.shape[0] != batch:
        codes = codes.expand(batch, -1, -1, -1)
    height, width = sharp.shape[-2:]
    if chunk_size is None:
        chunk_size = cpu_chunk() if device.type == "cpu" else batch
    with torch.inference_mode():
        padded, (top, left) = pad_to_multiple(sharp, model.cell)
        grid = adapt_grid(codes, padded.shape[-2] // model.cell, padded.shape[-1] // model.cell, grid_mode)
        grid = grid.contiguous()
        model.check_code(padded, grid)
    # Codes are decoded for several chunks at once: decoded chunk by chunk, the decoder's weights come back
    # into cache for every image (timed by hand: 0.26 ms per decode cold, 0.16 ms warm; LearnedBlurBatch
    # 0.97-0.98x, revisions.md).
    cells = grid.shape[-2] * grid.shape[-1]
    per_decode = chunk_size * max(1, DECODE_CELLS // (chunk_size * cells))
    # Each chunk is blended and clipped while it is still in cache, into the output (no pass over the batch after).
    # Outside inference mode: the result is a normal tensor, usable in autograd graphs downstream
    # (no gradient flows through F itself).
    out, chunks = None, []
    for start in range(0, batch, chunk_size):
        part = slice(start, start + chunk_size)
        with torch.inference_mode():
            if start % per_decode == 0:
                params, first = model.decode(grid[start:start + per_decode]), start
            blurred = model.render(padded[part], params[start - first:start - first + chunk_size])
            blurred = blurred[..., top:top + height, left:left + width]
        chunk_strength = strength if isinstance(strength, float) else strength[part]
        blended = _lerp(sharp[part], blurred, chunk_strength)
        if blended.requires_grad:  # (out= takes no part in autograd)
            chunks.append(blended.clamp(0, 1))
        else:  # into one output, no concatenation after the loop
            out = torch.empty_like(sharp) if out is None else out
            torch.clamp(blended, 0, 1, out=out[part])
    if chunks:
        out = chunks[0] if len(chunks) == 1 else torch.cat(chunks)
    return out.to(device=images.device, dtype=images.dtype)


# -- the parametric motion blur ("comb.") --------------------------------------------------------
def motion_kernel(length: int, angle: float) -> np.ndarray:
    """A normalised line PSF: ``length`` pixels long at ``angle`` degrees (counter-clockwise from
    the x axis), anti-aliased, centred in an odd square of side ``length`` (or ``length + 1``)."""
    length = int(length)
    if length < 1:
        raise ValueError(f"motion length must be >= 1, got {length}")
    size = length if length % 2 else length + 1
    kernel = np.zeros((size, size), np.float32)
    start = (size - length) / 2
    # A horizontal segment of exactly `length` pixels, the fractional ends weighted, then rotated.
    kernel[size // 2, :] = np.clip(np.minimum(np.arange(size) + 1 - start, start + length - np.arange(size)), 0, 1)
    centre = ((size - 1) / 2, (size - 1) / 2)
    rotation = cv2.getRotationMatrix2D(centre, float(angle), 1.0)
    kernel = cv2.warpAffine(kernel, rotation, (size, size), flags=cv2.INTER_LINEAR)
    total = kernel.sum()
    if total <= 0:
        kernel = np.zeros((size, size), np.float32)
        kernel[size // 2, size // 2] = 1
        return kernel
    return kernel / total


def _filter_by_rows(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """``cv2.filter2D(image, -1, kernel, borderType=BORDER_REFLECT_101)`` for a float image, as a sum
    of one-row filters of vertically shifted copies: exact, and for kernels of 11 px and more far
    faster than OpenCV's own choice there (a DFT: ~50 ms vs ~2.5 ms at 256x256 with 15 px)."""
    radius = kernel.shape[0] // 2
    height = image.shape[0]
    padded = cv2.copyMakeBorder(image, radius, radius, 0, 0, cv2.BORDER_REFLECT_101)
    if padded.ndim < image.ndim:  # OpenCV drops a trailing channel axis of 1
        padded = padded[..., None]
    out = None
    for i in np.flatnonzero(kernel.any(axis=1)):
        part = cv2.filter2D(padded[i:i + height], -1, kernel[i:i + 1], borderType=cv2.BORDER_REFLECT_101)
        out = part if out is None else cv2.add(out, part)
    return out.reshape(image.shape)


def motion_blur(image: np.ndarray, length: int, angle: float) -> np.ndarray:
    """Linear motion blur of a numpy HW / HWC image (any channel count, uint8 / uint16 / float16 /
    float32 / float64) with :func:`motion_kernel` and OpenCV ``filter2D``, borders reflected
    (BORDER_REFLECT_101); same shape and dtype out, integers rounded. ``length`` 1 is the identity."""
    if not isinstance(image, np.ndarray) or image.ndim not in (2, 3) or 0 in image.shape:
        raise ValueError(f"motion_blur expects a non-empty numpy HW or HWC image, got "
                         f"{getattr(image, 'shape', type(image).__name__)}")
    if image.dtype not in (np.uint8, np.uint16, np.float16, np.float32, np.float64):
        raise ValueError(f"motion_blur does not support dtype {image.dtype}")
    kernel = motion_kernel(length, angle)
    if kernel.shape == (1, 1):
        return image.copy()
    work = image if image.dtype in (np.float32, np.float64) else image.astype(np.float32)
    planes = [work] if work.ndim == 2 or work.shape[2] <= 4 else [work[..., c] for c in range(work.shape[2])]
    outputs = []
    for plane in planes:
        plane = np.ascontiguousarray(plane)
        if kernel.shape[0] >= 11:
            out = _filter_by_rows(plane, kernel)
        else:
            out = cv2.filter2D(plane, -1, kernel, borderType=cv2.BORDER_REFLECT_101).reshape(plane.shape)
        outputs.append(out)
    out = outputs[0] if len(outputs) == 1 else np.stack(outputs, axis=-1)
    if image.dtype.kind == "u":
        top = np.iinfo(image.dtype).max
        return np.clip(np.rint(out), 0, top).astype(image.dtype)
    return out.astype(image.dtype, copy=False)
