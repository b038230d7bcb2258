"""Hard examples: training drawings that given weights get wrong, drawn more often by the next
training run (`digit-detector mine`, then `digit-detector train --hard-examples FILE`).

Which drawings: the training split's doodles labelled "other" (Quick, Draw! and procedural) and
its real obscene doodles, the two sides of the censored/other boundary, and its handwritten
digits. Each is drawn alone on a canvas as `report` draws single doodles (LONE_DRAWING_SCENES)
and run through `Detector.infer`, as served. Its hardness, in [0, 1]: for a doodle, its highest
censored or digit score (what would pixelate it or show a digit); for an obscene doodle or a
digit, 1 minus its highest score of its own class (a "1" read as "7" scores low as "1"). Its
sampling weight within its source: 1 + gain x hardness (`DrawingPool`'s emphasis), so classes
and sources keep their shares and only which of their drawings are drawn changes.

Why: the shipped weights pixelate about as many of the training split's own doodles and miss
about as many of its own obscene doodles as they do held-out ones (docs/MODEL_CARD.md): the
boundary is not yet fitted on the drawings training has.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
from tqdm import tqdm

from .classes import CENSORED_ID, DIGIT_IDS, OTHER_ID
from .data.compose import LONE_DRAWING_SCENES, SceneComposer
from .data.strokes import Drawing
from .errors import UserError
from .inference import Detector
from .postprocess import censored_scores, class_scores

HARD_EXAMPLE_GAIN = 3.0  # the hardest drawing is drawn 1 + 3 = 4 times as often as an easy one
FORMAT = "digit-detector hard examples v1"
MINED_SIDES = {"doodles": {OTHER_ID}, "obscene": {CENSORED_ID}, "digits": set(DIGIT_IDS)}


class HardExamplesError(UserError, ValueError):
    """A hard-examples file is missing, unreadable or not one `mine` wrote."""


@dataclass(frozen=True)
class HardExamples:
    hardness: dict[str, float]  # drawing id -> hardness in [0, 1]
    gain: float
    meta: dict[str, Any]  # weights, seed, counts: what made the file

    def emphasis(self) -> dict[str, float]:
        """Drawing id -> sampling weight (`DrawingPool`)."""
        return {key: 1.0 + self.gain * h for key, h in self.hardness.items()}

    def save(self, path: str | Path) -> None:
        payload = {"format": FORMAT, "gain": self.gain, "meta": self.meta, "hardness": self.hardness}
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(json.dumps(payload, indent=1, sort_keys=True))
        except OSError as exc:
            raise HardExamplesError(f"cannot write hard examples to {path}: {exc}") from exc

    @classmethod
    def load(cls, path: str | Path) -> HardExamples:
        try:
            payload = json.loads(Path(path).read_text())
        except FileNotFoundError as exc:
            raise HardExamplesError(f"hard-examples file not found: {path}") from exc
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise HardExamplesError(f"cannot read hard examples from {path}: {exc}") from exc
        if not isinstance(payload, dict) or payload.get("format") != FORMAT:
            raise HardExamplesError(f"{path} is not a hard-examples file (see `digit-detector mine`)")
        hardness, gain = payload.get("hardness"), payload.get("gain")
        if not isinstance(hardness, dict) or not _is_finite_at_least(gain, 0.0):
            raise HardExamplesError(f"{path}: 'hardness' must be an object and 'gain' a number >= 0")
        bad = [key for key, h in hardness.items() if not (_is_finite_at_least(h, 0.0) and h <= 1.0)]
        if bad:
            raise HardExamplesError(
                f"{path}: hardness outside [0, 1] for {len(bad)} drawings, e.g. {bad[0]!r}"
            )
        meta = payload.get("meta")
        meta = dict(meta) if isinstance(meta, dict) else {}
        return cls({str(k): float(v) for k, v in hardness.items()}, float(cast(float, gain)), meta)


def _is_finite_at_least(value: object, low: float) -> bool:
    """A real number (numpy's too; not a JSON true/false) that is finite and >= low."""
    real = isinstance(value, numbers.Real) and not isinstance(value, bool)
    return real and math.isfinite(cast(float, value)) and cast(float, value) >= low


def is_mined(drawing: Drawing) -> bool:
    """A training drawing on the censored/other boundary (a doodle labelled "other", a real,
    not generated, obscene doodle) or a digit."""
    if drawing.split != "train":
        return False
    doodle = drawing.class_id == OTHER_ID and drawing.category is not None
    digit = drawing.class_id in DIGIT_IDS
    return doodle or digit or (drawing.class_id == CENSORED_ID and not drawing.synthetic)


def hardness(raw: np.ndarray, class_id: int) -> float:
    """How wrong the rows (N, 5 + C) of a canvas holding one drawing of `class_id` are (module
    doc)."""
    if class_id != OTHER_ID:  # obscene doodles and digits: missed unless read as themselves
        own = float(class_scores(raw, class_id).max()) if len(raw) else 0.0
        return 1.0 - own
    if len(raw) == 0:
        return 0.0
    censored = float(censored_scores(raw).max())
    digit = max(float(class_scores(raw, d).max()) for d in DIGIT_IDS)
    return max(censored, digit)


def check_sides(sides: Collection[str]) -> None:
    """Refuse side names that are not `MINED_SIDES` keys, or none at all."""
    unknown = sorted(set(sides) - set(MINED_SIDES))
    if unknown or not sides:
        shown = ", ".join(unknown) if unknown else "none"
        raise HardExamplesError(f"sides are some of {', '.join(MINED_SIDES)}; got {shown}")


def mine_hard_examples(
    detector: Detector,
    drawings: Sequence[Drawing],
    gain: float = HARD_EXAMPLE_GAIN,
    seed: int = 0,
    progress: bool = True,
    sides: Collection[str] | None = None,
) -> HardExamples:
    """Every mined drawing of `drawings` (`is_mined`) of the given `MINED_SIDES` (None: all)
    drawn alone and scored (module doc). Drawings of other sides keep weight 1 in training: a
    run can emphasise, say, missed obscene doodles without also emphasising doodles."""
    if not _is_finite_at_least(gain, 0.0):
        raise ValueError(f"gain must be a number >= 0, got {gain}")
    sides = tuple(MINED_SIDES) if sides is None else sides
    check_sides(sides)
    classes = set().union(*(MINED_SIDES[side] for side in sides))
    mined = [d for d in drawings if is_mined(d) and d.class_id in classes]
    if not mined:
        raise HardExamplesError(f"no training drawings of the sides {', '.join(sides)} among the drawings")
    rng = np.random.default_rng(seed)
    scores: dict[str, float] = {}
    for drawing in tqdm(mined, desc="mine", unit="drawing", disable=not progress):
        scene = SceneComposer.from_drawings([drawing], LONE_DRAWING_SCENES).compose(rng)
        raw = detector.infer(scene.image).raw
        scores[drawing.id] = round(hardness(raw, drawing.class_id), 4)
    summary = _summary(mined, scores, sides)
    meta = {"weights": str(detector.weights), "seed": seed, "sides": list(summary), **summary}
    return HardExamples(scores, float(gain), meta)


def _summary(mined: Sequence[Drawing], scores: dict[str, float], sides: Collection[str]) -> dict[str, Any]:
    """Counts and the share each mined side gets wrong at hardness 0.5 (a rough error rate)."""
    out: dict[str, Any] = {}
    for name, classes in MINED_SIDES.items():
        if name not in sides:
            continue
        values = np.array([scores[d.id] for d in mined if d.class_id in classes])
        out[name] = {
            "drawings": len(values),
            "mean_hardness": round(float(values.mean()), 4) if len(values) else None,
            "hard_share": round(float((values >= 0.5).mean()), 4) if len(values) else None,
        }
    return out
