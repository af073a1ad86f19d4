"""The deblurring networks by name: presets, loss and file format of each, as data.

``build_deblurrer("nafnet", "cpu")`` builds a network; ``deblurrer_loss`` is its training loss;
``save_deblurrer`` / ``load_deblurrer`` read and write any of them (the file's metadata names its
format, so a loader never has to be told which network a file holds).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from safetensors import SafetensorError, safe_open
from torch import nn

from . import nafnet, srn
from .training import load_srn, save_srn

__all__ = ["NETS", "DeblurrerSpec", "build_deblurrer", "deblurrer_loss", "save_deblurrer", "load_deblurrer",
           "net_name"]


@dataclass(frozen=True)
class DeblurrerSpec:
    """One network kind: its class, named configs, training loss, optimiser and file format."""

    name: str
    cls: type
    presets: dict
    loss: Callable[[object, torch.Tensor], torch.Tensor]
    lr: float                      # the reference training's learning rate
    optimizer: str                 # "adam" or "adamw"
    betas: tuple[float, float]
    file_format: str
    save: Callable
    load: Callable


NETS: dict[str, DeblurrerSpec] = {
    "nafnet": DeblurrerSpec("nafnet", nafnet.NAFNet, nafnet.NAFNET_PRESETS, nafnet.psnr_loss, lr=1e-3,
                            optimizer="adamw", betas=(0.9, 0.9), file_format=nafnet.NAFNET_FORMAT,
                            save=nafnet.save_nafnet, load=nafnet.load_nafnet),
    "srn": DeblurrerSpec("srn", srn.SRNDeblur,
                         {"paper": srn.SRNConfig(), "cpu": srn.SRNConfig(widths=(16, 32, 64), blocks=2),
                          "tiny": srn.SRNConfig(widths=(4, 8, 16), blocks=1)},
                         srn.multiscale_loss, lr=1e-4, optimizer="adam", betas=(0.9, 0.999),
                         file_format=srn.SRN_FORMAT, save=save_srn, load=load_srn),
}


def _spec(net: str) -> DeblurrerSpec:
    if net not in NETS:
        raise ValueError(f"unknown deblurrer {net!r}; choose from {sorted(NETS)}")
    return NETS[net]


def net_name(model: nn.Module) -> str:
    """The registry name of a network object ("nafnet" or "srn")."""
    for spec in NETS.values():
        if isinstance(model, spec.cls):
            return spec.name
    raise TypeError(f"{type(model).__name__} is not a kernelaug deblurrer ({', '.join(NETS)})")


def build_deblurrer(net: str, config="cpu") -> nn.Module:
    """A fresh network of kind ``net`` from a preset name or a config object."""
    spec = _spec(net)
    if isinstance(config, str):
        if config not in spec.presets:
            raise ValueError(f"unknown {net} preset {config!r}; choose from {sorted(spec.presets)}")
        config = spec.presets[config]
    return spec.cls(config)


def deblurrer_loss(model: nn.Module, output, sharp: torch.Tensor) -> torch.Tensor:
    """The training loss of ``model``'s kind (NAFNet: PSNR loss; SRN: MSE summed over scales)."""
    return NETS[net_name(model)].loss(output, sharp)


def make_optimizer(model: nn.Module, lr: float | None = None) -> torch.optim.Optimizer:
    """The reference optimiser of ``model``'s kind (NAFNet: AdamW, betas 0.9/0.9; SRN: Adam)."""
    spec = NETS[net_name(model)]
    cls = torch.optim.AdamW if spec.optimizer == "adamw" else torch.optim.Adam
    kwargs = {"weight_decay": 0.0} if spec.optimizer == "adamw" else {}
    return cls(model.parameters(), lr=spec.lr if lr is None else lr, betas=spec.betas, **kwargs)


def save_deblurrer(model: nn.Module, path: str | os.PathLike, provenance: dict | None = None) -> Path:
    """Write any deblurrer as safetensors with its config and provenance."""
    return NETS[net_name(model)].save(model, path, provenance)


def load_deblurrer(path: str | os.PathLike, device: str | torch.device = "cpu") -> nn.Module:
    """Read a deblurrer written by :func:`save_deblurrer`, whichever network it holds."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"deblurrer file {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as handle:
            file_format = (handle.metadata() or {}).get("format")
    except (SafetensorError, OSError) as error:
        raise ValueError(f"{path} is not a readable safetensors file: {error}") from None
    for spec in NETS.values():
        if file_format == spec.file_format:
            return spec.load(path, device)
    raise ValueError(f"{path} is not a kernelaug deblurrer (metadata format {file_format!r}, expected one of "
                     f"{[s.file_format for s in NETS.values()]})")
