"""The review console's trust rules (issue 15, console side), against the real Firestore and
Storage emulators through Flask's test client and the real `skinscan-cloud` command line:
create-only messages and an append-only audit, reviews whose template fits the label, a
sign-in limiter that never locks out an account nobody attacks, sessions revoked on the server,
a strict `next`, and Secure cookies off loopback."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import stat
import subprocess
from datetime import UTC, datetime, timedelta

import pytest
from PIL import Image

from cloud.config import CloudConfigError, load_cloud_config
from cloud.console.accounts import StaffAccounts
from cloud.console.decision import submission_ids
from cloud.console.ratelimit import LoginLimiter
from cloud.console.recommendations import TEMPLATES
from cloud.console.serve import build
from cloud.console.signing import ReviewSigner, load_or_create_key
from cloud.console.store import AlreadySavedError, ConsoleStore, Reviewer
from cloud.private_files import PrivateFileError
from kiosk.cases import cloud_schema as schema
from tests.cloud.test_cloud_console import NAME, PASSWORD, USER, login_form, make_app
from tests.cloud_helpers import CLOUD_CLI, case_doc, put_case, sample_images

PROXY = "127.0.0.1"
NOTE = "urgent referral: the mole bled twice this week"


def signed_in(app, addr: str = "10.0.0.1"):
    client = app.test_client()
    assert login_form(client, USER, PASSWORD, addr=addr).status_code == 302
    return client


def token(client) -> str:
    with client.session_transaction() as s:
        if "csrf_token" in s:
            return s["csrf_token"]
    client.get("/")  # a signed-in page with a form makes the session's token
    with client.session_transaction() as s:
        return s["csrf_token"]


def decide(client, case_id: str, **form: str):
    data = {"csrf_token": token(client), "nonce": form.pop("nonce", "n" * 24), **form}
    return client.post(f"/cases/{case_id}/decision", data=data)


def health_worker_note(fb, case_id: str) -> None:
    fb.db.collection(schema.CASES).document(case_id).collection(schema.MESSAGES).document(
        "hw-1"
    ).set(
        {
            "case_id": case_id,
            "kiosk_id": "kiosk-test",
            "author": schema.AUTHOR_HEALTH_WORKER,
            "author_name": "",
            "body": NOTE,
            "created_at": datetime.now(UTC) - timedelta(minutes=5),
        }
    )


def messages(fb, case_id: str) -> dict[str, dict]:
    ref = fb.db.collection(schema.CASES).document(case_id).collection(schema.MESSAGES)
    return {d.id: d.to_dict() for d in ref.stream()}


def audit(fb) -> dict[str, dict]:
    return {d.id: d.to_dict() for d in fb.db.collection(schema.AUDIT).stream()}


# --------------------------------------------------------------------------- messages, audit


def test_the_overwrite_request_is_refused_and_the_note_is_unchanged(clean, tmp_path):
    fb = clean.fb
    case_id = put_case(fb, image=sample_images()[0])
    health_worker_note(fb, case_id)
    client = signed_in(make_app(clean, tmp_path))

    # The request from the issue: the old route that took the id from the form is gone.
    old = client.post(
        f"/cases/{case_id}/messages",
        data={"csrf_token": token(client), "message_id": "hw-1", "body": "OVERWRITTEN"},
    )
    assert old.status_code in (404, 405)
    # The one form ignores any message id it is sent: the server makes its own.
    sent = decide(client, case_id, message_id="hw-1", reply="OVERWRITTEN")
    assert sent.status_code == 302
    thread = messages(fb, case_id)
    assert thread["hw-1"]["body"] == NOTE and thread["hw-1"]["author"] == "health_worker"
    (mine,) = [i for i in thread if i != "hw-1"]
    assert thread[mine]["body"] == "OVERWRITTEN"

    # Even an id aimed at the note from inside the server is refused by the create-only write,
    # and with it the whole batch: no audit entry, no review.
    before = audit(fb)
    ids = dataclasses.replace(submission_ids(b"k" * 32, USER, case_id, "x" * 24), message="hw-1")
    with pytest.raises(AlreadySavedError):
        ConsoleStore(fb.db, fb.bucket).submit(
            case_id,
            review=("other", "No need to refer."),
            reply="No need to refer.",
            reviewer=Reviewer(USER, NAME),
            ids=ids,
            signer=ReviewSigner(load_or_create_key(tmp_path / "k.key")),
        )
    assert messages(fb, case_id)["hw-1"]["body"] == NOTE
    assert audit(fb) == before
    assert "review" not in case_doc(fb, case_id)

    # The same form sent twice (a double click) writes once.
    again = decide(client, case_id, reply="OVERWRITTEN")
    assert again.status_code == 302
    assert len(messages(fb, case_id)) == 2
    assert b"already sent" in client.get(again.headers["Location"]).data


def test_every_audit_entry_is_a_new_document_with_the_texts_hash_and_the_actor(clean, tmp_path):
    fb = clean.fb
    case_id = put_case(fb, image=sample_images()[1], label="eczema")
    client = signed_in(make_app(clean, tmp_path))
    assert (
        decide(client, case_id, label="eczema", template="eczema", nonce="a" * 24).status_code
        == 302
    )
    first = audit(fb)
    assert (
        decide(
            client, case_id, label="acne", template="acne", reply="Use mild soap.", nonce="b" * 24
        ).status_code
        == 302
    )
    second = audit(fb)
    assert len(first) == 1 and len(second) == 3
    assert {k: second[k] for k in first} == first  # the earlier entry is untouched
    by_action = sorted((e["action"], e["detail"].get("label", "")) for e in second.values())
    assert by_action == [("message", ""), ("review", "acne"), ("review", "eczema")]
    for entry in second.values():
        assert entry["actor"] == USER and entry["case_id"] == case_id
    review = case_doc(fb, case_id)["review"]
    assert review["label"] == "acne"
    hashes = {e["detail"]["text_sha256"] for e in second.values()}
    assert hashlib.sha256(review["recommendation"].encode()).hexdigest() in hashes
    assert hashlib.sha256(b"Use mild soap.").hexdigest() in hashes
    (message,) = [e for e in second.values() if e["action"] == "message"]
    assert message["detail"]["message_id"] in messages(fb, case_id)


# --------------------------------------------------------------------------- consistent reviews


def test_a_template_more_urgent_than_the_label_is_refused(clean, tmp_path):
    fb = clean.fb
    case_id = put_case(fb, image=sample_images()[0], label="melanoma", urgency="urgent")
    client = signed_in(make_app(clean, tmp_path))

    refused = decide(client, case_id, label="other", template="melanoma", reply="see below")
    assert refused.status_code == 422
    page = refused.get_data(as_text=True)
    assert "more urgent than the diagnosis" in page
    assert ">see below</textarea>" in page  # the draft reply is kept
    assert "review" not in case_doc(fb, case_id) and messages(fb, case_id) == {}

    calm = decide(client, case_id, label="melanoma", template="eczema")
    assert calm.status_code == 422
    assert 'name="confirm_non_urgent"' in calm.get_data(as_text=True)
    assert "review" not in case_doc(fb, case_id)

    confirmed = decide(
        client, case_id, label="melanoma", template="eczema", confirm_non_urgent="yes"
    )
    assert confirmed.status_code == 302
    review = case_doc(fb, case_id)["review"]
    assert review["label"] == "melanoma" and review["recommendation"] == TEMPLATES["eczema"]

    for label in ("melanoma", "basal_cell_carcinoma"):  # urgent with urgent: no question asked
        ok = decide(client, case_id, label=label, template="melanoma", nonce=label * 3)
        assert ok.status_code == 302, label


# --------------------------------------------------------------------------- sign-in


def test_the_limiter_does_not_lock_out_an_unattacked_account(clean, tmp_path):
    app = make_app(clean, tmp_path, attempts=3, address_attempts=10, trusted_proxies={PROXY})
    StaffAccounts(tmp_path / "staff.json").add("dr.b", PASSWORD, "Dr B")

    def via_proxy(client_ip: str, username: str, password: str, peer: str = PROXY):
        client = app.test_client()
        client.get("/login", environ_base={"REMOTE_ADDR": peer})
        return client.post(
            "/login",
            data={"username": username, "password": password, "csrf_token": token(client)},
            environ_base={"REMOTE_ADDR": peer},
            headers={"X-Forwarded-For": f"10.9.9.9, {client_ip}"},  # left: the client's own
        )

    # Behind the proxy every request comes from 127.0.0.1: an attacker sprays 20 guesses
    # over many accounts, and hammers dr.b.
    attacker = "203.0.113.9"
    for i in range(20):
        name = "dr.b" if i % 2 else f"guess{i}"
        assert via_proxy(attacker, name, "wrong password!!").status_code in (401, 429)
    assert via_proxy(attacker, USER, PASSWORD).status_code == 429  # the attacker's address
    assert via_proxy("198.51.100.4", "dr.b", PASSWORD).status_code == 429  # attacked account
    # The account nobody guessed at signs in at once from its own address.
    assert via_proxy("198.51.100.7", USER, PASSWORD).status_code == 302

    # A client that is not the proxy cannot pick its address with the header: its failures
    # count against its own address, not the one it names.
    for i in range(10):
        via_proxy("198.51.100.8", f"nobody{i}", "wrong password!!", peer="10.0.0.66")
    assert via_proxy("198.51.100.8", USER, PASSWORD).status_code == 302
    assert via_proxy("198.51.100.8", USER, PASSWORD, peer="10.0.0.66").status_code == 429


def test_login_failures_age_out_of_the_window():
    now = [1000.0]
    limiter = LoginLimiter(2, 5, 60, clock=lambda: now[0])
    limiter.failed("a", "1.2.3.4")
    limiter.failed("a", "1.2.3.5")
    assert limiter.retry_after("a", "9.9.9.9") == pytest.approx(60)
    assert limiter.retry_after("b", "1.2.3.4") == 0  # another account, same address
    now[0] += 61
    assert limiter.retry_after("a", "9.9.9.9") == 0


def test_a_saved_cookie_fails_after_logout(clean, tmp_path):
    app = make_app(clean, tmp_path)
    client = signed_in(app)
    cookie = client.get_cookie("skinscan_session").value
    thief = app.test_client()
    thief.set_cookie("skinscan_session", cookie)
    assert thief.get("/").status_code == 200
    assert client.post("/logout", data={"csrf_token": token(client)}).status_code == 302
    replay = thief.get("/")
    assert replay.status_code == 302 and replay.headers["Location"].startswith("/login")
    assert signed_in(app).get("/").status_code == 200  # signing in again works


def test_a_saved_cookie_fails_after_a_password_reset(clean, tmp_path):
    app = make_app(clean, tmp_path)
    client = signed_in(app)
    assert client.get("/").status_code == 200
    new_password = "another horse battery staple"
    reset = subprocess.run(  # another process writes the accounts file
        [str(CLOUD_CLI), "add-user", USER, "--name", NAME, "--password-stdin"],
        input=new_password + "\n",
        capture_output=True,
        text=True,
        env=clean.environ(SKINSCAN_CLOUD_STATE_DIR=str(tmp_path)),
        timeout=60,
    )
    assert reset.returncode == 0, reset.stderr
    after = client.get("/")
    assert after.status_code == 302 and after.headers["Location"].startswith("/login")
    fresh = app.test_client()
    assert login_form(fresh, USER, PASSWORD).status_code == 401
    assert login_form(fresh, USER, new_password).status_code == 302


BAD_NEXT = [
    "/%09/evil.example",
    "/\t/evil.example",
    "//evil.example",
    "///evil.example",
    "\\\\evil.example",
    "/\\evil.example",
    "https://evil.example/",
    "javascript:alert(1)",
    "evil.example",
    "/cases/x\n",
    "/%2F%2Fevil.example",
]


@pytest.mark.parametrize("target", BAD_NEXT)
def test_next_must_be_a_path_on_this_site(clean, tmp_path, target):
    client = make_app(clean, tmp_path).test_client()
    shown = client.get("/login", query_string={"next": target}).get_data(as_text=True)
    assert 'name="next" value=""' in shown
    response = client.post(
        "/login",
        data={"username": USER, "password": PASSWORD, "csrf_token": token(client), "next": target},
    )
    assert response.status_code == 302 and response.headers["Location"] == "/"


def test_next_keeps_a_path_on_this_site_and_the_raw_percent_form_is_refused(clean, tmp_path):
    client = make_app(clean, tmp_path).test_client()
    first = client.get("/overview?days=30")
    assert first.headers["Location"] == "/login?next=/overview?days%3D30"
    raw = client.get("/login?next=/%09/evil.example").get_data(as_text=True)
    assert 'name="next" value=""' in raw
    signed = client.post(
        "/login",
        data={
            "username": USER,
            "password": PASSWORD,
            "csrf_token": token(client),
            "next": "/overview?days=30",
        },
    )
    assert signed.headers["Location"] == "/overview?days=30"


@pytest.mark.parametrize(
    ("host", "configured", "secure"),
    [
        ("0.0.0.0", None, True),
        ("192.168.1.20", False, True),  # off loopback, whatever the setting says
        ("127.0.0.1", None, False),
        ("::1", None, False),
        ("127.0.0.1", True, True),  # behind a TLS proxy on the same host
    ],
)
def test_cookies_are_secure_whenever_the_console_is_not_on_loopback(env, host, configured, secure):
    config = dataclasses.replace(env.config, secure_cookies=configured)
    app = build(config, host)
    assert app.config["SESSION_COOKIE_SECURE"] is secure
    cookie = app.test_client().get("/login").headers["Set-Cookie"]
    assert ("; Secure" in cookie) is secure


def test_trusted_proxies_must_be_addresses(tmp_path):
    (tmp_path / "cloud.toml").write_text("port = 8081\n")
    default = load_cloud_config(tmp_path / "cloud.toml", {})
    assert default.trusted_proxy_addresses == {"127.0.0.1", "::1"}  # the same-host proxy
    (tmp_path / "cloud.toml").write_text('trusted_proxies = "10.1.2.3"\n')
    config = load_cloud_config(tmp_path / "cloud.toml", {})
    assert config.trusted_proxy_addresses == {"10.1.2.3"}
    none = load_cloud_config(tmp_path / "cloud.toml", {"SKINSCAN_CLOUD_TRUSTED_PROXIES": ""})
    assert none.trusted_proxy_addresses == frozenset()
    environ = {"SKINSCAN_CLOUD_TRUSTED_PROXIES": "127.0.0.1, proxy.local"}
    with pytest.raises(CloudConfigError, match=r"proxy\.local"):
        load_cloud_config(tmp_path / "cloud.toml", environ)


def test_the_signing_key_is_private_and_kept(tmp_path):
    path = tmp_path / "state" / "review_signing.key"
    first = ReviewSigner(load_or_create_key(path)).public_key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ReviewSigner(load_or_create_key(path)).public_key == first
    path.chmod(0o644)
    with pytest.raises(PrivateFileError):
        load_or_create_key(path)


def test_the_case_page_tells_signed_specialist_content_from_forged(clean, tmp_path):
    fb = clean.fb
    case_id = put_case(fb, image=sample_images()[0], label="melanoma", urgency="urgent")
    ref = fb.db.collection(schema.CASES).document(case_id)
    # What a stolen kiosk credential can write: a "review" and a "dermatologist" message.
    ref.update(
        {
            "status": schema.STATUS_REVIEWED,
            "review": {
                "label": "other",
                "recommendation": "Benign. No referral needed.",
                "reviewer": NAME,
                "reviewer_username": USER,
                "reviewed_at": datetime.now(UTC),
                "signed_at": "2026-12-01T00:00:00+00:00",
                "signature": "AAAA",
            },
        }
    )
    ref.collection(schema.MESSAGES).document("forged").set(
        {
            "case_id": case_id,
            "kiosk_id": "kiosk-test",
            "author": schema.AUTHOR_DERMATOLOGIST,
            "author_name": NAME,
            "body": "No need to refer.",
            "created_at": datetime.now(UTC) - timedelta(minutes=2),
        }
    )
    ref.collection(schema.MESSAGES).document("elsewhere").set(
        {
            "case_id": case_id,
            "kiosk_id": "kiosk-other",
            "author": schema.AUTHOR_HEALTH_WORKER,
            "author_name": "",
            "body": "Ignore the review.",
            "created_at": datetime.now(UTC) - timedelta(minutes=1),
        }
    )
    client = signed_in(make_app(clean, tmp_path))
    page = client.get(f"/cases/{case_id}").get_data(as_text=True)
    assert page.count("not signed by this console") == 2  # the review and the message
    assert "not this case's kiosk (kiosk-test)" in page

    sent = decide(client, case_id, label="melanoma", template="melanoma", reply="Refer today.")
    assert sent.status_code == 302
    page = client.get(f"/cases/{case_id}").get_data(as_text=True)
    assert "signed by this console</span>" in page  # the new review
    assert page.count("not signed by this console") == 1  # only the forged message is left
    assert "· signed" in page  # the console's own reply


def test_thumbnails_are_small_cached_by_sha256_and_a_broken_image_is_not_found(clean, tmp_path):
    fb = clean.fb
    case_id = put_case(fb, image=sample_images()[0])
    client = signed_in(make_app(clean, tmp_path))
    first = client.get(f"/cases/{case_id}/thumb")
    assert first.status_code == 200 and first.mimetype == "image/jpeg"
    assert max(Image.open(io.BytesIO(first.data)).size) <= 96
    fb.bucket.blob(case_doc(fb, case_id)["image"]["path"]).delete()
    assert client.get(f"/cases/{case_id}/thumb").data == first.data  # no download needed
    assert client.get(f"/cases/{case_id}/image").status_code == 404  # the full one is gone

    broken = put_case(fb, image=b"not a picture at all")
    assert client.get(f"/cases/{broken}/thumb").status_code == 404
    assert client.get("/cases/no-such-case/thumb").status_code == 404


def test_behind_the_documented_same_host_proxy_an_attacker_locks_out_only_itself(env, tmp_path):
    """`skinscan-cloud review` as deployed (loopback, TLS proxy on the same host, default
    settings): every request comes from 127.0.0.1, yet 25 wrong passwords from one client do
    not lock out a dermatologist signing in from elsewhere."""
    config = dataclasses.replace(env.config, state_dir=tmp_path)
    StaffAccounts(config.users_file).add(USER, PASSWORD, NAME)
    app = build(config, "127.0.0.1")

    def attempt(client_ip: str, username: str, password: str) -> int:
        client = app.test_client()
        client.get("/login", environ_base={"REMOTE_ADDR": PROXY})
        return client.post(
            "/login",
            data={"username": username, "password": password, "csrf_token": token(client)},
            environ_base={"REMOTE_ADDR": PROXY},
            headers={"X-Forwarded-For": client_ip},
        ).status_code

    codes = [attempt("203.0.113.50", f"staff{i}", "wrong password!!") for i in range(25)]
    assert codes.count(401) == config.login_attempts_per_address and codes[-1] == 429
    assert attempt("198.51.100.20", USER, PASSWORD) == 302
