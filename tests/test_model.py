from __future__ import annotations

import numpy as np
import pytest
import torch

from digit_detector.boxes import box_iou
from digit_detector.model import build_model, load_config
from digit_detector.model.config import MODELS_DIR, ConfigError, ModelConfig
from digit_detector.model.loss import YOLOLoss
from digit_detector.model.yolo import count_parameters
from digit_detector.postprocess import postprocess

CONFIGS = sorted(p.stem for p in MODELS_DIR.glob("*.yaml"))


def test_full_yolov3_has_the_published_size() -> None:
    # Darknet-53 + YOLOv3 head: 61,949,149 parameters for 80 classes; the 3 prediction convs
    # shrink from 255 to 51 outputs for 12 classes: 61,949,149 - 366,180 = 61,582,969.
    model = build_model(load_config("yolov3"))
    assert count_parameters(model) == 61_582_969
    assert [n for n, _ in model.backbone.stages.named_children()] == [
        "stage1_s2",
        "stage2_s4",
        "stage3_s8",
        "stage4_s16",
        "stage5_s32",
    ]


@pytest.mark.parametrize("name", CONFIGS)
def test_every_config_runs_with_the_expected_shapes(name: str) -> None:
    cfg = load_config(name)
    model = build_model(cfg)
    x = torch.rand(1, 3, 192, 192)
    model.train()
    raw = model(x)
    assert isinstance(raw, list)
    assert [tuple(r.shape) for r in raw] == [(1, 3, 192 // s, 192 // s, 17) for s in cfg.strides]
    model.eval()
    with torch.no_grad():
        out = model(x)
    n = sum(3 * (192 // s) ** 2 for s in cfg.strides)
    assert tuple(out.shape) == (1, n, 17)
    assert float(out[..., 4:].min()) >= 0 and float(out[..., 4:].max()) <= 1


def test_config_rejects_bad_input(tmp_path) -> None:  # type: ignore[no-untyped-def]
    base = load_config("yolov3-pico").to_dict()
    with pytest.raises(ValueError, match="unknown"):
        ModelConfig.from_dict({**base, "typo_key": 1})
    with pytest.raises(ValueError, match="backbone"):
        ModelConfig.from_dict({**base, "backbone": "resnet"})
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")


def _fixed_scenes(n: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """Synthetic scenes: dark rectangles ("objects") of given classes on white."""
    rng = np.random.default_rng(0)
    images = torch.ones(n, 3, 192, 192)
    targets = []
    for b in range(n):
        for k in range(2):
            w, h = rng.uniform(25, 60, 2)
            x1 = 10 + k * 95 + rng.uniform(0, 20)
            y1 = rng.uniform(10, 192 - h - 10)
            cls = (b * 2 + k) % 12
            images[b, :, int(y1) : int(y1 + h), int(x1) : int(x1 + w)] = cls / 24  # class as shade
            targets.append([b, cls, int(x1), int(y1), int(x1 + w), int(y1 + h)])
    return images, torch.tensor(targets, dtype=torch.float32)


@pytest.mark.slow
def test_model_overfits_a_handful_of_scenes() -> None:
    torch.manual_seed(0)
    cfg = load_config("yolov3-pico")
    model = build_model(cfg)
    criterion = YOLOLoss(cfg)
    images, targets = _fixed_scenes()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    losses = []
    for _ in range(250):
        loss, _ = criterion(model(images), targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert losses[-1] < 0.1 * losses[0]
    model.eval()
    with torch.no_grad():
        out = model(images).numpy()
    for b in range(len(images)):
        boxes, _, classes = postprocess(out[b], conf=0.3)
        truth = targets[targets[:, 0] == b]
        assert len(boxes) >= len(truth)
        for t in truth:
            ious = box_iou(t[None, 2:].numpy(), boxes)[0]
            best = int(ious.argmax())
            assert ious[best] > 0.6 and classes[best] == int(t[1])
