"""Rules earn their place (issue 12.8): a rule whose backtest lift is below the policy's floor is demoted to
informational. `sales-supervisor backtest` stores the lifts it measured; the review step reads them."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

BACKTEST_FILE = Path("backtest") / "latest.json"


def save_backtest_lifts(home: Path | str, lifts: Mapping[str, float | None], *, start: Any, end: Any) -> Path:
    path = Path(home) / BACKTEST_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "start": str(start), "end": str(end), "measured_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "lift": {k: v for k, v in sorted(lifts.items())},
    }, indent=1) + "\n", encoding="utf-8")
    return path


def load_backtest_lifts(home: Path | str) -> dict[str, float | None] | None:
    path = Path(home) / BACKTEST_FILE
    if not path.exists():
        return None
    return dict(json.loads(path.read_text(encoding="utf-8")).get("lift") or {})


def demoted_rules(lifts: Mapping[str, float | None] | None, floor: float, *, enabled: bool = True) -> dict[str, float]:
    """rule -> lift for every rule measured below the floor (a rule without a lift is not demoted)."""
    if not enabled or not lifts:
        return {}
    return {rule: lift for rule, lift in sorted(lifts.items()) if lift is not None and lift < floor}
