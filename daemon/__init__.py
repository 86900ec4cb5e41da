"""customers-mngr: provider → MySQL sync with field encryption, served by role.

Importing this package has no side effects: nothing reads the environment,
connects or generates a key until `daemon.cli.main` runs.
"""

__all__ = ("__version__",)

__version__ = "1.0.0"
