"""``python -m probforge`` runs the command line."""

from probforge.cli import main

raise SystemExit(main())
