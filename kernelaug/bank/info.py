"""``bank-info``: a bank's size, shapes, model and per-code PSNR distribution, as a dict and as text."""


from __future__ import annotations


import numpy as np

from .reader import KernelBank

__all__ = ["bank_info", "format_bank_info"]


def bank_info(path, bins: int = 10) -> dict:
    """Summary of a bank (complete or not): size, shapes, model, and the per-code PSNR distribution."""
    bank = KernelBank(path, allow_incomplete=True)
    with bank:
        psnr = bank.column("psnr").astype(np.float64)
        attrs = bank.attrs
        config = bank.model_config
        known = psnr[np.isfinite(psnr)]
        stats = None
        if known.size:
            quantiles = np.percentile(known, [5, 25, 50, 75, 95])
            counts, edges = np.histogram(known, bins=bins)
            stats = {"count": int(known.size), "min": float(known.min()), "p5": float(quantiles[0]),
                     "p25": float(quantiles[1]), "median": float(quantiles[2]), "p75": float(quantiles[3]),
                     "p95": float(quantiles[4]), "mean": float(known.mean()), "max": float(known.max()),
                     "histogram": {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]}}
        return {
            "file": str(bank.path), "file_size_bytes": bank.path.stat().st_size, "codes": len(bank),
            "code_shape": list(bank.code_shape), "dtype": str(bank.dtype), "crop_size": bank.crop_size,
            "source_dataset": bank.source_dataset, "model_arch": config.get("arch"), "model_config": config,
            "model_sha256": bank.model_sha256, "complete": bank.complete, "created": attrs.get("created"),
            "virtual": bool(bank._handle()["codes"].is_virtual), "psnr": stats,
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
