"""The touchscreen UI: a pygame app for the 800×480 kiosk screen (scales to others).

`kiosk.ui.app.App` holds the screens and steps one frame at a time; `kiosk.ui.launch` wires it
to the real camera pipeline, case store and sync; `kiosk.ui.render` saves every screen in every
language as PNG. Texts live in `kiosk/ui/strings/<language>.json` and, for conditions and
advice, in `kiosk/data/advice.json`.
"""

import os

# pygame prints a banner to stdout when imported; `kiosk bench --json` and `kiosk scan
# --headless` write machine-read JSON there. Set before any kiosk.ui module imports pygame.
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
