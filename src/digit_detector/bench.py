"""`digit-detector bench`: latency, cold start, memory and model-size figures, printed.

Serving figures are measured in a child process that imports only the serving path (as the
app does), so its peak RSS is the app-side figure; the full YOLOv3 forward (torch, random
init) is timed in the same run, for the speed-up ratio.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, cast

import numpy as np

from .data.compose import draw_strokes


def demo_canvas(width: int = 400, height: int = 400, seed: int = 0) -> np.ndarray:
    """An RGBA canvas like the app sends: transparent background, a few black strokes."""
    return _ovals_canvas(width, height, [(cx, 200, 35, 70, 14) for cx in (100, 200, 300)], seed, points=40)


def closer_look_canvas(seed: int = 0) -> np.ndarray:
    """A 1100x800 canvas on which `Detector.infer` takes a closer look: one large drawing, and
    small writing far from it that the first look sees a few pixels tall."""
    small = [(cx, 120, 9, 14, 3) for cx in (900, 930, 960)]
    return _ovals_canvas(1100, 800, [(300, 400, 180, 300, 16), *small], seed, points=60)


def _ovals_canvas(
    width: int, height: int, ovals: list[tuple[int, int, int, int, int]], seed: int, points: int
) -> np.ndarray:
    """Transparent RGBA with black ovals (cx, cy, rx, ry, stroke width), each a little narrower
    at random."""
    rng = np.random.default_rng(seed)
    gray = np.full((height, width), 255, dtype=np.uint8)
    t = np.linspace(0, 2 * np.pi, points)
    for cx, cy, rx, ry, stroke in ovals:
        pts = np.stack([cx + rx * np.sin(t) * rng.uniform(0.6, 1), cy + ry * np.cos(t)], 1)
        draw_strokes(gray, [pts.astype(np.float32)], stroke)
    rgba = np.zeros((height, width, 4), dtype=np.uint8)
    rgba[..., 3] = 255 - gray  # black ink, alpha = coverage, as the browser canvas does
    return rgba


_CHILD = r"""
import json, resource, sys, threading, time
t_import = time.perf_counter()
def peak_rss_mb():
    # VmHWM belongs to this program's memory map; ru_maxrss would inherit the high-water mark
    # of the process that forked us (a parent that imported torch: ~500 MB).
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
from digit_detector import Detector
from digit_detector.analysis import analyse
from digit_detector.bench import demo_canvas, closer_look_canvas
from digit_detector.feedback.review import missed_object_proposals
import numpy as np
canvas = demo_canvas()
detector = Detector(sys.argv[1] if sys.argv[1] != "-" else None)
detector.predict(canvas)
t_first = time.perf_counter()
runs = int(sys.argv[2])
lat = []
for _ in range(runs):
    t = time.perf_counter(); detector.predict(canvas); lat.append(time.perf_counter() - t)
two_visitors = []  # two app sessions predicting at once, as a shared Space serves them
def visitor():
    for _ in range(runs // 4):
        t = time.perf_counter(); detector.predict(canvas); two_visitors.append(time.perf_counter() - t)
visitors = [threading.Thread(target=visitor) for _ in range(2)]
for v in visitors: v.start()
for v in visitors: v.join()
wide = closer_look_canvas()
closer_looks = []
for _ in range(runs // 2):
    t = time.perf_counter(); detector.predict(wide); closer_looks.append(time.perf_counter() - t)
inter = []
for _ in range(runs // 4):
    t = time.perf_counter()
    a = analyse(canvas, detector, display_width=400)
    missed_object_proposals(canvas, a.detections)  # the app's feedback box computes these too
    inter.append(time.perf_counter() - t)
print(json.dumps({
    "import_to_first_prediction_s": t_first - t_import,
    "predict_ms": [x * 1000 for x in lat],
    "two_visitors_ms": [x * 1000 for x in two_visitors],
    "closer_looks_ms": [x * 1000 for x in closer_looks],
    "interaction_ms": [x * 1000 for x in inter],
    "peak_rss_mb": peak_rss_mb(),
    "torch_imported": "torch" in sys.modules,
    "matplotlib_imported": "matplotlib" in sys.modules,
    "detections": len(detector.predict(canvas)),
}))
"""


def _percentiles(values: list[float]) -> dict[str, float]:
    return {"p50": float(np.percentile(values, 50)), "p95": float(np.percentile(values, 95))}


def _run_child(weights: str | None, runs: int) -> tuple[dict[str, Any], float]:
    """One fresh serving process; returns its report and its wall time (start to exit)."""
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, weights or "-", str(runs)], capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"serving benchmark failed:\n{proc.stderr.strip()}")
    return json.loads(proc.stdout.strip().splitlines()[-1]), wall


def bench_serving(weights: str | None, runs: int = 200) -> dict[str, Any]:
    child, wall = _run_child(weights, runs)
    # Cold start: a separate process that stops after its first prediction; timed from spawn to
    # exit, so it is an upper bound of "process start -> first prediction".
    _, cold_s = _run_child(weights, 0)
    from .inference import DEFAULT_READER, default_weights

    path = Path(weights) if weights else default_weights()
    reader = DEFAULT_READER  # the child's Detector reads digits with the bundled reader
    return {
        "predict_ms": _percentiles(child["predict_ms"]),
        "two_visitors_ms": _percentiles(child["two_visitors_ms"]),
        "closer_looks_ms": _percentiles(child["closer_looks_ms"]),
        "interaction_ms": _percentiles(child["interaction_ms"]),
        "cold_start_s": cold_s,
        "peak_rss_mb": child["peak_rss_mb"],
        "torch_imported": child["torch_imported"],
        "matplotlib_imported": child["matplotlib_imported"],
        "weights": str(path),
        "weights_mb": path.stat().st_size / 1e6,
        "reader": str(reader),
        "reader_mb": reader.stat().st_size / 1e6,
        "benchmark_wall_s": wall,
    }


def model_flops(model: Any, size: int) -> float:
    """GFLOPs (2 x multiply-adds of the convolutions) of one forward at size x size."""
    import torch

    total = [0]

    def hook(module: torch.nn.Module, _inp: Any, out: torch.Tensor) -> None:
        assert isinstance(module, torch.nn.Conv2d)
        k = module.kernel_size[0] * module.kernel_size[1] * module.in_channels // module.groups
        total[0] += 2 * out.numel() * k

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.inference_mode():
        model.eval()(torch.zeros(1, 3, size, size))
    for h in handles:
        h.remove()
    return total[0] / 1e9


def bench_family(
    config_names: list[str], runs: int = 20, train_batch: int = 32, train: bool = True
) -> list[dict[str, Any]]:
    """Parameters, GFLOPs at 192, torch forward latency (batch 1) and training images/s."""
    import torch

    from .model import build_model, load_config
    from .model.loss import YOLOLoss
    from .model.yolo import count_parameters

    torch.set_num_threads(2)
    rows = []
    for name in config_names:
        cfg = load_config(name)
        model = build_model(cfg)
        cast(Any, model).to(memory_format=torch.channels_last)  # to() returns self; stubs miss the kwarg
        size = cfg.input_size
        x = torch.zeros(1, 3, size, size).contiguous(memory_format=torch.channels_last)
        model.eval()
        lat = []
        with torch.inference_mode():
            for i in range(runs + 3):
                t = time.perf_counter()
                model(x)
                if i >= 3:
                    lat.append((time.perf_counter() - t) * 1000)
        row = {
            "config": cfg.name,
            "parameters": count_parameters(model),
            "gflops_192": model_flops(model, size),
            "forward_ms_p50": float(np.percentile(lat, 50)),
        }
        rows.append(row)
        if not train:
            continue
        model.train()
        loss_fn = YOLOLoss(cfg)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        xb = torch.rand(train_batch, 3, size, size).contiguous(memory_format=torch.channels_last)
        targets = torch.tensor([[b, b % 12, 40.0, 40.0, 100.0, 130.0] for b in range(train_batch)])
        steps = 3 if count_parameters(model) < 20e6 else 1
        for i in range(steps + 1):
            if i == 1:
                t0 = time.perf_counter()
            raw = model(xb)
            loss, _ = loss_fn(raw, targets)
            opt.zero_grad()
            loss.backward()
            opt.step()
        row["train_images_per_s"] = steps * train_batch / (time.perf_counter() - t0)
    return rows


def cpu_name() -> str:
    """The processor's model name (Linux /proc/cpuinfo), for figures quoted elsewhere."""
    import platform

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def repeated_serving(weights: str | None, runs: int, repeat: int) -> dict[str, Any]:
    """`repeat` rounds of the serving benchmark, each with a YOLOv3 forward timed in the same
    round (ratios are taken within a round); per figure the median and the range of the rounds.
    Timing on a shared machine varies ~2x between runs: quote the median with its range."""
    rounds = []
    for _ in range(repeat):
        serving = bench_serving(weights, runs)
        full_ms = yolov3_forward_ms()
        rounds.append(
            {
                "predict_p50_ms": serving["predict_ms"]["p50"],
                "predict_p95_ms": serving["predict_ms"]["p95"],
                "two_visitors_p50_ms": serving["two_visitors_ms"]["p50"],
                "closer_looks_p50_ms": serving["closer_looks_ms"]["p50"],
                "interaction_p50_ms": serving["interaction_ms"]["p50"],
                "cold_start_s": serving["cold_start_s"],
                "peak_rss_mb": serving["peak_rss_mb"],
                "yolov3_forward_ms": full_ms,
                "speedup_vs_yolov3_forward": full_ms / serving["predict_ms"]["p50"],
            }
        )
    summary = {
        key: {
            "median": float(np.median([r[key] for r in rounds])),
            "min": float(min(r[key] for r in rounds)),
            "max": float(max(r[key] for r in rounds)),
        }
        for key in rounds[0]
    }
    return {"cpu": cpu_name(), "rounds": rounds, "summary": summary, "last": serving}


def yolov3_forward_ms(runs: int = 10) -> float:
    return float(bench_family(["yolov3"], runs=runs, train=False)[0]["forward_ms_p50"])


def bench_training_processes(
    procs: list[int],
    steps: int = 40,
    batch_size: int = 32,
    data_dir: str | None = None,
    config: str = "models/yolov3-pico.yaml",
) -> list[dict[str, Any]]:
    """Training images/s with N processes (torchrun, DDP, gloo) on this machine, same config;
    batch_size is per process, so N processes see N times the images per step."""
    import tempfile

    rows = []
    for n in procs:
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--standalone",
                "--nproc-per-node",
                str(n),
                "-m",
                "digit_detector",
                "train",
                "--config",
                config,
                "--out",
                tmp,
                "--quiet",
                "--max-steps",
                str(steps),
                "--batch-size",
                str(batch_size),
                "--val-scenes",
                "8",
                "--time-budget",
                "1h",
            ]
            if data_dir:
                cmd += ["--data-dir", data_dir]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                raise RuntimeError(f"training with {n} process(es) failed:\n{proc.stderr[-2000:]}")
            summary = json.loads((Path(tmp) / "summary.json").read_text())
        rows.append(
            {
                "processes": n,
                "steps": summary["steps"],
                "images": summary["images_seen"],
                "train_seconds": summary["train_seconds"],
                "images_per_s": summary["images_per_s"],
            }
        )
    return rows
