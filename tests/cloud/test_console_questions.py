"""The worklist's unanswered questions, built from the cases flagged `awaiting_reply` (the
kiosk sets the flag after each health worker's message; the console clears it once every
question has a signed answer), against the real Firestore and Storage emulators."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from firebase_admin import firestore

from cloud.console.store import ConsoleStore
from kiosk.cases import cloud_schema as schema
from tests.cloud.test_cloud_console import make_app
from tests.cloud.test_console_security import decide, signed_in
from tests.cloud_helpers import case_doc, put_case, sample_images


def ask(fb, case_id: str, message_id: str, minutes_ago: int) -> None:
    """A health worker's question exactly as the kiosk sends it: the message, then the flag."""
    ref = fb.db.collection(schema.CASES).document(case_id)
    ref.collection(schema.MESSAGES).document(message_id).set(
        {
            "case_id": case_id,
            "kiosk_id": "kiosk-test",
            "author": schema.AUTHOR_HEALTH_WORKER,
            "author_name": "",
            "body": "Is it spreading?",
            "created_at": datetime.now(UTC) - timedelta(minutes=minutes_ago),
        }
    )
    ref.update({"awaiting_reply": True, "updated_at": firestore.SERVER_TIMESTAMP})


def answer(fb, case_id: str, message_id: str, minutes_ago: int, *, signed: bool) -> None:
    fb.db.collection(schema.CASES).document(case_id).collection(schema.MESSAGES).document(
        message_id
    ).set(
        {
            "case_id": case_id,
            "kiosk_id": "kiosk-test",
            "author": schema.AUTHOR_DERMATOLOGIST,
            "author_name": "Dr",
            "body": "No.",
            "created_at": datetime.now(UTC) - timedelta(minutes=minutes_ago),
            "signature": "valid" if signed else "forged",
        }
    )


def really_answers(_case_id: str, _message_id: str, fields: dict) -> bool:
    # The store is handed the signature check (the app's is message_verifies); here a mark.
    return fields.get("signature") == "valid"


def flag(fb, case_id: str):
    return case_doc(fb, case_id).get("awaiting_reply")


def test_unanswered_questions_come_from_flagged_cases_and_answered_ones_are_unflagged(clean):
    fb = clean.fb
    images = sample_images()
    waiting = put_case(fb, image=images[0])
    ask(fb, waiting, "q1", 30)
    answered = put_case(fb, image=images[1])
    ask(fb, answered, "q1", 30)
    answer(fb, answered, "a1", 20, signed=True)
    forged = put_case(fb, image=images[2], status=schema.STATUS_REVIEWED)
    ask(fb, forged, "q1", 40)
    answer(fb, forged, "a1", 20, signed=False)
    asked_again = put_case(fb, image=images[3])
    ask(fb, asked_again, "q1", 50)
    answer(fb, asked_again, "a1", 40, signed=True)
    ask(fb, asked_again, "q2", 10)
    # A thread without the flag is not read at all (no kiosk writes one).
    unflagged = put_case(fb, image=images[4])
    fb.db.collection(schema.CASES).document(unflagged).collection(schema.MESSAGES).document(
        "q1"
    ).set({"author": schema.AUTHOR_HEALTH_WORKER, "body": "?", "kiosk_id": "kiosk-test"})

    store = ConsoleStore(fb.db, fb.bucket)
    found = store.unanswered_questions(really_answers)
    assert set(found) == {waiting, forged, asked_again}
    case, asked = found[asked_again]
    assert case.case_id == asked_again and case.kiosk_id == "kiosk-test"
    messages = {m.message_id: m for m in store.messages(asked_again)}
    assert asked == messages["q2"].created_at  # the question after the answer
    assert found[forged][1] == store.messages(forged)[0].created_at
    assert flag(fb, answered) is False  # cleared once the reply is seen
    assert flag(fb, waiting) is True and flag(fb, forged) is True
    assert store.unanswered_questions(really_answers).keys() == found.keys()


def test_a_question_that_arrives_while_the_worklist_is_built_keeps_its_flag(clean):
    fb = clean.fb
    case_id = put_case(fb, image=sample_images()[0])
    ask(fb, case_id, "q1", 30)
    answer(fb, case_id, "a1", 20, signed=True)

    def kiosk_asks_meanwhile(c: str, m: str, fields: dict) -> bool:
        # Called after the thread was read and before the flag is cleared: the worst moment.
        if m == "a1":
            ask(fb, case_id, "q2", 0)
        return really_answers(c, m, fields)

    store = ConsoleStore(fb.db, fb.bucket)
    assert store.unanswered_questions(kiosk_asks_meanwhile) == {}  # q2 was not read yet
    assert flag(fb, case_id) is True  # the precondition kept the flag
    assert set(store.unanswered_questions(really_answers)) == {case_id}


def test_a_reply_from_the_console_takes_the_question_off_the_worklist(clean, tmp_path):
    fb = clean.fb
    case_id = put_case(fb, image=sample_images()[0])
    ask(fb, case_id, "q1", 5)
    client = signed_in(make_app(clean, tmp_path))
    assert 'id="group-questions"' in client.get("/").get_data(as_text=True)
    assert decide(client, case_id, reply="Not contagious.").status_code == 302
    page = client.get("/").get_data(as_text=True)
    assert 'id="group-questions"' not in page and "No question is waiting" in page
    assert flag(fb, case_id) is False


def test_a_question_written_offline_before_an_answer_but_sent_after_it_waits(clean):
    """Found in review: the kiosk stamps a question with its own clock when it is written,
    offline perhaps; an answer to an earlier question may reach the server in between. By
    the writers' clocks the new question came first and counted as answered, and the flag
    was cleared for good. The server's order decides."""
    fb = clean.fb
    case_id = put_case(fb, image=sample_images()[0])
    ask(fb, case_id, "q1", 60)
    answer(fb, case_id, "a1", 20, signed=True)  # answers q1, 20 minutes ago
    ask(fb, case_id, "q2", 45)  # written offline 45 minutes ago, sent now
    store = ConsoleStore(fb.db, fb.bucket)
    found = store.unanswered_questions(really_answers)
    assert case_id in found
    assert found[case_id][1] == {m.message_id: m for m in store.messages(case_id)}["q2"].created_at
    assert flag(fb, case_id) is True
