"""The `kiosk` command line.

Subcommands live in SUBCOMMANDS; each one adds its own arguments and returns an exit status.
Exit statuses are in kiosk.cli.common.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kiosk.cli.common import (
    EXIT_OK,
    EXIT_UNUSABLE,
    PACKAGE,
    add_model_argument,
    package_version,
    print_error,
)
from kiosk.errors import ModelError, SkinscanError


@dataclass(frozen=True)
class Subcommand:
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


# --------------------------------------------------------------------------- version


def _version_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_argument(parser)


def _run_version(args: argparse.Namespace) -> int:
    from kiosk.model.classifier import resolve_model

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
        add_arguments=_lazy("kiosk.cli.classify", "classify_arguments"),
        run=_lazy("kiosk.cli.classify", "run_classify"),
    ),
    "scan": Subcommand(
        help="live scan: camera → quality gate → model → smoothed verdict",
        add_arguments=_lazy("kiosk.cli.live", "scan_arguments"),
        run=_lazy("kiosk.cli.live", "run_scan"),
    ),
    "bench": Subcommand(
        help="measure the live loop, the int8 and float invoke, cold start and memory",
        add_arguments=_lazy("kiosk.cli.live", "bench_arguments"),
        run=_lazy("kiosk.cli.live", "run_bench"),
    ),
    "case": Subcommand(
        help="save a case from an image file (case add), or add a note to one (case note)",
        add_arguments=_lazy("kiosk.cli.cases", "case_arguments"),
        run=_lazy("kiosk.cli.cases", "run_case"),
    ),
    "cases": Subcommand(
        help="list saved cases, newest first",
        add_arguments=_lazy("kiosk.cli.cases", "cases_arguments"),
        run=_lazy("kiosk.cli.cases", "run_cases"),
    ),
    "inbox": Subcommand(
        help="the kiosk's reviews and messages, newest first (unread and unverified marked)",
        add_arguments=_lazy("kiosk.cli.cases", "inbox_arguments"),
        run=_lazy("kiosk.cli.cases", "run_inbox"),
    ),
    "sync": Subcommand(
        help="upload queued cases and fetch results, reviews, messages and model updates",
        add_arguments=_lazy("kiosk.cli.cases", "sync_arguments"),
        run=_lazy("kiosk.cli.cases", "run_sync"),
    ),
    "status": Subcommand(
        help="online, queue depth, last sync, model version, unread inbox",
        add_arguments=_lazy("kiosk.cli.cases", "status_arguments"),
        run=_lazy("kiosk.cli.cases", "run_status"),
    ),
    "model": Subcommand(
        help="show the running model, roll back to the previous release (pinned), or unpin",
        add_arguments=_lazy("kiosk.cli.cases", "model_arguments"),
        run=_lazy("kiosk.cli.cases", "run_model"),
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
    try:
        return args.run(args)
    except KeyboardInterrupt:
        return 130
    except SkinscanError as e:  # raised on purpose: already one sentence
        print_error(str(e))
        return EXIT_UNUSABLE
    except Exception as e:  # a bug: the traceback goes to the crash log, the user gets a line
        from kiosk.cli.crash import record_crash

        where = record_crash(e, args.command)
        print_error(
            f"unexpected {type(e).__name__} in `kiosk {args.command}`: {e} "
            f"(details in {where}; saved cases are not affected)"
        )
        return EXIT_UNUSABLE
