"""What every benchmark records beside its numbers: the machine and the command."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from kernelaug.runinfo import machine_info

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict:
    return machine_info()


def command() -> str:
    return "python " + " ".join(sys.argv)


def write_results(name: str, payload: dict, markdown: str) -> Path:
    """Write results/<name>.json and results/<name>.md, each naming the machine and command."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {"command": command(), "machine": machine(), **payload}
    (RESULTS / f"{name}.json").write_text(json.dumps(payload, indent=2) + "\n")
    header = f"Command: `{payload['command']}`\n\nMachine: {json.dumps(payload['machine'])}\n\n"
    (RESULTS / f"{name}.md").write_text(header + markdown + "\n")
    return RESULTS / f"{name}.md"
