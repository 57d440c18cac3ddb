"""`sales-supervisor-dbt`: dbt's own command line, with dbt's partial-parse state keyed to the DuckDB warehouse's
file name instead of its full path.

dbt keeps its parse between runs (``partial_parse.msgpack``) only while the profile's connection details stay the
same, and for dbt-duckdb those include the warehouse file's absolute path. Each home (``SALES_SUPERVISOR_HOME``: a
deployment, a test session, a benchmark run) has its own warehouse file, so the first run in a home threw the
project's prepared parse away and parsed the whole project again (about 4 CPU-s at every fresh home). What the parse
produces does not depend on the folder the file is in: the project reads ``target.database`` (the file's name, which
stays in the key) and ``target.schema``, never the path, and parsing never opens the warehouse. So the folder is left
out of the key; everything else dbt compares (dbt version, vars, profile and target names, the other connection
details, project files, environment variables) is unchanged. A server warehouse (PostgreSQL) keys as dbt does.

If dbt's internals ever change shape, the command runs as plain dbt (and parses in full when the path changes).
"""

from __future__ import annotations

import sys
from pathlib import Path


def profile_key(connection_info) -> list[tuple[str, object]]:
    """dbt's profile key (sorted ``connection_info()`` pairs) with a DuckDB file's path reduced to its name."""
    pairs = []
    for key, value in connection_info:
        if key == "path" and isinstance(value, str) and value and not value.startswith(":") and "://" not in value:
            value = Path(value).name  # not ':memory:', not an md:/s3: URL
        pairs.append((key, value))
    return sorted(pairs)


def key_parse_state_to_file_name() -> bool:
    """Patch dbt's manifest state check (see the module docstring); False when dbt's internals do not fit."""
    try:
        import pprint

        from dbt.contracts.files import FileHash
        from dbt.parser.manifest import ManifestLoader
    except ImportError:
        return False
    original = getattr(ManifestLoader, "build_manifest_state_check", None)
    if original is None or getattr(original, "_keyed_to_file_name", False):
        return original is not None

    def build_manifest_state_check(self):
        state = original(self)
        credentials = getattr(self.root_project, "credentials", None)
        if getattr(credentials, "type", None) == "duckdb" and hasattr(state, "profile_hash"):
            # the same computation as dbt's (pprint of the sorted pairs), the path reduced to the file's name
            state.profile_hash = FileHash.from_contents(pprint.pformat(profile_key(credentials.connection_info())))
        return state

    build_manifest_state_check._keyed_to_file_name = True  # type: ignore[attr-defined]
    ManifestLoader.build_manifest_state_check = build_manifest_state_check
    return True


def main() -> None:
    key_parse_state_to_file_name()
    from dbt.cli.main import cli

    sys.exit(cli())


if __name__ == "__main__":
    main()
