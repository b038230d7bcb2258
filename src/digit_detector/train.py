"""Training loop: plain PyTorch, on-the-fly scenes, AdamW + warmup + cosine, EMA weights,
gradient clipping, periodic validation (COCO mAP50 on held-out writers), best checkpoint by
val mAP50, resume, metrics in JSON lines, all within a wall-clock budget on CPU."""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import subprocess
import sys
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from .data.dataset import GeneratedScenes, LabelledPool, collate, default_workers, fixed_scenes
from .data.procedural import procedural_others
from .data.strokes import Drawing, load_drawings
from .distributed import DistContext
from .metrics import ImagePrediction, ImageTruth, coco_evaluate
from .model.checkpoint import load_model, make_checkpoint, read_checkpoint, save_checkpoint
from .model.config import ModelConfig, load_config
from .model.loss import YOLOLoss
from .model.yolo import YOLO, build_model
from .postprocess import postprocess_for_map
from .preprocess import INPUT_SCALE


@dataclass
class TrainConfig:
    model_config: str = "models/yolov3-pico.yaml"
    out_dir: str = "runs/train"
    data_dir: str | None = None
    time_budget: float = 45 * 60.0  # seconds of wall time, validation included
    max_steps: int | None = None
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 5e-4  # AdamW (decoupled: multiplied by the learning rate)
    warmup_steps: int = 300
    final_lr_fraction: float = 0.05
    ema_decay: float = 0.999
    grad_clip: float = 10.0
    val_every: float = 240.0  # seconds between validations
    val_scenes: int = 400
    seed: int = 0
    workers: int = field(default_factory=default_workers)
    threads: int = 2
    resume: str | None = None
    init_weights: str | None = None  # fine-tune from a checkpoint (weights only)
    limit_per_file: int | None = None  # for tiny CI runs
    log_every: int = 20
    extra_data: str | None = None  # YOLO-format folder of real labelled canvases (e.g. feedback)
    extra_weight: float = 0.2  # fraction of training samples drawn from extra_data
    bn_calibration_batches: int = 16  # recent training batches that re-estimate BN statistics


class ModelEMA:
    """Exponential moving average of the weights, with a warm-up ramp on the decay."""

    def __init__(self, model: YOLO, decay: float, updates: int = 0) -> None:
        self.ema = copy.deepcopy(model).eval()
        self.decay = decay
        self.updates = updates
        for p in self.ema.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: YOLO) -> None:
        self.updates += 1
        d = self.decay * (1 - math.exp(-self.updates / 500))
        msd = model.state_dict()
        for k, v in self.ema.state_dict().items():
            if v.dtype.is_floating_point:
                v.mul_(d).add_(msd[k].detach(), alpha=1 - d)
            else:
                v.copy_(msd[k])


@torch.no_grad()
def recalibrate_batchnorm(model: YOLO, batches: list[torch.Tensor]) -> None:
    """Recompute BatchNorm running statistics of `model` as the plain average over `batches`
    ("precise BN"). Running averages lag behind weights that still move (high learning rate,
    EMA), which can cost most of the validation mAP mid-training; this removes the lag."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the calibration batches
    model.train()
    for images in batches:
        model.forward_raw(to_input(images))
    for m, momentum in zip(norms, saved, strict=True):
        m.momentum = momentum
    model.eval()


def to_input(images: torch.Tensor) -> torch.Tensor:
    """(B, 1, S, S) uint8 gray batch -> (B, 3, S, S) float model input, as `preprocess` does."""
    x = images.float().mul_(INPUT_SCALE)
    return x.expand(-1, 3, -1, -1).contiguous(memory_format=torch.channels_last)


def lr_at(progress: float, step: int, cfg: TrainConfig) -> float:
    warm = min(1.0, (step + 1) / max(1, cfg.warmup_steps))
    cosine = cfg.final_lr_fraction + (1 - cfg.final_lr_fraction) * 0.5 * (
        1 + math.cos(math.pi * min(1.0, progress))
    )
    return cfg.lr * warm * cosine


@torch.no_grad()
def predict_batch(model: YOLO, images: torch.Tensor) -> list[ImagePrediction]:
    """mAP candidates (COCO convention, the settings `evaluate` uses) for a batch."""
    model.eval()
    out = model(to_input(images))
    assert isinstance(out, torch.Tensor)
    return [ImagePrediction(*postprocess_for_map(row)) for row in out.numpy()]


def validate(
    model: YOLO, val_images: torch.Tensor, truths: list[ImageTruth], batch: int = 64
) -> dict[str, Any]:
    preds: list[ImagePrediction] = []
    for i in range(0, len(val_images), batch):
        preds += predict_batch(model, val_images[i : i + batch])
    result = coco_evaluate(truths, preds)
    return {
        "map50": result.map50,
        "map50_95": result.map50_95,
        "ap50": result.ap50_per_class,
    }


def split_drawings(drawings: list[Drawing]) -> tuple[list[Drawing], list[Drawing]]:
    train = [d for d in drawings if d.split == "train"]
    val = [d for d in drawings if d.split == "val"]
    return train, val


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).parent,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def weights_fingerprint(model: torch.nn.Module) -> str:
    """sha256 over every parameter: equal on all ranks after a DDP run. (BatchNorm running
    statistics are buffers: DDP re-syncs them from rank 0 at each forward, so after the last
    step each rank holds its own, and rank 0's are the ones saved.)"""
    h = hashlib.sha256()
    for name, tensor in sorted(model.named_parameters()):
        h.update(name.encode())
        h.update(tensor.detach().contiguous().cpu().numpy().tobytes())
    return h.hexdigest()


def train(cfg: TrainConfig, progress: bool = True) -> dict[str, Any]:
    """Single process, or one rank of a `torchrun` job (DDP; only rank 0 logs, validates and
    writes checkpoints). `batch_size` is per process: the effective batch is world_size times
    larger; the learning rate is used as given (scale it yourself, see docs/TRAINING.md)."""
    ctx = DistContext.from_env()
    try:
        return _train(cfg, progress, ctx)
    finally:
        ctx.close()


def _train(cfg: TrainConfig, progress: bool, ctx: DistContext) -> dict[str, Any]:
    torch.set_num_threads(max(1, cfg.threads // ctx.local_world_size))
    torch.manual_seed(cfg.seed)
    out_dir = Path(cfg.out_dir)
    if ctx.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    commit = git_commit()  # the code this run started from, recorded in every checkpoint

    resume_ckpt = read_checkpoint(cfg.resume) if cfg.resume else None
    if resume_ckpt is not None:
        model_cfg = ModelConfig.from_dict(resume_ckpt["config"])
    elif cfg.init_weights:
        init_model, _ = load_model(cfg.init_weights)
        model_cfg = init_model.config
    else:
        model_cfg = load_config(cfg.model_config)
    model = build_model(model_cfg)
    if cfg.init_weights and resume_ckpt is None:
        model.load_state_dict(init_model.state_dict())
    cast(Any, model).to(memory_format=torch.channels_last)  # to() returns self; stubs miss the kwarg
    criterion = YOLOLoss(model_cfg)

    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for name, p in model.named_parameters():
        (no_decay if p.ndim <= 1 or name.endswith(".bias") else decay).append(p)
    optimizer = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": cfg.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=cfg.lr,
        betas=(0.9, 0.999),
    )
    ema = ModelEMA(model, cfg.ema_decay)
    step, images_seen, elapsed_before, best_map50 = 0, 0, 0.0, -1.0
    if resume_ckpt is not None:
        r = resume_ckpt["resume"]
        model.load_state_dict(r["model"])
        optimizer.load_state_dict(r["optimizer"])
        ema.ema.load_state_dict(
            {k: v.float() if v.is_floating_point() else v for k, v in resume_ckpt["model"].items()}
        )
        ema.updates = r["ema_updates"]
        step, images_seen, elapsed_before = r["step"], r["images_seen"], r["elapsed"]
        best_map50 = r.get("best_map50", -1.0)
    # DDP averages gradients across ranks in backward(); the optimizer and EMA see `model`.
    forward: torch.nn.Module = DistributedDataParallel(model) if ctx.enabled else model

    t0 = time.time()
    drawings = load_drawings(cfg.data_dir, limit_per_file=cfg.limit_per_file) + procedural_others()
    train_drawings, val_drawings = split_drawings(drawings)
    if not val_drawings:
        val_drawings = train_drawings  # tiny fixtures may hold no held-out writer
    scenes = fixed_scenes(val_drawings, cfg.val_scenes if ctx.is_main else 0, seed=10_000 + cfg.seed)
    val_images = torch.stack([torch.from_numpy(s.image)[None] for s in scenes]) if scenes else None
    truths = [ImageTruth(s.boxes, s.class_ids) for s in scenes]
    extra = LabelledPool(cfg.extra_data) if cfg.extra_data else None
    dataset = GeneratedScenes(
        train_drawings, seed=cfg.seed, rank=ctx.rank, extra=extra, extra_weight=cfg.extra_weight
    )
    dataset.start_step = step
    loader = DataLoader(
        dataset,
        batch_size=cfg.batch_size,
        num_workers=cfg.workers,
        collate_fn=collate,
        persistent_workers=cfg.workers > 0,
        prefetch_factor=4 if cfg.workers > 0 else None,
        worker_init_fn=_worker_init,
    )
    data_summary = {
        "train_drawings": len(train_drawings),
        "val_drawings": len(val_drawings),
        "sources": sorted({d.source for d in drawings}),
        "load_seconds": round(time.time() - t0, 1),
        "extra_images": len(extra) if extra is not None else 0,
    }
    if ctx.is_main:
        print(
            f"data: {data_summary['train_drawings']} training and {data_summary['val_drawings']} "
            f"validation drawings ({data_summary['load_seconds']} s); model {model_cfg.name}: "
            f"{sum(p.numel() for p in model.parameters()):,} parameters; {ctx.world_size} process(es)",
            file=sys.stderr,
        )

    metrics_path = out_dir / "metrics.jsonl"
    budget = cfg.time_budget - elapsed_before
    run_start = time.time()
    last_val = time.time()
    bar = tqdm(
        total=cfg.max_steps,
        desc="train",
        unit="step",
        disable=not (progress and ctx.is_main),
        dynamic_ncols=True,
        initial=step,
    )
    window_t, window_n, running = time.time(), 0, None

    def meta(val: dict[str, Any] | None) -> dict[str, Any]:
        return {
            "step": step,
            "images_seen": images_seen,
            "train_seconds": round(elapsed_before + time.time() - run_start, 1),
            "val": val,
            "train_config": asdict(cfg),
            "data": data_summary,
            "commit": commit,
            "command": " ".join(sys.argv),
            "torch": str(torch.__version__),
            "world_size": ctx.world_size,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }

    def run_validation() -> dict[str, Any] | None:
        """Rank 0 validates and writes checkpoints while the other ranks wait."""
        nonlocal best_map50
        if not ctx.is_main:
            ctx.barrier()
            return None
        assert val_images is not None
        recalibrate_batchnorm(ema.ema, list(calibration))
        val = validate(ema.ema, val_images, truths)
        model.train()
        record = {
            "kind": "val",
            "step": step,
            "images_seen": images_seen,
            "seconds": round(elapsed_before + time.time() - run_start, 1),
            **val,
        }
        with metrics_path.open("a") as fh:
            fh.write(json.dumps(record) + "\n")
        resume = {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "ema_updates": ema.updates,
            "step": step,
            "images_seen": images_seen,
            "elapsed": elapsed_before + time.time() - run_start,
            "best_map50": max(best_map50, val["map50"]),
        }
        save_checkpoint(make_checkpoint(ema.ema, meta(val), half=False, resume=resume), out_dir / "last.pt")
        if val["map50"] > best_map50:
            best_map50 = val["map50"]
            save_checkpoint(make_checkpoint(ema.ema, meta(val), half=True), out_dir / "best.pt")
        tqdm.write(
            f"step {step}: val mAP50 {val['map50']:.4f} mAP50-95 {val['map50_95']:.4f} "
            f"(best {best_map50:.4f})",
            file=sys.stderr,
        )
        ctx.barrier()
        return val

    model.train()
    val: dict[str, Any] | None = None
    calibration: deque[torch.Tensor] = deque(maxlen=cfg.bn_calibration_batches)
    for images, targets in loader:
        calibration.append(images)
        elapsed = time.time() - run_start
        done_by_time = elapsed >= budget
        done_by_steps = cfg.max_steps is not None and step >= cfg.max_steps
        validate_now = time.time() - last_val >= cfg.val_every
        progress_frac = max(
            (elapsed_before + elapsed) / cfg.time_budget,
            step / cfg.max_steps if cfg.max_steps else 0.0,
        )
        stop, validate_flag, progress_frac = ctx.broadcast(
            done_by_time or done_by_steps, validate_now, progress_frac
        )
        if stop:
            break
        if validate_flag:
            val = run_validation()
            last_val = time.time()
        lr = lr_at(progress_frac, step, cfg)
        for group in optimizer.param_groups:
            group["lr"] = lr
        raw = forward(to_input(images))
        assert isinstance(raw, list)
        loss, parts = criterion(raw, targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        ema.update(model)
        step += 1
        images_seen += len(images) * ctx.world_size
        window_n += len(images) * ctx.world_size
        running = parts if running is None else 0.95 * running + 0.05 * parts
        bar.update(1)
        if step % cfg.log_every == 0 and ctx.is_main:
            ips = window_n / max(1e-6, time.time() - window_t)
            window_t, window_n = time.time(), 0
            record = {
                "kind": "train",
                "step": step,
                "images_seen": images_seen,
                "lr": lr,
                "loss": float(loss.detach()),
                "box": float(running[0]),
                "obj": float(running[1]),
                "cls": float(running[2]),
                "images_per_s": round(ips, 1),
                "seconds": round(elapsed_before + time.time() - run_start, 1),
            }
            with metrics_path.open("a") as fh:
                fh.write(json.dumps(record) + "\n")
            bar.set_postfix(loss=f"{float(loss.detach()):.3f}", img_s=f"{ips:.0f}", lr=f"{lr:.1e}")
    bar.close()
    val = run_validation()
    total = elapsed_before + time.time() - run_start
    summary = {
        "steps": step,
        "images_seen": images_seen,
        "train_seconds": round(total, 1),
        "wall_seconds": round(time.time() - started, 1),
        "images_per_s": round(images_seen / max(1e-6, total), 1),
        "final_val": val,
        "best_map50": best_map50,
        "best_checkpoint": str(out_dir / "best.pt"),
        "last_checkpoint": str(out_dir / "last.pt"),
        "metrics": str(metrics_path),
        "world_size": ctx.world_size,
        "rank": ctx.rank,
        "weights_fingerprint": weights_fingerprint(model),
    }
    if not ctx.is_main:
        return summary
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    try:
        from .plots import plot_training_curves

        plot_training_curves(metrics_path, out_dir / "training_curves.png")
    except Exception as exc:  # a plot must never lose a finished run
        print(f"could not plot training curves: {exc}", file=sys.stderr)
    return summary


def _worker_init(worker_id: int) -> None:
    # A data worker is one core's worth of scene generation; OpenCV would otherwise spread its
    # distance transforms over every core and compete with the training threads.
    import cv2

    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
