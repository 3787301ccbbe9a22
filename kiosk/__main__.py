"""`python -m kiosk` runs the `kiosk` command line."""

from kiosk.cli.main import main

raise SystemExit(main())
