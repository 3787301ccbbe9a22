"""The review console's pages as a dermatologist with thirty cases uses them: the worklist, the
one-decision case page and the programme overview, served by `skinscan-cloud review` against
the real Firestore and Storage emulators and driven by Debian's chromium (Playwright).

Every page is also saved as a screenshot under the test's tmp dir (and copied to
$SKINSCAN_SCREENSHOT_DIR when it is set) for a person to look at.
"""

from __future__ import annotations

import io
import os
import shutil
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from PIL import Image

from cloud.console.signing import ReviewSigner, load_or_create_key
from cloud.console.store import OPEN_STATUSES
from kiosk.cases import cloud_schema as schema
from kiosk.cases.case_code import case_code
from kiosk.cases.specialist_signature import KIND_MESSAGE, SignedContent, verifies
from kiosk.model.conditions import CONDITIONS
from tests.cloud import test_cloud_console as base
from tests.cloud.test_compact_pictures import full_picture_arrives, put_compact_case
from tests.cloud_helpers import case_doc, put_case, sample_images

# The console, its signing key and the browser: the same module fixtures as the console's
# own tests (one server per module).
browser = base.browser
console = base.console
review_key = base.review_key
NAME, USER, review_content, sign_in = base.NAME, base.USER, base.review_content, base.sign_in

DESKTOP = {"width": 1280, "height": 800}
TABLET = {"width": 768, "height": 1024}


@pytest.fixture
def page(browser, console):
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    page.set_default_timeout(20000)
    yield page
    context.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("console-shots")


def shoot(page, shots: Path, name: str) -> Path:
    # Lazy thumbnails below the first screen load only when scrolled to: load them all first,
    # so the screenshot shows what a person scrolling would see.
    page.evaluate(
        """() => Promise.all([...document.images].map(img => {
            img.loading = "eager";
            return img.complete && img.naturalWidth ? 1 : img.decode().catch(() => 0); }))"""
    )
    page.evaluate("window.scrollTo(0, 0)")  # the sticky picture is drawn where it sits
    path = shots / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    extra = os.environ.get("SKINSCAN_SCREENSHOT_DIR")
    if extra:
        Path(extra).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(extra) / path.name)
    assert Image.open(path).size[0] == page.viewport_size["width"]
    return path


def cases(fb):
    return fb.db.collection(schema.CASES)


def add_cloud(fb, case_id: str, label: str, confidence: float = 0.6) -> None:
    probabilities = {c: (confidence if c == label else (1 - confidence) / 6) for c in CONDITIONS}
    urgency = {"melanoma": "urgent", "basal_cell_carcinoma": "urgent"}.get(label, "routine")
    cases(fb).document(case_id).update(
        {
            "status": schema.STATUS_CLASSIFIED,
            "cloud": {
                "label": label,
                "confidence": confidence,
                "probabilities": probabilities,
                "abstained": False,
                "urgency": urgency,
                "model_version": "2026.11.26",
            },
        }
    )


def add_review(fb, case_id: str, label: str, reviewed_at: datetime | None = None) -> None:
    cases(fb).document(case_id).update(
        {
            "status": schema.STATUS_REVIEWED,
            "review": {
                "label": label,
                "recommendation": "Seen.",
                "reviewer": NAME,
                "reviewed_at": reviewed_at or datetime.now(UTC) - timedelta(hours=1),
            },
        }
    )


def add_message(fb, case_id: str, author: str, body: str, minutes_ago: float) -> None:
    cases(fb).document(case_id).collection(schema.MESSAGES).document().set(
        {
            "case_id": case_id,
            "kiosk_id": "kiosk-test",
            "author": author,
            "author_name": "" if author == schema.AUTHOR_HEALTH_WORKER else NAME,
            "body": body,
            "created_at": datetime.now(UTC) - timedelta(minutes=minutes_ago),
        }
    )
    if author == schema.AUTHOR_HEALTH_WORKER:
        # What the kiosk's send_message does right after the message: flag the case.
        cases(fb).document(case_id).update({"awaiting_reply": True})


def signed_answer(env, case_id: str, body: str) -> None:
    """A dermatologist message exactly as the console writes one, signed with its key."""
    signer = ReviewSigner(load_or_create_key(env.config.review_key_file))
    ref = cases(env.fb).document(case_id).collection(schema.MESSAGES).document()
    signature = signer.message(
        case_id=case_id,
        kiosk_id="kiosk-test",
        message_id=ref.id,
        reviewer=USER,
        reviewer_name=NAME,
        body=body,
    )
    ref.set(
        {
            "case_id": case_id,
            "kiosk_id": "kiosk-test",
            "author": schema.AUTHOR_DERMATOLOGIST,
            "author_name": NAME,
            "reviewer_username": USER,
            "body": body,
            "created_at": datetime.now(UTC) - timedelta(minutes=10),
            "signed_at": signature.signed_at,
            "signature": signature.signature,
        }
    )


def ids_in(page, selector: str) -> list[str]:
    links = page.locator(f"{selector} a.case-link")
    return [
        links.nth(i).get_attribute("href").split("?")[0].rsplit("/", 1)[1]
        for i in range(links.count())
    ]


def submit(page, button: str = "Save") -> None:
    with page.expect_navigation():
        page.get_by_role("button", name=button, exact=True).click()


# --------------------------------------------------------------------------- the worklist


def test_worklist_groups_markers_filters_and_search(clean, console, page, shots):
    fb = clean.fb
    images = sample_images()
    hours = datetime.now(UTC) - timedelta(hours=6)
    # Reviewed yesterday, then the health worker asked again: must come back.
    asked_again = put_case(fb, image=images[0], label="eczema", created_at=hours)
    add_review(fb, asked_again, "eczema")
    add_message(fb, asked_again, schema.AUTHOR_HEALTH_WORKER, "It is spreading now.", 20)
    # Asked and answered by the console: not in the unanswered group.
    answered = put_case(fb, image=images[1], label="acne")
    add_message(fb, answered, schema.AUTHOR_HEALTH_WORKER, "Is this contagious?", 30)
    signed_answer(clean, answered, "No.")
    # "Answered" by a forged dermatologist message (no console signature): still unanswered.
    forged = put_case(fb, image=images[5], label="eczema", created_at=hours)
    add_review(fb, forged, "eczema")
    add_message(fb, forged, schema.AUTHOR_HEALTH_WORKER, "Should I refer?", 40)
    add_message(fb, forged, schema.AUTHOR_DERMATOLOGIST, "No need.", 35)
    # Kiosk says melanoma, cloud says eczema.
    disagree = put_case(fb, image=images[4], urgency="urgent", label="melanoma")
    add_cloud(fb, disagree, "eczema")
    # Another kiosk, a patient reference, oldest.
    other_kiosk = put_case(
        fb, image=images[2], kiosk_id="kiosk-b", label="dermatofibroma", created_at=hours
    )
    cases(fb).document(other_kiosk).update({"patient_ref": "P-0042"})
    demo = put_case(fb, image=images[3], label="acne")
    cases(fb).document(demo).update({"demo": True, "provenance": {"source": "demo"}})
    done_last_week = put_case(fb, image=images[5], label="eczema", created_at=hours)
    add_review(fb, done_last_week, "eczema", datetime.now(UTC) - timedelta(days=3))

    sign_in(page, console)
    assert ids_in(page, "#group-questions") == [forged, asked_again]  # oldest question first
    waiting = ids_in(page, "#group-waiting")
    assert waiting[0] == disagree  # urgent first
    assert set(waiting) == {disagree, answered, other_kiosk, demo}
    assert waiting.index(other_kiosk) < waiting.index(answered)  # then oldest
    assert page.locator("#group-reviewed").count() == 0  # only when asked for

    row = page.locator("#group-waiting tbody tr").nth(0)
    text = row.inner_text()
    assert "Kiosk ≠ cloud" in text and "melanoma" in text and "eczema" in text
    assert "forearm" in text and "kiosk-test" in text
    demo_row = page.locator("#group-waiting tr.demo")
    assert demo_row.count() == 1 and "Demo" in demo_row.inner_text()
    thumb = row.locator("td.thumb img")
    width = thumb.evaluate(
        "img => img.complete && img.naturalWidth ? img.naturalWidth"
        " : new Promise(r => img.onload = () => r(img.naturalWidth))"
    )
    assert 0 < width <= 96
    assert "Question" in page.locator("#group-questions").inner_text()
    shoot(page, shots, "worklist-1280")

    page.get_by_label("Kiosk", exact=True).select_option("kiosk-b")
    with page.expect_navigation():
        page.get_by_role("button", name="Show").click()
    assert ids_in(page, "#group-waiting") == [other_kiosk]
    assert page.locator("#group-questions").count() == 0

    page.goto(console + "/?disagrees=1")
    assert ids_in(page, "#group-waiting") == [disagree]
    page.goto(console + "/?has_question=1")
    assert ids_in(page, "#group-questions") == [forged, asked_again]
    assert ids_in(page, "#group-waiting") == []
    page.goto(console + "/?urgency=urgent")
    assert ids_in(page, "#group-waiting") == [disagree]
    page.goto(console + "/?reviewed_days=7")
    assert ids_in(page, "#group-reviewed") == [done_last_week]
    page.goto(console + "/?reviewed_days=1")
    assert ids_in(page, "#group-reviewed") == []

    page.goto(console + "/")
    page.get_by_label("Case code, id or patient reference").fill("P-0042")
    with page.expect_navigation():
        page.get_by_role("button", name="Show").click()
    assert ids_in(page, "#group-found") == [other_kiosk]
    page.get_by_label("Case code, id or patient reference").fill(disagree[:8])
    with page.expect_navigation():
        page.get_by_role("button", name="Show").click()
    assert ids_in(page, "#group-found") == [disagree]
    # The code the kiosk showed the health worker, typed as heard (any case).
    page.get_by_label("Case code, id or patient reference").fill(case_code(disagree).lower())
    with page.expect_navigation():
        page.get_by_role("button", name="Show").click()
    assert ids_in(page, "#group-found") == [disagree]
    page.goto(console + "/?q=" + done_last_week)  # a reviewed case is found too
    assert ids_in(page, "#group-found") == [done_last_week]
    page.goto(console + "/?q=nothing-like-it")
    assert "No case has this code, id or patient reference" in page.inner_text("main")

    page.set_viewport_size(TABLET)
    page.goto(console + "/")
    shoot(page, shots, "worklist-768")


# --------------------------------------------------------------------------- the case page


def test_one_form_nothing_preselected_draft_kept_then_review_and_reply_in_one_submit(
    clean,
    console,
    page,
    shots,
    review_key,
):
    fb = clean.fb
    case_id = put_case(fb, image=sample_images()[4], urgency="urgent", label="melanoma")
    add_cloud(fb, case_id, "melanoma", 0.81)
    add_message(fb, case_id, schema.AUTHOR_HEALTH_WORKER, "It bleeds sometimes.", 15)
    sign_in(page, console)
    page.goto(f"{console}/cases/{case_id}")
    shoot(page, shots, "case-1280")

    assert page.locator("main form").count() == 1  # one decision, one form
    checked = page.locator('#decision-form input[name="label"]:checked')
    assert checked.count() == 0  # nothing preselected
    assert page.locator("#template").input_value() == ""
    suggestion = page.locator("#suggestion").inner_text()
    assert "Cloud suggests melanoma (81%)" in suggestion
    assert "It bleeds sometimes." in page.locator("ol.thread").inner_text()
    # the thread sits beside the picture, not below the form
    picture = page.locator("#zoom").bounding_box()
    thread = page.locator("ol.thread").bounding_box()
    assert thread["x"] > picture["x"] + picture["width"] - 1
    assert thread["y"] < picture["y"] + picture["height"]

    # A mistake: no diagnosis. Nothing is saved and nothing typed is lost.
    page.get_by_label("Recommendation template").select_option("melanoma")
    page.get_by_label("Your words for the health worker").fill("Excision at the district clinic.")
    page.get_by_label("Reply to the health worker").fill("Thank you, bleeding matters: see below.")
    submit(page)
    assert "Choose a diagnosis." in page.locator("#form-problems").inner_text()
    assert page.get_by_label("Reply to the health worker").input_value() == (
        "Thank you, bleeding matters: see below."
    )
    assert page.get_by_label("Your words for the health worker").input_value() == (
        "Excision at the district clinic."
    )
    assert page.locator("#template").input_value() == "melanoma"
    shoot(page, shots, "case-form-error")
    assert "review" not in case_doc(fb, case_id)
    ref = cases(fb).document(case_id)
    assert len(list(ref.collection(schema.MESSAGES).stream())) == 1

    # A keyboard shortcut chooses the label (6 = melanoma), then one submit saves both.
    page.locator("h1").click()
    page.keyboard.press(str(CONDITIONS.index("melanoma") + 1))
    assert page.get_by_label("melanoma").is_checked()
    submit(page)
    assert page.get_by_text("Review and reply saved").is_visible()

    doc = case_doc(fb, case_id)
    assert doc["status"] == schema.STATUS_REVIEWED
    assert doc["review"]["label"] == "melanoma"
    assert doc["review"]["recommendation"].endswith("Excision at the district clinic.")
    assert verifies(review_content(case_id, doc), doc["review"]["signature"], review_key)
    (mine,) = [
        (m.id, m.to_dict())
        for m in ref.collection(schema.MESSAGES).stream()
        if m.to_dict()["author"] == schema.AUTHOR_DERMATOLOGIST
    ]
    message_id, m = mine
    assert m["body"] == "Thank you, bleeding matters: see below."
    content = SignedContent(
        kind=KIND_MESSAGE,
        case_id=case_id,
        kiosk_id="kiosk-test",
        message_id=message_id,
        author=m["author"],
        author_name=m["author_name"],
        reviewer=m["reviewer_username"],
        label="",
        text=m["body"],
        signed_at=m["signed_at"],
    )
    assert m["reviewer_username"] == USER and m["author_name"] == NAME
    assert verifies(content, m["signature"], review_key)


def test_a_cancer_with_a_calm_recommendation_asks_for_confirmation(clean, console, page):
    case_id = put_case(clean.fb, image=sample_images()[4], urgency="urgent", label="melanoma")
    sign_in(page, console)
    page.goto(f"{console}/cases/{case_id}")
    page.get_by_label("melanoma").check()
    page.get_by_label("Recommendation template").select_option("eczema")
    dialogs: list[str] = []

    def dismiss(dialog):
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.once("dialog", dismiss)
    page.get_by_role("button", name="Save", exact=True).click()
    page.wait_for_timeout(300)
    assert dialogs and "possible cancer" in dialogs[0]
    assert "review" not in case_doc(clean.fb, case_id)  # cancelled: nothing sent

    page.once("dialog", lambda d: d.accept())
    submit(page)
    assert page.get_by_text("Review saved").is_visible()
    assert case_doc(clean.fb, case_id)["review"]["label"] == "melanoma"


def test_save_and_next_moves_to_the_next_worklist_case(clean, console, page):
    fb = clean.fb
    old = datetime.now(UTC) - timedelta(hours=2)
    first = put_case(fb, image=sample_images()[4], urgency="urgent", label="melanoma")
    second = put_case(fb, image=sample_images()[1], urgency="soon", label="actinic_keratosis")
    third = put_case(fb, image=sample_images()[0], urgency="routine", label="acne", created_at=old)
    sign_in(page, console)
    assert ids_in(page, "#group-waiting") == [first, second, third]
    page.locator("#group-waiting a.case-link").first.click()
    page.wait_for_load_state()
    for current, following in ((first, second), (second, third)):
        assert page.url.split("?")[0].endswith(f"/cases/{current}")
        label = case_doc(fb, current)["on_device"]["label"]
        page.get_by_label(label.replace("_", " ")).check()
        page.get_by_label("Recommendation template").select_option(label)
        page.once("dialog", lambda d: d.accept())
        submit(page, "Save and next")
        assert page.url.split("?")[0].endswith(f"/cases/{following}")
        assert case_doc(fb, current)["status"] == schema.STATUS_REVIEWED


def test_the_case_page_shows_provenance_marks_demo_cases_and_zooms(clean, console, page, shots):
    fb = clean.fb
    case_id = put_case(fb, image=sample_images()[2], label="dermatofibroma")
    cases(fb).document(case_id).update(
        {
            "demo": True,
            "provenance": {
                "source": "demo",
                "demo": True,
                "lens": "dermoscopic",
                "picture_kind": "dermoscopic",
                "quality": {"sharpness": 0.71, "brightness": 0.52},
                "reasons": [],
                "crop_box": [80, 40, 480, 480],
                "frame_size": [640, 560],
                "frames_averaged": 12,
                "model_version": "2026.11.26",
            },
        }
    )
    old = put_case(fb, image=sample_images()[3])  # saved before provenance existed
    sign_in(page, console)
    page.goto(f"{console}/cases/{case_id}")
    facts = page.locator("#provenance").inner_text()
    for expected in ("demo", "dermoscopic", "12", "480×480 at 80,40 of 640×560", "sharpness 0.71"):
        assert expected in facts, expected
    assert "Demo picture — not a patient" in page.locator("h1").inner_text()

    image = page.locator("#case-image")
    image.evaluate("img => img.complete && img.naturalWidth ? 1 : new Promise(r => img.onload = r)")
    box = page.locator("#zoom").bounding_box()
    assert box["width"] >= 560  # large, not a 448 px thumbnail
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.wheel(0, -400)
    page.wait_for_function(
        "() => document.getElementById('case-image').style.transform.includes('scale')"
    )
    scale = image.evaluate("img => img.getBoundingClientRect().width / img.offsetWidth")
    assert scale > 1.5
    page.get_by_role("button", name="Fit").click()
    fitted = image.evaluate("img => img.getBoundingClientRect().width / img.offsetWidth")
    assert abs(fitted - 1) < 0.01
    # A pinch: two fingers moving apart.
    page.locator("#zoom").evaluate(
        """(box) => {
        const r = box.getBoundingClientRect(), cx = r.left + r.width / 2, cy = r.top + r.height / 2;
        const ev = (type, id, x) => box.dispatchEvent(new PointerEvent(type, {pointerId: id,
            clientX: x, clientY: cy, bubbles: true, pointerType: "touch", isPrimary: id === 1}));
        ev("pointerdown", 1, cx - 20); ev("pointerdown", 2, cx + 20);
        for (let d = 20; d <= 100; d += 10) {
            ev("pointermove", 1, cx - d); ev("pointermove", 2, cx + d); }
        ev("pointerup", 1, cx - 100); ev("pointerup", 2, cx + 100); }"""
    )
    pinched = image.evaluate("img => img.getBoundingClientRect().width / img.offsetWidth")
    assert pinched > 3  # the fingers moved 5x apart (zoom stops at 8x)
    page.get_by_role("button", name="Fit").click()
    fitted = image.evaluate("img => img.getBoundingClientRect().width / img.offsetWidth")
    assert abs(fitted - 1) < 0.01
    full = page.locator("#full-size")
    assert "×" in full.inner_text()  # the full resolution's size is given
    response = page.request.get(console + full.get_attribute("href"))
    assert response.status == 200
    assert Image.open(io.BytesIO(response.body())).size[0] == image.evaluate(
        "img => img.naturalWidth"
    )
    shoot(page, shots, "case-demo-provenance")

    page.goto(f"{console}/cases/{old}")
    assert "Not recorded" in page.locator("#provenance").inner_text()
    assert page.locator("h1 .demo").count() == 0
    page.set_viewport_size(TABLET)
    shoot(page, shots, "case-768")


# --------------------------------------------------------------------------- the overview


def test_a_compact_first_case_says_which_picture_it_shows(clean, console, page, shots):
    fb = clean.fb
    image = sample_images()[4]
    case_id, compact = put_compact_case(fb, image, urgency="urgent", label="melanoma")
    sign_in(page, console)
    row = page.locator("#group-waiting tbody tr").nth(0)
    assert "Compact picture only" in row.inner_text()
    page.goto(f"{console}/cases/{case_id}")
    picture = page.locator("#case-image")
    width = picture.evaluate(
        "img => img.complete && img.naturalWidth ? img.naturalWidth"
        " : new Promise(r => img.onload = () => r(img.naturalWidth))"
    )
    assert width == Image.open(io.BytesIO(compact)).width  # the compact copy is shown
    caption = page.locator("#picture-part").inner_text()
    assert caption.startswith("Compact picture (") and "still on its way" in caption
    assert page.locator("#full-size").count() == 0
    shoot(page, shots, "case-compact-first")

    full_picture_arrives(fb, case_id, image)
    page.reload()
    full = Image.open(image)
    page.wait_for_function(
        "() => document.querySelector('[data-image-size]').textContent.length > 0"
    )
    caption = page.locator("#picture-part").inner_text()
    assert caption.startswith(f"Full-resolution picture ({full.width}×{full.height}, ")
    assert "×" in page.locator("#full-size").inner_text()


def test_overview_agreement_tables_equal_counts_from_the_documents(clean, console, page, shots):
    fb = clean.fb
    now = datetime.now(UTC)
    spec = [  # (kiosk label, cloud label or None, specialist label or None, days ago, kiosk)
        ("melanoma", "melanoma", "melanoma", 1, "kiosk-a"),
        ("melanoma", "basal_cell_carcinoma", "basal_cell_carcinoma", 2, "kiosk-a"),
        ("eczema", "eczema", "eczema", 2, "kiosk-b"),
        ("eczema", "melanoma", "melanoma", 3, "kiosk-b"),
        ("acne", None, "acne", 4, "kiosk-a"),
        ("acne", "acne", "eczema", 5, "kiosk-c"),
        ("other", "other", None, 0, "kiosk-c"),
        ("dermatofibroma", "melanoma", None, 6, "kiosk-a"),
    ]
    images = sample_images()
    for i, (kiosk, cloud, specialist, days, kiosk_id) in enumerate(spec):
        created = now - timedelta(days=days, hours=3)
        urgency = "urgent" if kiosk == "melanoma" else "routine"
        case_id = put_case(
            fb,
            image=images[i % len(images)],
            label=kiosk,
            urgency=urgency,
            created_at=created,
            kiosk_id=kiosk_id,
        )
        if cloud:
            add_cloud(fb, case_id, cloud)
        if specialist:
            add_review(fb, case_id, specialist, created + timedelta(hours=2))
    demo = put_case(fb, image=images[0], label="melanoma")
    add_review(fb, demo, "other")
    cases(fb).document(demo).update({"demo": True})
    fb.db.collection(schema.KIOSKS).document("kiosk-a").set(
        {"kiosk_id": "kiosk-a", "last_seen": now - timedelta(minutes=5), "queue_depth": 3}
    )

    # The expected figures, counted straight from the emulator's documents.
    kiosk_pairs: Counter = Counter()
    cloud_pairs: Counter = Counter()
    waiting = 0
    for snap in cases(fb).stream():
        d = snap.to_dict()
        waiting += d["status"] in OPEN_STATUSES
        if d.get("demo") or "review" not in d:
            continue
        kiosk_pairs[(d["review"]["label"], d["on_device"]["label"])] += 1
        if "cloud" in d:
            cloud_pairs[(d["review"]["label"], d["cloud"]["label"])] += 1

    sign_in(page, console)
    page.goto(console + "/overview")
    for table, pairs in (("#agreement-kiosk", kiosk_pairs), ("#agreement-cloud", cloud_pairs)):
        shown = {
            (cell.get_attribute("data-specialist"), cell.get_attribute("data-machine")): int(
                cell.inner_text()
            )
            for cell in page.locator(f"{table} td[data-machine]").all()
        }
        assert len(shown) == len(CONDITIONS) ** 2
        assert {k: v for k, v in shown.items() if v} == dict(pairs), table
    melanoma = page.locator('#agreement-cloud td.agreement[data-specialist="melanoma"]')
    assert melanoma.inner_text() == "100%"  # both specialist melanomas: cloud said melanoma
    kiosk_melanoma = page.locator('#agreement-kiosk td.agreement[data-specialist="melanoma"]')
    assert kiosk_melanoma.inner_text() == "50%"
    assert page.locator("#queue-depth").inner_text() == str(waiting)
    assert page.locator("#cases-total").inner_text() == str(len(spec))  # demo left out
    per_kiosk = {
        r.locator("th").inner_text(): r.locator("td").last.inner_text()
        for r in page.locator("#per-kiosk tbody tr").all()
    }
    assert per_kiosk == {"kiosk-a": "4", "kiosk-b": "2", "kiosk-c": "2"}
    assert "2.0 h" in page.locator("#review-times").inner_text()
    assert "5 min ago" in page.locator("#kiosks").inner_text()
    shoot(page, shots, "overview-1280")

    page.get_by_label("Kiosk", exact=True).select_option("kiosk-b")
    with page.expect_navigation():
        page.get_by_role("button", name="Show").click()
    assert page.locator("#cases-total").inner_text() == "2"

    page.set_viewport_size(TABLET)
    page.goto(console + "/overview")
    smallest = page.evaluate(
        """() => Math.min(...[...document.querySelectorAll('svg.chart text')].map(
            t => t.getBoundingClientRect().height))"""
    )
    assert smallest >= 12, f"chart labels {smallest:.1f} px high on a tablet"
    shoot(page, shots, "overview-768")


# --------------------------------------------------------------------------- all pages


def test_pages_fit_768_px_have_labels_contrast_and_a_favicon(clean, console, page, shots):
    case_id = put_case(clean.fb, image=sample_images()[0])
    page.goto(console + "/login")
    shoot(page, shots, "login-1280")
    add_message(clean.fb, case_id, schema.AUTHOR_HEALTH_WORKER, "A question.", 5)
    icon = page.request.get(console + "/favicon.ico")  # no sign-in needed
    assert icon.status == 200 and icon.headers["content-type"] == "image/x-icon"
    assert Image.open(io.BytesIO(icon.body())).format == "ICO"

    page.set_viewport_size(TABLET)
    sign_in(page, console)
    unlabelled = """() => [...document.querySelectorAll('input, select, textarea')]
        .filter(e => e.type !== 'hidden' && e.labels.length === 0).map(e => e.name)"""
    # Text colour against the first opaque background behind it: WCAG AA (4.5:1).
    low_contrast = """() => {
      const rgb = s => s.match(/[\\d.]+/g).map(Number);
      const lum = ([r, g, b]) => { const f = c => { c /= 255; return c <= 0.03928 ? c / 12.92
        : Math.pow((c + 0.055) / 1.055, 2.4); }; return 0.2126 * f(r) + 0.7152 * f(g)
        + 0.0722 * f(b); };
      const bg = el => { for (; el; el = el.parentElement) { const c = rgb(
        getComputedStyle(el).backgroundColor); if (c.length < 4 || c[3] > 0.5) return c; }
        return [255, 255, 255]; };
      const bad = [];
      for (const el of document.querySelectorAll('body *')) {
        if (![...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim())) continue;
        if (!el.getClientRects().length || el.closest('svg')) continue;
        const a = lum(rgb(getComputedStyle(el).color)), b = lum(bg(el));
        const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
        if (ratio < 4.5) bad.push(el.tagName + ' ' + el.textContent.trim().slice(0, 30)
          + ' ' + ratio.toFixed(2));
      }
      return bad; }"""
    for path in ("/", f"/cases/{case_id}", "/overview", "/?reviewed_days=7"):
        page.goto(console + path)
        assert page.evaluate(unlabelled) == [], path
        assert page.evaluate(low_contrast) == [], path
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{path} scrolls sideways at 768 px by {overflow} px"
        page.keyboard.press("Tab")  # the first stop is the skip link
        assert page.evaluate("document.activeElement.textContent") == "Skip to content"

    # Focus order on the case page: the picture, then the diagnosis, then the texts, then Save.
    page.goto(f"{console}/cases/{case_id}")
    order = page.evaluate(
        "() => [...document.querySelectorAll('#zoom, input[name=label], #template, "
        "#recommendation, #reply, button[value=next]')].map(e => e.id || e.value)"
    )
    assert order[0] == "zoom" and order[-1] == "next"
    assert order.index("template") < order.index("recommendation") < order.index("reply")
