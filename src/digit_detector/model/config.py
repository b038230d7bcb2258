"""Architecture configs: YAML files in models/ read into a dataclass (no code in configs)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..classes import NUM_CLASSES
from ..errors import UserError
from ..preprocess import INPUT_SIZE

MODELS_DIR = Path(__file__).resolve().parents[3] / "models"
BACKBONES = ("darknet", "tiny")


class ConfigError(UserError, ValueError):
    """A model config that cannot describe a model (unknown or missing keys, bad shapes)."""


@dataclass(frozen=True)
class ModelConfig:
    """One member of the family.

    backbone "darknet": a 3x3 stem conv, then per stage a stride-2 3x3 conv and
    `stage_blocks[i]` residual blocks (1x1 c/2 -> 3x3 c), as in Darknet-53.
    backbone "tiny": 3x3 conv + 2x2 max-pool per stage, as in YOLOv3-tiny.
    The head is YOLOv3's: per scale, from the deepest up, `head_repeats` (1x1, 3x3) pairs and a
    1x1 conv, then a 3x3 conv and the 1x1 prediction conv; a 1x1 lateral conv and 2x upsample
    feed the next shallower scale, concatenated with the backbone feature there.
    """

    name: str
    backbone: str
    stem_channels: int
    stage_channels: tuple[int, ...]
    stage_blocks: tuple[int, ...]
    head_channels: tuple[int, ...]  # per output scale, shallow to deep
    head_repeats: int
    strides: tuple[int, ...]  # per output scale, shallow to deep
    anchors: tuple[tuple[tuple[float, float], ...], ...]  # per scale, (w, h) in input pixels
    stem_stride: int = 1  # 2 halves the resolution at the first conv (cheap on CPU)
    num_classes: int = NUM_CLASSES
    input_size: int = INPUT_SIZE
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise ConfigError(f"{self.name}: backbone must be one of {BACKBONES}, got {self.backbone!r}")
        if len(self.stage_channels) != len(self.stage_blocks):
            raise ConfigError(f"{self.name}: stage_channels and stage_blocks differ in length")
        n = len(self.strides)
        if not (len(self.head_channels) == len(self.anchors) == n):
            raise ConfigError(f"{self.name}: strides, head_channels and anchors need one entry per scale")
        if len({len(a) for a in self.anchors}) != 1:
            raise ConfigError(f"{self.name}: every scale needs the same number of anchors")
        if self.input_size % max(self.strides):
            raise ConfigError(f"{self.name}: input_size must be a multiple of the largest stride")

    @property
    def num_anchors(self) -> int:
        return len(self.anchors[0])

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["stage_channels"] = list(self.stage_channels)
        d["stage_blocks"] = list(self.stage_blocks)
        d["head_channels"] = list(self.head_channels)
        d["strides"] = list(self.strides)
        d["anchors"] = [[list(a) for a in scale] for scale in self.anchors]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"unknown model config keys: {sorted(unknown)}")
        required = {
            "name",
            "backbone",
            "stem_channels",
            "stage_channels",
            "stage_blocks",
            "head_channels",
            "head_repeats",
            "strides",
            "anchors",
        }
        missing = required - set(d)
        if missing:
            raise ConfigError(f"model config is missing keys: {sorted(missing)}")
        return cls(
            name=str(d["name"]),
            backbone=str(d["backbone"]),
            stem_channels=int(d["stem_channels"]),
            stage_channels=tuple(int(c) for c in d["stage_channels"]),
            stage_blocks=tuple(int(b) for b in d["stage_blocks"]),
            head_channels=tuple(int(c) for c in d["head_channels"]),
            head_repeats=int(d["head_repeats"]),
            strides=tuple(int(s) for s in d["strides"]),
            anchors=tuple(tuple((float(w), float(h)) for w, h in scale) for scale in d["anchors"]),
            stem_stride=int(d.get("stem_stride", 1)),
            num_classes=int(d.get("num_classes", NUM_CLASSES)),
            input_size=int(d.get("input_size", INPUT_SIZE)),
            description=str(d.get("description", "")),
            extra=dict(d.get("extra") or {}),
        )


def config_path(path_or_name: str | Path) -> Path:
    """The file of a config given by path or by name (models/<name>.yaml)."""
    path = Path(path_or_name)
    if not path.exists() and not path.suffix:
        path = MODELS_DIR / f"{path_or_name}.yaml"
    if not path.exists():
        raise ConfigError(f"model config not found: {path}")
    return path


def load_config(path_or_name: str | Path) -> ModelConfig:
    """Read models/<name>.yaml (or any path) into a ModelConfig."""
    path = config_path(path_or_name)
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return ModelConfig.from_dict(data)


def write_anchors(path: Path, anchors: Sequence[Sequence[Sequence[float]]], comment: str) -> None:
    """Replace the top-level `anchors:` block of the config file at `path` by `anchors`, one
    line per scale under `# comment`; every other line stays as written. The result must load
    as the same config with the new anchors, else the file is left as it was."""
    original = path.read_text()
    lines = original.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("anchors:")), None)
    if start is None:
        raise ConfigError(f"{path}: no top-level 'anchors:' key to replace")
    end = start + 1
    while end < len(lines) and lines[end].startswith(("-", " ")):
        end += 1  # the block: list items and their continuation lines
    block = [f"anchors:  # {comment}"] + [
        "- [" + ", ".join(f"[{w:g}, {h:g}]" for w, h in scale) + "]" for scale in anchors
    ]
    text = "\n".join(lines[:start] + block + lines[end:]) + "\n"
    wanted = ModelConfig.from_dict({**yaml.safe_load(original), "anchors": anchors})
    if ModelConfig.from_dict(yaml.safe_load(text)) != wanted:
        raise ConfigError(f"{path}: rewriting its anchors would change more than the anchors")
    path.write_text(text)
