"""Two training processes under torchrun on loopback: DDP keeps the ranks identical, and rank
0's checkpoint loads and predicts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from digit_detector import Detector

pytestmark = pytest.mark.slow

WORKER = """
import json, sys
from digit_detector.train import TrainConfig, train
out = sys.argv[1]
config = TrainConfig(model_config="models/yolov3-pico.yaml", out_dir=out, data_dir=sys.argv[2],
                     max_steps=6, batch_size=4, workers=0, val_scenes=4, time_budget=600)
summary = train(config, progress=False)
with open(f"{out}/rank{summary['rank']}.json", "w") as fh:
    json.dump(summary, fh)
"""


def test_two_ranks_stay_identical_and_rank0_checkpoint_works(stroke_dir: Path, tmp_path: Path) -> None:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    out = tmp_path / "run"
    out.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node",
            "2",
            str(script),
            str(out),
            str(stroke_dir),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    assert ranks[0]["steps"] == ranks[1]["steps"] == 6
    assert ranks[0]["images_seen"] == 6 * 4 * 2
    assert ranks[0]["weights_fingerprint"] == ranks[1]["weights_fingerprint"]
    assert (out / "best.pt").exists() and (out / "last.pt").exists()
    detections = Detector(out / "best.pt").predict(np.full((300, 300), 255, np.uint8), conf=0.001)
    assert isinstance(detections, list)
