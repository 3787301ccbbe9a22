"""Live-scan triage: from a stream of per-frame probabilities to a verdict that settles and holds.

`kiosk.model.decision.decide` is the rule for one set of calibrated probabilities; this module
applies it to a live camera stream. Only frames that passed the quality gate reach
`Triage.update`; the others go to `Triage.skip`, which leaves the evidence alone but reports the
gate's reasons.

Smoothing is the plain mean of the last `TriageConfig.window` gated frames' probabilities (a
sliding window, not an exponential moving average). The mean of calibrated distributions is a
distribution, and `decide` runs on it unchanged, so abstention and urgency follow exactly the
single-image rule. A window, unlike an EMA, forgets completely: a frame older than `window`
gated frames has no weight at all, so a lesion the camera has left cannot keep tilting the
result, and the first frames are not over-weighted the way an EMA seeded with frame 1 is.
`frames_used` is then simply how many frames the shown decision averages.

Stability and hysteresis: a label is *settled* (the verdict is `stable`) once it has been the
smoothed top-1, not abstained, for `stable_frames` (K) consecutive updates. A settled label is
replaced only when another label has led *clearly* for K consecutive updates, and dropped (back
to an unstable verdict) when it has clearly lost for K consecutive updates. "Clearly" has a dead
band of `margin`: an update where the settled label trails the top class by less than `margin`,
or falls below the abstain threshold by less than `margin`, counts for it, not against it. While
held, the verdict is the settled label's latest decision, i.e. `decide()` on the smoothed
probabilities of the last update that label led. The hold never delays an urgent referral: an
update whose smoothed decision is urgent is shown at once when the held one is not.

Advice texts (titles, paragraphs, urgency banners, quality hints, the disclaimer) live in
`kiosk/data/advice.json` in English, French and Arabic, not in this code.
"""

from __future__ import annotations

import json
import math
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from importlib import resources
from types import MappingProxyType
from typing import Any

import numpy as np

from kiosk.model.conditions import CONDITIONS, URGENCY_BY_CONDITION, Urgency
from kiosk.model.decision import Decision, Thresholds, decide

# ----------------------------------------------------------------------------- live triage


@dataclass(frozen=True)
class TriageConfig:
    """How the live scan smooths, settles and forgets.

    The defaults settle a consistent stream in `stable_frames` (3) gated frames and a noisy but
    consistent one within 10; a clean switch to another spot is followed in about `window`.
    """

    window: int = 8  # smoothing: mean of the last `window` gated frames' probabilities
    stable_frames: int = 3  # K: updates in a row a label must lead to settle or to replace one
    margin: float = 0.05  # hysteresis band, in smoothed probability, around a settled label
    reset_after_skips: int = 30  # this many rejected frames in a row start the scan afresh...
    reset_after_s: float | None = 2.0  # ...as does this long without a gated frame (None: never)

    def __post_init__(self) -> None:
        for name in ("window", "stable_frames", "reset_after_skips"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"TriageConfig.{name} must be an integer >= 1, got {value!r}")
        m = self.margin
        if isinstance(m, bool) or not isinstance(m, int | float) or not 0.0 <= m < 1.0:
            raise ValueError(f"TriageConfig.margin must be in [0, 1), got {m!r}")
        s = self.reset_after_s
        if s is not None and (
            isinstance(s, bool) or not isinstance(s, int | float) or not math.isfinite(s) or s <= 0
        ):
            raise ValueError(f"TriageConfig.reset_after_s must be > 0 or None, got {s!r}")


@dataclass(frozen=True)
class Verdict:
    """What the live scan shows now.

    `decision` is `decide()` on the smoothed probabilities (None until the first gated frame);
    while a settled label is held against a challenger it is that label's latest decision.
    `stable` is True only for a settled, non-abstained label. `quality` holds the quality gate's
    reasons when the latest frame was rejected, and is empty when it passed. An urgent
    `urgency` should be shown whether or not the verdict is stable.
    """

    decision: Decision | None
    stable: bool
    frames_used: int  # gated frames averaged into `decision`
    quality: tuple[str, ...] = ()

    @property
    def label(self) -> str | None:
        return None if self.decision is None else self.decision.label

    @property
    def confidence(self) -> float | None:
        return None if self.decision is None else self.decision.confidence

    @property
    def urgency(self) -> Urgency | None:
        return None if self.decision is None else self.decision.urgency

    @property
    def abstained(self) -> bool | None:
        return None if self.decision is None else self.decision.abstained


_NO_VERDICT = Verdict(decision=None, stable=False, frames_used=0)


class Triage:
    """Smooths gated frames into a `Verdict`. One instance per scan; not thread-safe.

    Timestamps are `time.monotonic()` seconds (pass `Frame.timestamp`); left out, the call time
    is used. They only serve the `reset_after_s` rule.
    """

    def __init__(self, thresholds: Thresholds, config: TriageConfig = TriageConfig()) -> None:
        if not isinstance(thresholds, Thresholds):
            raise TypeError(f"thresholds must be a Thresholds, got {type(thresholds).__name__}")
        if not isinstance(config, TriageConfig):
            raise TypeError(f"config must be a TriageConfig, got {type(config).__name__}")
        self.thresholds = thresholds
        self.config = config
        self.reset()

    def reset(self) -> None:
        """Forget everything: a new patient, a new spot."""
        self._window: deque[np.ndarray] = deque(maxlen=self.config.window)
        self._last: Verdict = _NO_VERDICT  # the verdict of the latest gated frame
        self._settled: Verdict | None = None  # the settled label's latest stable verdict
        self._off = 0  # updates in a row that clearly did not support the settled label
        self._run_outcome: str | None = None  # outcome (label, or None = abstained) of the run
        self._run_length = 0  # updates in a row with that outcome
        self._skips = 0  # rejected frames in a row
        self._last_gated_at: float | None = None

    @property
    def frames_in_window(self) -> int:
        """Gated frames now averaged (0 after a reset: no evidence left)."""
        return len(self._window)

    def update(
        self,
        probabilities: Mapping[str, float] | Sequence[float] | np.ndarray,
        *,
        timestamp: float | None = None,
    ) -> Verdict:
        """Add the calibrated probabilities of a frame that passed the quality gate."""
        # Validates the input (as decide does for a still image) before any state changes.
        frame = decide(probabilities, self.thresholds)
        now = _now(timestamp)
        if self._expired(now):
            self.reset()
        self._window.append(np.array([frame.probabilities[c] for c in CONDITIONS]))
        self._skips = 0
        self._last_gated_at = now

        current = decide(np.mean(self._window, axis=0), self.thresholds)
        outcome = None if current.abstained else current.label
        if outcome == self._run_outcome:
            self._run_length += 1
        else:
            self._run_outcome, self._run_length = outcome, 1
        fresh = Verdict(decision=current, stable=False, frames_used=len(self._window))
        k = self.config.stable_frames

        settled = self._settled
        if settled is None:
            if outcome is not None and self._run_length >= k:
                verdict = self._settle(fresh)  # a label has led for K updates in a row
            else:
                verdict = fresh
        elif outcome == settled.label:
            verdict = self._settle(fresh)  # the settled label still leads: refresh it
        else:
            if self._within_band(current, settled.label):
                self._off = 0  # a near tie or a near abstention is no reason to switch
            else:
                self._off += 1
            if outcome is not None and self._off >= k and self._run_length >= k:
                # Another label has led clearly for K updates in a row: it replaces the old one.
                verdict = self._settle(fresh)
            elif self._off >= k:
                self._settled = None  # the settled label has clearly lost its lead
                verdict = fresh
            elif _SEVERITY[current.urgency] > _SEVERITY[settled.urgency]:
                # Holding must never delay a referral: a calmer settled label ("none found")
                # gives way at once to evidence that cannot rule out more (urgent or soon).
                verdict = fresh
            else:
                verdict = settled  # hysteresis: keep showing the settled label
        self._last = verdict
        return verdict

    def skip(self, reasons: Sequence[str], *, timestamp: float | None = None) -> Verdict:
        """Report a frame the quality gate rejected, with its reason codes (e.g. "blurry").

        The smoothed evidence is kept, so a brief wobble does not restart the scan; after
        `reset_after_skips` rejected frames in a row, or `reset_after_s` without a gated frame,
        the scan starts afresh so that a spot the camera has left does not keep its verdict.
        """
        if isinstance(reasons, str):
            raise TypeError("reasons must be a sequence of reason codes, not one string")
        codes = tuple(reasons)
        if not codes or not all(isinstance(c, str) and c for c in codes):
            raise ValueError(f"a skipped frame needs at least one reason code, got {reasons!r}")
        now = _now(timestamp)
        self._skips += 1
        if self._window and (self._skips >= self.config.reset_after_skips or self._expired(now)):
            self.reset()
        return replace(self._last, quality=codes)

    def _settle(self, fresh: Verdict) -> Verdict:
        self._settled = replace(fresh, stable=True)
        self._off = 0
        return self._settled

    def _within_band(self, current: Decision, label: str) -> bool:
        """Whether `label` is still within `margin` of leading and of the abstain threshold."""
        p, margin = current.probabilities, self.config.margin
        return (
            p[current.label] - p[label] < margin
            and p[label] >= self.thresholds.abstain_below - margin
        )

    def _expired(self, now: float) -> bool:
        limit = self.config.reset_after_s
        return (
            limit is not None
            and self._last_gated_at is not None
            and now - self._last_gated_at > limit
        )


def _now(timestamp: float | None) -> float:
    if timestamp is None:
        return time.monotonic()
    t = float(timestamp)
    if not math.isfinite(t):
        raise ValueError(f"timestamp must be finite, got {timestamp!r}")
    return t


# ----------------------------------------------------------------------------- advice texts

ADVICE_RESOURCE = "data/advice.json"
FALLBACK_LANGUAGE = "en"
# The quality gate's reason codes that have a hint of their own; any other code gets a generic one.
QUALITY_CODES: tuple[str, ...] = (
    "blurry",
    "too_dark",
    "too_bright",
    "clipped",
    "no_skin",
    "attach_dermoscope",
)


@dataclass(frozen=True)
class Advice:
    title: str  # the headline: the condition, "Not sure", or "Scanning…"
    text: str  # what to do, in plain language
    urgency_banner: str  # the urgency strip; empty while there is no decision yet
    disclaimer: str  # screening aid, not a diagnosis


@lru_cache(maxsize=1)
def _texts() -> Mapping[str, Mapping[str, str]]:
    raw: Any = json.loads(
        resources.files("kiosk").joinpath(ADVICE_RESOURCE).read_text(encoding="utf-8")
    )
    languages = raw.get("languages") if isinstance(raw, dict) else None
    if not isinstance(languages, dict) or FALLBACK_LANGUAGE not in languages:
        raise ValueError(f"{ADVICE_RESOURCE}: no 'languages' table with {FALLBACK_LANGUAGE!r}")
    out: dict[str, Mapping[str, str]] = {}
    for lang, table in languages.items():
        if not isinstance(table, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and v.strip() for k, v in table.items()
        ):
            raise ValueError(f"{ADVICE_RESOURCE}: {lang!r} must map keys to non-empty strings")
        out[lang] = MappingProxyType(dict(table))
    return MappingProxyType(out)


def languages() -> tuple[str, ...]:
    """The languages advice.json ships, fallback first."""
    return (FALLBACK_LANGUAGE, *sorted(set(_texts()) - {FALLBACK_LANGUAGE}))


def resolve_language(language: str | None) -> str:
    """A shipped language code for `language` ("fr", "FR", "fr-CA" -> "fr"); else English."""
    if isinstance(language, str):
        code = language.strip().lower().replace("_", "-").split("-")[0]
        if code in _texts():
            return code
    return FALLBACK_LANGUAGE


def text(key: str, language: str | None = FALLBACK_LANGUAGE) -> str:
    """The text for `key` in `language`; English where the language or the key is missing.

    A key missing from English too is a programming error (KeyError).
    """
    texts = _texts()
    found = texts[resolve_language(language)].get(key)
    return found if found is not None else texts[FALLBACK_LANGUAGE][key]


def quality_hint(code: str, language: str | None = FALLBACK_LANGUAGE) -> str:
    """What to do about a quality gate reason code; a generic "retake" hint for unknown codes."""
    return text(f"hint.{code}" if code in QUALITY_CODES else "hint.generic", language)


_SEVERITY = {Urgency.NONE: 0, Urgency.ROUTINE: 1, Urgency.SOON: 2, Urgency.URGENT: 3}


def advice_for(result: Verdict | Decision, language: str | None = FALLBACK_LANGUAGE) -> Advice:
    """The texts to show for a verdict (or a single-image decision), in `language`.

    The title names the condition, or says "not sure" when the kiosk abstained. The banner is
    the decision's urgency. When the urgency is urgent although the shown label is not a
    cancer (or the kiosk abstained), the text is the urgent referral, never self-care advice.
    """
    if isinstance(result, Verdict):
        decision = result.decision
    elif isinstance(result, Decision):
        decision = result
    else:
        raise TypeError(f"expected a Verdict or a Decision, got {type(result).__name__}")
    lang = resolve_language(language)
    disclaimer = text("disclaimer", lang)
    if decision is None:
        return Advice(text("scanning.title", lang), text("scanning.text", lang), "", disclaimer)

    urgency = Urgency(decision.urgency)
    title_key = "abstained" if decision.abstained else f"condition.{decision.label}"
    own = Urgency.SOON if decision.abstained else URGENCY_BY_CONDITION[decision.label]
    # decide() escalates to urgent on the summed cancer probability whatever the label: then
    # the text is the urgent referral, never the label's own (e.g. self-care) advice.
    body_key = f"urgency.{urgency.value}" if _SEVERITY[urgency] > _SEVERITY[own] else title_key
    return Advice(
        title=text(f"{title_key}.title", lang),
        text=text(f"{body_key}.text", lang),
        urgency_banner=text(f"urgency.{urgency.value}.title", lang),
        disclaimer=disclaimer,
    )
