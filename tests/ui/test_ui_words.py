"""The small rules behind what the screens say: case codes, why a result is urgent, the sync
state, sided body sites."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from kiosk.cases.case_code import ALPHABET, LENGTH, case_code
from kiosk.cases.store import BODY_SITES
from kiosk.cases.sync_status import SyncProblem, SyncStatus
from kiosk.config import KioskConfig
from kiosk.model.conditions import Urgency
from kiosk.ui import demo
from kiosk.ui.body_sites import PLAIN_SITES, has_sides, stored_site
from kiosk.ui.reasons import cancer_not_ruled_out, is_none_found, names_a_cancer
from kiosk.ui.sync_view import Link, sync_view


def test_case_codes_are_short_readable_aloud_and_stable() -> None:
    ids = [str(uuid.UUID(int=i)) for i in range(2000)]
    codes = [case_code(i) for i in ids]
    assert all(len(c) == LENGTH == 6 for c in codes)
    assert not set("".join(codes)) - set(ALPHABET)
    assert not set("0O1I") & set(ALPHABET)
    assert not set("AEIOUY") & set(ALPHABET)  # no vowels: no code spells a word
    assert len(set(codes)) == len(codes)  # no collision among a busy kiosk's cases
    assert case_code(ids[7]) == case_code(ids[7])  # the same on every screen and machine
    with pytest.raises(ValueError, match="case id"):
        case_code("")


def test_a_cancer_label_is_named_and_a_cancer_sum_is_a_reason() -> None:
    melanoma = demo.decision_for("melanoma", 0.7)
    assert names_a_cancer(melanoma) and not cancer_not_ruled_out(melanoma)
    escalated = demo.escalated_verdict().decision
    assert escalated.urgency == Urgency.URGENT and cancer_not_ruled_out(escalated)
    assert not cancer_not_ruled_out(demo.decision_for("actinic_keratosis", 0.9))
    assert not cancer_not_ruled_out(demo.decision_for("acne", 0.38))  # unsure: soon of its own
    assert is_none_found(demo.decision_for("other", 0.9))
    assert not is_none_found(demo.decision_for("other", 0.3))  # abstained: "not sure" instead


def test_the_screens_follow_the_model_layers_reason() -> None:
    """decide() says why (Decision.reason): the "soon" middle tier for a smaller cancer sum is
    said as "cannot be ruled out" too, which the label alone cannot show; a melanoma shown as
    such never is (its title already says it)."""
    from kiosk.model.conditions import CONDITIONS
    from kiosk.model.decision import Thresholds, decide

    th = Thresholds(abstain_below=0.5, urgent_at=0.2, soon_at=0.1)

    def with_probs(**p: float):
        rest = (1.0 - sum(p.values())) / (len(CONDITIONS) - len(p))
        return decide({c: p.get(c, rest) for c in CONDITIONS}, th)

    middle = with_probs(actinic_keratosis=0.84, basal_cell_carcinoma=0.15)
    assert middle.urgency == Urgency.SOON and cancer_not_ruled_out(middle)
    assert not cancer_not_ruled_out(with_probs(actinic_keratosis=0.99))
    melanoma = with_probs(melanoma=0.9)
    assert melanoma.urgency == Urgency.URGENT and not cancer_not_ruled_out(melanoma)


def test_the_sync_state_is_not_set_up_offline_or_online(tmp_path: Path) -> None:
    bare = KioskConfig(data_dir=tmp_path, kiosk_id="k")
    keyed = replace(bare, credentials=tmp_path / "key.json")
    emulated = replace(bare, firestore_emulator_host="127.0.0.1:8080")
    offline = SyncStatus.offline(0)
    view = sync_view(bare, offline, waiting=2)
    assert (view.link, view.waiting, view.can_sync) == (Link.NOT_SET_UP, 2, False)
    assert view.problem_key == "queue.not_set_up_text"
    assert sync_view(keyed, offline, 0).link is Link.OFFLINE
    assert sync_view(emulated, offline, 0).link is Link.OFFLINE
    online = SyncStatus(True, False, 0, datetime.now(UTC), problem=SyncProblem.MODEL_REJECTED)
    view = sync_view(keyed, online, waiting=1)
    assert (view.link, view.waiting, view.problem_key) == (Link.ONLINE, 1, None)
    broken = replace(offline, problem=SyncProblem.CREDENTIALS)
    assert sync_view(keyed, broken, 0).problem_key == "sync_problem.credentials"


def test_sides_map_to_values_the_store_accepts() -> None:
    assert {"arm", "hand", "leg", "foot"} <= {s for s in PLAIN_SITES if has_sides(s)}
    assert not has_sides("face") and not has_sides("")
    assert stored_site("arm", "left") == "arm_left" and stored_site("arm", "") == "arm"
    assert stored_site("face", "left") == "face"  # no side for a face
    assert all(stored_site(s, side) in BODY_SITES for s in PLAIN_SITES for side in ("", "right"))
    assert "_" not in "".join(PLAIN_SITES)
