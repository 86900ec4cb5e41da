"""PyInstaller entry point: the same as the `customers-mngr` console script."""

from daemon.cli import main

raise SystemExit(main())
