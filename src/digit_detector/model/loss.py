"""Target assignment and loss for the YOLOv3 family.

Inputs
- raw: list over scales of (B, A, H, W, 5 + C) raw outputs (training-mode `YOLO.forward`).
- targets: (M, 6) [batch index, class, x1, y1, x2, y2], boxes in input pixels.

Assignment (YOLOv5-style, a superset of YOLOv3's single best anchor): at every scale, a target
is matched to each anchor whose width and height ratios to it are within `anchor_ratio`; the
target's centre cell and the two nearest neighbouring cells predict it (more positives, faster
convergence on small data). Ignoring nothing, objectness is trained toward the IoU of the
prediction with its target at positives and toward 0 elsewhere.

Loss = box_gain * (1 - CIoU) over positives + obj_gain * sum_i balance_i * BCE(obj_i)
     + cls_gain * BCE(classes) over positives. Each term is a mean, so the total does not grow
with the batch size. Returns (total, detached per-term tensor [box, obj, cls]).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from .config import ModelConfig

_OBJ_BALANCE_BY_STRIDE = {8: 4.0, 16: 1.0, 32: 0.4}


@dataclass(frozen=True)
class LossWeights:
    box: float = 0.05
    obj: float = 1.0
    cls: float = 0.3
    anchor_ratio: float = 4.0


# Torch twins of boxes.cxcywh_to_xyxy / xyxy_to_cxcywh (the serving side stays torch-free);
# tests/test_boxes.py holds each pair to the same numbers.
def cxcywh_to_corners(b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 4) cx, cy, w, h -> top-left (N, 2), bottom-right (N, 2)."""
    return b[:, :2] - b[:, 2:] / 2, b[:, :2] + b[:, 2:] / 2


def xyxy_to_centre_size(b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 4) x1, y1, x2, y2 -> centre (N, 2), size (N, 2)."""
    return (b[:, :2] + b[:, 2:]) / 2, b[:, 2:] - b[:, :2]


def box_ciou(pred_xywh: torch.Tensor, target_xywh: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Complete IoU of (N, 4) cx, cy, w, h boxes, pairwise by row."""
    p1, p2 = cxcywh_to_corners(pred_xywh)
    t1, t2 = cxcywh_to_corners(target_xywh)
    inter = (torch.min(p2, t2) - torch.max(p1, t1)).clamp(min=0).prod(dim=1)
    pw, ph = pred_xywh[:, 2], pred_xywh[:, 3]
    tw, th = target_xywh[:, 2], target_xywh[:, 3]
    union = pw * ph + tw * th - inter + eps
    iou = inter / union
    enclose = torch.max(p2, t2) - torch.min(p1, t1)
    c2 = (enclose**2).sum(dim=1) + eps
    rho2 = ((pred_xywh[:, :2] - target_xywh[:, :2]) ** 2).sum(dim=1)
    v = (4 / math.pi**2) * (torch.atan(tw / (th + eps)) - torch.atan(pw / (ph + eps))) ** 2
    with torch.no_grad():
        alpha = v / (v - iou + (1 + eps))
    return iou - (rho2 / c2 + v * alpha)


class YOLOLoss(nn.Module):
    def __init__(self, cfg: ModelConfig, weights: LossWeights | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.w = weights or LossWeights()
        self.register_buffer("anchors", torch.tensor(cfg.anchors, dtype=torch.float32))
        self.bce = nn.BCEWithLogitsLoss()
        self.balance = [_OBJ_BALANCE_BY_STRIDE.get(s, 0.4) for s in cfg.strides]

    def forward(self, raw: list[torch.Tensor], targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        device = raw[0].device
        box_loss = torch.zeros((), device=device)
        cls_loss = torch.zeros((), device=device)
        obj_loss = torch.zeros((), device=device)
        anchors_all: torch.Tensor = self.anchors  # type: ignore[assignment]
        for i, p in enumerate(raw):
            stride = self.cfg.strides[i]
            obj_target = torch.zeros(p.shape[:4], device=device, dtype=p.dtype)
            b, a, gj, gi, txy, twh, cls = self._assign(targets, anchors_all[i] / stride, p.shape, stride)
            if len(b):
                ps = p[b, a, gj, gi]
                pxy = ps[:, :2].sigmoid() * 2 - 0.5
                pwh = (ps[:, 2:4].sigmoid() * 2) ** 2 * (anchors_all[i][a] / stride)
                ciou = box_ciou(torch.cat([pxy, pwh], 1), torch.cat([txy, twh], 1))
                box_loss = box_loss + (1.0 - ciou).mean()
                obj_target[b, a, gj, gi] = ciou.detach().clamp(0).to(p.dtype)
                cls_target = torch.zeros_like(ps[:, 5:])
                cls_target[torch.arange(len(cls), device=device), cls] = 1.0
                cls_loss = cls_loss + self.bce(ps[:, 5:], cls_target)
            obj_loss = obj_loss + self.bce(p[..., 4], obj_target) * self.balance[i]
        n = len(raw)
        total = (self.w.box * box_loss + self.w.obj * obj_loss + self.w.cls * cls_loss) * (3 / n)
        return total, torch.stack([box_loss, obj_loss, cls_loss]).detach()

    def _assign(
        self, targets: torch.Tensor, anchors: torch.Tensor, shape: torch.Size, stride: int
    ) -> tuple[torch.Tensor, ...]:
        """Positives at one scale: batch, anchor, cell row, cell col, target xy offset within
        the cell, target wh (grid units), class."""
        h, w = shape[2], shape[3]
        empty = torch.zeros(0, dtype=torch.long, device=targets.device)
        if len(targets) == 0:
            z = torch.zeros((0, 2), device=targets.device)
            return empty, empty, empty, empty, z, z, empty
        gxy, gwh = xyxy_to_centre_size(targets[:, 2:6] / stride)
        gwh = gwh.clamp(min=1e-3)
        ratio = gwh[None] / anchors[:, None]  # (A, M, 2)
        ok = torch.max(ratio, 1 / ratio).max(dim=2).values < self.w.anchor_ratio  # (A, M)
        a_idx, t_idx = ok.nonzero(as_tuple=True)
        gxy_m = gxy[t_idx]
        # Centre cell plus the nearer horizontal and vertical neighbours.
        frac = gxy_m % 1.0
        offsets = [torch.zeros_like(gxy_m)]
        masks = [torch.ones(len(gxy_m), dtype=torch.bool, device=targets.device)]
        left = (frac[:, 0] < 0.5) & (gxy_m[:, 0] > 1)
        up = (frac[:, 1] < 0.5) & (gxy_m[:, 1] > 1)
        right = (frac[:, 0] > 0.5) & (gxy_m[:, 0] < w - 1)
        down = (frac[:, 1] > 0.5) & (gxy_m[:, 1] < h - 1)
        for mask, (dx, dy) in ((left, (-1, 0)), (up, (0, -1)), (right, (1, 0)), (down, (0, 1))):
            masks.append(mask)
            offsets.append(torch.tensor([dx, dy], device=targets.device, dtype=gxy_m.dtype).expand_as(gxy_m))
        all_t = torch.cat([t_idx[m] for m in masks])
        all_a = torch.cat([a_idx[m] for m in masks])
        all_off = torch.cat([o[m] for o, m in zip(offsets, masks, strict=True)])
        all_gxy = gxy[all_t]
        cell = (all_gxy + all_off).long()
        gi = cell[:, 0].clamp(0, w - 1)
        gj = cell[:, 1].clamp(0, h - 1)
        txy = all_gxy - torch.stack([gi, gj], 1).to(all_gxy.dtype)
        return (
            targets[all_t, 0].long(),
            all_a,
            gj,
            gi,
            txy,
            gwh[all_t],
            targets[all_t, 1].long(),
        )
