"""Rules earn their place (issue 12.8): a rule whose backtest lift is below the policy's floor is demoted to
informational. `sales-supervisor backtest` stores the lifts it measured; the review step reads them."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping
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


def demoted_rules(
    lifts: Mapping[str, float | None] | None, floor: float, *, enabled: bool = True, always: Iterable[str] = (),
) -> dict[str, float]:
    """rule -> lift for every rule measured below the floor (a rule without a lift is not demoted), plus the rules
    the policy always shows as informational (``demotion.rules``; NaN when their lift was not measured)."""
    out: dict[str, float] = {}
    if enabled and lifts:
        out = {rule: lift for rule, lift in sorted(lifts.items()) if lift is not None and lift < floor}
    for rule in always:
        lift = (lifts or {}).get(rule)
        out.setdefault(rule, float("nan") if lift is None else lift)
    return out
