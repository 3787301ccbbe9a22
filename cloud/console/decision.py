"""The case page's one form: diagnosis + recommendation + reply, checked before anything is
written. A form with a mistake comes back with every field as it was typed (the reply too), and
one plain sentence per problem."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass

from cloud.console.recommendations import (
    TEMPLATES,
    compose,
    needs_urgent_confirmation,
    template_too_urgent,
)
from cloud.console.store import SubmissionIds
from kiosk.model.conditions import CONDITIONS

MAX_MESSAGE = 2000
MAX_RECOMMENDATION = 4000
# A random token put in the form when it is shown: the server derives the ids of what the
# submission writes from it (never takes an id from the form), so a form sent twice is refused
# the second time instead of writing twice.
NONCE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
AFTER_NEXT = "next"
AFTER_QUEUE = "queue"


@dataclass(frozen=True)
class DecisionForm:
    """What was typed, exactly, so that it can be shown again."""

    label: str = ""
    template: str = ""
    free_text: str = ""
    reply: str = ""
    confirmed_non_urgent: bool = False
    nonce: str = ""
    after: str = AFTER_QUEUE
    worklist: str = ""  # the queue's filters, so "save and next" follows the same list

    @classmethod
    def from_form(cls, form: Mapping[str, str]) -> DecisionForm:
        return cls(
            label=form.get("label", ""),
            template=form.get("template", ""),
            free_text=form.get("recommendation", ""),
            reply=form.get("reply", ""),
            confirmed_non_urgent=form.get("confirm_non_urgent", "") == "yes",
            nonce=form.get("nonce", ""),
            after=AFTER_NEXT if form.get("after") == AFTER_NEXT else AFTER_QUEUE,
            worklist=form.get("worklist", ""),
        )


@dataclass(frozen=True)
class ReviewPart:
    label: str
    recommendation: str


@dataclass(frozen=True)
class Decision:
    review: ReviewPart | None
    reply: str | None  # None: no message


class FormError(ValueError):
    def __init__(self, problems: list[str], confirm: bool = False) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems
        self.confirm = confirm  # the only problem is the missing cancer confirmation


def decide(form: DecisionForm) -> Decision:
    """The decision the form asks for, or FormError saying what to fix."""
    problems: list[str] = []
    reply = form.reply.strip()
    recommendation = compose(form.template, form.free_text)
    wants_review = bool(form.label or form.template or form.free_text.strip())
    if not NONCE.match(form.nonce):
        problems.append("This form is out of date: reload the page (your text is kept below).")
    if not wants_review and not reply:
        problems.append("Choose a diagnosis and a recommendation, or write a reply.")
    if form.template and form.template not in TEMPLATES:
        problems.append("Choose a recommendation template from the list.")
    if len(reply) > MAX_MESSAGE:
        problems.append(f"The reply is longer than {MAX_MESSAGE} characters.")
    if wants_review:
        if form.label not in CONDITIONS:
            problems.append("Choose a diagnosis.")
        if not recommendation:
            problems.append("Choose a recommendation template or write a recommendation.")
        elif len(recommendation) > MAX_RECOMMENDATION:
            problems.append(f"The recommendation is longer than {MAX_RECOMMENDATION} characters.")
        if template_too_urgent(form.label, form.template):
            problems.append(
                f"The {_pretty(form.template)} template is more urgent than the diagnosis "
                f"{_pretty(form.label)}: choose the matching diagnosis or another template."
            )
    if problems:
        raise FormError(problems)
    confirm = wants_review and needs_urgent_confirmation(form.label, form.template)
    if confirm and not form.confirmed_non_urgent:
        raise FormError(
            [
                f"{_pretty(form.label).capitalize()} is a possible cancer, but the "
                "recommendation is not an urgent referral. Confirm below to send it anyway."
            ],
            confirm=True,
        )
    review = ReviewPart(form.label, recommendation) if wants_review else None
    return Decision(review=review, reply=reply or None)


def _pretty(label: str) -> str:
    return label.replace("_", " ")


def submission_ids(secret: bytes, username: str, case_id: str, nonce: str) -> SubmissionIds:
    """The ids a submission writes: keyed hashes of who sends which form for which case. A
    client cannot aim them at an existing document (it does not know the key), and the same
    form sent again yields the same ids, which create-only writes then refuse."""

    def derive(kind: str) -> str:
        msg = f"{kind}\n{username}\n{case_id}\n{nonce}".encode()
        return hmac.new(secret, msg, hashlib.sha256).hexdigest()[:40]

    return SubmissionIds(
        review_audit=derive("review-audit"),
        message=derive("message"),
        message_audit=derive("message-audit"),
    )
