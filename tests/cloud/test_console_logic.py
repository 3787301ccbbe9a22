"""The console's pure rules, without servers: the form's decision, the worklist's order and
filters, the overview's figures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cloud.console import figures
from cloud.console.decision import DecisionForm, FormError, decide, submission_ids
from cloud.console.recommendations import TEMPLATES
from cloud.console.store import Case, Result
from cloud.console.worklist import Filters, build
from kiosk.cases.store import Review
from kiosk.model.conditions import CONDITIONS

NONCE = "n" * 24
NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)


def result(label: str, urgency: str = "routine") -> Result:
    return Result(label, 0.9, urgency, False, "v", dict.fromkeys(CONDITIONS, 0.0))


def case(case_id: str, rank: int = 2, hours: float = 1, kiosk: str = "k1", **kw) -> Case:
    return Case(
        case_id=case_id,
        kiosk_id=kiosk,
        created_at=NOW - timedelta(hours=hours),
        status=kw.pop("status", "uploaded"),
        urgency_rank=rank,
        body_site="arm",
        patient_ref="",
        image=None,
        on_device=kw.pop("on_device", result("eczema")),
        cloud=kw.pop("cloud", None),
        review=kw.pop("review", None),
        **kw,
    )


# --------------------------------------------------------------------------- the form


def test_a_review_needs_a_label_and_a_recommendation_and_keeps_what_was_typed():
    with pytest.raises(FormError) as e:
        decide(DecisionForm(template="eczema", reply="hello", nonce=NONCE))
    assert e.value.problems == ["Choose a diagnosis."]
    with pytest.raises(FormError) as e:
        decide(DecisionForm(label="eczema", nonce=NONCE))
    assert "recommendation" in e.value.problems[0]
    with pytest.raises(FormError):
        decide(DecisionForm(nonce=NONCE))  # nothing at all
    with pytest.raises(FormError):
        decide(DecisionForm(label="eczema", template="eczema", nonce="short"))
    reply_only = decide(DecisionForm(reply="  Please send another photo. ", nonce=NONCE))
    assert reply_only.review is None and reply_only.reply == "Please send another photo."
    both = decide(
        DecisionForm(label="acne", template="acne", free_text="Soap.", reply="Hi", nonce=NONCE)
    )
    assert both.review.recommendation == TEMPLATES["acne"] + "\n\nSoap." and both.reply == "Hi"


def test_the_template_cannot_be_more_urgent_than_the_label():
    for label in ("other", "eczema", "actinic_keratosis"):
        with pytest.raises(FormError) as e:
            decide(DecisionForm(label=label, template="melanoma", nonce=NONCE))
        assert not e.value.confirm
    with pytest.raises(FormError):  # "soon" template on a "none" label
        decide(DecisionForm(label="other", template="actinic_keratosis", nonce=NONCE))
    assert decide(DecisionForm(label="melanoma", template="basal_cell_carcinoma", nonce=NONCE))


def test_a_cancer_without_an_urgent_template_needs_confirming():
    for template, text in (("eczema", ""), ("", "Watch it.")):
        form = DecisionForm(label="melanoma", template=template, free_text=text, nonce=NONCE)
        with pytest.raises(FormError) as e:
            decide(form)
        assert e.value.confirm
        confirmed = DecisionForm(
            label="melanoma",
            template=template,
            free_text=text,
            nonce=NONCE,
            confirmed_non_urgent=True,
        )
        assert decide(confirmed).review.label == "melanoma"


def test_submission_ids_are_the_servers_and_differ_per_user_case_and_form():
    a = submission_ids(b"k" * 32, "u", "c", NONCE)
    assert a == submission_ids(b"k" * 32, "u", "c", NONCE)  # the same form sent again
    others = [
        submission_ids(b"x" * 32, "u", "c", NONCE),
        submission_ids(b"k" * 32, "v", "c", NONCE),
        submission_ids(b"k" * 32, "u", "d", NONCE),
        submission_ids(b"k" * 32, "u", "c", "m" * 24),
    ]
    assert all(o.message != a.message for o in others)
    assert len({a.message, a.message_audit, a.review_audit}) == 3


# --------------------------------------------------------------------------- the worklist


def test_filters_from_a_query_string_drop_what_is_malformed():
    f = Filters.from_args(
        {"kiosk": "k 1<", "urgency": "panic", "reviewed_days": "5", "q": "x" * 80, "disagrees": "1"}
    )
    assert f == Filters(disagrees=True)
    g = Filters.from_args({"kiosk": "k1", "urgency": "urgent", "reviewed_days": "7", "q": "P-1"})
    assert Filters.from_args(dict(pair.split("=") for pair in g.to_query().split("&"))) == g


def test_questions_come_first_then_urgent_then_oldest_and_next_wraps_round():
    urgent = case("urgent", rank=0, hours=1)
    old = case("old", rank=2, hours=9)
    new = case("new", rank=2, hours=2)
    asked = case("asked", rank=3, status="reviewed", review=Review("eczema", "x", "Dr", NOW))
    raised = case("raised", rank=2, hours=1, cloud=result("melanoma", "urgent"))
    wl = build([new, old, urgent, raised], {"asked": (asked, NOW)}, [], Filters(), found=None)
    assert wl.order() == ["asked", "raised", "urgent", "old", "new"]
    assert wl.next_after("urgent") == "old"
    assert wl.next_after("new") == "asked"  # round to the top
    assert wl.next_after("gone") == "asked"
    assert build([urgent], {}, [], Filters()).next_after("urgent") is None
    disagree = build([new, raised], {}, [], Filters(disagrees=True))
    assert [r.case.case_id for r in disagree.waiting] == ["raised"]


# --------------------------------------------------------------------------- the overview


def test_figures_count_agreement_per_class_and_leave_demo_cases_out():
    rows = [
        case("a", review=Review("melanoma", "r", "Dr", NOW), on_device=result("melanoma")),
        case("b", review=Review("melanoma", "r", "Dr", NOW), on_device=result("eczema")),
        case("c", review=Review("eczema", "r", "Dr", NOW), cloud=result("eczema")),
        case("d", review=Review("other", "r", "Dr", NOW), demo=True),
        case("e"),
    ]
    f = figures.compute(rows, 14, NOW.date())
    assert f.kiosk_agreement.cell("melanoma", "melanoma") == 1
    assert f.kiosk_agreement.cell("melanoma", "eczema") == 1
    assert f.kiosk_agreement.agreement("melanoma") == 0.5
    assert f.kiosk_agreement.agreement("other") is None  # the demo case is not counted
    assert f.cloud_agreement.total == 1 and f.cloud_agreement.overall == 1.0
    assert f.total == 4 and f.demo_cases == 1
    assert f.review_times[0].reviewed == 3 and f.review_times[0].median_h == pytest.approx(1)


def test_a_sided_body_site_reads_as_words() -> None:
    from cloud.console.app import _site

    assert _site("arm_left") == "arm, left"
    assert _site("face") == "face"
    assert _site("") == "not given"
