"""The `kiosk` command line.

Subcommands live in SUBCOMMANDS; each one adds its own arguments and returns an exit status.
Exit statuses: 0 success, 1 some input failed (the rest were still processed), 2 the model or
runtime cannot be used (one line on stderr, no traceback) or the command line is wrong.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kiosk.errors import ImageReadError, ModelError, RuntimeUnavailableError

if TYPE_CHECKING:
    from kiosk.model import Classifier

EXIT_OK = 0
EXIT_INPUT_FAILED = 1
EXIT_UNUSABLE = 2

PACKAGE = "skinscan-kiosk"


@dataclass(frozen=True)
class Subcommand:
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def print_error(message: str) -> None:
    print(f"kiosk: error: {message}", file=sys.stderr, flush=True)


def add_model_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        metavar="PATH",
        help="a model metadata .json, or a .tflite file with its metadata beside it "
        "(default: the shipped models/skinscan.json, or $SKINSCAN_MODEL_METADATA)",
    )


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="settings file (TOML; default /etc/skinscan/kiosk.toml when it exists); "
        "SKINSCAN_* environment variables override it",
    )


def add_threads_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--threads", type=_positive_int, default=2, metavar="N", help="interpreter threads"
    )


def _positive_int(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {value!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {n}")
    return n


# --------------------------------------------------------------------------- classify


def _classify_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="one JSON object per image per line")
    add_model_argument(parser)
    add_threads_argument(parser)
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files")


def _classify_one(classifier: Classifier, path: str) -> dict[str, Any]:
    from kiosk.decision import decide
    from kiosk.imaging import load_rgb, square_resize

    rgb = load_rgb(path)
    image = square_resize(rgb, classifier.input_side)
    prediction = classifier.predict(image)
    decision = decide(prediction.probabilities, classifier.thresholds)
    return {
        "file": path,
        "label": decision.label,
        "confidence": round(decision.confidence, 4),
        "probabilities": {c: round(p, 4) for c, p in decision.probabilities.items()},
        "abstained": decision.abstained,
        "urgency": str(decision.urgency),
        "latency_ms": round(prediction.invoke_ms, 4),
    }


def _run_classify(args: argparse.Namespace) -> int:
    from kiosk.model import Classifier

    try:
        classifier = Classifier.open(args.model, num_threads=args.threads)
    except (ModelError, RuntimeUnavailableError) as e:
        print_error(str(e))
        return EXIT_UNUSABLE
    failed = False
    if not args.json:
        print(f"{'file':<32} {'label':<22} {'conf':>6}  {'urgency':<8} {'ms':>7}", flush=True)
    for path in args.images:
        try:
            row = _classify_one(classifier, path)
        except ImageReadError as e:
            failed = True
            row = {"file": path, "error": str(e)}
        if args.json:
            print(json.dumps(row, ensure_ascii=False), flush=True)
        elif "error" in row:
            print(f"{path:<32} ERROR: {row['error']}", flush=True)
        else:
            label = row["label"] + (" (unsure)" if row["abstained"] else "")
            print(
                f"{path:<32} {label:<22} {row['confidence']:>6.3f}  {row['urgency']:<8} "
                f"{row['latency_ms']:>7.2f}",
                flush=True,
            )
    return EXIT_INPUT_FAILED if failed else EXIT_OK


# --------------------------------------------------------------------------- version


def _version_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_argument(parser)


def package_version() -> str:
    try:
        return importlib_metadata.version(PACKAGE)
    except importlib_metadata.PackageNotFoundError:
        return "unknown (not installed)"


def _run_version(args: argparse.Namespace) -> int:
    from kiosk.model import resolve_model

    print(f"{PACKAGE} {package_version()}", flush=True)
    try:
        metadata, variant = resolve_model(args.model)
    except ModelError as e:
        print_error(str(e))
        return EXIT_UNUSABLE
    model_file = metadata.model_file(variant)
    print(
        f"model {metadata.name} {metadata.version} ({variant}: "
        f"{Path(metadata.path).parent / model_file.path})",
        flush=True,
    )
    return EXIT_OK


# --------------------------------------------------------------------------- entry point


def _lazy(module: str, name: str) -> Callable[[Any], Any]:
    """A function imported on first call, so `kiosk --help` stays fast."""

    def call(arg: Any) -> Any:
        from importlib import import_module

        return getattr(import_module(module), name)(arg)

    return call


SUBCOMMANDS: dict[str, Subcommand] = {
    "run": Subcommand(
        help="the touchscreen kiosk: scan, report, save cases, queue, inbox, settings",
        add_arguments=_lazy("kiosk.ui.launch", "run_arguments"),
        run=_lazy("kiosk.ui.launch", "run_command"),
    ),
    "classify": Subcommand(
        help="classify still image files",
        add_arguments=_classify_arguments,
        run=_run_classify,
    ),
    "scan": Subcommand(
        help="live scan: camera → quality gate → model → smoothed verdict",
        add_arguments=_lazy("kiosk.live_cli", "scan_arguments"),
        run=_lazy("kiosk.live_cli", "run_scan"),
    ),
    "bench": Subcommand(
        help="measure the live loop, the int8 and float invoke, cold start and memory",
        add_arguments=_lazy("kiosk.live_cli", "bench_arguments"),
        run=_lazy("kiosk.live_cli", "run_bench"),
    ),
    "case": Subcommand(
        help="save a case from an image file (case add), or add a note to one (case note)",
        add_arguments=_lazy("kiosk.case_cli", "case_arguments"),
        run=_lazy("kiosk.case_cli", "run_case"),
    ),
    "cases": Subcommand(
        help="list saved cases, newest first",
        add_arguments=_lazy("kiosk.case_cli", "cases_arguments"),
        run=_lazy("kiosk.case_cli", "run_cases"),
    ),
    "sync": Subcommand(
        help="upload queued cases and fetch results, reviews, messages and model updates",
        add_arguments=_lazy("kiosk.case_cli", "sync_arguments"),
        run=_lazy("kiosk.case_cli", "run_sync"),
    ),
    "status": Subcommand(
        help="online, queue depth, last sync, model version, unread inbox",
        add_arguments=_lazy("kiosk.case_cli", "status_arguments"),
        run=_lazy("kiosk.case_cli", "run_status"),
    ),
    "model": Subcommand(
        help="show the running model, or roll back to the previous release",
        add_arguments=_lazy("kiosk.case_cli", "model_arguments"),
        run=_lazy("kiosk.case_cli", "run_model"),
    ),
    "version": Subcommand(
        help="print the package and model versions",
        add_arguments=_version_arguments,
        run=_run_version,
    ),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kiosk", description="Skinscan offline skin-disease screening kiosk"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, command in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=command.help, description=command.help)
        command.add_arguments(p)
        p.set_defaults(run=command.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_UNUSABLE
    return args.run(args)
