"""Multi-process training on PyTorch's own engine: `torchrun` sets RANK/WORLD_SIZE/..., and
`train` picks them up. Plain `python -m digit_detector train` runs as a world of one."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls) -> DistContext:
        """Join the process group torchrun describes (gloo on CPU, nccl with CUDA)."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        if not dist.is_initialized():
            dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        return cls(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_WORLD_SIZE", world)))

    def broadcast(self, *values: float) -> list[float]:
        """Rank 0's values (stop?, validate?, schedule progress) for every rank, so all ranks
        use the same learning rate, take the same number of steps and meet at the same barriers."""
        if not self.enabled:
            return [float(v) for v in values]
        t = torch.tensor([float(v) for v in values], dtype=torch.float64)
        dist.broadcast(t, src=0)
        return [float(v) for v in t.tolist()]

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def close(self) -> None:
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()
