from __future__ import annotations

import numpy as np
import pytest
import torch

from digit_detector.boxes import box_iou
from digit_detector.model import build_model, load_config
from digit_detector.model.config import MODELS_DIR, ConfigError, ModelConfig
from digit_detector.model.grow import grow_model
from digit_detector.model.loss import YOLOLoss
from digit_detector.model.yolo import YOLO, count_parameters
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
        losses.append(loss.item())
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


def _trained_pico() -> YOLO:
    """Pico with every BatchNorm set off its defaults, as after training (so a grown block that
    kept default BatchNorm parameters would visibly change the outputs)."""
    torch.manual_seed(0)
    model = build_model(load_config("yolov3-pico"))
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            torch.nn.init.uniform_(module.weight, 0.5, 1.5)
            torch.nn.init.uniform_(module.bias, -0.2, 0.2)
            assert module.running_mean is not None and module.running_var is not None
            module.running_mean.uniform_(-0.3, 0.3)
            module.running_var.uniform_(0.5, 2.0)
    return model.eval()


def test_growing_adds_blocks_that_start_as_identities_and_then_learn() -> None:
    source = _trained_pico()
    deep_cfg = load_config("yolov3-pico-deep")
    grown = grow_model(source, deep_cfg)  # raises if the outputs differ by > 1e-5
    assert grown.config == deep_cfg and count_parameters(grown) > 1.4 * count_parameters(source)
    x = torch.rand(2, 3, 192, 192)
    with torch.no_grad():
        torch.testing.assert_close(grown(x), source(x), atol=1e-5, rtol=0)
    added = grown.get_parameter("backbone.stages.stage4_s32.3.expand.1.weight")  # an added block's last BN
    assert added.abs().max().item() == 0.0
    trained = {k: v.clone() for k, v in grown.state_dict().items()}
    grown.train()
    optimizer = torch.optim.SGD(grown.parameters(), lr=0.1)
    loss = sum(r[..., 4].sigmoid().sum() for r in grown(x))
    loss.backward()
    optimizer.step()
    assert added.abs().max().item() > 0  # the identity is only a start
    assert not torch.equal(grown.state_dict()["backbone.stem.0.weight"], trained["backbone.stem.0.weight"])


def test_growing_refuses_what_would_lose_the_trained_weights() -> None:
    source = _trained_pico()
    pico = source.config.to_dict()
    changes = ({"stage_channels": [24, 48, 96, 192]}, {"stage_blocks": [1, 2, 1, 1]}, {"head_repeats": 1})
    for change in changes:
        with pytest.raises(ConfigError, match="only more residual blocks"):
            grow_model(source, ModelConfig.from_dict({**pico, **change}))
    assert grow_model(source, source.config).state_dict().keys() == source.state_dict().keys()


def test_a_model_moves_to_another_input_size_with_every_weight() -> None:
    source = _trained_pico()
    resized = grow_model(source, ModelConfig.from_dict({**source.config.to_dict(), "input_size": 256}))
    assert resized.config.input_size == 256
    for name, tensor in source.state_dict().items():
        assert torch.equal(resized.state_dict()[name], tensor), name


def test_refitted_anchors_keep_the_network_and_resize_its_boxes() -> None:
    source = _trained_pico()
    anchors = [[[2 * w, h] for w, h in scale] for scale in source.config.to_dict()["anchors"]]
    refit = grow_model(source, ModelConfig.from_dict({**source.config.to_dict(), "anchors": anchors}))
    assert refit.config.anchors == tuple(tuple((w, h) for w, h in scale) for scale in anchors)
    x = torch.rand(1, 3, 192, 192)
    with torch.no_grad():
        for raw, source_raw in zip(refit.forward_raw(x), source.forward_raw(x), strict=True):
            torch.testing.assert_close(raw, source_raw, atol=1e-5, rtol=0)
        boxes, source_boxes = refit(x), source(x)
    torch.testing.assert_close(boxes[..., 2], 2 * source_boxes[..., 2])  # widths from the new anchors
    torch.testing.assert_close(boxes[..., 3], source_boxes[..., 3])
    two_per_scale = [scale[:2] for scale in anchors]
    with pytest.raises(ConfigError, match="the number of anchors must be equal"):
        grow_model(source, ModelConfig.from_dict({**source.config.to_dict(), "anchors": two_per_scale}))
