"""Body sites as the Save screen offers them: a site, and for a limb a side.

The case store keeps one value per case ("arm", or "arm_left" with a side). The screen shows
the plain sites as buttons and a Left/Right choice once a limb is chosen, so the grid stays two
rows of glove-sized keys instead of fifteen.
"""

from __future__ import annotations

from kiosk.cases.store import BODY_SITES

SIDES = ("left", "right")
# Plain sites, in the store's order; a stored "arm_left" is shown as "arm" with its side.
PLAIN_SITES: tuple[str, ...] = tuple(site for site in BODY_SITES if "_" not in site)


def has_sides(site: str) -> bool:
    """The store accepts this site with a left/right side."""
    return bool(site) and all(f"{site}_{side}" in BODY_SITES for side in SIDES)


def stored_site(site: str, side: str) -> str:
    """The value saved: "arm_left" for the arm with a side, else the site as it is."""
    if side and has_sides(site):
        return f"{site}_{side}"
    return site
