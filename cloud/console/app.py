"""The review console: a Flask app with server-rendered pages (Jinja2), no front-end build.

Every page but the login form needs a signed-in staff member; every form carries the session's
CSRF token; logins are rate limited. Images are streamed through the app after the login check
and never get a public URL.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flask import (
    Flask,
    Response,
    abort,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from google.api_core import exceptions as gexc

from cloud.console import charts
from cloud.console.accounts import StaffAccounts
from cloud.console.ratelimit import LoginLimiter
from cloud.console.recommendations import TEMPLATES, compose
from cloud.console.security import (
    add_headers,
    check_csrf,
    cookie_settings,
    csrf_token,
    session_secret,
)
from cloud.console.store import CaseNotFoundError, ConsoleStore
from kiosk.model.conditions import CONDITIONS

_PUBLIC_ENDPOINTS = {"login", "static", "health"}
# A page a phone can render; the queue is sorted, so the cases left off are the least urgent.
QUEUE_ROWS_SHOWN = 200


@dataclass(frozen=True)
class ConsoleSettings:
    secret_key_file: Path
    secure_cookies: bool
    session_hours: float
    login_attempts: int
    login_window_s: float
    cloud_model_version: str


def create_app(settings: ConsoleSettings, store: ConsoleStore, accounts: StaffAccounts) -> Flask:
    app = Flask(__name__)
    app.secret_key = session_secret(settings.secret_key_file)
    app.config.update(cookie_settings(settings.secure_cookies, settings.session_hours))
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024  # forms only; nothing is uploaded here
    limiter = LoginLimiter(settings.login_attempts, settings.login_window_s)
    app.jinja_env.globals.update(
        csrf_token=csrf_token, conditions=CONDITIONS, pretty=_pretty, ago=_ago
    )

    @app.before_request
    def require_login() -> Any:
        g.user = None
        username = session.get("user")
        if username:
            g.user = accounts.get(username)  # a deleted account loses access at once
            if g.user is None:
                session.clear()
        if g.user is None and request.endpoint not in _PUBLIC_ENDPOINTS:
            if request.method != "GET":
                abort(401)
            return redirect(url_for("login", next=request.path))
        check_csrf()
        return None

    app.after_request(add_headers)

    @app.errorhandler(gexc.GoogleAPIError)
    def firestore_unavailable(error: gexc.GoogleAPIError) -> tuple[str, int]:
        # Firestore or Storage down, or a write that kept colliding with another one: say so
        # plainly (a generic 500 reads as "my review is lost") and tell how to retry. The log
        # gets the error's type and the route, never the form.
        app.logger.warning(
            "%s %s: %s", request.method, request.url_rule or "?", type(error).__name__
        )
        return render_template("unavailable.html", method=request.method), 503

    @app.get("/healthz")
    def health() -> str:
        return "ok"

    # -- sign in and out

    @app.route("/login", methods=["GET", "POST"])
    def login() -> Any:
        if request.method == "GET":
            return render_template("login.html", next=_safe_next(request.args.get("next")))
        username = request.form.get("username", "").strip().lower()
        password = request.form.get("password", "")
        keys = (f"user:{username}", f"ip:{request.remote_addr}")
        wait = limiter.retry_after(*keys)
        if wait > 0:
            response = Response(
                render_template(
                    "login.html",
                    error="Too many failed attempts. Try again later.",
                    next=_safe_next(request.form.get("next")),
                ),
                status=429,
            )
            response.headers["Retry-After"] = str(int(wait) + 1)
            return response
        user = accounts.verify(username, password)
        if user is None:
            limiter.failed(*keys)
            return render_template(
                "login.html",
                error="Wrong username or password.",
                next=_safe_next(request.form.get("next")),
            ), 401
        limiter.succeeded(keys[0])
        session.clear()  # a fresh session (and CSRF token) on every sign-in: no fixation
        session.permanent = True
        session["user"] = user.username
        return redirect(_safe_next(request.form.get("next")) or url_for("queue"))

    @app.post("/logout")
    def logout() -> Any:
        session.clear()
        return redirect(url_for("login"))

    # -- the work

    @app.get("/")
    def queue() -> str:
        return render_template(
            "queue.html", cases=store.queue(), shown=QUEUE_ROWS_SHOWN, now=datetime.now(UTC)
        )

    @app.get("/cases/<case_id>")
    def case(case_id: str) -> str:
        try:
            c = store.case(case_id)
        except CaseNotFoundError:
            abort(404)
        return render_template(
            "case.html",
            case=c,
            messages=store.messages(case_id),
            templates=TEMPLATES,
            message_id=uuid.uuid4().hex,
            now=datetime.now(UTC),
        )

    @app.get("/cases/<case_id>/image")
    def image(case_id: str) -> Response:
        try:
            data = store.image(store.case(case_id))
        except (CaseNotFoundError, gexc.NotFound):
            abort(404)
        response = Response(data, mimetype="image/jpeg")
        response.headers["Content-Disposition"] = "inline"
        return response

    @app.post("/cases/<case_id>/review")
    def review(case_id: str) -> Any:
        label = request.form.get("label", "")
        text = compose(request.form.get("template", ""), request.form.get("recommendation", ""))
        try:
            store.submit_review(case_id, label, text, g.user.username, g.user.name)
        except CaseNotFoundError:
            abort(404)
        except ValueError as e:
            flash(str(e), "error")
            return redirect(url_for("case", case_id=case_id))
        flash("Review saved. The kiosk receives it on its next sync.", "ok")
        return redirect(url_for("queue"))

    @app.post("/cases/<case_id>/messages")
    def message(case_id: str) -> Any:
        try:
            store.add_message(
                case_id,
                request.form.get("message_id", ""),
                request.form.get("body", ""),
                g.user.username,
                g.user.name,
            )
        except CaseNotFoundError:
            abort(404)
        except ValueError as e:
            flash(str(e), "error")
        return redirect(url_for("case", case_id=case_id) + "#messages")

    @app.get("/overview")
    def overview() -> str:
        o = store.overview()
        return render_template(
            "overview.html",
            o=o,
            per_day_chart=charts.column_chart("Cases per day", o.per_day),
            per_condition_chart=charts.paired_bar_chart(
                "Cases per condition", o.per_condition, ("kiosk result", "review")
            ),
            cloud_model_version=settings.cloud_model_version,
            now=datetime.now(UTC),
        )

    return app


def _safe_next(target: str | None) -> str:
    """Only a path on this site: a login link cannot send the user elsewhere."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return ""


def _pretty(label: str) -> str:
    return label.replace("_", " ")


def _ago(when: datetime | None, now: datetime) -> str:
    if when is None:
        return "never"
    seconds = max(0, int((now - when).total_seconds()))
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 172800:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} days ago"
