"""What every `kiosk` command shares: exit statuses, the one-line error, common arguments.

Exit statuses: 0 success, 1 some input failed (the rest were still processed), 2 the model or
runtime cannot be used (one line on stderr, no traceback) or the command line is wrong.
"""

from __future__ import annotations

import argparse
import sys
from importlib import metadata as importlib_metadata

EXIT_OK = 0
EXIT_INPUT_FAILED = 1
EXIT_UNUSABLE = 2

PACKAGE = "skinscan-kiosk"


def print_error(message: str) -> None:
    print(f"kiosk: error: {printable(message)}", file=sys.stderr, flush=True)


def printable(text: str) -> str:
    """Text safe to print and to put in JSON: a file name with bytes that are not UTF-8 (which
    Python keeps as lone surrogates) shows them as \\xNN instead of failing or writing raw
    bytes."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


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
        "--threads", type=positive_int, default=2, metavar="N", help="interpreter threads"
    )


def positive_int(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {value!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {n}")
    return n


def package_version() -> str:
    try:
        return importlib_metadata.version(PACKAGE)
    except importlib_metadata.PackageNotFoundError:
        return "unknown (not installed)"


def add_source_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--source",
        default="auto",
        help="auto (picamera2, else webcam, else demo clip) | picamera2 | opencv:INDEX_OR_PATH "
        "| replay:PATH | demo",
    )
    parser.add_argument(
        "--fps",
        type=float,
        default=15.0,
        help="camera / replay frame rate (0: as fast as possible)",
    )


def default_lens(source_spec: str) -> str:
    """Replayed pictures are cropped inside the dermoscope's field: never ask for the lens."""
    return "off" if source_spec.split(":", 1)[0] in ("replay", "demo") else "auto"
