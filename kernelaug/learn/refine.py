"""Code refinement: G's one-shot code, improved by gradient steps on how well F re-creates the pair.

G predicts a code in one forward pass; on pairs unlike its training data (another scene, another
camera motion) that code is often far from the best one F can use. :func:`refine_codes` starts from
it and takes ``steps`` Adam steps on the mean absolute error |F(x, k) - y|, changing only the code:
the model's weights are left untouched (no gradients accumulate in them). It is test-time
optimisation of the extractor, measured on real GoPro pairs in ``benchmarks/bench_gopro.py``; it
costs about ``3 * steps`` applications of F per pair.
"""

from __future__ import annotations

import math

import torch

from ..models import BlurModel

__all__ = ["REFINE_LR", "check_steps", "refine_codes"]

# Chosen for gopro-small on 13 held-out pairs of its training sequence's last 60 frames (not on the
# pairs it is reported on): after 100 steps 41.04 dB at 0.01, 40.83 at 0.02, lower at 0.05.
REFINE_LR = 0.01


def check_steps(steps) -> int:
    """``steps`` if it is a non-negative integer number of refinement steps, else ValueError."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"refinement steps must be a non-negative integer, got {steps!r}")
    return steps


def refine_codes(model: BlurModel, sharp: torch.Tensor, blurry: torch.Tensor, steps: int,
                 code: torch.Tensor | None = None, lr: float = REFINE_LR) -> torch.Tensor:
    """Codes of the pairs (B, 3, H, W) after ``steps`` Adam steps on mean |F(x, k) - y|, starting
    from ``code`` (default: ``model.extract(sharp, blurry)``). Returns a new detached code on the
    model's device; ``steps == 0`` returns (a copy of) the starting code, also under inference mode."""
    check_steps(steps)
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
        raise ValueError(f"refinement learning rate must be a positive number, got {lr!r}")
    model.check_pair(sharp, blurry)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            start = model.extract(sharp, blurry) if code is None else code
        model.check_code(sharp, start)
        if steps == 0:
            return start.detach().clone()
        if torch.is_inference_mode_enabled():
            raise RuntimeError("refine_codes needs gradients: call it outside torch.inference_mode()")
        # Tensors made under inference mode cannot be saved for backward; copies outside it can.
        sharp, blurry = (t.clone() if t.is_inference() else t for t in (sharp, blurry))
        code = start.detach().clone().requires_grad_(True)
        optimiser = torch.optim.Adam([code], lr=lr)
        with torch.enable_grad():
            for _ in range(steps):
                loss = (model.apply(sharp, code) - blurry).abs().mean()
                (code.grad,) = torch.autograd.grad(loss, code)  # only the code's gradient
                optimiser.step()
        return code.detach()
    finally:
        model.train(was_training)
