"""`python -m kiosk` runs the `kiosk` command line."""

from kiosk.cli import main

raise SystemExit(main())
