"""PyInstaller hook for asyncmy (no hook ships in pyinstaller-hooks-contrib).

asyncmy's core modules are Cython extensions (connection, protocol, cursors,
converters, charset, errors, pool). Their imports happen inside compiled code,
which PyInstaller's bytecode analysis cannot see, so the frozen binary failed at
`import asyncmy` with "No module named 'asyncmy.constants.FIELD_TYPE'". This lists
what those .pyx sources import (asyncmy 0.2.x): the package's pure-Python modules
and the standard-library modules. The binlog replication client is not used.
"""

from PyInstaller.utils.hooks import collect_submodules

hiddenimports = [
    *collect_submodules("asyncmy", filter=lambda name: not name.startswith("asyncmy.replication")),
    # standard-library modules imported only from the compiled modules
    "asyncio",
    "collections",
    "decimal",
    "errno",
    "getpass",
    "inspect",
    "logging",
    "operator",
    "os",
    "re",
    "socket",
    "ssl",
    "sys",
    "time",
    "typing",
    "warnings",
]
