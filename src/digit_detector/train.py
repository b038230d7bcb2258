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
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, cast

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from .data.compose import SceneConfig
from .data.dataset import GeneratedScenes, LabelledPool, collate, default_workers, fixed_scenes
from .data.procedural import training_drawings
from .data.strokes import Drawing, without_generated_censored
from .distributed import DistContext
from .hard_examples import HardExamples
from .metrics import ImagePrediction, ImageTruth, coco_evaluate
from .model.checkpoint import load_model, make_checkpoint, read_checkpoint, save_checkpoint
from .model.config import ModelConfig, load_config
from .model.grow import grow_model
from .model.loss import YOLOLoss
from .model.yolo import YOLO, build_model
from .postprocess import postprocess_for_map
from .preprocess import INPUT_SCALE

DEFAULT_MODEL_CONFIG = "models/yolov3-pico.yaml"


@dataclass
class TrainConfig:
    model_config: str | None = None  # models/X.yaml; None: yolov3-pico, or init_weights' own
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
    hard_examples: str | None = None  # `digit-detector mine` output: hard drawings drawn more often
    generated_censored: bool = True  # False: censored learnt from real obscene doodles only
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


@dataclass
class TrainState:
    """Where a run stands; saved in every checkpoint's "resume" entry and read back on resume."""

    step: int = 0
    images_seen: int = 0
    elapsed: float = 0.0  # training seconds before this process started
    best_map50: float = -1.0
    ema_updates: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainState:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass
class Run:
    """What one training process works with (built once by `_start`)."""

    cfg: TrainConfig
    ctx: DistContext
    model: YOLO
    forward: torch.nn.Module  # the model, wrapped in DDP when distributed
    ema: ModelEMA
    optimizer: torch.optim.Optimizer
    criterion: YOLOLoss
    loader: DataLoader[Any]
    val_images: torch.Tensor | None
    truths: list[ImageTruth]
    data_summary: dict[str, Any]
    out_dir: Path
    commit: str
    launched: float  # when this process started, before loading data (wall clock)
    started: float = field(default_factory=time.time)  # when training started (after loading)
    calibration: deque[torch.Tensor] = field(default_factory=deque)

    @property
    def metrics_path(self) -> Path:
        return self.out_dir / "metrics.jsonl"

    def seconds(self, state: TrainState) -> float:
        return state.elapsed + time.time() - self.started


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
    run, state = _start(cfg, ctx)
    bar = tqdm(
        total=cfg.max_steps,
        desc="train",
        unit="step",
        disable=not (progress and ctx.is_main),
        dynamic_ncols=True,
        initial=state.step,
    )
    last_val, window = time.time(), (time.time(), 0)
    running: torch.Tensor | None = None
    run.model.train()
    for images, targets in run.loader:
        run.calibration.append(images)
        stop, validate_now, progress_frac = control(run, state, last_val)
        if stop:
            break
        if validate_now:
            validate_and_checkpoint(run, state)
            last_val = time.time()
        lr = lr_at(progress_frac, state.step, cfg)
        loss, parts = train_step(run, images, targets, lr)
        state.step += 1
        state.images_seen += len(images) * ctx.world_size
        state.ema_updates = run.ema.updates
        running = parts if running is None else 0.95 * running + 0.05 * parts
        bar.update(1)
        window = (window[0], window[1] + len(images) * ctx.world_size)
        if state.step % cfg.log_every == 0 and ctx.is_main:
            window = log_train(run, state, lr, loss, running, window, bar)
    bar.close()
    final_val = validate_and_checkpoint(run, state)
    return _finish(run, state, final_val)


def _start(cfg: TrainConfig, ctx: DistContext) -> tuple[Run, TrainState]:
    """Model (fresh, fine-tuned or resumed), optimizer, EMA, data, validation scenes."""
    launched = time.time()
    torch.set_num_threads(max(1, cfg.threads // ctx.local_world_size))
    torch.manual_seed(cfg.seed)
    out_dir = Path(cfg.out_dir)
    if ctx.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
    commit = git_commit()  # the code this run started from, recorded in every checkpoint
    resume = read_checkpoint(cfg.resume) if cfg.resume else None
    model = _initial_model(cfg, resume)
    optimizer = build_optimizer(model, cfg)
    ema = ModelEMA(model, cfg.ema_decay)
    state = TrainState()
    if resume is not None:
        r = resume["resume"]
        model.load_state_dict(r["model"])
        optimizer.load_state_dict(r["optimizer"])
        ema.ema.load_state_dict(
            {k: v.float() if v.is_floating_point() else v for k, v in resume["model"].items()}
        )
        state = TrainState.from_dict(r)
        ema.updates = state.ema_updates
    loader, val_images, truths, summary = _data(cfg, ctx, state.step, model.config.input_size)
    run = Run(
        cfg=cfg,
        ctx=ctx,
        model=model,
        # DDP averages gradients across ranks in backward(); the optimizer and EMA see `model`.
        forward=DistributedDataParallel(model) if ctx.enabled else model,
        ema=ema,
        optimizer=optimizer,
        criterion=YOLOLoss(model.config),
        loader=loader,
        val_images=val_images,
        truths=truths,
        data_summary=summary,
        out_dir=out_dir,
        commit=commit,
        launched=launched,
        calibration=deque(maxlen=cfg.bn_calibration_batches),
    )
    if ctx.is_main:
        print(
            f"data: {summary['train_drawings']} training and {summary['val_drawings']} validation "
            f"drawings ({summary['load_seconds']} s); model {model.config.name}: "
            f"{sum(p.numel() for p in model.parameters()):,} parameters; {ctx.world_size} process(es)",
            file=sys.stderr,
        )
    return run, state


def _initial_model(cfg: TrainConfig, resume: dict[str, Any] | None) -> YOLO:
    if resume is not None:
        model = build_model(ModelConfig.from_dict(resume["config"]))
    elif cfg.init_weights:
        model, _ = load_model(cfg.init_weights)  # fine-tune: weights only
        if cfg.model_config is not None:  # the same architecture, or a deeper one grown from it
            model = grow_model(model, load_config(cfg.model_config))
    else:
        model = build_model(load_config(cfg.model_config or DEFAULT_MODEL_CONFIG))
    cast(Any, model).to(memory_format=torch.channels_last)  # to() returns self; stubs miss the kwarg
    return model


def build_optimizer(model: YOLO, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW; no weight decay on biases and normalisation parameters."""
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for name, p in model.named_parameters():
        (no_decay if p.ndim <= 1 or name.endswith(".bias") else decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.999))


def _data(
    cfg: TrainConfig, ctx: DistContext, start_step: int, input_size: int
) -> tuple[DataLoader[Any], torch.Tensor | None, list[ImageTruth], dict[str, Any]]:
    """Training scenes, validation scenes and their labels, drawn at the model's input size."""
    import cv2

    # OpenCV's thread pool does not survive fork(): started here (the validation scenes resize
    # large canvases), it deadlocks the data workers forked next. One thread in this process.
    cv2.setNumThreads(1)
    t0 = time.time()
    hard = HardExamples.load(cfg.hard_examples) if cfg.hard_examples else None  # a bad file fails first
    drawings = training_drawings(cfg.data_dir, cfg.limit_per_file)
    train_drawings, val_drawings = split_drawings(drawings)
    if not cfg.generated_censored:
        train_drawings = without_generated_censored(train_drawings)
    if not val_drawings:
        val_drawings = train_drawings  # tiny fixtures may hold no held-out writer
    count = cfg.val_scenes if ctx.is_main else 0
    scenes = fixed_scenes(
        val_drawings, count, seed=10_000 + cfg.seed, config=SceneConfig(input_size=input_size)
    )
    val_images = torch.stack([torch.from_numpy(s.image)[None] for s in scenes]) if scenes else None
    truths = [ImageTruth(s.boxes, s.class_ids) for s in scenes]
    extra = LabelledPool(cfg.extra_data, input_size) if cfg.extra_data else None
    dataset = GeneratedScenes(
        train_drawings,
        seed=cfg.seed,
        input_size=input_size,
        rank=ctx.rank,
        extra=extra,
        extra_weight=cfg.extra_weight,
        emphasis=hard.emphasis() if hard else None,
    )
    dataset.start_step = start_step  # a resumed run continues with fresh scenes
    loader: DataLoader[Any] = DataLoader(
        dataset,
        batch_size=cfg.batch_size,
        num_workers=cfg.workers,
        collate_fn=collate,
        persistent_workers=cfg.workers > 0,
        prefetch_factor=4 if cfg.workers > 0 else None,
        worker_init_fn=_worker_init,
    )
    summary = {
        "train_drawings": len(train_drawings),
        "val_drawings": len(val_drawings),
        "sources": sorted({d.source for d in drawings}),
        "load_seconds": round(time.time() - t0, 1),
        "extra_images": len(extra) if extra is not None else 0,
        "hard_examples": dataset.composer.pool.emphasised,  # training drawings the file names
    }
    return loader, val_images, truths, summary


def control(run: Run, state: TrainState, last_val: float) -> tuple[bool, bool, float]:
    """Stop? Validate now? Schedule progress (0..1)? Rank 0 decides and broadcasts, so every
    rank takes the same steps with the same learning rate and meets the same barriers."""
    cfg = run.cfg
    done_by_time = run.seconds(state) >= cfg.time_budget
    done_by_steps = cfg.max_steps is not None and state.step >= cfg.max_steps
    progress = max(run.seconds(state) / cfg.time_budget, state.step / cfg.max_steps if cfg.max_steps else 0.0)
    stop, validate_now, progress = run.ctx.broadcast(
        done_by_time or done_by_steps, time.time() - last_val >= cfg.val_every, progress
    )
    return bool(stop), bool(validate_now), progress


def train_step(
    run: Run, images: torch.Tensor, targets: torch.Tensor, lr: float
) -> tuple[float, torch.Tensor]:
    """One optimizer step (loss, clipped gradients, EMA); returns the loss and its parts."""
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    raw = run.forward(to_input(images))
    assert isinstance(raw, list)
    loss, parts = run.criterion(raw, targets)
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(run.model.parameters(), run.cfg.grad_clip)
    run.optimizer.step()
    run.ema.update(run.model)
    return float(loss.detach()), parts


def log_train(
    run: Run,
    state: TrainState,
    lr: float,
    loss: float,
    running: torch.Tensor,
    window: tuple[float, int],
    bar: tqdm[Any],
) -> tuple[float, int]:
    """A training line in metrics.jsonl and on the bar; returns a fresh throughput window."""
    ips = window[1] / max(1e-6, time.time() - window[0])
    record = {
        "kind": "train",
        "step": state.step,
        "images_seen": state.images_seen,
        "lr": lr,
        "loss": loss,
        "box": float(running[0]),
        "obj": float(running[1]),
        "cls": float(running[2]),
        "images_per_s": round(ips, 1),
        "seconds": round(run.seconds(state), 1),
    }
    with run.metrics_path.open("a") as fh:
        fh.write(json.dumps(record) + "\n")
    bar.set_postfix(loss=f"{loss:.3f}", img_s=f"{ips:.0f}", lr=f"{lr:.1e}")
    return time.time(), 0


def validate_and_checkpoint(run: Run, state: TrainState) -> dict[str, Any] | None:
    """Rank 0: re-estimate BN statistics, validate the EMA weights, write last.pt (resumable)
    and best.pt (when mAP50 improved); the other ranks wait at the barrier."""
    if not run.ctx.is_main:
        run.ctx.barrier()
        return None
    assert run.val_images is not None
    recalibrate_batchnorm(run.ema.ema, list(run.calibration))
    val = validate(run.ema.ema, run.val_images, run.truths)
    run.model.train()
    seconds = run.seconds(state)
    with run.metrics_path.open("a") as fh:
        record = {
            "kind": "val",
            "step": state.step,
            "images_seen": state.images_seen,
            "seconds": round(seconds, 1),
        }
        fh.write(json.dumps({**record, **val}) + "\n")
    improved = val["map50"] > state.best_map50
    state.best_map50 = max(state.best_map50, val["map50"])
    saved = replace(state, elapsed=seconds)
    resume = {"model": run.model.state_dict(), "optimizer": run.optimizer.state_dict(), **saved.to_dict()}
    meta = _meta(run, saved, val)
    save_checkpoint(make_checkpoint(run.ema.ema, meta, half=False, resume=resume), run.out_dir / "last.pt")
    if improved:
        save_checkpoint(make_checkpoint(run.ema.ema, meta, half=True), run.out_dir / "best.pt")
    tqdm.write(
        f"step {state.step}: val mAP50 {val['map50']:.4f} mAP50-95 {val['map50_95']:.4f} "
        f"(best {state.best_map50:.4f})",
        file=sys.stderr,
    )
    run.ctx.barrier()
    return val


def _meta(run: Run, state: TrainState, val: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "step": state.step,
        "images_seen": state.images_seen,
        "train_seconds": round(state.elapsed, 1),
        "val": val,
        "train_config": asdict(run.cfg),
        "data": run.data_summary,
        "commit": run.commit,
        "command": " ".join(sys.argv),
        "torch": str(torch.__version__),
        "world_size": run.ctx.world_size,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _finish(run: Run, state: TrainState, final_val: dict[str, Any] | None) -> dict[str, Any]:
    total = run.seconds(state)
    summary = {
        "steps": state.step,
        "images_seen": state.images_seen,
        "train_seconds": round(total, 1),
        "wall_seconds": round(time.time() - run.launched, 1),
        "images_per_s": round(state.images_seen / max(1e-6, total), 1),
        "final_val": final_val,
        "best_map50": state.best_map50,
        "best_checkpoint": str(run.out_dir / "best.pt"),
        "last_checkpoint": str(run.out_dir / "last.pt"),
        "metrics": str(run.metrics_path),
        "world_size": run.ctx.world_size,
        "rank": run.ctx.rank,
        "weights_fingerprint": weights_fingerprint(run.model),
    }
    if not run.ctx.is_main:
        return summary
    (run.out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    try:
        from .plots import plot_training_curves

        plot_training_curves(run.metrics_path, run.out_dir / "training_curves.png")
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
