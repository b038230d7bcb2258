"""The YOLOv3 model family (torch): config dataclass, building blocks, backbones, head, loss."""

from .config import ModelConfig, load_config
from .yolo import YOLO, build_model

__all__ = ["YOLO", "ModelConfig", "build_model", "load_config"]
