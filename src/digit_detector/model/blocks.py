"""Building blocks shared by every member of the family."""

from __future__ import annotations

import torch
from torch import nn


class ConvBNAct(nn.Sequential):
    """Conv (no bias) -> BatchNorm -> LeakyReLU(0.1): Darknet's basic layer."""

    def __init__(self, c_in: int, c_out: int, kernel: int = 1, stride: int = 1) -> None:
        super().__init__(
            nn.Conv2d(c_in, c_out, kernel, stride, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(c_out, eps=1e-3, momentum=0.03),
            nn.LeakyReLU(0.1, inplace=True),
        )


class Residual(nn.Module):
    """Darknet residual block: x + 3x3(1x1(x)) with a c/2 bottleneck."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.reduce = ConvBNAct(channels, channels // 2, 1)
        self.expand = ConvBNAct(channels // 2, channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.expand(self.reduce(x))
