"""benchmarks/gpu_check.sh cannot rot: its tiny CPU mode runs every measurement it makes on a GPU."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_tiny_on_the_cpu(tmp_path):
    run = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--device", "cpu", "--tiny", "--out",
                          str(tmp_path)], capture_output=True, text=True, env={"PYTHON": sys.executable,
                                                                                 "PATH": "/usr/bin:/bin",
                                                                                 "OMP_NUM_THREADS": "1"})
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads((tmp_path / "gpu_check.json").read_text())
    assert {r["precision"] for r in result["learned_blur_batch"]} == {"fp32", "bf16"}
    assert all(r["images_per_s"] > 0 for r in result["learned_blur_batch"])
    assert [r["blur"].startswith("on the device") for r in result["training"]] == [False, True]
    assert result["quick_preset"]["preset"] == "smoke" and (tmp_path / "augment_nafnet_smoke.md").is_file()
