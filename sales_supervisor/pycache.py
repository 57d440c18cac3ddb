"""Keep Python's bytecode cache when the environment disables it.

Some environments set PYTHONDONTWRITEBYTECODE=1, so every process (each dbt
invocation included) recompiles every module it imports: about 15% of a small
run. The CLI (and `make bench`) call :func:`keep_bytecode_cache` first: the cache
then goes to ``<home>/pycache`` (PYTHONPYCACHEPREFIX), outside the source tree and
the virtualenv, for this process and for the processes it starts (dbt)."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def keep_bytecode_cache(home: Path | None = None) -> Path | None:
    """Point the bytecode cache at ``<home>/pycache`` when writing it is disabled; returns the folder
    (None when the cache was already on and nothing changed). An existing PYTHONPYCACHEPREFIX wins."""
    if not (os.environ.get("PYTHONDONTWRITEBYTECODE") or sys.dont_write_bytecode):
        return None
    prefix = os.environ.get("PYTHONPYCACHEPREFIX") or str(
        (home or Path(os.environ.get("SALES_SUPERVISOR_HOME") or "var")).expanduser().resolve() / "pycache"
    )
    Path(prefix).mkdir(parents=True, exist_ok=True)
    os.environ["PYTHONPYCACHEPREFIX"] = prefix
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)  # for the subprocesses (dbt): they cache under the prefix
    sys.pycache_prefix = prefix
    sys.dont_write_bytecode = False
    return Path(prefix)
