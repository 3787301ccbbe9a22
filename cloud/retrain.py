"""`skinscan-cloud retrain`: reviewed cases + base data → train → convert → evaluate → gate →
publish.

The foundation's scripts do the work (scripts/train.py, convert.py, evaluate.py), run as
subprocesses so a retrain is exactly what a person running them by hand would get. Both the
candidate and the model it would replace are evaluated by scripts/evaluate.py on the same
fixed validation set — the base data's lesion-disjoint split, which reviewed cases never enter
(cloud.retrain_data) — and the candidate is published only if neither balanced accuracy nor
melanoma sensitivity (flagged urgent) drops by more than `max_drop` (default: not at all).
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from cloud import pictures
from cloud.config import CloudConfig
from cloud.firebase import close, connect
from cloud.release import metrics_for, publish_release
from cloud.retrain_data import build_dataset, fetch_reviewed
from kiosk.errors import SkinscanError
from kiosk.files import atomic_write_json
from kiosk.model.classifier import default_metadata_path

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"
GATED = ("balanced_accuracy", "melanoma_sensitivity_urgent")


class RetrainError(SkinscanError):
    """A training, conversion or evaluation step failed."""


@dataclass(frozen=True)
class RetrainOptions:
    data: Path  # the base training data (skin/, skin_extra/)
    out: Path  # working folder: data/, run/, model/, reports
    baseline: Path | None = None  # metadata JSON of the model to beat (default: shipped)
    signing_key: Path | None = None
    publish: bool = True
    limit_per_class: int = 0  # smoke runs only
    head_epochs: int | None = None
    epochs: int | None = None
    version: str | None = None
    representative: int = 300
    max_drop: float = 0.0
    seed: int = 0


@dataclass(frozen=True)
class Gate:
    publish: bool
    reasons: list[str]


@dataclass(frozen=True)
class RetrainReport:
    version: str
    reviewed_cases: int
    # Of reviewed_cases, how many trained on the compact copy: the full picture was not in
    # Storage yet (cloud.retrain_data).
    reviewed_from_compact: int
    skipped: dict[str, int]
    base_images: int
    candidate: dict[str, float]
    baseline: dict[str, float]
    gate: Gate
    published: bool
    metadata: str

    def summary_line(self) -> str:
        nan = float("nan")
        figures = ", ".join(
            f"{k} {self.baseline.get(k, nan):.3f} → {self.candidate.get(k, nan):.3f}" for k in GATED
        )
        verdict = "published" if self.published else "not published"
        why = "" if self.gate.publish else f" ({'; '.join(self.gate.reasons)})"
        return f"model {self.version}: {figures}; {verdict}{why}"


def gate(candidate: dict[str, float], baseline: dict[str, float], max_drop: float = 0.0) -> Gate:
    reasons = []
    for key in GATED:
        if key not in candidate or key not in baseline:
            reasons.append(f"{key} missing")
        elif candidate[key] < baseline[key] - max_drop:
            reasons.append(f"{key} {candidate[key]:.3f} < {baseline[key]:.3f}")
    return Gate(publish=not reasons, reasons=reasons)


def _run(script: str, *args: str) -> None:
    if not (SCRIPTS / script).is_file():
        raise RetrainError(f"{SCRIPTS / script} not found: retraining needs the repository")
    result = subprocess.run(
        [sys.executable, str(SCRIPTS / script), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "TQDM_DISABLE": "1"},
    )
    if result.returncode != 0:
        raise RetrainError(f"{script} failed:\n{result.stdout[-1500:]}\n{result.stderr[-2500:]}")


def _evaluate(metadata: Path, data: Path, out_dir: Path, o: RetrainOptions, calibrate: bool):
    args = ["--model", str(metadata), "--data", str(data), "--out-dir", str(out_dir)]
    args += ["--seed", str(o.seed), "--limit-per-class", str(o.limit_per_class)]
    _run("evaluate.py", *args, *(["--calibrate"] if calibrate else []))
    return metrics_for(metadata, out_dir / "metrics.json")


def retrain(config: CloudConfig, o: RetrainOptions) -> RetrainReport:
    version = o.version or datetime.now(UTC).strftime("%Y.%m.%d-%H%M")
    baseline = o.baseline or default_metadata_path()
    if o.publish and o.signing_key is None:
        raise RetrainError("publishing needs a signing key (--signing-key or signing_key)")
    fb = connect(config)
    try:
        reviewed, skipped = fetch_reviewed(fb.db, fb.bucket)
        data = o.out / "data"
        base_images = build_dataset(
            o.data, data, reviewed, seed=o.seed, limit_per_class=o.limit_per_class
        )
        train = ["--data", str(data), "--out", str(o.out / "run"), "--seed", str(o.seed)]
        for flag, value in (("--head-epochs", o.head_epochs), ("--epochs", o.epochs)):
            if value is not None:
                train += [flag, str(value)]
        if o.limit_per_class:  # a smoke run: small batches, one cached view
            train += ["--cache-views", "1", "--batch-size", "8"]
        _run("train.py", *train)
        models = o.out / "model"
        _run(
            "convert.py",
            *("--data", str(data), "--weights", str(o.out / "run" / "model.pt")),
            *("--out", str(models), "--version", version),
            *("--representative", str(o.representative), "--seed", str(o.seed)),
        )
        candidate_md = models / "skinscan.json"
        # Calibrated (temperature, thresholds) on the fixed split, as the shipped model was.
        candidate = _evaluate(candidate_md, o.data, o.out / "report", o, calibrate=True)
        base = _evaluate(baseline, o.data, o.out / "baseline_report", o, calibrate=False)
        decision = gate(candidate, base, o.max_drop)
        published = False
        if o.publish and decision.publish:
            publish_release(fb.db, fb.bucket, candidate_md, o.signing_key, metrics=candidate)
            published = True
    finally:
        close(fb)
    report = RetrainReport(
        version=version,
        reviewed_cases=len(reviewed),
        reviewed_from_compact=sum(c.image_part == pictures.PART_COMPACT for c in reviewed),
        skipped=skipped,
        base_images=base_images,
        candidate=candidate,
        baseline=base,
        gate=decision,
        published=published,
        metadata=str(candidate_md),
    )
    atomic_write_json(o.out / "retrain.json", asdict(report))
    return report
