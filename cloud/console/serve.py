"""`skinscan-cloud review`: build the console from the configuration and serve it with waitress
(a production WSGI server in pure Python; Flask's own server is for development only)."""

from __future__ import annotations

import sys

from cloud.config import CloudConfig
from cloud.console.accounts import StaffAccounts
from cloud.console.app import ConsoleSettings, create_app
from cloud.console.security import secure_cookies
from cloud.console.store import ConsoleStore
from cloud.firebase import connect
from kiosk.model.classifier import default_metadata_path, load_metadata


def build(config: CloudConfig, host: str):  # -> Flask
    fb = connect(config)
    metadata = load_metadata(config.model or default_metadata_path())
    settings = ConsoleSettings(
        secret_key_file=config.secret_key_file,
        secure_cookies=secure_cookies(host, config.secure_cookies),
        session_hours=config.session_hours,
        login_attempts=config.login_attempts,
        login_window_s=config.login_window_s,
        cloud_model_version=metadata.version,
        signing_key_file=config.review_key_file,
        login_attempts_per_address=config.login_attempts_per_address,
        trusted_proxies=config.trusted_proxy_addresses,
    )
    return create_app(settings, ConsoleStore(fb.db, fb.bucket), StaffAccounts(config.users_file))


def serve(config: CloudConfig, host: str | None = None, port: int | None = None) -> int:
    from waitress import serve as waitress_serve

    host = host or config.host
    port = port or config.port
    app = build(config, host)
    print(f"review console on http://{host}:{port}/", file=sys.stderr, flush=True)
    waitress_serve(app, host=host, port=port, threads=4, ident="skinscan")
    return 0
