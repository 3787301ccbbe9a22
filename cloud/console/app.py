"""The review console: a Flask app with server-rendered pages (Jinja2) and one small script
(zoom, label shortcuts, the cancer confirmation), no front-end build.

Every page but the login form needs a signed-in staff member whose session generation is
current (signing out or a new password ends every older session); every form carries the
session's CSRF token; logins are rate limited per account and per client address. Images are
streamed through the app after the login check and never get a public URL: the case page shows
the full-resolution picture once Storage holds it, else the compact copy the kiosk sent first
(/cases/<id>/image?part=full|compact asks for one), and thumbnails come from the compact copy
when there is one. Reviews and messages are signed with the console's key before they are
written.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from flask import (
    Flask,
    Response,
    abort,
    flash,
    g,
    redirect,
    render_template,
    request,
    send_from_directory,
    session,
    url_for,
)
from google.api_core import exceptions as gexc
from PIL import Image

from cloud.console import charts, figures
from cloud.console.accounts import StaffAccounts
from cloud.console.decision import (
    AFTER_NEXT,
    MAX_MESSAGE,
    DecisionForm,
    FormError,
    decide,
    submission_ids,
)
from cloud.console.ratelimit import LoginLimiter
from cloud.console.recommendations import TEMPLATES
from cloud.console.security import (
    add_headers,
    check_csrf,
    client_address,
    cookie_settings,
    csrf_token,
    safe_next,
    session_secret,
)
from cloud.console.signing import ReviewSigner
from cloud.console.store import (
    AlreadySavedError,
    CaseNotFoundError,
    ConsoleStore,
    Reviewer,
)
from cloud.console.thumbnails import Thumbnails
from cloud.console.worklist import REVIEWED_DAYS, Filters, build
from cloud.pictures import PARTS
from kiosk.cases.specialist_check import message_verifies, review_verifies
from kiosk.model.conditions import CONDITIONS, URGENT_CONDITIONS

_PUBLIC_ENDPOINTS = {"login", "static", "health", "favicon"}
# A page a phone can render; the list is sorted, so the cases left off are the least urgent.
QUEUE_ROWS_SHOWN = 200
OVERVIEW_DAYS = (7, 14, 30, 90)
STATIC = Path(__file__).parent / "static"
# Column heads of the agreement tables (each with its full name as a tooltip): the usual
# abbreviations, so seven columns fit a tablet.
SHORT_NAMES = {
    "actinic_keratosis": "AK",
    "basal_cell_carcinoma": "BCC",
    "dermatofibroma": "DF",
}


@dataclass(frozen=True)
class ConsoleSettings:
    secret_key_file: Path
    secure_cookies: bool
    session_hours: float
    login_attempts: int
    login_window_s: float
    cloud_model_version: str
    signing_key_file: Path | None = None  # default: beside the session key
    login_attempts_per_address: int = 20
    trusted_proxies: frozenset[str] = frozenset()


def create_app(settings: ConsoleSettings, store: ConsoleStore, accounts: StaffAccounts) -> Flask:
    from cloud.console.signing import load_or_create_key

    app = Flask(__name__)
    app.secret_key = session_secret(settings.secret_key_file)
    app.config.update(cookie_settings(settings.secure_cookies, settings.session_hours))
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024  # forms only; nothing is uploaded here
    key_file = settings.signing_key_file or settings.secret_key_file.with_name("review_signing.key")
    signer = ReviewSigner(load_or_create_key(key_file))
    limiter = LoginLimiter(
        settings.login_attempts, settings.login_attempts_per_address, settings.login_window_s
    )
    thumbs = Thumbnails()
    app.jinja_env.globals.update(
        csrf_token=csrf_token,
        conditions=CONDITIONS,
        urgent_conditions=URGENT_CONDITIONS,
        pretty=_pretty,
        ago=_ago,
        pct=_pct,
        site=_site,
        size=_size,
    )

    def client() -> str:
        return client_address(
            request.remote_addr or "",
            request.headers.get("X-Forwarded-For", ""),
            settings.trusted_proxies,
        )

    @app.before_request
    def require_login() -> Any:
        g.user = None
        username = session.get("user")
        if username:
            user = accounts.get(username)  # a deleted account loses access at once
            # A session from before the last sign-out or password change is void.
            if user is not None and session.get("generation") == user.generation:
                g.user = user
            else:
                session.clear()
        if g.user is None and request.endpoint not in _PUBLIC_ENDPOINTS:
            if request.method != "GET":
                abort(401)
            return redirect(url_for("login", next=safe_next(request.full_path.rstrip("?"))))
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

    @app.get("/favicon.ico")
    def favicon() -> Response:
        response = send_from_directory(STATIC, "favicon.ico", mimetype="image/x-icon")
        response.headers["Cache-Control"] = "public, max-age=86400"
        return response

    # -- sign in and out

    @app.route("/login", methods=["GET", "POST"])
    def login() -> Any:
        if request.method == "GET":
            return render_template("login.html", next=safe_next(request.args.get("next")))
        username = request.form.get("username", "").strip().lower()
        password = request.form.get("password", "")
        address = client()
        next_path = safe_next(request.form.get("next"))
        wait = limiter.retry_after(username, address)
        if wait > 0:
            response = Response(
                render_template(
                    "login.html", error="Too many failed attempts. Try again later.", next=next_path
                ),
                status=429,
            )
            response.headers["Retry-After"] = str(int(wait) + 1)
            return response
        user = accounts.verify(username, password)
        if user is None:
            limiter.failed(username, address)
            return render_template(
                "login.html", error="Wrong username or password.", next=next_path
            ), 401
        limiter.succeeded(username)
        session.clear()  # a fresh session (and CSRF token) on every sign-in: no fixation
        session.permanent = True
        session["user"] = user.username
        session["generation"] = user.generation
        return redirect(next_path or url_for("queue"))

    @app.post("/logout")
    def logout() -> Any:
        # Server-side: every session of this account ends, a copied cookie included.
        accounts.revoke_sessions(g.user.username)
        session.clear()
        return redirect(url_for("login"))

    # -- the work

    def worklist(filters: Filters):  # -> worklist.Worklist
        found = store.search(filters.q) if filters.q else None
        reviewed = store.reviewed_since(filters.reviewed_days) if filters.reviewed_days else []
        return build(store.queue(), store.unanswered_questions(signed), reviewed, filters, found)

    def signed(case_id: str, message_id: str, fields: dict[str, Any]) -> bool:
        # The kiosk id the signature covers is the message's own: a message copied from
        # another case fails anyway, because the signature also covers the case id.
        kiosk_id = str(fields.get("kiosk_id", ""))
        return message_verifies(fields, message_id, case_id, kiosk_id, signer.public_key)

    @app.get("/")
    def queue() -> str:
        filters = Filters.from_args(request.args)
        wl = worklist(filters)
        kiosks = sorted(
            {r.case.kiosk_id for r in wl.questions + wl.waiting + wl.reviewed}
            | {k.kiosk_id for k in store.kiosks()}
            | ({filters.kiosk} if filters.kiosk else set())
        )
        return render_template(
            "queue.html",
            wl=wl,
            filters=filters,
            query=filters.to_query(),
            kiosks=kiosks,
            reviewed_days=REVIEWED_DAYS,
            shown=QUEUE_ROWS_SHOWN,
            now=datetime.now(UTC),
        )

    def render_case(
        case_id: str,
        form: DecisionForm | None = None,
        problems: list[str] | None = None,
        confirm: bool = False,
        status: int = 200,
    ) -> tuple[str, int]:
        try:
            c = store.case(case_id)
        except CaseNotFoundError:
            abort(404)
        if form is None:
            form = DecisionForm(
                nonce=secrets.token_urlsafe(24),
                worklist=Filters.from_args(request.args).to_query(),
            )
        rows = [
            (
                label,
                c.on_device.probabilities[label] if c.on_device else None,
                c.cloud.probabilities[label] if c.cloud else None,
            )
            for label in CONDITIONS
        ]
        rows.sort(key=lambda r: -max(r[1] or 0, r[2] or 0))
        thread = store.messages(case_id)
        # What the kiosk will show as the specialist's is what verifies against this console's
        # key: the page says so, so a review or message forged with a kiosk credential stands
        # out here too.
        verified = {
            m.message_id
            for m in thread
            if message_verifies(m.fields, m.message_id, case_id, c.kiosk_id, signer.public_key)
        }
        review_ok = c.review_fields is not None and review_verifies(
            c.review_fields, case_id, c.kiosk_id, signer.public_key
        )
        return render_template(
            "case.html",
            case=c,
            messages=thread,
            verified=verified,
            review_verified=review_ok,
            templates=TEMPLATES,
            form=form,
            problems=problems or [],
            confirm=confirm,
            chart=charts.probability_bars("Kiosk and cloud probabilities", rows),
            prob_rows=rows,
            max_message=MAX_MESSAGE,
            queue_query=form.worklist,
            now=datetime.now(UTC),
        ), status

    @app.get("/cases/<case_id>")
    def case(case_id: str) -> tuple[str, int]:
        return render_case(case_id)

    def case_image(case_id: str, part: str | None = None, thumbnail: bool = False) -> bytes:
        """`part` None: the picture the case page shows (the full one once stored, else the
        compact copy); else that part, or 404 while Storage does not hold it."""
        try:
            c = store.case(case_id)
            if thumbnail:
                picture = c.thumbnail_picture
                if picture is None:
                    raise CaseNotFoundError(case_id)
                # Keyed by the recorded sha256: a cached thumbnail needs no Storage download.
                cached = thumbs.get(picture.sha256)
                return cached or thumbs.make(picture.sha256, store.image(c, picture))
            return store.image(c, c.shown_picture if part is None else c.picture(part))
        except (CaseNotFoundError, gexc.NotFound):
            abort(404)
        except (OSError, Image.DecompressionBombError):  # a truncated or unreadable picture
            abort(404)

    @app.get("/cases/<case_id>/image")
    def image(case_id: str) -> Response:
        part = request.args.get("part")
        if part is not None and part not in PARTS:
            abort(404)
        response = Response(case_image(case_id, part), mimetype="image/jpeg")
        response.headers["Content-Disposition"] = "inline"
        return response

    @app.get("/cases/<case_id>/thumb")
    def thumb(case_id: str) -> Response:
        return Response(case_image(case_id, thumbnail=True), mimetype="image/jpeg")

    @app.post("/cases/<case_id>/decision")
    def decision(case_id: str) -> Any:
        form = DecisionForm.from_form(request.form)
        try:
            d = decide(form)
        except FormError as e:
            return render_case(case_id, form, e.problems, e.confirm, status=422)
        filters = Filters.from_args(dict(parse_qsl(form.worklist)))
        # The list "save and next" walks, as it was before this save.
        order = worklist(filters) if form.after == AFTER_NEXT else None
        try:
            store.submit(
                case_id,
                review=(d.review.label, d.review.recommendation) if d.review else None,
                reply=d.reply,
                reviewer=Reviewer(g.user.username, g.user.name),
                ids=submission_ids(app.secret_key, g.user.username, case_id, form.nonce),
                signer=signer,
            )
        except CaseNotFoundError:
            abort(404)
        except AlreadySavedError:
            flash("This form was already sent; nothing was saved twice.", "ok")
            return redirect(url_for("case", case_id=case_id))
        said = {
            (True, True): "Review and reply saved.",
            (True, False): "Review saved.",
            (False, True): "Reply sent.",
        }[(d.review is not None, d.reply is not None)]
        flash(f"{said} The kiosk receives it on its next sync.", "ok")
        query = filters.to_query()
        if order is not None:
            nxt = order.next_after(case_id)
            if nxt:
                return redirect(url_for("case", case_id=nxt) + (f"?{query}" if query else ""))
            flash("That was the last case in this list.", "ok")
        return redirect(url_for("queue") + (f"?{query}" if query else ""))

    @app.get("/overview")
    def overview() -> str:
        try:
            days = int(request.args.get("days", "14"))
        except ValueError:
            days = 14
        days = days if days in OVERVIEW_DAYS else 14
        kiosks = store.kiosks()
        recent = store.recent(days)
        kiosk_filter = request.args.get("kiosk", "")
        known = sorted({k.kiosk_id for k in kiosks} | {c.kiosk_id for c in recent})
        if kiosk_filter not in known:
            kiosk_filter = ""
        shown = [c for c in recent if not kiosk_filter or c.kiosk_id == kiosk_filter]
        f = figures.compute(shown, days, datetime.now(UTC).date())
        series = [(u, charts.URGENCY_COLOURS[u], f.per_day[u]) for u in figures.URGENCIES]
        return render_template(
            "overview.html",
            f=f,
            days=days,
            day_choices=OVERVIEW_DAYS,
            kiosk_filter=kiosk_filter,
            known_kiosks=known,
            per_day_chart=charts.stacked_columns(
                f"Cases per day by urgency, last {days} days", f.days, series
            ),
            urgencies=figures.URGENCIES,
            short_names=SHORT_NAMES,
            queue_depth=store.queue_depth(),
            kiosks=kiosks,
            latest_release=store.latest_release(),
            cloud_model_version=settings.cloud_model_version,
            now=datetime.now(UTC),
        )

    return app


def _pretty(label: str) -> str:
    return label.replace("_", " ")


def _site(body_site: str) -> str:
    """A stored body site as words: "arm_left" -> "arm, left" (the kiosk stores the side)."""
    if not body_site:
        return "not given"
    part, _, side = body_site.partition("_")
    return f"{part}, {side}" if side else part


def _size(n_bytes: int) -> str:
    """A picture's size as a reader says it: "34 KB", "1.2 MB"."""
    if n_bytes <= 0:
        return "size not recorded"
    if n_bytes >= 1024 * 1024:
        return f"{n_bytes / (1024 * 1024):.1f} MB"
    return f"{max(1, round(n_bytes / 1024))} KB"


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.0f}%"


def _ago(when: datetime | None, now: datetime) -> str:
    if when is None:
        return "never"
    seconds = max(0, int((now - when).total_seconds()))
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 172800:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} days ago"
