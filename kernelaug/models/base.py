"""What every architecture offers: G (extract), F (apply), and input checks with readable errors."""

from __future__ import annotations

import torch
from torch import nn


class BlurModel(nn.Module):
    """A kernel encoder: ``extract(sharp, blurry) -> code`` (G) and ``apply(sharp, code) -> blurry`` (F).

    Images are (B, 3, H, W) float tensors in [0, 1] with H and W multiples of ``cell``; codes are
    (B, kernel_dim, H / cell, W / cell). Subclasses implement ``encode`` and ``apply``, and may split
    ``apply`` into ``decode`` (the code's parameters, once per batch) and ``render`` (the image from them).
    """

    def __init__(self, config):
        super().__init__()
        self.config = config

    @property
    def cell(self) -> int:
        """Pixels per code cell; image sides must be multiples of it."""
        return self.config.cell

    @property
    def kernel_dim(self) -> int:
        return self.config.kernel_dim

    def code_shape(self, height: int, width: int) -> tuple[int, int, int]:
        """Shape (C, h, w) of the code of one image of the given size."""
        self._check_size(height, width)
        return (self.kernel_dim, height // self.cell, width // self.cell)

    # -- the two functions of the paper ------------------------------------------------------
    def encode(self, sharp: torch.Tensor, blurry: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """G: return (mean, log-variance or None) of the code of each pair."""
        raise NotImplementedError

    def apply(self, sharp: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        """F: blur ``sharp`` with ``code``."""
        raise NotImplementedError

    def decode(self, code: torch.Tensor):
        """What F makes of a code before it sees an image, for :meth:`render`: a tensor or an object
        sliced along the batch like one (``params[i:j]``). Default: the code itself. Lets a caller
        decode a whole batch once and render it in chunks (:func:`kernelaug.functional.learned_blur`)."""
        return code

    def render(self, sharp: torch.Tensor, params) -> torch.Tensor:
        """F from decoded parameters: ``render(x, decode(k))`` equals ``apply(x, k)``. A subclass overrides
        both ``decode`` and ``render`` or neither."""
        return self.apply(sharp, params)

    def extract(self, sharp: torch.Tensor, blurry: torch.Tensor) -> torch.Tensor:
        """G(sharp, blurry) -> code; the VAE mean when the model has a VAE head."""
        self.check_pair(sharp, blurry)
        mean, _ = self.encode(sharp, blurry)
        return mean

    def forward(self, sharp: torch.Tensor, blurry: torch.Tensor, sample: bool = False):
        """Training pass: returns (F(x, G(x, y)), code, KL term or 0)."""
        self.check_pair(sharp, blurry)
        mean, logvar = self.encode(sharp, blurry)
        code = mean
        kl = mean.new_zeros(())
        if logvar is not None:
            if sample:
                code = mean + torch.randn_like(mean) * torch.exp(0.5 * logvar)
            kl = 0.5 * torch.mean(mean.pow(2) + logvar.exp() - 1.0 - logvar)
        return self.apply(sharp, code), code, kl

    # -- checks --------------------------------------------------------------------------------
    def _check_size(self, height: int, width: int) -> None:
        cell = self.cell
        if height < cell or width < cell or height % cell or width % cell:
            raise ValueError(
                f"image size {height}x{width} is not supported by this {self.config.arch!r} model: "
                f"height and width must be positive multiples of {cell} (pad or crop first; "
                f"kernelaug.LearnedBlur does this for you)")

    def check_image(self, image: torch.Tensor, name: str = "image") -> None:
        if not isinstance(image, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(image).__name__}")
        if image.ndim != 4 or image.shape[1] != 3:
            raise ValueError(f"{name} must have shape (B, 3, H, W), got {tuple(image.shape)}")
        if not image.is_floating_point():
            raise ValueError(f"{name} must be a float tensor in [0, 1], got dtype {image.dtype}")
        self._check_size(image.shape[2], image.shape[3])

    def check_pair(self, sharp: torch.Tensor, blurry: torch.Tensor) -> None:
        self.check_image(sharp, "sharp")
        self.check_image(blurry, "blurry")
        if sharp.shape != blurry.shape:
            raise ValueError(f"sharp and blurry shapes differ: {tuple(sharp.shape)} vs {tuple(blurry.shape)}")

    def check_code(self, sharp: torch.Tensor, code: torch.Tensor) -> None:
        self.check_image(sharp, "sharp")
        expected = (sharp.shape[0], *self.code_shape(sharp.shape[2], sharp.shape[3]))
        if not isinstance(code, torch.Tensor) or tuple(code.shape) != expected:
            got = tuple(code.shape) if isinstance(code, torch.Tensor) else type(code).__name__
            raise ValueError(
                f"code shape {got} does not match the image: expected {expected} for a "
                f"{tuple(sharp.shape)} image with this model (kernel_dim {self.kernel_dim}, cell {self.cell})")
