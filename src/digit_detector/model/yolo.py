"""YOLOv3-family detector: backbone (named stages) -> multi-scale head -> Detect decoding.

Shapes, for batch B, input S x S, A anchors per scale, C classes, scale i with stride s_i:
- `YOLO.forward` in training mode returns a list, per scale, of raw outputs
  (B, A, S/s_i, S/s_i, 5 + C): tx, ty, tw, th, objectness logit, class logits.
- in eval mode (and in the ONNX export) it returns one (B, N, 5 + C) tensor,
  N = sum_i A * (S/s_i)^2: cx, cy, w, h in input pixels, objectness and class probabilities.
Box decoding (YOLOv5-style bounded form): cxy = (2 sigmoid(t_xy) - 0.5 + cell) * s,
wh = (2 sigmoid(t_wh))^2 * anchor, so a box can reach 4x its anchor and no exp() can overflow.
"""

from __future__ import annotations

import torch
from torch import nn

from .blocks import ConvBNAct, Residual
from .config import ConfigError, ModelConfig


class DarknetBackbone(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.stem = ConvBNAct(3, cfg.stem_channels, 3, stride=cfg.stem_stride)
        self.stages = nn.ModuleDict()
        self.out_channels: dict[int, int] = {}
        c_in, stride = cfg.stem_channels, cfg.stem_stride
        for i, (c, n) in enumerate(zip(cfg.stage_channels, cfg.stage_blocks, strict=True)):
            stride *= 2
            self.stages[f"stage{i + 1}_s{stride}"] = nn.Sequential(
                ConvBNAct(c_in, c, 3, stride=2), *[Residual(c) for _ in range(n)]
            )
            self.out_channels[stride] = c
            c_in = c

    def forward(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        x = self.stem(x)
        features: dict[int, torch.Tensor] = {}
        for name, stage in self.stages.items():
            x = stage(x)
            features[int(name.rsplit("_s", 1)[1])] = x
        return features


class TinyBackbone(nn.Module):
    """YOLOv3-tiny: conv + max-pool stages; the last stage pools with stride 1 (stays at /32)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.stem = ConvBNAct(3, cfg.stem_channels, 3)
        self.stages = nn.ModuleDict()
        self.out_channels: dict[int, int] = {}
        c_in, stride = cfg.stem_channels, 1
        last = len(cfg.stage_channels) - 1
        for i, (c, n) in enumerate(zip(cfg.stage_channels, cfg.stage_blocks, strict=True)):
            if i == last and stride >= max(cfg.strides):
                pool: nn.Module = nn.Sequential(nn.ZeroPad2d((0, 1, 0, 1)), nn.MaxPool2d(2, 1))
            else:
                pool = nn.MaxPool2d(2, 2)
                stride *= 2
            extra = [ConvBNAct(c, c, 3) for _ in range(n)]
            self.stages[f"stage{i + 1}_s{stride}"] = nn.Sequential(pool, ConvBNAct(c_in, c, 3), *extra)
            self.out_channels[stride] = c
            c_in = c

    forward = DarknetBackbone.forward


class YOLOHead(nn.Module):
    """YOLOv3's top-down head; returns one feature map per output scale, shallow to deep."""

    def __init__(self, cfg: ModelConfig, feature_channels: dict[int, int]) -> None:
        super().__init__()
        self.strides = list(cfg.strides)
        self.blocks = nn.ModuleList()
        self.outputs = nn.ModuleList()
        self.laterals = nn.ModuleList()
        outputs_per_scale = cfg.num_anchors * (5 + cfg.num_classes)
        deep_to_shallow = list(reversed(range(len(self.strides))))
        lateral_in = 0
        for k, i in enumerate(deep_to_shallow):
            h = cfg.head_channels[i]
            c_in = feature_channels[self.strides[i]] + lateral_in
            layers: list[nn.Module] = []
            for _ in range(cfg.head_repeats):
                layers += [ConvBNAct(c_in, h, 1), ConvBNAct(h, 2 * h, 3)]
                c_in = 2 * h
            layers.append(ConvBNAct(c_in, h, 1))
            self.blocks.append(nn.Sequential(*layers))
            self.outputs.append(nn.Sequential(ConvBNAct(h, 2 * h, 3), nn.Conv2d(2 * h, outputs_per_scale, 1)))
            if k + 1 < len(deep_to_shallow):
                h_next = cfg.head_channels[deep_to_shallow[k + 1]]
                self.laterals.append(
                    nn.Sequential(ConvBNAct(h, h_next, 1), nn.Upsample(scale_factor=2, mode="nearest"))
                )
                lateral_in = h_next

    def forward(self, features: dict[int, torch.Tensor]) -> list[torch.Tensor]:
        outs: list[torch.Tensor] = []
        x: torch.Tensor | None = None
        for k, stride in enumerate(reversed(self.strides)):
            f = features[stride]
            if x is not None:
                f = torch.cat([self.laterals[k - 1](x), f], dim=1)
            x = self.blocks[k](f)
            outs.append(self.outputs[k](x))
        return outs[::-1]


class Detect(nn.Module):
    """Reshapes head outputs per scale and (in eval mode) decodes them to input-pixel boxes."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.num_classes = cfg.num_classes
        self.num_anchors = cfg.num_anchors
        self.strides = list(cfg.strides)
        self.register_buffer("anchors", torch.tensor(cfg.anchors, dtype=torch.float32))  # (L, A, 2)

    def reshape(self, outs: list[torch.Tensor]) -> list[torch.Tensor]:
        shaped = []
        for p in outs:
            b, _, h, w = p.shape
            shaped.append(p.view(b, self.num_anchors, 5 + self.num_classes, h, w).permute(0, 1, 3, 4, 2))
        return shaped

    def decode(self, raw: list[torch.Tensor]) -> torch.Tensor:
        decoded = []
        anchors: torch.Tensor = self.anchors  # type: ignore[assignment]
        for i, p in enumerate(raw):
            b, a, h, w, n = p.shape
            ys = torch.arange(h, dtype=p.dtype, device=p.device)
            xs = torch.arange(w, dtype=p.dtype, device=p.device)
            grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1).view(1, 1, h, w, 2)
            s = p.sigmoid()
            xy = (s[..., :2] * 2 - 0.5 + grid) * self.strides[i]
            wh = (s[..., 2:4] * 2) ** 2 * anchors[i].view(1, a, 1, 1, 2)
            decoded.append(torch.cat([xy, wh, s[..., 4:]], dim=-1).reshape(b, -1, n))
        return torch.cat(decoded, dim=1)


class YOLO(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.config = cfg
        self.backbone = DarknetBackbone(cfg) if cfg.backbone == "darknet" else TinyBackbone(cfg)
        missing = [s for s in cfg.strides if s not in self.backbone.out_channels]
        if missing:
            raise ConfigError(f"{cfg.name}: backbone has no feature map at stride {missing}")
        self.head = YOLOHead(cfg, self.backbone.out_channels)
        self.detect = Detect(cfg)
        self._init_prediction_bias()

    def _init_prediction_bias(self) -> None:
        """Start with low objectness and class probabilities (focal-loss style prior), so the
        first steps are not spent unlearning 0.5 everywhere."""
        for stride, out in zip(reversed(self.config.strides), self.head.outputs, strict=True):
            conv = list(out.children())[-1]
            assert isinstance(conv, nn.Conv2d) and conv.bias is not None
            bias = conv.bias.data.view(self.config.num_anchors, -1)
            bias[:, 4] = float(torch.log(torch.tensor(8 / (self.config.input_size / stride) ** 2)))
            bias[:, 5:] = float(torch.log(torch.tensor(0.6 / (self.config.num_classes - 0.99))))

    def forward_raw(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.detect.reshape(self.head(self.backbone(x)))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor] | torch.Tensor:
        raw = self.forward_raw(x)
        return raw if self.training else self.detect.decode(raw)


def build_model(cfg: ModelConfig) -> YOLO:
    return YOLO(cfg)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
