"""Operations on code grids that do not need a model: fitting a grid to another image size.

A code grid (C, h, w) describes the blur of each ``cell`` x ``cell`` block of the frame it was
extracted from. To blur an image of another size the grid must have that image's (rows, cols):

* ``"resize"`` (default): the blur *field* is stretched over the new frame -- bilinear interpolation
  of codes when the grid grows, area averaging when it shrinks. Camera shake varies smoothly across
  a frame, so the frame keeps the same kind of variation (a rotation stays a rotation).
* ``"tile"``: the grid is repeated with mirror symmetry from its top-left corner, then cropped; local
  blur keeps its exact codes and scale, the variation repeats.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

GRID_MODES = ("resize", "tile")


def adapt_grid(codes: torch.Tensor, rows: int, cols: int, mode: str = "resize") -> torch.Tensor:
    """Codes (B, C, h, w) -> (B, C, rows, cols); see the module docstring for the two modes."""
    if mode not in GRID_MODES:
        raise ValueError(f"unknown grid mode {mode!r}; expected one of {GRID_MODES}")
    if codes.ndim != 4:
        raise ValueError(f"codes must have shape (B, C, h, w), got {tuple(codes.shape)}")
    if rows < 1 or cols < 1:
        raise ValueError(f"target grid must be at least 1x1, got {rows}x{cols}")
    height, width = codes.shape[-2:]
    if (height, width) == (rows, cols):
        return codes
    if mode == "tile":
        reps_r, reps_c = -(-rows // height), -(-cols // width)
        row_block = torch.cat([codes, codes.flip(-2)], dim=-2).repeat(1, 1, -(-reps_r // 2), 1)
        grid = torch.cat([row_block, row_block.flip(-1)], dim=-1).repeat(1, 1, 1, -(-reps_c // 2))
        return grid[..., :rows, :cols].contiguous()
    out = codes
    if rows < height or cols < width:
        out = F.adaptive_avg_pool2d(out, (min(rows, height), min(cols, width)))
    if out.shape[-2:] != (rows, cols):
        out = F.interpolate(out, size=(rows, cols), mode="bilinear", align_corners=True)
    return out
