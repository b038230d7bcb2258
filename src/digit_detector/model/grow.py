"""Grow a trained model into a deeper member of its family without changing what its network computes.

A config that only adds Darknet residual blocks to the source's stages (same widths and head;
the input size may change too, as a fully convolutional model's weights do not depend on it)
receives every trained tensor; each added block starts as the identity (the BatchNorm scale
after its 3x3 conv is zero, so the block adds 0 to its input, as in "zero-gamma" ResNet
initialisation) and learns from there. The grown model is checked to give the source's raw
outputs. The config may also bring refitted anchors (`digit-detector anchors`): the network
is unchanged, its boxes are then sized from the new anchors, which a fine-tune adapts to.
"""

from __future__ import annotations

import torch
from torch import nn

from .blocks import Residual
from .config import ConfigError, ModelConfig
from .yolo import YOLO, build_model

# Fields a grown config may change; every other field must equal the source's.
_GROWABLE = {"name", "description", "stage_blocks", "extra", "input_size", "anchors"}


def can_grow(source: ModelConfig, target: ModelConfig) -> bool:
    """True when `target` is `source` with the same or more residual blocks per stage (and the
    same number of anchors per scale, as each anchor has its own outputs)."""
    src, tgt = source.to_dict(), target.to_dict()
    same = all(src[k] == tgt[k] for k in src if k not in _GROWABLE)
    same = same and source.num_anchors == target.num_anchors
    return same and all(t >= s for s, t in zip(source.stage_blocks, target.stage_blocks, strict=True))


def grow_model(source: YOLO, target_config: ModelConfig, atol: float = 1e-5) -> YOLO:
    """`target_config` built with `source`'s weights (in `source`'s train/eval mode); the added
    residual blocks start as identities."""
    if not can_grow(source.config, target_config):
        raise ConfigError(
            f"cannot grow {source.config.name} into {target_config.name}: only more residual "
            f"blocks per stage are allowed (blocks {list(source.config.stage_blocks)} -> "
            f"{list(target_config.stage_blocks)}; widths, head and the number of anchors must be "
            "equal, the anchors and the input size may change)"
        )
    target = build_model(target_config)
    trained = {k: v for k, v in source.state_dict().items() if k != "detect.anchors"}
    target.load_state_dict(trained, strict=False)
    added = set(target.state_dict()) - set(source.state_dict())
    for name, module in target.named_modules():
        if isinstance(module, Residual) and any(k.startswith(name + ".") for k in added):
            batchnorm = module.expand[1]
            assert isinstance(batchnorm, nn.BatchNorm2d)
            nn.init.zeros_(batchnorm.weight)
    _check_same_function(source, target, atol)
    return target.train(source.training)


def _check_same_function(source: YOLO, target: YOLO, atol: float) -> None:
    size = source.config.input_size
    x = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    was_training = source.training
    source.eval(), target.eval()
    with torch.inference_mode():
        diff = max(
            float((s - t).abs().max())
            for s, t in zip(source.forward_raw(x), target.forward_raw(x), strict=True)
        )
    source.train(was_training)
    if diff > atol:
        raise ConfigError(f"growing {source.config.name} changed its outputs by {diff:.2e}")
