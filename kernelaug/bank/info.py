"""``bank-info``: a bank's size, shapes, model and per-code PSNR distribution, as a dict and as text."""


from __future__ import annotations


import json
from pathlib import Path

import numpy as np

from .journal import Journal, partial_path
from .reader import KernelBank

__all__ = ["bank_info", "format_bank_info"]


def _psnr_stats(psnr: np.ndarray, bins: int) -> dict | None:
    known = psnr[np.isfinite(psnr)]
    if not known.size:
        return None
    quantiles = np.percentile(known, [5, 25, 50, 75, 95])
    counts, edges = np.histogram(known, bins=bins)
    return {"count": int(known.size), "min": float(known.min()), "p5": float(quantiles[0]),
            "p25": float(quantiles[1]), "median": float(quantiles[2]), "p75": float(quantiles[3]),
            "p95": float(quantiles[4]), "mean": float(known.mean()), "max": float(known.max()),
            "histogram": {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]}}


def bank_info(path, bins: int = 10) -> dict:
    """Summary of a bank (complete or not): size, shapes, model, the per-code PSNR distribution and
    the rows holding NaN/Inf codes. For a bank still being extracted (only ``path.partial`` exists),
    the committed part of its journal."""
    path = Path(path)
    if not path.exists() and partial_path(path).exists():
        return _journal_info(partial_path(path), bins)
    bank = KernelBank(path, allow_incomplete=True)
    with bank:
        psnr = bank.column("psnr").astype(np.float64)
        attrs = bank.attrs
        config = bank.model_config
        bad = bank.nonfinite_rows()
        return {
            "file": str(bank.path), "file_size_bytes": bank.path.stat().st_size, "codes": len(bank),
            "code_shape": list(bank.code_shape), "dtype": str(bank.dtype), "crop_size": bank.crop_size,
            "source_dataset": bank.source_dataset, "model_arch": config.get("arch"), "model_config": config,
            "model_sha256": bank.model_sha256, "complete": bank.complete, "created": attrs.get("created"),
            "virtual": bool(bank._handle()["codes"].is_virtual), "psnr": _psnr_stats(psnr, bins),
            "nonfinite_rows": [int(r) for r in bad],
            "attrs": {k: v for k, v in attrs.items() if k != "model_config"},
        }


def _journal_info(path: Path, bins: int) -> dict:
    journal = Journal.open(path, readonly=True)
    try:
        attrs = {**journal.settings.get("attrs", {}), **journal.attrs, "codes_done": journal.codes_done}
        parts = list(journal.committed_rows())
    finally:
        journal.close()
    psnr = np.concatenate([p["psnr"] for p in parts]).astype(np.float64) if parts else np.zeros(0)
    try:
        config = json.loads(attrs.get("model_config", "{}"))
    except (ValueError, RecursionError):
        config = {}
    return {
        "file": str(path), "file_size_bytes": path.stat().st_size, "codes": journal.codes_done,
        "code_shape": list(attrs.get("code_shape", [])), "dtype": str(attrs.get("dtype")),
        "crop_size": attrs.get("crop_size"), "source_dataset": attrs.get("source_dataset", ""),
        "model_arch": config.get("arch") if isinstance(config, dict) else None, "model_config": config,
        "model_sha256": str(attrs.get("model_sha256", "")), "complete": False, "created": attrs.get("created"),
        "virtual": False, "psnr": _psnr_stats(psnr, bins), "nonfinite_rows": [],
        "attrs": {k: v for k, v in attrs.items() if k != "model_config"},
    }


def _size(num: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if num < 1024 or unit == "GiB":
            return f"{num:.0f} {unit}" if unit == "B" else f"{num:.1f} {unit}"
        num /= 1024
    return f"{num:.1f} GiB"


def format_bank_info(info: dict, width: int = 40) -> str:
    """Human-readable text for :func:`bank_info`'s dict."""
    lines = [
        f"file:          {info['file']} ({_size(info['file_size_bytes'])}"
        f"{', virtual codes' if info['virtual'] else ''})",
        f"complete:      {'yes' if info['complete'] else 'NO (interrupted or running extraction; resume it)'}",
        *([f"NON-FINITE:    {len(info['nonfinite_rows'])} code(s) hold NaN/Inf, rows "
           f"{', '.join(map(str, info['nonfinite_rows'][:10]))}{', ...' if len(info['nonfinite_rows']) > 10 else ''}"
           " (blurring with them gives NaN or black images)"] if info.get("nonfinite_rows") else []),
        f"codes:         {info['codes']} x {tuple(info['code_shape'])} {info['dtype']}"
        + ("" if info["virtual"] or not info["codes"]
           else f" ({_size(info['file_size_bytes'] / info['codes'] * 1000)} per 1000 codes)"),
        f"crop size:     {info['crop_size']} px",
        f"source:        {info['source_dataset'] or '(not recorded)'}",
        f"model:         {info['model_arch']} sha256 {info['model_sha256'][:12]}",
        f"created:       {info['created']}",
    ]
    stats = info["psnr"]
    if stats is None:
        lines.append("psnr:          (not recorded)")
        return "\n".join(lines)
    lines.append(f"reconstruction PSNR (dB) over {stats['count']} codes:")
    lines.append(f"  min {stats['min']:.2f}  p5 {stats['p5']:.2f}  p25 {stats['p25']:.2f}  "
                 f"median {stats['median']:.2f}  p75 {stats['p75']:.2f}  p95 {stats['p95']:.2f}  "
                 f"max {stats['max']:.2f}  mean {stats['mean']:.2f}")
    counts, edges = stats["histogram"]["counts"], stats["histogram"]["edges"]
    top = max(counts) or 1
    for count, low, high in zip(counts, edges[:-1], edges[1:]):
        bar = "#" * round(width * count / top)
        lines.append(f"  {low:7.2f} .. {high:7.2f} | {bar:<{width}} {count}")
    return "\n".join(lines)
