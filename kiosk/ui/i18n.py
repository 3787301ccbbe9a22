"""UI texts in the kiosk's languages, and which way each language reads.

The chrome (buttons, titles, status lines) comes from `kiosk/ui/strings/<code>.json`; condition
names, advice, urgency banners and the disclaimer come from `kiosk.live.triage` (advice.json), so a
medical text is written once. A key missing from a language falls back to English, as the
advice texts do; tests check that every language has every key.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from types import MappingProxyType
from typing import Any

from kiosk.live import triage
from kiosk.model.conditions import CONDITIONS

FALLBACK = "en"
STRINGS_PACKAGE = "kiosk.ui"
STRINGS_DIR = "strings"


@lru_cache(maxsize=1)
def _tables() -> MappingProxyType[str, MappingProxyType[str, str]]:
    root = resources.files(STRINGS_PACKAGE).joinpath(STRINGS_DIR)
    out: dict[str, MappingProxyType[str, str]] = {}
    for entry in root.iterdir():
        if not entry.name.endswith(".json"):
            continue
        raw: Any = json.loads(entry.read_text(encoding="utf-8"))
        if not isinstance(raw, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and v.strip() for k, v in raw.items()
        ):
            raise ValueError(f"{STRINGS_DIR}/{entry.name}: must map keys to non-empty strings")
        out[entry.name.removesuffix(".json")] = MappingProxyType(raw)
    if FALLBACK not in out:
        raise ValueError(f"{STRINGS_DIR}/{FALLBACK}.json is missing")
    return MappingProxyType(out)


def ui_languages() -> tuple[str, ...]:
    """Languages that have both UI strings and advice texts, English first. The one list of the
    kiosk's languages: the `language` setting is checked against it (kiosk.config)."""
    both = set(_tables()) & set(triage.languages())
    return (FALLBACK, *sorted(both - {FALLBACK}))


@dataclass(frozen=True)
class Strings:
    """The texts of one language. `t("queue.waiting", n=3)` formats with str.format."""

    language: str

    @classmethod
    def for_language(cls, language: str | None) -> Strings:
        code = triage.resolve_language(language)
        return cls(code if code in _tables() else FALLBACK)

    @property
    def rtl(self) -> bool:
        return triage.text("language.direction", self.language) == "rtl"

    @property
    def name(self) -> str:
        """The language's own name ("Français"), for the language picker."""
        return triage.text("language.name", self.language)

    def has(self, key: str) -> bool:
        return key in _tables()[FALLBACK]

    def t(self, key: str, **values: Any) -> str:
        table = _tables()[self.language]
        found = table.get(key)
        if found is None:
            found = _tables()[FALLBACK][key]  # KeyError: a key missing from English is a bug
        return found.format(**values) if values else found

    def advice(self, key: str) -> str:
        return triage.text(key, self.language)

    def condition(self, label: str) -> str:
        """A condition's display name; an unknown label (e.g. a reviewer's free text) as is."""
        if label in CONDITIONS:
            return triage.text(f"condition.{label}.title", self.language)
        return label

    def percent(self, fraction: float) -> int:
        return round(100 * fraction)
