"""The `skinscan-cloud` command line: worker, review console, staff accounts, model release.

Exit statuses: 0 success, 1 the work failed (one line on stderr), 2 a wrong command line or
configuration.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from kiosk.errors import SkinscanError

if TYPE_CHECKING:
    from cloud.config import CloudConfig

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def _error(message: str) -> None:
    print(f"skinscan-cloud: error: {message}", file=sys.stderr, flush=True)


def _config(args: argparse.Namespace) -> CloudConfig:
    from cloud.config import load_cloud_config

    return load_cloud_config(args.config)


# --------------------------------------------------------------------------- worker


def _run_worker(args: argparse.Namespace) -> int:
    import dataclasses

    from cloud.firebase import connect
    from cloud.worker import CaseWorker, main_loop
    from kiosk.model.classifier import Classifier

    config = _config(args)
    if args.worker_id:
        config = dataclasses.replace(config, worker_id=args.worker_id)
    classifier = Classifier.from_metadata(config.model, "float", num_threads=config.threads)
    fb = connect(config)
    worker = CaseWorker(fb.db, fb.bucket, classifier, config.worker_id, config.lease_s)
    return main_loop(worker, args.once, config.catch_up_interval_s)


# --------------------------------------------------------------------------- console


def _run_review(args: argparse.Namespace) -> int:
    from cloud.console.serve import serve

    config = _config(args)
    return serve(config, host=args.host, port=args.port)


def _run_add_user(args: argparse.Namespace) -> int:
    import getpass

    from cloud.console.accounts import StaffAccounts

    config = _config(args)
    password = sys.stdin.readline().rstrip("\n") if args.password_stdin else None
    if password is None:
        password = getpass.getpass(f"password for {args.username}: ")
        if getpass.getpass("again: ") != password:
            _error("the passwords differ")
            return EXIT_USAGE
    StaffAccounts(config.users_file).add(args.username, password, args.name or args.username)
    print(f"staff account {args.username} saved in {config.users_file}")
    return EXIT_OK


def _run_review_key(args: argparse.Namespace) -> int:
    from cloud.console.signing import ReviewSigner, load_or_create_key

    config = _config(args)
    existed = config.review_key_file.exists()
    signer = ReviewSigner(load_or_create_key(config.review_key_file))
    state = "kept" if existed else "made (0600)"
    print(f"review signing key {config.review_key_file} {state}", file=sys.stderr)
    print(f"review_public_key = {signer.public_key}")
    return EXIT_OK


# --------------------------------------------------------------------------- releases


def _run_publish(args: argparse.Namespace) -> int:
    from cloud.firebase import connect
    from cloud.release import publish_release

    config = _config(args)
    key = args.signing_key or config.signing_key
    if key is None:
        _error("no signing key: pass --signing-key or set signing_key")
        return EXIT_USAGE
    from cloud.release import metrics_for

    metrics = metrics_for(args.model, args.metrics)
    fb = connect(config)
    manifest = publish_release(
        fb.db, fb.bucket, args.model, key, version=args.version, metrics=metrics
    )
    print(f"published model release {manifest.version} ({manifest.model_path})")
    return EXIT_OK


def _run_keygen(args: argparse.Namespace) -> int:
    from cloud.release import generate_signing_key

    public = generate_signing_key(args.out)
    print(f"private key written to {args.out} (0600); kiosk model_public_key = {public}")
    return EXIT_OK


def _run_retrain(args: argparse.Namespace) -> int:
    from cloud.retrain import RetrainOptions, retrain

    config = _config(args)
    options = RetrainOptions(
        data=args.data,
        out=args.out,
        baseline=args.baseline,
        signing_key=args.signing_key or config.signing_key,
        publish=not args.no_publish,
        limit_per_class=args.limit_per_class,
        head_epochs=args.head_epochs,
        epochs=args.epochs,
        version=args.version,
        representative=args.representative,
        max_drop=args.max_drop,
    )
    report = retrain(config, options)
    print(report.summary_line())
    return EXIT_OK if report.published or args.no_publish else EXIT_FAILED


# --------------------------------------------------------------------------- kiosk identities


def _run_provision(args: argparse.Namespace) -> int:
    from cloud.firebase import connect
    from cloud.provision import provision_kiosk

    fb = connect(_config(args))
    out = provision_kiosk(fb.app, args.kiosk_id, args.api_key, args.out)
    print(f"identity for {args.kiosk_id} written to {out} (0600); copy it to the kiosk")
    return EXIT_OK


def _run_revoke(args: argparse.Namespace) -> int:
    from cloud.firebase import connect
    from cloud.provision import revoke_kiosk

    revoke_kiosk(connect(_config(args)).app, args.kiosk_id)
    print(f"{args.kiosk_id} revoked: it is refused within the hour (ID token lifetime)")
    return EXIT_OK


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="skinscan-cloud", description="Skinscan cloud side")
    parser.add_argument(
        "--config", type=Path, help="TOML settings (default /etc/skinscan/cloud.toml)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("worker", help="classify uploaded cases with the cloud model")
    p.add_argument("--once", action="store_true", help="classify what is pending, then exit")
    p.add_argument("--worker-id", help="name in leases (default host-pid)")
    p.set_defaults(run=_run_worker)

    p = sub.add_parser("review", help="run the dermatologist review console")
    p.add_argument("--host", help="listen address (default from config: 127.0.0.1)")
    p.add_argument("--port", type=int, help="listen port (default from config: 8080)")
    p.set_defaults(run=_run_review)

    p = sub.add_parser("add-user", help="create or reset a staff account for the console")
    p.add_argument("username")
    p.add_argument("--name", help="display name shown with reviews and messages")
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    p.set_defaults(run=_run_add_user)

    p = sub.add_parser(
        "review-key",
        help="make the console's review signing key if missing; print the kiosks' "
        "review_public_key",
    )
    p.set_defaults(run=_run_review_key)

    p = sub.add_parser("keygen", help="make the Ed25519 release signing key")
    p.add_argument("out", type=Path)
    p.set_defaults(run=_run_keygen)

    p = sub.add_parser("publish-model", help="sign and publish a model release")
    p.add_argument("--model", type=Path, required=True, help="the model's metadata JSON")
    p.add_argument("--signing-key", type=Path, help="Ed25519 private key PEM (0600)")
    p.add_argument("--version", help="release version (default: the metadata's)")
    p.add_argument("--metrics", type=Path, help="evaluate.py metrics.json (default: beside it)")
    p.set_defaults(run=_run_publish)

    p = sub.add_parser("retrain", help="retrain on reviewed cases; publish if not worse")
    p.add_argument("--data", type=Path, required=True, help="the base training data")
    p.add_argument("--out", type=Path, required=True, help="working directory")
    p.add_argument("--baseline", type=Path, help="metadata JSON of the model to beat")
    p.add_argument("--signing-key", type=Path)
    p.add_argument("--no-publish", action="store_true")
    p.add_argument("--limit-per-class", type=int, default=0)
    p.add_argument("--head-epochs", type=int)
    p.add_argument("--epochs", type=int)
    p.add_argument("--representative", type=int, default=300)
    p.add_argument(
        "--max-drop",
        type=float,
        default=0.0,
        help="publish even if balanced accuracy / melanoma sensitivity drop by up to this",
    )
    p.add_argument("--version", help="release version (default: date and time)")
    p.set_defaults(run=_run_retrain)

    p = sub.add_parser(
        "provision-kiosk", help="make a kiosk's own Firebase identity (security rules apply)"
    )
    p.add_argument("kiosk_id")
    p.add_argument("--api-key", required=True, help="the Firebase project's web API key")
    p.add_argument("--out", type=Path, required=True, help="identity file to write (0600)")
    p.set_defaults(run=_run_provision)

    p = sub.add_parser("revoke-kiosk", help="disable a kiosk's identity (a stolen kiosk)")
    p.add_argument("kiosk_id")
    p.set_defaults(run=_run_revoke)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from firebase_admin.exceptions import FirebaseError
    from google.api_core.exceptions import GoogleAPIError

    from cloud.config import CloudConfigError

    try:
        return args.run(args)
    except CloudConfigError as e:
        _error(str(e))
        return EXIT_USAGE
    except SkinscanError as e:
        _error(str(e))
        return EXIT_FAILED
    except (GoogleAPIError, FirebaseError) as e:
        # Firebase unreachable or refusing (FirebaseError: firebase-admin's own, e.g. Auth in
        # provision-kiosk): one line, no traceback (and no document contents).
        _error(f"Firebase: {type(e).__name__}")
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
