"""Evaluation of the kiosk's decisions: accuracy with abstention, urgency, out-of-scope images.

`evaluate_predictions` scores probabilities (already temperature-scaled) under the kiosk's
decision rule (see `calibration`): abstain when top-1 confidence < abstain_below; urgent when
p(melanoma) + p(basal_cell_carcinoma) >= urgent_at, or top-1 is an urgent class and the kiosk
did not abstain. An abstained image counts as a miss for accuracy and recall.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cloud.training.calibration import (
    abstain_mask,
    expected_calibration_error,
    label_indices,
    urgent_indices,
    urgent_mask,
)
from kiosk.model.conditions import OTHER, URGENT_CONDITIONS

ABSTAINED = "abstained"


@dataclass(frozen=True)
class EvaluationReport:
    """Validation (or test) metrics of one model under one pair of thresholds.

    Rates are shares in [0, 1]; None where undefined (no images of that kind).
    per_class[c] = {"sensitivity", "specificity", "support"}: sensitivity = share of class-c
    images predicted c and not abstained; specificity = share of the other images not
    predicted c (an abstention is not a prediction of c).
    confusion[i][j]: images of true class i predicted class j (not abstained); the last column
    counts the abstained images of class i (column names: `confusion_columns`).
    out_of_scope_by_source[s] = {"support", "rate", "abstained", "urgent"} for true-"other"
    images of folder class s (nevus, healthy_skin ...): rate = predicted other or abstained,
    abstained = share abstained, urgent = share flagged urgent (false urgent referrals).
    """

    n: int
    classes: tuple[str, ...]
    accuracy: float
    balanced_accuracy: float
    per_class: dict[str, dict[str, float | int | None]]
    confusion: list[list[int]]
    ece: float
    melanoma_sensitivity_urgent: float | None
    bcc_sensitivity_urgent: float | None
    out_of_scope_rate: float | None
    abstain_rate: float
    abstain_below: float
    urgent_at: float
    urgent_rate_non_urgent: float | None = None  # non-urgent true class, flagged urgent
    out_of_scope_by_source: dict[str, dict[str, float | int | None]] | None = None
    int8_float_agreement: float | None = None  # share of images with the same top-1
    latency_ms_mean: float | None = None
    latency_ms_p95: float | None = None

    @property
    def confusion_columns(self) -> tuple[str, ...]:
        return (*self.classes, ABSTAINED)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists, NaN becomes None)."""
        d = _json_safe(dataclasses.asdict(self))
        d["confusion_columns"] = list(self.confusion_columns)
        return d


def _json_safe(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _json_safe(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_json_safe(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _share(mask: np.ndarray, within: np.ndarray | None = None) -> float | None:
    sel = mask if within is None else mask[within]
    return float(sel.mean()) if sel.size else None


def evaluate_predictions(
    probs: np.ndarray,
    labels: np.ndarray,
    classes: Sequence[str],
    abstain_below: float,
    urgent_at: float,
    source_classes: Sequence[str] | None = None,
) -> EvaluationReport:
    """Score (N, C) probabilities against (N,) labels (indices into `classes`, or names).

    `source_classes`, when given, holds each image's folder class (N entries, e.g. nevus,
    healthy_skin, benign_keratosis, vascular_lesion for images labelled "other"); the report
    then breaks the out-of-scope rate down by folder class.
    """
    classes = tuple(classes)
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != len(classes):
        raise ValueError(f"probs must be (N, {len(classes)}), got {p.shape}")
    y = label_indices(labels, classes)
    if len(y) != p.shape[0]:
        raise ValueError(f"{p.shape[0]} probability rows but {len(y)} labels")
    if len(y) == 0:
        raise ValueError("cannot evaluate zero images")
    n, c = p.shape

    pred = p.argmax(axis=1)
    abstained = abstain_mask(p, abstain_below)
    answered = ~abstained
    hit = (pred == y) & answered

    confusion = np.zeros((c, c + 1), dtype=np.int64)
    np.add.at(confusion, (y[answered], pred[answered]), 1)
    np.add.at(confusion[:, c], y[abstained], 1)

    per_class: dict[str, dict[str, float | int | None]] = {}
    recalls: list[float] = []
    for i, name in enumerate(classes):
        is_i = y == i
        predicted_i = (pred == i) & answered
        sens = _share(hit, is_i)
        if sens is not None:
            recalls.append(sens)
        per_class[name] = {
            "sensitivity": sens,
            "specificity": _share(~predicted_i, ~is_i),
            "support": int(is_i.sum()),
        }

    if urgent_indices(classes):
        urgent = urgent_mask(p, classes, urgent_at, abstain_below)
    else:
        urgent = np.zeros(n, dtype=bool)
    urgent_true = np.isin(y, [classes.index(u) for u in URGENT_CONDITIONS if u in classes])

    def urgent_sens(name: str) -> float | None:
        return _share(urgent, y == classes.index(name)) if name in classes else None

    other = classes.index(OTHER) if OTHER in classes else -1
    is_other = y == other
    out_ok = ((pred == other) & answered) | abstained

    by_source: dict[str, dict[str, float | int | None]] | None = None
    if source_classes is not None:
        src = np.asarray([str(s) for s in source_classes])
        if len(src) != n:
            raise ValueError(f"{len(src)} source classes for {n} images")
        by_source = {}
        for s in sorted(set(src[is_other].tolist())):
            sel = is_other & (src == s)
            by_source[s] = {
                "support": int(sel.sum()),
                "rate": _share(out_ok, sel),
                "abstained": _share(abstained, sel),
                "urgent": _share(urgent, sel),
            }

    return EvaluationReport(
        n=int(n),
        classes=classes,
        accuracy=float(hit.mean()),
        balanced_accuracy=float(np.mean(recalls)),
        per_class=per_class,
        confusion=confusion.tolist(),
        ece=expected_calibration_error(p, y),
        melanoma_sensitivity_urgent=urgent_sens("melanoma"),
        bcc_sensitivity_urgent=urgent_sens("basal_cell_carcinoma"),
        out_of_scope_rate=_share(out_ok, is_other),
        abstain_rate=float(abstained.mean()),
        abstain_below=float(abstain_below),
        urgent_at=float(urgent_at),
        urgent_rate_non_urgent=_share(urgent, ~urgent_true),
        out_of_scope_by_source=by_source,
    )


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def confusion_table_markdown(report: EvaluationReport) -> str:
    """The confusion matrix as a Markdown table: rows true class, columns predicted class plus
    "abstained", then support and recall (sensitivity) per row."""
    cols = report.confusion_columns
    lines = [
        "| true \\ predicted | " + " | ".join(cols) + " | support | recall |",
        "|---|" + "---:|" * (len(cols) + 2),
    ]
    for name, row in zip(report.classes, report.confusion, strict=True):
        sens = report.per_class[name]["sensitivity"]
        cells = " | ".join(str(v) for v in row)
        recall = _pct(sens if isinstance(sens, float) else None)
        lines.append(f"| **{name}** | {cells} | {sum(row)} | {recall} |")
    return "\n".join(lines) + "\n"


def plot_confusion(report: EvaluationReport, path_png: str | Path) -> Path:
    """Save the confusion matrix as a PNG: colour = share of the true class's images (row-
    normalised), text = counts. Uses the Agg canvas directly (no pyplot global state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    counts = np.asarray(report.confusion, dtype=np.float64)
    rows = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
    cols = [c.replace("_", " ") for c in report.confusion_columns]
    names = [c.replace("_", " ") for c in report.classes]

    size = 1.0 + 0.9 * len(cols)
    fig = Figure(figsize=(size + 1.5, size), dpi=120, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    im = ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto")
    for i in range(counts.shape[0]):
        for j in range(counts.shape[1]):
            ax.text(
                j,
                i,
                str(int(counts[i, j])),
                ha="center",
                va="center",
                fontsize=9,
                color="white" if shares[i, j] > 0.5 else "black",
            )
    ax.set_xticks(range(len(cols)), cols, rotation=40, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(
        f"n={report.n}  accuracy {_pct(report.accuracy)}  "
        f"balanced {_pct(report.balanced_accuracy)}  abstained {_pct(report.abstain_rate)}",
        fontsize=9,
    )
    fig.colorbar(im, ax=ax, label="share of the true class")
    out = Path(path_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    return out
