#!/usr/bin/env python3
"""Evaluate the shipped TFLite models on the lesion-disjoint validation split.

    python scripts/evaluate.py --model models/skinscan.json --data ../shared/data --calibrate

Runs the int8 and the float model exactly as the kiosk does (load, centre square, area resize,
LiteRT at 2 threads) on every validation image plus unseen non-skin pictures. With --calibrate
it first fits the temperature and chooses the abstain and urgent-referral thresholds on that
split and writes them into the metadata JSON. Reports accuracy, balanced accuracy, per-class
sensitivity and specificity, the confusion matrix, ECE before and after calibration, melanoma
sensitivity at the triage threshold, out-of-scope and abstain rates, int8 vs float agreement
and invoke latency, and a two-fold cross-fitted estimate (thresholds fitted on one half of the
split, measured on the other) that is not flattered by fitting and scoring on the same images.
Writes MODEL_CARD.md, metrics.json and confusion_int8.png to --out-dir.

Model v2 additions (metrics.json "v2", and their sections of the card): the urgent and soon
thresholds chosen from the ROC of p(melanoma) + p(BCC) against benign lesions to a stated policy
(--melanoma-sensitivity, --bcc-sensitivity, --soon-sensitivity), the ROC (referral_roc.png, with
published anchors), an operating-point table, bootstrap 95% intervals per class, per-source
results, float-vs-int8 per-class recall, and, with --baseline DIR (an evaluation of the previous
model on the same split, made with --save-scores), the previous model's numbers beside the new.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

TARGETS = {
    "accuracy": 0.93,
    "balanced_accuracy": 0.88,
    "melanoma_sensitivity_urgent": 0.90,
    "ece": 0.05,
    "out_of_scope_rate": 0.95,
    "int8_float_agreement": 0.98,
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from scripts_common import add_data_arguments

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    add_data_arguments(ap)
    ap.add_argument(
        "--model",
        type=Path,
        default=None,
        help="metadata JSON or a .tflite beside it (default: models/skinscan.json)",
    )
    ap.add_argument(
        "--out-dir",
        type=Path,
        default=None,
        help="where MODEL_CARD.md, metrics.json, confusion_int8.png go "
        "(default: the model's folder)",
    )
    ap.add_argument(
        "--calibrate",
        action="store_true",
        help="fit temperature and thresholds on the split; write them to the metadata",
    )
    ap.add_argument(
        "--target-sensitivity",
        type=float,
        default=0.95,
        help="melanoma share to flag urgent on the split when calibrating",
    )
    ap.add_argument("--max-abstain-rate", type=float, default=0.10)
    ap.add_argument("--melanoma-sensitivity", type=float, default=0.95)
    ap.add_argument("--bcc-sensitivity", type=float, default=0.92)
    ap.add_argument(
        "--soon-sensitivity",
        type=float,
        default=0.99,
        help="share of melanomas at soon-or-urgent (the middle tier's threshold)",
    )
    ap.add_argument("--bcc-soon-sensitivity", type=float, default=0.95)
    ap.add_argument(
        "--baseline",
        type=Path,
        default=None,
        help="folder of a previous model's evaluation (metrics.json, val_scores.npz)",
    )
    ap.add_argument(
        "--notes",
        type=Path,
        default=None,
        help="a markdown file appended to the model card (findings of the training run)",
    )
    ap.add_argument(
        "--save-scores",
        action="store_true",
        help="also write val_scores.npz (int8 probabilities, kinds, sources) to --out-dir",
    )
    ap.add_argument("--threads", type=int, default=2)
    return ap.parse_args(argv)


def run_model(classifier, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Raw logits and invoke milliseconds per image, one invoke each, as the kiosk runs it."""
    logits, times = [], []
    for img in images:
        pred = classifier.predict(img)
        logits.append(np.asarray(pred.logits, dtype=np.float64))
        times.append(pred.invoke_ms)
    return np.stack(logits), np.asarray(times)


def fit_decision_parameters(logits, labels, target_sensitivity, max_abstain_rate) -> dict:
    from cloud.training.calibration import (
        choose_abstain_threshold,
        choose_urgent_threshold,
        fit_temperature,
        softmax,
    )
    from kiosk.model.conditions import CONDITIONS

    temperature = fit_temperature(logits, labels)
    probs = softmax(logits, temperature)
    return {
        "temperature": temperature,
        "urgent_at": choose_urgent_threshold(probs, labels, CONDITIONS, target_sensitivity),
        "abstain_below": choose_abstain_threshold(probs, labels, max_abstain_rate),
    }


def cross_fitted(logits, labels, groups, sources, target_sensitivity, max_abstain_rate) -> dict:
    """Fit on one half of the lesions, score on the other, both ways; the mean of the two."""
    from cloud.training.calibration import softmax
    from cloud.training.metrics import evaluate_predictions
    from kiosk.model.conditions import CONDITIONS

    fold = np.array([int(hashlib.sha256(g.encode()).hexdigest(), 16) % 2 for g in groups])
    keys = (
        "accuracy",
        "balanced_accuracy",
        "melanoma_sensitivity_urgent",
        "ece",
        "out_of_scope_rate",
        "abstain_rate",
    )
    rows = []
    for f in (0, 1):
        fit, score = fold != f, fold == f
        try:
            params = fit_decision_parameters(
                logits[fit], labels[fit], target_sensitivity, max_abstain_rate
            )
        except ValueError as e:  # a half without melanoma (tiny subsets): nothing to report
            print(f"cross-fit skipped: {e}")
            return {}
        report = evaluate_predictions(
            softmax(logits[score], params["temperature"]),
            labels[score],
            CONDITIONS,
            params["abstain_below"],
            params["urgent_at"],
            [sources[i] for i in np.where(score)[0]],
        ).to_dict()
        rows.append({k: report[k] for k in keys})
    return {k: float(np.mean([r[k] for r in rows if r[k] is not None])) for k in keys}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from scripts_common import limit_per_class

    from cloud.training.calibration import expected_calibration_error, softmax
    from cloud.training.dataset import (
        labels_array,
        load_images,
        load_records,
        source_family,
        split_by_lesion,
    )
    from cloud.training.evaluation_v2 import (
        class_intervals,
        float_vs_int8,
        markdown_sections,
        old_vs_new_markdown,
        per_source,
        recipe_markdown,
        referral_report,
        roc_curve,
    )
    from cloud.training.metrics import (
        confusion_table_markdown,
        evaluate_predictions,
        plot_confusion,
    )
    from cloud.training.model_card import render_model_card
    from cloud.training.negatives import non_skin_images
    from cloud.training.referral import ReferralPolicy, cancer_score, choose_rule, plot_roc
    from kiosk.files import atomic_write_bytes, atomic_write_json
    from kiosk.model.classifier import Classifier, default_metadata_path, resolve_model
    from kiosk.model.conditions import CONDITIONS, OTHER

    metadata, _ = resolve_model(args.model or default_metadata_path())
    out_dir = args.out_dir or metadata.path.parent
    out_dir.mkdir(parents=True, exist_ok=True)

    records = limit_per_class(load_records(args.data), args.limit_per_class)
    _, val = split_by_lesion(records, args.val_fraction, args.seed)
    images = load_images(val, side=224)
    labels = labels_array(val)
    sources = [r.source_class for r in val]
    families = [source_family(r.source) for r in val]
    groups = [r.group for r in val]
    negatives = non_skin_images("val", 224, 30 if args.limit_per_class <= 0 else 2, args.seed)
    images = np.concatenate([images, negatives])
    labels = np.concatenate([labels, np.full(len(negatives), CONDITIONS.index(OTHER))])
    sources += ["non_skin"] * len(negatives)
    families += ["non_skin"] * len(negatives)
    groups += [f"non_skin:{i}" for i in range(len(negatives))]
    print(f"{len(images)} validation images ({len(negatives)} non-skin)", flush=True)

    int8 = Classifier(metadata, "int8", num_threads=args.threads)
    flt = Classifier(metadata, "float", num_threads=args.threads)
    logits_int8, ms_int8 = run_model(int8, images)
    logits_float, ms_float = run_model(flt, images)

    policy = ReferralPolicy(
        args.melanoma_sensitivity,
        args.bcc_sensitivity,
        args.soon_sensitivity,
        args.bcc_soon_sensitivity,
    )
    if args.calibrate:
        params = fit_decision_parameters(
            logits_int8, labels, args.target_sensitivity, args.max_abstain_rate
        )
        raw = json.loads(metadata.path.read_text())
        raw["calibration"] = {
            "temperature": round(params["temperature"], 4),
            "fitted_on": f"int8 logits of the validation split ({len(images)} images)",
        }
        if "other_outputs" in raw:
            # v2: both referral tiers from the ROC against benign lesions, to the policy.
            # Rounded down so that rounding never lifts a threshold above a flagged cancer.
            rule = choose_rule(
                cancer_score(softmax(logits_int8, params["temperature"])), sources, policy
            )
            raw["thresholds"] = {
                "abstain_below": round(params["abstain_below"], 4),
                "urgent_at": math.floor(rule.urgent_at * 1e4) / 1e4,
                "soon_at": math.floor(rule.soon_at * 1e4) / 1e4,
                "chosen_for": f"{policy.describe()}; abstain rate <= {args.max_abstain_rate:.0%}",
            }
        else:
            raw["thresholds"] = {
                "abstain_below": round(params["abstain_below"], 4),
                "urgent_at": round(params["urgent_at"], 4),
                "chosen_for": f"melanoma flagged urgent >= {args.target_sensitivity:.0%} on the "
                f"split; abstain rate <= {args.max_abstain_rate:.0%}",
            }
        atomic_write_json(metadata.path, raw)
        metadata, _ = resolve_model(metadata.path)
        print(f"calibrated: {params}")

    t = metadata.calibration.temperature
    th = metadata.thresholds
    probs_int8, probs_float = softmax(logits_int8, t), softmax(logits_float, t)
    agreement = float((logits_int8.argmax(1) == logits_float.argmax(1)).mean())
    report_int8 = evaluate_predictions(
        probs_int8, labels, CONDITIONS, th.abstain_below, th.urgent_at, sources
    )
    report_int8 = replace(
        report_int8, int8_float_agreement=agreement, latency_ms_mean=float(ms_int8.mean())
    )
    report_float = evaluate_predictions(
        probs_float, labels, CONDITIONS, th.abstain_below, th.urgent_at, sources
    )
    report_float = replace(report_float, latency_ms_mean=float(ms_float.mean()))
    ece_before = expected_calibration_error(softmax(logits_int8, 1.0), labels)
    crossfit = cross_fitted(
        logits_int8, labels, groups, sources, args.target_sensitivity, args.max_abstain_rate
    )
    latency = {
        "threads": args.threads,
        "int8_median_ms": float(np.median(ms_int8)),
        "float_median_ms": float(np.median(ms_float)),
        "float_over_int8": float(np.median(ms_float) / np.median(ms_int8)),
        "runtime": int8.runtime,
    }
    six = labels != CONDITIONS.index(OTHER)
    pred_ok = (probs_int8.argmax(1) == labels) & (probs_int8.max(1) >= th.abstain_below)
    metrics = {
        "model_version": metadata.version,
        "split": f"validation (lesion-disjoint, seed {args.seed})",
        "int8": report_int8.to_dict(),
        "float": report_float.to_dict(),
        "ece_before_calibration": ece_before,
        "accuracy_six_conditions_only": float(pred_ok[six].mean()) if six.any() else None,
        "cross_fitted": crossfit,
        "latency": latency,
        "targets": TARGETS,
    }
    kinds = sources  # the folder class of each picture (nevus, melanoma, non_skin …)
    label_idx = np.asarray(labels)
    v2 = {
        "policy": json.loads(metadata.path.read_text()).get("thresholds", {}).get("chosen_for"),
        "referral": referral_report(
            probs_int8,
            kinds,
            families,
            th.abstain_below,
            {"urgent_at": th.urgent_at, "soon_at": th.soon_at},
        ),
        "class_intervals": class_intervals(probs_int8, label_idx, th.abstain_below),
        "per_source": per_source(
            probs_int8, label_idx, kinds, families, th.abstain_below, th.urgent_at
        ),
        "float_vs_int8": float_vs_int8(probs_int8, probs_float, label_idx),
        "leave_one_source_out": metadata.training.get("leave_one_source_out"),
        "knn_ood": metadata.training.get("knn_ood"),
    }
    metrics["v2"] = v2
    baseline = None
    if args.baseline is not None:
        baseline = json.loads((args.baseline / "metrics.json").read_text())
        metrics["baseline"] = {
            "model_version": baseline.get("model_version"),
            "int8": {
                k: baseline["int8"].get(k)
                for k in (
                    "accuracy",
                    "balanced_accuracy",
                    "melanoma_sensitivity_urgent",
                    "bcc_sensitivity_urgent",
                    "out_of_scope_rate",
                    "abstain_rate",
                    "ece",
                    "urgent_at",
                    "abstain_below",
                )
            },
            "v2": baseline.get("v2"),
        }
    curves = {f"v2 {metadata.version} (int8)": roc_curve(probs_int8, kinds)}
    if baseline is not None and (args.baseline / "val_scores.npz").exists():
        old = np.load(args.baseline / "val_scores.npz")
        curves[f"v1 {baseline.get('model_version')} (int8)"] = roc_curve(old["probs"], old["kinds"])
    marks = {
        f"{r['threshold']} {r['value']:.3f}": (r["benign_referred"], r["melanoma"])
        for r in v2["referral"]["operating_points"]
        if r["threshold"] in ("urgent_at", "soon_at") and r["benign_referred"] is not None
    }
    plot_roc(curves, out_dir / "referral_roc.png", marks)
    if args.save_scores:
        buf = io.BytesIO()
        np.savez_compressed(
            buf, probs=probs_int8, kinds=np.array(kinds), sources=np.array(families)
        )
        atomic_write_bytes(out_dir / "val_scores.npz", buf.getvalue())
    atomic_write_json(out_dir / "metrics.json", metrics)
    plot_confusion(report_int8, out_dir / "confusion_int8.png")
    raw = json.loads(metadata.path.read_text())
    extra = {
        "split": raw.get("training", {}).get("split", {}),
        "temperature": t,
        "ece_before": ece_before,
        "ece_after": report_int8.ece,
        "int8_float_agreement": agreement,
        "latency": latency,
        "notes": [
            "Cross-fitted (temperature and thresholds fitted on half the lesions, scored on "
            "the other half, both ways, averaged): "
            + ", ".join(f"{k} {v:.3f}" for k, v in crossfit.items())
        ]
        if crossfit
        else [],
    }
    card = render_model_card(raw, report_int8.to_dict(), report_float.to_dict(), extra)
    card += "\n" + markdown_sections(v2, metrics.get("baseline"))
    card += "\n" + recipe_markdown(metadata.training)
    if args.notes is not None:
        card += "\n" + args.notes.read_text(encoding="utf-8")
    if metrics.get("baseline"):
        card += "\n" + old_vs_new_markdown(metrics["baseline"]["int8"], report_int8.to_dict())
    atomic_write_bytes(out_dir / "MODEL_CARD.md", card.encode())

    print(confusion_table_markdown(report_int8))
    summary = report_int8.to_dict() | {"int8_float_agreement": agreement}
    for key, target in TARGETS.items():
        value = summary.get(key)
        ok = value is not None and (value <= target if key == "ece" else value >= target)
        shown = "n/a" if value is None else f"{value:.3f}"
        print(
            f"{key:30s} {shown:>7s}  target {'<=' if key == 'ece' else '>='} {target}"
            f"  {'met' if ok else 'NOT met'}"
        )
    print(f"ECE before calibration {ece_before:.3f}; abstain rate {report_int8.abstain_rate:.3f}")
    print(
        f"invoke median: int8 {latency['int8_median_ms']:.2f} ms, float "
        f"{latency['float_median_ms']:.2f} ms → float/int8 {latency['float_over_int8']:.2f}×"
    )
    print(f"cross-fitted: {json.dumps({k: round(v, 3) for k, v in crossfit.items()})}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
