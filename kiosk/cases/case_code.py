"""The short case code people say aloud and write on the patient's card.

A case id is a UUID: too long to read out over a phone or copy onto a clinic card. The code is
six characters taken from a hash of the id, so it needs no new column and is the same on every
screen (and on any other machine that has the id). The alphabet leaves out 0/O and 1/I, which
look and sound alike, and every vowel (Y too), so no code spells a word ("VENUSX" came out of
the first alphabet). 28^6 ≈ 4.8 × 10^8 codes: unique enough to find a case among one kiosk's
cases together with its date, not a global identifier (the case id stays that).
"""

from __future__ import annotations

import hashlib

ALPHABET = "23456789BCDFGHJKLMNPQRSTVWXZ"  # 28 symbols: no 0, O, 1, I, no vowels
LENGTH = 6


def case_code(case_id: str) -> str:
    """The six-character code of `case_id` (deterministic; upper case; never 0, O, 1 or I)."""
    if not case_id:
        raise ValueError("a case code needs a case id")
    number = int.from_bytes(hashlib.sha256(case_id.encode("utf-8")).digest()[:8], "big")
    chars = []
    for _ in range(LENGTH):
        number, digit = divmod(number, len(ALPHABET))
        chars.append(ALPHABET[digit])
    return "".join(chars)
