"""kiosk.live.triage: live-scan smoothing, stability, hysteresis, quality skips and advice texts."""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
from importlib import resources
from types import MappingProxyType

import numpy as np
import pytest

from kiosk.live import triage
from kiosk.live.triage import (
    QUALITY_CODES,
    Advice,
    Triage,
    TriageConfig,
    Verdict,
    advice_for,
    quality_hint,
    resolve_language,
    text,
)
from kiosk.model.conditions import CONDITIONS, OTHER, URGENCY_BY_CONDITION, Urgency
from kiosk.model.decision import Decision, Thresholds, decide

# The shipped model's thresholds (models/skinscan.json).
SHIPPED = Thresholds(abstain_below=0.5473, urgent_at=0.1717)
SHIPPED_LANGUAGES = ("en", "fr", "ar")
ARABIC = re.compile(r"[\u0600-\u06FF]")
LATIN = re.compile(r"[A-Za-z]")


def probs(**values: float) -> np.ndarray:
    """A full probability vector: the given classes, the rest spread evenly over the others."""
    rest = [c for c in CONDITIONS if c not in values]
    remaining = 1.0 - sum(values.values())
    assert remaining >= -1e-12
    out = {c: remaining / len(rest) for c in rest} if rest else {}
    out.update(values)
    return np.array([out[c] for c in CONDITIONS])


def stable_labels(verdicts: list[Verdict]) -> list[str | None]:
    """The label shown as stable after each update (None while not stable)."""
    return [v.label if v.stable else None for v in verdicts]


def changes_of_stable_label(verdicts: list[Verdict]) -> int:
    """How many times a stable label was replaced by a different stable label."""
    shown = [v.label for v in verdicts if v.stable]
    return sum(a != b for a, b in itertools.pairwise(shown))


def feed(t: Triage, stream, start: float = 0.0, dt: float = 0.1) -> list[Verdict]:
    return [t.update(p, timestamp=start + i * dt) for i, p in enumerate(stream)]


MELANOMA_HEAVY = probs(melanoma=0.72, basal_cell_carcinoma=0.07, other=0.06)


# ----------------------------------------------------------------------------- config


class TestConfig:
    def test_defaults_are_valid_and_frozen(self):
        cfg = TriageConfig()
        assert cfg.window >= 1 and cfg.stable_frames >= 1
        assert cfg.stable_frames <= 10
        with pytest.raises(dataclasses.FrozenInstanceError):
            cfg.window = 3  # type: ignore[misc]

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"window": 0},
            {"window": 2.5},
            {"stable_frames": 0},
            {"stable_frames": True},
            {"margin": -0.1},
            {"margin": 1.0},
            {"reset_after_skips": 0},
            {"reset_after_s": 0.0},
            {"reset_after_s": float("nan")},
        ],
    )
    def test_rejects_nonsense(self, kwargs):
        with pytest.raises(ValueError):
            TriageConfig(**kwargs)

    def test_rejects_wrong_types(self):
        with pytest.raises(TypeError):
            Triage(0.5)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            Triage(SHIPPED, config={"window": 3})  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- settling


class TestSettling:
    def test_no_decision_before_the_first_gated_frame(self):
        t = Triage(SHIPPED)
        v = t.skip(("too_dark",))
        assert v.decision is None
        assert not v.stable and v.frames_used == 0
        assert v.label is None and v.confidence is None
        assert v.urgency is None and v.abstained is None
        assert v.quality == ("too_dark",)

    def test_clean_stream_settles_after_exactly_k_frames(self):
        cfg = TriageConfig()
        t = Triage(SHIPPED, cfg)
        verdicts = feed(t, [probs(eczema=0.8)] * 10)
        k = cfg.stable_frames
        assert [v.stable for v in verdicts[: k - 1]] == [False] * (k - 1)
        assert all(v.stable for v in verdicts[k - 1 :])
        assert verdicts[-1].label == "eczema"
        assert verdicts[-1].urgency == Urgency.ROUTINE
        assert verdicts[-1].frames_used == min(10, cfg.window)

    @pytest.mark.parametrize("seed", range(25))
    def test_noisy_consistent_stream_settles_within_10_gated_frames(self, seed):
        rng = np.random.default_rng(seed)
        # Concentration 10: single frames are very noisy (top-1 is often not melanoma).
        stream = [rng.dirichlet(MELANOMA_HEAVY * 10) for _ in range(10)]
        verdicts = feed(Triage(SHIPPED), stream)
        first = next(i for i, v in enumerate(verdicts) if v.stable)
        assert first < 10
        settled = verdicts[first:]
        assert all(v.stable and v.label == "melanoma" for v in settled)
        assert all(v.urgency == Urgency.URGENT for v in settled)

    def test_the_noisy_stream_is_really_noisy(self):
        rng = np.random.default_rng(0)
        frames = [rng.dirichlet(MELANOMA_HEAVY * 10) for _ in range(200)]
        single = [decide(p, SHIPPED) for p in frames]
        # Without smoothing, about one frame in ten would abstain or name another class.
        assert sum(d.abstained or d.label != "melanoma" for d in single) > 10

    def test_smoothed_probabilities_are_the_window_mean(self):
        cfg = TriageConfig(window=3)
        t = Triage(SHIPPED, cfg)
        stream = [probs(eczema=0.9), probs(acne=0.9), probs(other=0.9), probs(other=0.6)]
        verdicts = feed(t, stream)
        expected = np.mean(stream[-3:], axis=0)
        got = np.array([verdicts[-1].decision.probabilities[c] for c in CONDITIONS])
        np.testing.assert_allclose(got, expected)
        assert verdicts[-1].frames_used == 3

    def test_urgency_is_decide_on_the_smoothed_probabilities(self):
        rng = np.random.default_rng(7)
        t = Triage(SHIPPED, TriageConfig(window=4))
        window: list[np.ndarray] = []
        for i in range(40):
            p = rng.dirichlet(np.ones(len(CONDITIONS)))
            window = [*window, p][-4:]
            v = t.update(p, timestamp=i * 0.1)
            if v.decision is not None and not v.stable:
                # Every non-held verdict is exactly decide() on the window mean.
                expected = decide(np.mean(window, axis=0), SHIPPED)
                assert v.label == expected.label
                assert v.urgency == expected.urgency
                assert v.abstained == expected.abstained


# ----------------------------------------------------------------------------- abstention, urgency


class TestAbstainAndUrgent:
    def test_abstains_on_a_flat_distribution(self):
        thresholds = Thresholds(abstain_below=0.5, urgent_at=0.3)  # 2/7 < 0.3: not urgent
        flat = np.full(len(CONDITIONS), 1.0 / len(CONDITIONS))
        verdicts = feed(Triage(thresholds), [flat] * 20)
        assert all(v.abstained and not v.stable for v in verdicts)
        assert verdicts[-1].urgency == Urgency.SOON  # unsure is not an all-clear

    def test_flat_distribution_with_shipped_thresholds_is_urgent_not_hidden(self):
        # 2/7 of the mass on the two cancers is above the shipped urgent_at: the abstention
        # must not hide the urgent flag.
        flat = np.full(len(CONDITIONS), 1.0 / len(CONDITIONS))
        v = feed(Triage(SHIPPED), [flat] * 10)[-1]
        assert v.abstained
        assert v.urgency == Urgency.URGENT

    def test_urgent_when_smoothed_cancer_sum_reaches_threshold_though_top1_is_other(self):
        # Single frames alternate below and above urgent_at; their mean is above it.
        low = probs(other=0.86, melanoma=0.05, basal_cell_carcinoma=0.05)  # sum 0.10
        high = probs(other=0.66, melanoma=0.15, basal_cell_carcinoma=0.15)  # sum 0.30
        assert decide(low, SHIPPED).urgency == Urgency.NONE
        verdicts = feed(Triage(SHIPPED), [low, high] * 6)
        last = verdicts[-1]
        assert last.label == OTHER
        assert not last.abstained
        assert last.stable
        assert last.urgency == Urgency.URGENT

    def test_urgent_is_not_delayed_by_the_hold(self):
        # Settled on eczema; then the evidence moves to a spot that is urgent but whose top-1
        # is "other". The hold would keep eczema for a few updates: urgency must not wait.
        cfg = TriageConfig(window=1, stable_frames=3)
        t = Triage(SHIPPED, cfg)
        feed(t, [probs(eczema=0.9, melanoma=0.0, basal_cell_carcinoma=0.0)] * 5)
        v = t.update(probs(other=0.6, melanoma=0.2, basal_cell_carcinoma=0.15), timestamp=1.0)
        assert v.urgency == Urgency.URGENT
        assert v.label == OTHER and not v.stable
        # Once the urgent spot has led for K updates it settles, still urgent.
        v = feed(t, [probs(other=0.6, melanoma=0.2, basal_cell_carcinoma=0.15)] * 2, start=1.1)[-1]
        assert v.stable and v.label == OTHER and v.urgency == Urgency.URGENT

    def test_a_calm_settled_label_gives_way_to_a_soon_referral_at_once(self):
        # Settled on "other" (no referral); then a near abstention that cannot rule out a
        # cancer: the screen must not keep saying "none found" while the hold runs.
        cfg = TriageConfig(window=1, stable_frames=3)
        t = Triage(SHIPPED, cfg)
        settled = feed(t, [probs(other=0.9, melanoma=0.0, basal_cell_carcinoma=0.0)] * 5)[-1]
        assert settled.stable and settled.urgency == Urgency.NONE
        v = t.update(probs(other=0.5, eczema=0.41, melanoma=0.04), timestamp=1.0)
        assert v.urgency == Urgency.SOON and not v.stable

    def test_a_settled_urgent_label_is_held_conservatively(self):
        cfg = TriageConfig(window=1, stable_frames=3)
        t = Triage(SHIPPED, cfg)
        feed(t, [probs(melanoma=0.9)] * 5)
        v = t.update(probs(eczema=0.9, melanoma=0.0, basal_cell_carcinoma=0.0), timestamp=1.0)
        assert v.stable and v.label == "melanoma" and v.urgency == Urgency.URGENT


# ----------------------------------------------------------------------------- hysteresis


def alternating_close(n: int, seed: int | None = None) -> list[np.ndarray]:
    """Frames alternating between eczema and acne leading, each by a small margin."""
    a = probs(eczema=0.48, acne=0.42)
    b = probs(acne=0.48, eczema=0.42)
    frames = [a if i % 2 == 0 else b for i in range(n)]
    if seed is None:
        return frames
    rng = np.random.default_rng(seed)
    return [rng.dirichlet(f * 300) for f in frames]


class TestHysteresis:
    LOW = Thresholds(abstain_below=0.3, urgent_at=0.5)  # both classes count as confident

    @pytest.mark.parametrize("seed", [None, 0, 1, 2, 3, 4])
    def test_alternating_close_classes_change_the_stable_verdict_at_most_once(self, seed):
        verdicts = feed(Triage(self.LOW), alternating_close(200, seed))
        assert any(v.stable for v in verdicts)
        assert changes_of_stable_label(verdicts) <= 1

    def test_without_hysteresis_the_same_stream_flickers(self):
        # The test above is meaningful: no smoothing, K=1 and no band flicker on every frame.
        cfg = TriageConfig(window=1, stable_frames=1, margin=0.0)
        verdicts = feed(Triage(self.LOW, cfg), alternating_close(50))
        assert changes_of_stable_label(verdicts) > 40

    def test_a_new_label_must_win_k_frames_to_replace_a_stable_one(self):
        # No smoothing, so only the hysteresis is tested.
        cfg = TriageConfig(window=1, stable_frames=3, margin=0.05)
        t = Triage(self.LOW, cfg)
        eczema, acne = probs(eczema=0.8), probs(acne=0.8)
        feed(t, [eczema] * 3)
        # Acne leads twice, then eczema again: eczema is held throughout.
        verdicts = feed(t, [acne, acne, eczema, acne, acne, eczema], start=1.0)
        assert stable_labels(verdicts) == ["eczema"] * 6
        # Acne leads three times in a row: it replaces eczema, once.
        verdicts = feed(t, [acne] * 5, start=2.0)
        assert stable_labels(verdicts) == ["eczema", "eczema", "acne", "acne", "acne"]

    def test_held_verdict_is_the_settled_labels_latest_decision(self):
        cfg = TriageConfig(window=1, stable_frames=3)
        t = Triage(self.LOW, cfg)
        last_eczema = feed(t, [probs(eczema=0.8)] * 3)[-1]
        held = t.update(probs(acne=0.8), timestamp=1.0)
        assert held.decision is last_eczema.decision
        assert held.stable

    def test_near_tie_within_margin_never_replaces(self):
        cfg = TriageConfig(window=1, stable_frames=3, margin=0.05)
        t = Triage(self.LOW, cfg)
        feed(t, [probs(eczema=0.8)] * 3)
        # Acne leads every frame, but by less than the margin.
        verdicts = feed(t, [probs(acne=0.46, eczema=0.43)] * 20, start=1.0)
        assert stable_labels(verdicts) == ["eczema"] * 20

    def test_dropping_below_abstention_clearly_unsettles(self):
        cfg = TriageConfig(window=1, stable_frames=3, margin=0.05)
        t = Triage(SHIPPED, cfg)
        feed(t, [probs(eczema=0.8, melanoma=0.0, basal_cell_carcinoma=0.0)] * 3)
        unsure = probs(eczema=0.35, acne=0.3, melanoma=0.0, basal_cell_carcinoma=0.0)
        verdicts = feed(t, [unsure] * 4, start=1.0)
        # "Not sure" asks for a look soon, more than eczema's routine: no hold delays it.
        assert [v.stable for v in verdicts] == [False, False, False, False]
        assert all(v.abstained and v.urgency == Urgency.SOON for v in verdicts)

    def test_moving_to_another_spot_is_followed(self):
        cfg = TriageConfig()
        t = Triage(self.LOW, cfg)
        verdicts = feed(t, [probs(eczema=0.8)] * 10 + [probs(acne=0.8)] * 20)
        assert verdicts[9].label == "eczema" and verdicts[9].stable
        assert verdicts[-1].label == "acne" and verdicts[-1].stable
        assert changes_of_stable_label(verdicts) == 1
        switched = next(i for i, v in enumerate(verdicts) if v.stable and v.label == "acne")
        assert switched - 10 < cfg.window + cfg.stable_frames


# ----------------------------------------------------------------------------- skip / reset


class TestSkipAndReset:
    def test_skip_keeps_state_and_reports_reasons(self):
        t = Triage(SHIPPED)
        before = feed(t, [probs(eczema=0.8)] * 5)[-1]
        v = t.skip(("blurry", "too_dark"), timestamp=0.5)
        assert v.quality == ("blurry", "too_dark")
        assert v.decision is before.decision
        assert v.stable == before.stable and v.frames_used == before.frames_used
        after = t.update(probs(eczema=0.8), timestamp=0.6)
        assert after.quality == ()
        assert after.frames_used == before.frames_used + 1
        assert after.stable

    def test_a_few_skips_do_not_reset(self):
        cfg = TriageConfig(reset_after_skips=30, reset_after_s=2.0)
        t = Triage(SHIPPED, cfg)
        feed(t, [probs(eczema=0.8)] * 5)
        for i in range(cfg.reset_after_skips - 1):
            v = t.skip(("blurry",), timestamp=0.5 + i * 0.01)
        assert v.stable and v.label == "eczema"

    def test_a_long_run_of_skips_resets(self):
        cfg = TriageConfig(reset_after_skips=30, reset_after_s=None)
        t = Triage(SHIPPED, cfg)
        feed(t, [probs(eczema=0.8)] * 5)
        for i in range(cfg.reset_after_skips):
            v = t.skip(("no_skin",), timestamp=1.0 + i)
        assert v.decision is None and not v.stable and v.frames_used == 0
        assert v.quality == ("no_skin",)
        # A new spot starts from scratch: no trace of the eczema frames.
        v = t.update(probs(acne=0.8), timestamp=100.0)
        assert v.frames_used == 1 and v.label == "acne" and not v.stable

    def test_skips_for_longer_than_the_time_limit_reset(self):
        t = Triage(SHIPPED, TriageConfig(reset_after_s=2.0))
        feed(t, [probs(eczema=0.8)] * 5, start=10.0)  # last gated frame at 10.4
        assert t.skip(("blurry",), timestamp=12.3).label == "eczema"
        assert t.skip(("blurry",), timestamp=12.5).decision is None

    def test_a_gated_frame_after_a_long_gap_starts_afresh(self):
        t = Triage(SHIPPED, TriageConfig(reset_after_s=2.0))
        feed(t, [probs(eczema=0.8)] * 5, start=10.0)
        v = t.update(probs(acne=0.8), timestamp=20.0)
        assert v.frames_used == 1 and v.label == "acne" and not v.stable

    def test_reset(self):
        t = Triage(SHIPPED)
        feed(t, [probs(melanoma=0.8)] * 6)
        t.reset()
        assert t.skip(("blurry",)).decision is None
        v = t.update(probs(acne=0.8))
        assert v.frames_used == 1 and not v.stable and v.label == "acne"

    @pytest.mark.parametrize("reasons", [(), ("",), (None,)])
    def test_skip_needs_reason_codes(self, reasons):
        with pytest.raises(ValueError):
            Triage(SHIPPED).skip(reasons)

    def test_skip_rejects_a_bare_string(self):
        with pytest.raises(TypeError):
            Triage(SHIPPED).skip("blurry")  # type: ignore[arg-type]

    @pytest.mark.parametrize(
        "bad", [np.full(7, 0.1), np.ones(6) / 6, {"eczema": 1.0}, [np.nan] * 7]
    )
    def test_invalid_probabilities_raise_and_leave_state_alone(self, bad):
        t = Triage(SHIPPED)
        before = feed(t, [probs(eczema=0.8)] * 4)[-1]
        with pytest.raises(ValueError):
            t.update(bad, timestamp=0.45)
        assert t.skip(("blurry",), timestamp=0.46).decision is before.decision
        assert t.update(probs(eczema=0.8), timestamp=0.5).frames_used == 5

    def test_accepts_a_mapping(self):
        p = dict(zip(CONDITIONS, probs(dermatofibroma=0.9), strict=True))
        v = Triage(SHIPPED).update(p)
        assert v.label == "dermatofibroma"


# ----------------------------------------------------------------------------- advice texts


def _shipped_table() -> dict:
    raw = resources.files("kiosk").joinpath("data/advice.json").read_text(encoding="utf-8")
    return json.loads(raw)["languages"]


def decision_for(label: str, thresholds: Thresholds = SHIPPED) -> Decision:
    others = {"melanoma": 0.0, "basal_cell_carcinoma": 0.0}
    others.pop(label, None)
    return decide(probs(**{label: 0.9}, **others), thresholds)


class TestAdviceData:
    def test_ships_the_three_languages(self):
        assert set(_shipped_table()) == set(SHIPPED_LANGUAGES)
        assert set(triage.languages()) == set(SHIPPED_LANGUAGES)
        assert triage.languages()[0] == "en"

    def test_every_key_exists_in_every_language(self):
        table = _shipped_table()
        keys = set(table["en"])
        for lang in SHIPPED_LANGUAGES:
            assert set(table[lang]) == keys, lang
            assert all(v.strip() for v in table[lang].values()), lang

    def test_every_text_the_code_asks_for_exists_in_english(self):
        en = _shipped_table()["en"]
        needed = {"disclaimer", "abstained.title", "abstained.text", "hint.generic"}
        needed |= {f"condition.{c}.{part}" for c in CONDITIONS for part in ("title", "text")}
        needed |= {f"urgency.{u.value}.{part}" for u in Urgency for part in ("title", "text")}
        needed |= {"scanning.title", "scanning.text"}
        needed |= {f"hint.{code}" for code in QUALITY_CODES}
        assert needed <= set(en)

    def test_translations_are_not_english_copies(self):
        table = _shipped_table()
        for lang in ("fr", "ar"):
            for key, value in table[lang].items():
                if key == "language.direction":
                    continue
                assert value != table["en"][key], (lang, key)

    def test_arabic_is_in_arabic_script(self):
        for key, value in _shipped_table()["ar"].items():
            if key == "language.direction":
                continue
            assert ARABIC.search(value), key
            assert not LATIN.search(value), key
        assert text("language.direction", "ar") == "rtl"

    def test_french_has_its_accents(self):
        fr = _shipped_table()["fr"]
        assert fr["condition.eczema.title"] == "Eczéma"
        assert fr["condition.acne.title"] == "Acné"
        assert "Mélanome" in fr["condition.melanoma.title"]
        assert "Kératose" in fr["condition.actinic_keratosis.title"]
        assert "dépistage" in fr["disclaimer"]
        assert "médecin" in fr["condition.melanoma.text"]
        assert "médecin" in fr["condition.other.text"]
        assert fr["language.name"] == "Français"

    def test_key_medical_messages(self):
        en = _shipped_table()["en"]
        for cancer in ("melanoma", "basal_cell_carcinoma"):
            body = en[f"condition.{cancer}.text"]
            assert "now" in body and "possible skin cancer" in body
        assert "possible skin cancer" in en["urgency.urgent.title"]
        assert "next few weeks" in en["condition.actinic_keratosis.text"]
        assert "next few weeks" in en["urgency.soon.title"]
        for routine in ("eczema", "acne"):
            assert "See a doctor if" in en[f"condition.{routine}.text"]
        other = en["condition.other.text"]
        assert "not an all-clear" in other
        for sign in ("changes", "bleeds", "itches", "grows"):
            assert sign in other
        assert "Retake" in en["abstained.text"] and "health worker" in en["abstained.text"]
        assert "not a diagnosis" in en["disclaimer"]
        assert "lens" in en["hint.attach_dermoscope"]


class TestAdviceFor:
    @pytest.mark.parametrize("language", SHIPPED_LANGUAGES)
    @pytest.mark.parametrize("label", CONDITIONS)
    def test_advice_for_every_condition_and_language(self, label, language):
        d = decision_for(label)
        assert d.label == label and not d.abstained
        a = advice_for(d, language)
        assert isinstance(a, Advice)
        assert a.title == text(f"condition.{label}.title", language)
        assert a.text == text(f"condition.{label}.text", language)
        assert a.urgency_banner == text(
            f"urgency.{URGENCY_BY_CONDITION[label].value}.title", language
        )
        assert a.disclaimer == text("disclaimer", language)
        for s in dataclasses.astuple(a):
            assert s.strip()
            if language == "ar":
                assert ARABIC.search(s)

    def test_verdict_and_decision_give_the_same_advice(self):
        v = feed(Triage(SHIPPED), [probs(eczema=0.8)] * 5)[-1]
        assert advice_for(v, "fr") == advice_for(v.decision, "fr")

    def test_no_decision_yet_is_scanning(self):
        a = advice_for(Triage(SHIPPED).skip(("blurry",)), "en")
        assert a.title == text("scanning.title") and a.urgency_banner == ""

    def test_abstained_is_not_sure(self):
        d = decide(probs(eczema=0.4, melanoma=0.0, basal_cell_carcinoma=0.0), SHIPPED)
        assert d.abstained and d.urgency == Urgency.SOON
        a = advice_for(d, "en")
        assert a.title == text("abstained.title")
        assert a.text == text("abstained.text")
        assert a.urgency_banner == text("urgency.soon.title")

    def test_urgent_escalation_replaces_self_care_advice(self):
        # Eczema is top-1, but the summed cancer probability is above urgent_at.
        d = decide(probs(eczema=0.6, melanoma=0.1, basal_cell_carcinoma=0.1), SHIPPED)
        assert d.label == "eczema" and d.urgency == Urgency.URGENT
        a = advice_for(d, "en")
        assert a.title == text("condition.eczema.title")
        assert a.text == text("urgency.urgent.text")
        assert a.urgency_banner == text("urgency.urgent.title")

    def test_abstained_but_urgent_is_urgent(self):
        d = decide(np.full(len(CONDITIONS), 1.0 / len(CONDITIONS)), SHIPPED)
        assert d.abstained and d.urgency == Urgency.URGENT
        a = advice_for(d, "ar")
        assert a.title == text("abstained.title", "ar")
        assert a.text == text("urgency.urgent.text", "ar")
        assert a.urgency_banner == text("urgency.urgent.title", "ar")

    def test_rejects_other_types(self):
        with pytest.raises(TypeError):
            advice_for("melanoma")  # type: ignore[arg-type]


class TestQualityHintsAndFallback:
    @pytest.mark.parametrize("language", SHIPPED_LANGUAGES)
    @pytest.mark.parametrize("code", QUALITY_CODES)
    def test_every_quality_code_has_a_hint(self, code, language):
        hint = quality_hint(code, language)
        assert hint == text(f"hint.{code}", language)
        assert hint != quality_hint("something_new", language)

    def test_every_gate_and_lens_code_has_its_own_hint(self):
        from kiosk.live.pipeline import ATTACH_DERMOSCOPE
        from kiosk.live.vision import QualityIssue

        assert set(QUALITY_CODES) == {str(i) for i in QualityIssue} | {ATTACH_DERMOSCOPE}

    def test_unknown_code_gets_the_generic_hint(self):
        assert quality_hint("lens_fogged", "fr") == text("hint.generic", "fr")

    @pytest.mark.parametrize(
        ("asked", "got"),
        [
            ("fr", "fr"),
            ("FR", "fr"),
            ("fr-CA", "fr"),
            ("ar_MA", "ar"),
            ("de", "en"),
            ("", "en"),
            (None, "en"),
        ],
    )
    def test_language_resolution(self, asked, got):
        assert resolve_language(asked) == got

    def test_unknown_language_falls_back_to_english(self):
        d = decision_for("melanoma")
        assert advice_for(d, "de") == advice_for(d, "en")
        assert quality_hint("blurry", "sw") == quality_hint("blurry", "en")

    def test_missing_key_falls_back_to_english(self, monkeypatch):
        real = triage._texts()
        fr = {k: v for k, v in real["fr"].items() if k != "hint.blurry"}
        fake = MappingProxyType({**real, "fr": MappingProxyType(fr)})
        monkeypatch.setattr(triage, "_texts", lambda: fake)
        assert quality_hint("blurry", "fr") == real["en"]["hint.blurry"]
        assert quality_hint("too_dark", "fr") == real["fr"]["hint.too_dark"]

    def test_key_missing_everywhere_is_an_error(self):
        with pytest.raises(KeyError):
            text("no.such.key", "fr")
