"""The review console, served by `skinscan-cloud review` (waitress) against the real Firestore
emulator and gcp-storage-emulator, driven by Debian's chromium through Playwright; the
security checks that need no browser use Flask's test client on the same store."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import stat
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cloud.console.accounts import AccountError, StaffAccounts
from cloud.console.app import ConsoleSettings, create_app
from cloud.console.decision import submission_ids
from cloud.console.recommendations import TEMPLATES
from cloud.console.signing import ReviewSigner, load_or_create_key
from cloud.console.store import AlreadySavedError, ConsoleStore, Reviewer
from cloud.private_files import PrivateFileError
from kiosk.cases import cloud_schema as schema
from kiosk.cases.specialist_signature import KIND_REVIEW, SignedContent, verifies
from kiosk.model.conditions import CONDITIONS
from tests.cloud_helpers import CLOUD_CLI, CloudEnv, case_doc, put_case, sample_images
from tests.servers import free_port, wait_for_port

# Debian's chromium (./setup.sh test installs it); Playwright's own browser download is not used.
CHROMIUM = shutil.which("chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--headless=new",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
USER, PASSWORD, NAME = "dr.amina", "correct horse battery", "Dr Amina K."
REVIEWER = Reviewer(USER, NAME)


@pytest.fixture(scope="module")
def review_key(env: CloudEnv) -> str:
    """`skinscan-cloud review-key`: makes the console's signing key (0600) and prints the
    public key the kiosks are configured with."""
    made = subprocess.run(
        [str(CLOUD_CLI), "review-key"],
        capture_output=True,
        text=True,
        env=env.environ(),
        timeout=60,
    )
    assert made.returncode == 0, made.stderr
    key_file = env.config.review_key_file
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    (line,) = [x for x in made.stdout.splitlines() if x.startswith("review_public_key = ")]
    public = line.split(" = ", 1)[1]
    again = subprocess.run(
        [str(CLOUD_CLI), "review-key"],
        capture_output=True,
        text=True,
        env=env.environ(),
        timeout=60,
    )
    assert again.stdout == made.stdout  # kept, not replaced
    return public


@pytest.fixture(scope="module")
def console(env: CloudEnv, review_key: str) -> Iterator[str]:
    """`skinscan-cloud add-user`, then `skinscan-cloud review` on a free port; its base URL."""
    added = subprocess.run(
        [str(CLOUD_CLI), "add-user", USER, "--name", NAME, "--password-stdin"],
        input=PASSWORD + "\n",
        capture_output=True,
        text=True,
        env=env.environ(),
        timeout=60,
    )
    assert added.returncode == 0, added.stderr
    port = free_port()
    server = subprocess.Popen(
        [str(CLOUD_CLI), "review", "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env.environ(),
    )
    try:
        wait_for_port(port, 60)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        _, err = server.communicate(timeout=20)
        assert "Traceback" not in err, err[-3000:]


@pytest.fixture(scope="module")
def browser() -> Iterator:
    assert CHROMIUM, (
        "chromium not found: the console's browser tests need Debian's chromium "
        "(./setup.sh test installs it)"
    )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, console):
    context = browser.new_context(viewport={"width": 390, "height": 844})  # a phone
    page = context.new_page()
    page.set_default_timeout(20000)
    yield page
    context.close()


def sign_in(page, base: str, password: str = PASSWORD) -> None:
    page.goto(base + "/")
    assert "/login" in page.url
    page.get_by_label("Username").fill(USER)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()


def review_content(case_id: str, doc: dict) -> SignedContent:
    """What the console signed for the review in case document `doc` (cloud_schema)."""
    r = doc["review"]
    return SignedContent(
        kind=KIND_REVIEW,
        case_id=case_id,
        kiosk_id=doc["kiosk_id"],
        message_id="",
        author=r["author"],
        author_name=r["reviewer"],
        reviewer=r["reviewer_username"],
        label=r["label"],
        text=r["recommendation"],
        signed_at=r["signed_at"],
    )


# --------------------------------------------------------------------------- browser


def test_signed_in_reviewer_opens_the_most_urgent_case_and_reviews_it(clean, console, page):
    old = datetime.now(UTC) - timedelta(hours=5)
    images = sample_images()
    put_case(clean.fb, image=images[0], urgency="routine", created_at=old, label="acne")
    soon = put_case(clean.fb, image=images[1], urgency="soon", label="actinic_keratosis")
    urgent_new = put_case(
        clean.fb, image=images[4], urgency="urgent", label="melanoma", created_at=old
    )
    urgent_newer = put_case(clean.fb, image=images[2], urgency="urgent", label="melanoma")
    put_case(clean.fb, image=images[3], status=schema.STATUS_REVIEWED)  # not in the queue

    sign_in(page, console)
    rows = page.locator("#group-waiting tbody tr")
    assert rows.count() == 4
    links = page.locator("#group-waiting a.case-link")
    order = [links.nth(i).get_attribute("href").rsplit("/", 1)[1] for i in range(4)]
    assert order[:3] == [urgent_new, urgent_newer, soon]  # urgency first, then oldest

    links.first.click()
    page.wait_for_load_state()
    assert page.url.endswith(f"/cases/{urgent_new}")
    image_width = page.locator("figure img").evaluate(
        "img => img.complete ? img.naturalWidth"
        " : new Promise(r => img.onload = () => r(img.naturalWidth))"
    )
    assert image_width > 0  # streamed through the app after the login check
    assert not page.get_by_label("melanoma").is_checked()  # suggested, never preselected

    page.get_by_label("basal cell carcinoma").check()
    page.get_by_label("Recommendation template").select_option("basal_cell_carcinoma")
    page.get_by_label("Your words for the health worker").fill("Please refer to Dr Salem.")
    page.get_by_role("button", name="Save", exact=True).click()
    page.wait_for_load_state()
    assert page.get_by_text("Review saved").is_visible()
    assert page.locator("#group-waiting tbody tr").count() == 3

    case = case_doc(clean.fb, urgent_new)
    assert case["status"] == schema.STATUS_REVIEWED
    review = case["review"]
    assert review["label"] == "basal_cell_carcinoma"
    assert review["recommendation"] == (
        TEMPLATES["basal_cell_carcinoma"] + "\n\nPlease refer to Dr Salem."
    )
    assert review["reviewer"] == NAME
    assert isinstance(review["reviewed_at"], datetime)
    audit = [d.to_dict() for d in clean.fb.db.collection(schema.AUDIT).stream()]
    assert [(a["action"], a["case_id"], a["actor"]) for a in audit] == [
        ("review", urgent_new, USER)
    ]
    assert audit[0]["detail"] == {
        "label": "basal_cell_carcinoma",
        "text_sha256": hashlib.sha256(review["recommendation"].encode()).hexdigest(),
    }


def test_the_message_thread_is_shown_and_answered(clean, console, page):
    case_id = put_case(clean.fb, image=sample_images()[0])
    ref = clean.fb.db.collection(schema.CASES).document(case_id)
    ref.collection(schema.MESSAGES).document("hw-1").set(
        {
            "case_id": case_id,
            "kiosk_id": "kiosk-test",
            "author": schema.AUTHOR_HEALTH_WORKER,
            "author_name": "",
            "body": "The spot has grown since last month.",
            "created_at": datetime.now(UTC) - timedelta(minutes=3),
        }
    )
    sign_in(page, console)
    page.goto(f"{console}/cases/{case_id}")
    thread = page.locator("ol.thread")
    assert "The spot has grown since last month." in thread.inner_text()
    assert "kiosk kiosk-test" in thread.inner_text()  # which kiosk asked
    page.get_by_label("Reply to the health worker").fill("Thank you. Please send a closer photo.")
    page.get_by_role("button", name="Save", exact=True).click()
    page.wait_for_load_state()
    assert page.get_by_text("Reply sent").is_visible()
    page.goto(f"{console}/cases/{case_id}")
    assert "Please send a closer photo." in page.locator("ol.thread").inner_text()
    assert case_doc(clean.fb, case_id)["status"] == schema.STATUS_UPLOADED  # a reply alone

    messages = [d.to_dict() for d in ref.collection(schema.MESSAGES).stream()]
    mine = [m for m in messages if m["author"] == schema.AUTHOR_DERMATOLOGIST]
    assert len(mine) == 1
    assert mine[0]["author_name"] == NAME
    assert mine[0]["kiosk_id"] == "kiosk-test" and mine[0]["case_id"] == case_id
    assert mine[0]["body"] == "Thank you. Please send a closer photo."


def test_no_page_or_image_without_signing_in(clean, console, page):
    case_id = put_case(clean.fb, image=sample_images()[0])
    for path in ("/", "/overview", f"/cases/{case_id}", f"/cases/{case_id}/image"):
        page.goto(console + path)
        assert "/login" in page.url, path
        assert page.get_by_role("heading", name="Sign in").is_visible()
    opener = urllib.request.build_opener(_NoRedirect())
    for path in (f"/cases/{case_id}/image", "/"):
        with pytest.raises(urllib.error.HTTPError) as e:
            opener.open(console + path)
        assert e.value.code == 302
        assert e.value.headers["Location"].startswith("/login")
    request = urllib.request.Request(
        f"{console}/cases/{case_id}/decision", data=b"label=other&recommendation=x", method="POST"
    )
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(request)
    assert e.value.code == 401
    assert case_doc(clean.fb, case_id)["status"] == schema.STATUS_UPLOADED


def test_a_forged_post_without_the_csrf_token_is_rejected(clean, console, page):
    case_id = put_case(clean.fb, image=sample_images()[0])
    sign_in(page, console)
    url = f"{console}/cases/{case_id}/decision"
    forged = page.request.post(url, form={"label": "other", "recommendation": "forged"})
    assert forged.status == 400  # the session cookie rides along; the token does not
    page.goto(f"{console}/cases/{case_id}")
    token = page.locator("#decision-form input[name=csrf_token]").get_attribute("value")
    cross_site = page.request.post(
        url,
        form={"label": "other", "recommendation": "forged", "csrf_token": token},
        headers={"Origin": "https://evil.example"},
    )
    assert cross_site.status == 400
    wrong = page.request.post(
        url, form={"label": "other", "recommendation": "forged", "csrf_token": token[::-1]}
    )
    assert wrong.status == 400
    case = case_doc(clean.fb, case_id)
    assert case["status"] == schema.STATUS_UPLOADED and "review" not in case

    cookies = {c["name"]: c for c in page.context.cookies()}
    session = cookies["skinscan_session"]
    assert session["httpOnly"] and session["sameSite"] == "Strict"
    assert not session["secure"]  # plain http on loopback only


def test_overview_shows_programme_figures(clean, console, page):
    now = datetime.now(UTC)
    reviewed = put_case(
        clean.fb, image=sample_images()[0], label="melanoma", created_at=now - timedelta(hours=3)
    )
    clean.fb.db.collection(schema.CASES).document(reviewed).update(
        {
            "status": schema.STATUS_REVIEWED,
            "review": {
                "label": "melanoma",
                "recommendation": "refer",
                "reviewer": NAME,
                "reviewed_at": now - timedelta(hours=1),
            },
        }
    )
    put_case(clean.fb, image=sample_images()[1], label="eczema")
    put_case(clean.fb, image=sample_images()[1], label="eczema", created_at=now - timedelta(days=2))
    clean.fb.db.collection(schema.KIOSKS).document("kiosk-north").set(
        {
            "kiosk_id": "kiosk-north",
            "last_seen": now - timedelta(minutes=10),
            "model_version": "2026.11.26",
            "queue_depth": 2,
            "app_version": "0.1.0",
            "last_sync": now - timedelta(minutes=10),
        }
    )
    sign_in(page, console)
    page.goto(console + "/overview")
    assert page.locator("#queue-depth").inner_text() == "2"
    assert "2.0 h" in page.locator(".figures").inner_text()  # median turnaround
    kiosks = page.locator("#kiosks").inner_text()
    assert "kiosk-north" in kiosks and "10 min ago" in kiosks
    agreement = page.locator("#agreement-kiosk")
    assert (
        agreement.locator('td[data-specialist="melanoma"][data-machine="melanoma"]').inner_text()
        == "1"
    )
    assert agreement.locator('td.agreement[data-specialist="melanoma"]').inner_text() == "100%"
    per_kiosk = page.locator("#per-kiosk").inner_text()
    assert "kiosk-test" in per_kiosk
    assert page.locator("#cases-total").inner_text() == "3"
    assert page.locator("svg.chart").count() == 1
    assert page.locator("svg.chart rect").count() >= 4  # the legend and at least two days
    from kiosk.model.classifier import default_metadata_path, load_metadata

    shipped = load_metadata(default_metadata_path()).version  # what the cloud worker runs
    assert shipped in page.locator(".figures").inner_text()


# --------------------------------------------------------------------------- no browser


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def make_app(
    env: CloudEnv,
    tmp_path: Path,
    *,
    secure: bool = False,
    attempts: int = 3,
    address_attempts: int = 3,
    trusted_proxies: frozenset[str] = frozenset(),
    store: ConsoleStore | None = None,
):
    accounts = StaffAccounts(tmp_path / "staff.json")
    accounts.add(USER, PASSWORD, NAME)
    settings = ConsoleSettings(
        secret_key_file=tmp_path / "session.key",
        secure_cookies=secure,
        session_hours=8,
        login_attempts=attempts,
        login_window_s=600,
        cloud_model_version="test",
        login_attempts_per_address=address_attempts,
        trusted_proxies=trusted_proxies,
    )
    app = create_app(settings, store or ConsoleStore(env.fb.db, env.fb.bucket), accounts)
    return app


def login_form(client, username: str, password: str, addr: str = "10.0.0.1"):
    client.get("/login", environ_base={"REMOTE_ADDR": addr})
    with client.session_transaction() as s:
        token = s["csrf_token"]
    return client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": token},
        environ_base={"REMOTE_ADDR": addr},
    )


def test_logins_are_rate_limited_even_with_the_right_password(clean, tmp_path):
    app = make_app(clean, tmp_path, attempts=3)
    client = app.test_client()
    for _ in range(3):
        assert login_form(client, USER, "wrong password!").status_code == 401
    blocked = login_form(client, USER, PASSWORD)
    assert blocked.status_code == 429
    assert int(blocked.headers["Retry-After"]) > 0
    # Another account from another address is not blocked.
    StaffAccounts(tmp_path / "staff.json").add("dr.b", PASSWORD, "Dr B")
    assert login_form(app.test_client(), "dr.b", PASSWORD, addr="10.0.0.2").status_code == 302
    # One address trying many accounts is blocked too.
    spray = app.test_client()
    for name in ("x1", "x2", "x3"):
        login_form(spray, name, "guess guess guess", addr="10.0.0.9")
    assert login_form(spray, "dr.b", PASSWORD, addr="10.0.0.9").status_code == 429


def test_session_cookie_is_secure_off_loopback_and_rotates_at_sign_in(clean, tmp_path):
    app = make_app(clean, tmp_path, secure=True)
    client = app.test_client()
    first = client.get("/login")
    assert "Secure" in first.headers["Set-Cookie"] and "HttpOnly" in first.headers["Set-Cookie"]
    assert "SameSite=Strict" in first.headers["Set-Cookie"]
    with client.session_transaction() as s:
        before = s["csrf_token"]
    ok = login_form(client, USER, PASSWORD)
    assert ok.status_code == 302
    client.get("/")
    with client.session_transaction() as s:
        assert s["user"] == USER and s["csrf_token"] != before
    page = client.get("/")
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    assert page.headers["Cache-Control"] == "no-store"


def test_login_redirect_cannot_leave_the_site(clean, tmp_path):
    app = make_app(clean, tmp_path)
    client = app.test_client()
    client.get("/login")
    with client.session_transaction() as s:
        token = s["csrf_token"]
    response = client.post(
        "/login",
        data={
            "username": USER,
            "password": PASSWORD,
            "csrf_token": token,
            "next": "//evil.example/x",
        },
    )
    assert response.headers["Location"] == "/"


def test_a_resent_form_does_not_duplicate_the_message(clean, tmp_path):
    case_id = put_case(clean.fb, image=sample_images()[0])
    store = ConsoleStore(clean.fb.db, clean.fb.bucket)
    signer = ReviewSigner(load_or_create_key(tmp_path / "review.key"))
    ids = submission_ids(b"k" * 32, USER, case_id, "n" * 24)

    def send_the_form() -> None:
        store.submit(
            case_id,
            review=None,
            reply="Please come back next week.",
            reviewer=REVIEWER,
            ids=ids,
            signer=signer,
        )

    send_the_form()
    with pytest.raises(AlreadySavedError):  # the same form again: nothing written twice
        send_the_form()
    ref = clean.fb.db.collection(schema.CASES).document(case_id)
    assert len(list(ref.collection(schema.MESSAGES).stream())) == 1
    assert len(list(clean.fb.db.collection(schema.AUDIT).stream())) == 1
    assert case_doc(clean.fb, case_id)["status"] == schema.STATUS_UPLOADED


def test_staff_accounts_store_argon2id_hashes_in_a_private_file(tmp_path):
    path = tmp_path / "state" / "staff.json"
    accounts = StaffAccounts(path)
    accounts.add(USER, PASSWORD, NAME)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert PASSWORD not in text and json.loads(text)[USER]["hash"].startswith("$argon2id$")
    assert accounts.verify(USER, PASSWORD).name == NAME
    assert accounts.verify(USER, PASSWORD + "x") is None
    assert accounts.verify("nobody", PASSWORD) is None
    with pytest.raises(AccountError):
        accounts.add("x", "short", "X")
    path.chmod(0o644)
    time.sleep(0.01)
    path.touch()  # a new mtime, so the file is read again
    with pytest.raises(PrivateFileError):
        StaffAccounts(path).get(USER)


def test_every_condition_has_a_recommendation_template():
    assert set(TEMPLATES) == set(CONDITIONS)
    assert all(len(text) > 40 for text in TEMPLATES.values())


def test_audit_entries_are_written_with_server_time(clean, tmp_path):
    case_id = put_case(clean.fb, image=sample_images()[0])
    ConsoleStore(clean.fb.db, clean.fb.bucket).submit(
        case_id,
        review=("eczema", "Moisturise twice daily."),
        reply=None,
        reviewer=REVIEWER,
        ids=submission_ids(b"k" * 32, USER, case_id, "n" * 24),
        signer=ReviewSigner(load_or_create_key(tmp_path / "review.key")),
    )
    (entry,) = [d.to_dict() for d in clean.fb.db.collection(schema.AUDIT).stream()]
    assert entry["actor"] == USER and entry["action"] == "review"
    assert abs(entry["at"] - datetime.now(UTC)) < timedelta(minutes=1)
    assert case_doc(clean.fb, case_id)["updated_at"] >= entry["at"] - timedelta(seconds=1)


# --------------------------------------------------------------------------- the whole loop


def kiosk_sync_once(config) -> dict:
    """`kiosk sync --once --json` as its own process, configured through the environment."""
    kiosk_cli = CLOUD_CLI.with_name("kiosk")
    env = {
        **os.environ,
        "SKINSCAN_DATA_DIR": str(config.data_dir),
        "SKINSCAN_KIOSK_ID": config.kiosk_id,
        "SKINSCAN_FIREBASE_PROJECT": config.firebase_project,
        "SKINSCAN_FIREBASE_BUCKET": config.firebase_bucket,
        "SKINSCAN_MIN_FREE_MB": "0",
        "FIRESTORE_EMULATOR_HOST": config.firestore_emulator_host,
        "STORAGE_EMULATOR_HOST": config.storage_emulator_host,
        "SKINSCAN_REVIEW_PUBLIC_KEY": config.review_public_key,
    }
    result = subprocess.run(
        [str(kiosk_cli), "sync", "--once", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_kiosk_case_is_classified_reviewed_in_the_browser_and_reaches_the_kiosk_inbox(
    clean, console, page, kiosk_config, review_key
):
    """Kiosk saves a case → `kiosk sync --once` uploads it → the cloud worker classifies it →
    a dermatologist reviews and answers it in the browser → the kiosk's next
    `kiosk sync --once` puts both in its inbox."""
    from cloud.worker import CaseWorker
    from kiosk.cases.store import CaseStatus, CaseStore, OnDeviceResult
    from kiosk.live.imaging import load_rgb
    from kiosk.model.classifier import Classifier

    with CaseStore.open(kiosk_config) as store:
        saved = store.save_case(
            load_rgb(sample_images()[4]),
            OnDeviceResult(
                label="melanoma",
                confidence=0.7,
                probabilities={c: (0.7 if c == "melanoma" else 0.05) for c in CONDITIONS},
                abstained=False,
                urgency="urgent",
                model_version="2026.11.26",
            ),
            body_site="back",
        )
    kiosk_sync_once(kiosk_config)
    assert case_doc(clean.fb, saved.case_id)["status"] == schema.STATUS_UPLOADED

    worker = CaseWorker(
        clean.fb.db, clean.fb.bucket, Classifier.from_metadata(None, "float"), "w", 60
    )
    assert [o.outcome for o in worker.catch_up()] == ["classified"]

    sign_in(page, console)
    page.locator("a.case-link").first.click()
    page.wait_for_load_state()
    assert page.url.endswith(f"/cases/{saved.case_id}")
    assert "Cloud: " in page.inner_text("main")
    page.get_by_label("melanoma").check()
    page.get_by_label("Recommendation template").select_option("melanoma")
    page.get_by_label("Your words for the health worker").fill("Biopsy at the district hospital.")
    page.get_by_label("Reply to the health worker").fill("Please also photograph the other moles.")
    page.get_by_role("button", name="Save", exact=True).click()  # review and reply at once
    page.wait_for_load_state()
    assert page.get_by_text("Review and reply saved").is_visible()

    doc = case_doc(clean.fb, saved.case_id)
    assert verifies(review_content(saved.case_id, doc), doc["review"]["signature"], review_key)

    # The kiosk shows specialist content only when it verifies against the console's key.
    kiosk_config = dataclasses.replace(kiosk_config, review_public_key=review_key)
    kiosk_sync_once(kiosk_config)
    with CaseStore.open(kiosk_config) as store:
        case = store.get(saved.case_id)
        assert case.status == CaseStatus.REVIEWED
        assert case.review.label == "melanoma" and case.review.reviewer == NAME
        assert case.review.recommendation.endswith("Biopsy at the district hospital.")
        inbox = {item.kind: item for item in store.inbox()}
    assert set(inbox) == {"review", "message"}
    assert inbox["message"].body == "Please also photograph the other moles."
    assert inbox["message"].author_name == NAME


def test_every_form_control_has_a_label_and_pages_fit_a_phone(clean, console, page):
    case_id = put_case(clean.fb, image=sample_images()[0])
    page.goto(console + "/login")
    unlabelled_js = """() => [...document.querySelectorAll('input, select, textarea')]
        .filter(e => e.type !== 'hidden' && e.labels.length === 0).map(e => e.name)"""
    assert page.evaluate(unlabelled_js) == []
    sign_in(page, console)
    for path in ("/", f"/cases/{case_id}", "/overview"):
        page.goto(console + path)
        assert page.evaluate(unlabelled_js) == [], path
        assert page.locator("html").get_attribute("lang") == "en"
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{path} scrolls sideways on a 390 px phone by {overflow} px"


def test_a_case_the_cloud_finds_urgent_moves_up_the_queue(clean):
    store = ConsoleStore(clean.fb.db, clean.fb.bucket)
    old = datetime.now(UTC) - timedelta(hours=3)
    soon = put_case(clean.fb, image=sample_images()[0], urgency="soon", created_at=old)
    routine = put_case(clean.fb, image=sample_images()[1], urgency="routine")
    assert [c.case_id for c in store.queue()] == [soon, routine]
    clean.fb.db.collection(schema.CASES).document(routine).update(
        {
            "status": schema.STATUS_CLASSIFIED,
            "cloud": {"label": "melanoma", "confidence": 0.6, "urgency": "urgent"},
        }
    )
    queue = store.queue()
    assert [c.case_id for c in queue] == [routine, soon]
    assert queue[0].urgency == "urgent" and queue[0].raised_by_cloud
    assert case_doc(clean.fb, routine)["urgency_rank"] == 2  # the kiosk's own rank is kept


def test_a_case_id_firestore_reserves_is_not_found_not_a_server_error(clean, tmp_path):
    app = make_app(clean, tmp_path)
    client = app.test_client()
    assert login_form(client, USER, PASSWORD).status_code == 302
    assert client.get("/cases/__reserved__").status_code == 404


def test_with_firestore_unreachable_a_page_says_nothing_was_saved_within_seconds(
    clean, tmp_path, monkeypatch
):
    from google.cloud import firestore as gfirestore

    # A Firestore client whose server is gone (nothing listens on the port).
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", f"127.0.0.1:{free_port()}")
    dead = ConsoleStore(gfirestore.Client(project=clean.fb.db.project), clean.fb.bucket)
    app = make_app(clean, tmp_path, store=dead)
    client = app.test_client()
    assert login_form(client, USER, PASSWORD).status_code == 302
    start = time.monotonic()
    page = client.get("/")
    assert page.status_code == 503
    assert b"did not answer" in page.data
    with client.session_transaction() as s:
        token = s["csrf_token"]
    form = {
        "label": "melanoma",
        "template": "melanoma",
        "recommendation": "Refer.",
        "nonce": "n" * 24,
        "csrf_token": token,
    }
    posted = client.post(f"/cases/{'a' * 32}/decision", data=form)
    assert posted.status_code == 503
    assert b"not stored yet" in posted.data
    assert time.monotonic() - start < 60  # two bounded calls, not the library's minutes


def test_a_long_queue_lists_the_most_urgent_first_and_says_how_many_are_left_off(clean, tmp_path):
    from cloud.console.app import QUEUE_ROWS_SHOWN

    now = datetime.now(UTC)
    batch = clean.fb.db.batch()
    routine = QUEUE_ROWS_SHOWN + 1
    for i in range(routine):
        batch.set(
            clean.fb.db.collection(schema.CASES).document(f"routine{i:04d}"),
            {
                "kiosk_id": "kiosk-test",
                "created_at": now - timedelta(minutes=i),
                "status": schema.STATUS_UPLOADED,
                "urgency_rank": schema.URGENCY_RANK["routine"],
                "on_device": {"label": "eczema", "confidence": 0.8},
            },
        )
        if i % 400 == 399:
            batch.commit()
            batch = clean.fb.db.batch()
    batch.commit()
    urgent = put_case(clean.fb, image=sample_images()[0], label="melanoma", urgency="urgent")
    app = make_app(clean, tmp_path)
    client = app.test_client()
    assert login_form(client, USER, PASSWORD).status_code == 302
    page = client.get("/").get_data(as_text=True)
    assert f"({routine + 1})" in page  # the heading counts every waiting case
    assert page.count('class="case-link"') == QUEUE_ROWS_SHOWN
    assert page.index(f"Case {urgent[:8]}") < page.index("Case routine")
    assert "The 2 less urgent cases after these are not listed" in page
