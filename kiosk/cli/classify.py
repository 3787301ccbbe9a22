"""`kiosk classify`: still picture files through the model, one line (or JSON object) each."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from kiosk.cli.common import (
    EXIT_INPUT_FAILED,
    EXIT_OK,
    EXIT_UNUSABLE,
    add_config_argument,
    add_model_argument,
    add_threads_argument,
    print_error,
    printable,
)
from kiosk.errors import ImageReadError, ModelError, RuntimeUnavailableError

if TYPE_CHECKING:
    from kiosk.model.classifier import Classifier


def classify_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="one JSON object per image per line")
    add_model_argument(parser)
    add_threads_argument(parser)
    add_config_argument(parser)  # which release is installed (the model the scanner runs)
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files")


def classify_one(classifier: Classifier, path: str) -> dict[str, Any]:
    from kiosk.live.imaging import load_still, square_resize
    from kiosk.model.decision import decide

    rgb = load_still(path)  # refuses tiny and grayscale pictures, as `case add` does
    # The crop rule for a still picture: taken as framed, like the training pictures, i.e. its
    # centre square (resized as in training). The live scan crops the same way with the lens
    # off or the dermoscope set (kiosk.live.pipeline: the dermoscope's field), and its saved
    # picture is the crop it classified, so `classify` on a saved case repeats its verdict.
    image = square_resize(rgb, classifier.input_side)
    prediction = classifier.predict(image)
    decision = decide(prediction.probabilities, classifier.thresholds)
    return {
        "file": printable(path),
        "label": decision.label,
        "confidence": round(decision.confidence, 4),
        "probabilities": {c: round(p, 4) for c, p in decision.probabilities.items()},
        "abstained": decision.abstained,
        "urgency": str(decision.urgency),
        # Why: "condition" (the label's own urgency), "unsure" or "cancer_not_ruled_out" (the
        # summed melanoma + BCC probability escalated it whatever the label).
        "reason": decision.reason,
        "latency_ms": round(prediction.invoke_ms, 4),
        "model_version": classifier.metadata.version,
    }


def run_classify(args: argparse.Namespace) -> int:
    from kiosk.cases.model_updates import open_active_classifier
    from kiosk.config import ConfigError, load_config

    try:
        # The same model as the scanner and `case add`: --model, else the installed release.
        config = load_config(args.config)
        classifier, _ = open_active_classifier(config, args.model, num_threads=args.threads)
    except (ConfigError, ModelError, RuntimeUnavailableError) as e:
        print_error(str(e))
        return EXIT_UNUSABLE
    failed = False
    if not args.json:
        print(f"{'file':<32} {'label':<22} {'conf':>6}  {'urgency':<8} {'ms':>7}", flush=True)
    for path in args.images:
        try:
            row = classify_one(classifier, path)
        except ImageReadError as e:
            failed = True
            row = {"file": printable(path), "error": printable(str(e))}
        if args.json:
            print(json.dumps(row, ensure_ascii=False), flush=True)
        elif "error" in row:
            print(f"{row['file']:<32} ERROR: {row['error']}", flush=True)
        else:
            label = row["label"] + (" (unsure)" if row["abstained"] else "")
            print(
                f"{row['file']:<32} {label:<22} {row['confidence']:>6.3f}  {row['urgency']:<8} "
                f"{row['latency_ms']:>7.2f}",
                flush=True,
            )
    return EXIT_INPUT_FAILED if failed else EXIT_OK
