"""Checkpoints that carry everything needed to use them: config, class names, anchors,
preprocessing settings and training metadata. `load_model(path)` needs nothing else."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch

from ..classes import CLASS_NAMES
from ..errors import UserError
from ..preprocess import INPUT_SCALE, PAD_VALUE
from .config import ModelConfig
from .yolo import YOLO, build_model

FORMAT = "digit-detector/1"


class CheckpointError(UserError, ValueError):
    """The weights file is missing, corrupted or not a digit-detector checkpoint."""


def preprocess_settings(cfg: ModelConfig) -> dict[str, Any]:
    return {
        "input_size": cfg.input_size,
        "layout": "NCHW float32, 3 identical gray channels, letterboxed on white",
        "scale": INPUT_SCALE,
        "pad_value": PAD_VALUE,
    }


def make_checkpoint(
    model: YOLO, meta: dict[str, Any], half: bool = True, resume: dict[str, Any] | None = None
) -> dict[str, Any]:
    """half=True stores floating weights as float16 (half the size; loading casts back)."""
    state = {
        k: (v.detach().half() if half and v.is_floating_point() else v.detach().clone())
        for k, v in model.state_dict().items()
    }
    ckpt: dict[str, Any] = {
        "format": FORMAT,
        "config": model.config.to_dict(),
        "class_names": list(CLASS_NAMES),
        "preprocess": preprocess_settings(model.config),
        "model": state,
        "meta": meta,
    }
    if resume is not None:
        ckpt["resume"] = resume
    return ckpt


def save_checkpoint(ckpt: dict[str, Any], path: str | Path) -> None:
    """Atomic: write a temp file, then rename, so a crash never leaves half a checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(ckpt, tmp)
    tmp.replace(path)


def slim_checkpoint(src: str | Path, dst: str | Path) -> None:
    """The shippable form of a checkpoint (a run's last.pt is float32 with optimizer state for
    --resume, ~11 MB): float16 weights, no resume state; config and metadata kept as they are."""
    ckpt = read_checkpoint(src)
    ckpt.pop("resume", None)
    ckpt["model"] = {k: v.half() if v.is_floating_point() else v for k, v in ckpt["model"].items()}
    save_checkpoint(ckpt, dst)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weights file not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a damaged file
        raise CheckpointError(
            f"cannot read weights file {path}: it is corrupted or not a "
            f"PyTorch checkpoint ({type(exc).__name__}: {exc})"
        ) from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a {FORMAT} checkpoint")
    if list(ckpt.get("class_names", [])) != list(CLASS_NAMES):
        raise CheckpointError(
            f"{path}: class names {ckpt.get('class_names')} differ from {list(CLASS_NAMES)}"
        )
    return ckpt


def load_model(path: str | Path) -> tuple[YOLO, dict[str, Any]]:
    """Model in eval mode (float32) and the checkpoint's contents (without the weights)."""
    ckpt = read_checkpoint(path)
    cfg = ModelConfig.from_dict(ckpt["config"])
    model = build_model(cfg)
    state = {k: v.float() if v.is_floating_point() else v for k, v in ckpt["model"].items()}
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not fit config {cfg.name}: {exc}") from exc
    model.eval()
    info = {k: v for k, v in ckpt.items() if k not in ("model", "resume")}
    return model, info


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
