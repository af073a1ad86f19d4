"""Models on disk: one safetensors file, its metadata holding the config and training provenance."""

from __future__ import annotations

import hashlib
import copy
import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from . import pretrained
from .base import BlurModel
from .build import build_model
from .config import config_from_dict, config_to_dict

FORMAT = "kernelaug.model"
FORMAT_VERSION = 1


def model_sha256(model: BlurModel) -> str:
    """SHA-256 of the weights (names, dtypes, shapes, bytes): identifies a model independently of metadata."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def save_model(model: BlurModel, path: str | os.PathLike, provenance: dict | None = None) -> Path:
    """Write ``model`` atomically, its config and ``provenance`` in the metadata."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    metadata = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "config": json.dumps(config_to_dict(model.config)),
        "provenance": json.dumps(provenance or {}),
    }
    return write_safetensors(path, tensors, metadata)


def write_safetensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> Path:
    """Write a safetensors file atomically (temporary file, then rename): a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=metadata)
    os.chmod(tmp, 0o644)  # safetensors creates owner-only files; a model is meant to be shared
    os.replace(tmp, path)
    return path


_MAX_DEPTH = 64          # nesting levels allowed in provenance JSON (deeper: a crafted file)
_FLOAT_DTYPES = ("F16", "BF16", "F32", "F64")


def _depth(value) -> int:
    """Nesting depth of a JSON value, iteratively (a deep value must not exhaust the stack)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        if level > _MAX_DEPTH:
            break
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        stack.extend((child, level + 1) for child in children)
    return deepest


def _json_field(path: Path, metadata: dict, name: str, default: str | None = None):
    text = metadata.get(name, default)
    if text is None:
        raise ValueError(f"{path} has damaged model metadata: field {name!r} is missing")
    try:
        value = json.loads(text)
    except RecursionError:
        raise ValueError(f"{path} has damaged model metadata: field {name!r} is nested too deeply") from None
    except ValueError as error:
        raise ValueError(f"{path} has damaged model metadata: field {name!r} is not JSON: {error}") from None
    if _depth(value) > _MAX_DEPTH:
        raise ValueError(f"{path} has damaged model metadata: field {name!r} is nested more than {_MAX_DEPTH} "
                         f"levels deep")
    if not isinstance(value, dict):
        raise ValueError(f"{path} has damaged model metadata: field {name!r} must be a JSON object, got "
                         f"{type(value).__name__}")
    return value


def read_metadata(path: str | os.PathLike) -> tuple[dict, dict]:
    """(config dict, provenance dict) of a model file, without loading the weights; ValueError
    naming the file and the field for anything malformed."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except (SafetensorError, OSError, ValueError) as error:
        raise ValueError(f"{path} is not a readable safetensors file (truncated or not a model?): {error}") from None
    if metadata.get("format") != FORMAT:
        raise ValueError(f"{path} is a safetensors file but not a kernelaug model (metadata format "
                         f"{metadata.get('format')!r}, expected {FORMAT!r})")
    version = metadata.get("format_version", "0")
    if not version.isdigit():
        raise ValueError(f"{path} has damaged model metadata: field 'format_version' must be an integer, "
                         f"got {version!r}")
    if int(version) > FORMAT_VERSION:
        raise ValueError(f"{path} has model format version {version}; this kernelaug reads up to "
                         f"{FORMAT_VERSION}: upgrade kernelaug")
    return _json_field(path, metadata, "config"), _json_field(path, metadata, "provenance", "{}")


def checked_state(handle, path, meta_model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The tensors of an open safetensors ``handle``, once every name, shape and dtype in its header
    matches ``meta_model`` (built on the meta device, so nothing was allocated): a crafted or
    mismatched file is a ValueError naming ``path`` and the tensor before any weight is read."""
    expected = {name: tuple(t.shape) for name, t in meta_model.state_dict().items()}
    names = set(handle.keys())
    missing, unexpected = sorted(set(expected) - names), sorted(names - set(expected))
    if missing or unexpected:
        raise ValueError(f"{path} does not match its own config: missing tensors {missing[:5]}, "
                         f"unexpected tensors {unexpected[:5]}")
    for name, shape in expected.items():
        header = handle.get_slice(name)
        if tuple(header.get_shape()) != shape:
            raise ValueError(f"{path}: tensor {name!r} has shape {tuple(header.get_shape())}, the config implies {shape}")
        if header.get_dtype() not in _FLOAT_DTYPES:
            raise ValueError(f"{path}: tensor {name!r} has dtype {header.get_dtype()}, expected a float type")
    return {name: handle.get_tensor(name) for name in expected}


def load_model(path_or_name: str | os.PathLike, device: str | torch.device = "cpu") -> BlurModel:
    """Rebuild a model from a ``.safetensors`` file or a pretrained name (e.g. ``"synth-small"``).

    The config (types, sizes), the tensor names, shapes and dtypes in the file's header are checked
    before any weight is read or allocated (the architecture is laid out on the meta device);
    any mismatch is a ValueError naming the file. The returned model is in eval mode and carries
    ``.provenance``, ``.source`` and ``.sha256``.
    """
    path = Path(path_or_name)
    if not path.is_file() and not str(path_or_name).endswith(".safetensors"):
        path = pretrained.model_path(str(path_or_name))
    config_dict, provenance = read_metadata(path)
    try:
        config = config_from_dict(config_dict)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{path}: {error}") from None
    with torch.device("meta"):
        model = build_model(config)
    try:
        with safe_open(str(path), framework="pt") as handle:
            state = checked_state(handle, path, model)
    except SafetensorError as error:
        raise ValueError(f"{path} is damaged (truncated?): {error}") from None
    model = model.to_empty(device="cpu")  # no random initialisation: every weight is overwritten
    model.load_state_dict(state)
    model.provenance = provenance
    model.source = str(path)
    model.sha256 = model_sha256(model)
    return model.to(device).eval()


def resolve_model(model: BlurModel | str | os.PathLike, device: str | torch.device | None = "cpu") -> BlurModel:
    """A BlurModel, a ``.safetensors`` path or a pretrained name -> a BlurModel on ``device``.

    The one place where the engine, the adapters and the CLI turn a model argument into a model.
    A model object on another device is copied there (the caller's object is never moved);
    ``device=None`` keeps an object where it is.
    """
    if isinstance(model, BlurModel):
        if device is None:
            return model
        target = torch.device(device)
        current = next(model.parameters()).device
        if current.type == target.type and (target.index is None or current.index == target.index):
            return model
        return copy.deepcopy(model).to(target)
    if isinstance(model, (str, os.PathLike)):
        return load_model(model, device="cpu" if device is None else device)
    raise TypeError(f"model must be a kernelaug BlurModel, a .safetensors path or a pretrained name, "
                    f"got {type(model).__name__}")
