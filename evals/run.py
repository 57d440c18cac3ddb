"""The drafting eval: run a drafter over the golden set and check the properties of every draft.

    python -m evals.run                      # template drafter (or Claude if ANTHROPIC_API_KEY is set)
    python -m evals.run --drafter template --out var/evals/latest.json

Properties checked per case (each case lists the ones it needs in `expect`):

* grounded        - the draft passed the grounding validator (always checked);
* own_draft       - the draft came from the drafter under test, not a fallback (always checked);
* must_cite       - every listed id is in cited_ids;
* must_not_cite   - no listed id is in cited_ids;
* actor           - the actor is as expected;
* due_within_days - due date is 1..N days after as-of;
* must_not_contain- none of the strings appears in action or rationale (case-insensitive);
* must_mention_any- at least one of the strings appears;
* max_confidence  - confidence is at most this.

A case passes when all its properties pass; the gate is the share of passing cases
(default 90%). The report is stored as JSON for the live-mode gate.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

from agents.drafting import DrafterConfig, DraftedItem, Drafter, build_packet, draft_all, make_drafter
from agents.drafting.config import DRAFTER_MODEL_ENV
from agents.drafting.validator import validate_draft
from agents.risk.models import RiskFlag

GOLDEN_PATH = Path(__file__).with_name("golden_set.yaml")
GATE = 0.90


class CaseResult(BaseModel):
    model_config = ConfigDict(extra="forbid")
    case_id: str
    tags: list[str]
    passed: bool
    properties: dict[str, bool]
    failures: list[str] = Field(default_factory=list)
    draft: dict[str, Any] | None = None


class EvalReport(BaseModel):
    model_config = ConfigDict(extra="forbid")
    drafter: str
    golden_path: str
    golden_sha256: str
    run_at: str
    cases: int
    passed_cases: int
    pass_rate: float
    gate: float
    gate_passed: bool
    property_pass_rates: dict[str, float]
    property_counts: dict[str, list[int]] = Field(description="property -> [passed, checked]")
    run_stats: dict[str, Any]
    results: list[CaseResult]


def default_output_path() -> Path:
    home = Path(os.environ.get("SALES_SUPERVISOR_HOME") or "var")
    return home / "evals" / "latest.json"


def load_golden(path: Path | str = GOLDEN_PATH) -> list[dict[str, Any]]:
    data = yaml.safe_load(Path(path).read_text())
    return list(data["cases"])


def case_packet(case: dict[str, Any]):
    as_of = dt.date.fromisoformat(str(case["as_of"]))
    flag_data = dict(case["flag"])
    flag_data.setdefault("as_of", as_of)
    flag_data.setdefault("policy_version", "golden-v1")
    subject_id = flag_data.get("opportunity_id") or flag_data.get("rep_id") or case["id"]
    flag_data.setdefault("flag_id", RiskFlag.make_id(flag_data["rule_id"], f"{case['id']}|{subject_id}", as_of))
    flag = RiskFlag.model_validate(flag_data)
    return build_packet(flag, case.get("deal") or {}, case.get("rows") or [], as_of,
                        untrusted_text=case.get("untrusted_text") or {})


def check_case(case: dict[str, Any], item: DraftedItem | None, packet, drafter_name: str) -> CaseResult:
    exp = case.get("expect") or {}
    props: dict[str, bool] = {}
    failures: list[str] = []

    def prop(name: str, ok: bool, why: str) -> None:
        props[name] = ok
        if not ok:
            failures.append(f"{name}: {why}")

    if item is None:
        for name in ["grounded", "own_draft", *[k for k in exp]]:
            props[name] = False
        return CaseResult(case_id=case["id"], tags=case.get("tags", []), passed=False, properties=props,
                          failures=["no draft produced"])
    d = item.draft
    text = f"{d.action}\n{d.rationale}".lower()
    found = validate_draft(d, packet)
    prop("grounded", not found, "; ".join(map(str, found)))
    prop("own_draft", d.drafter == drafter_name and d.fallback_reason is None,
         f"drafted by {d.drafter} (fallback: {d.fallback_reason})")
    if "must_cite" in exp:
        missing = [i for i in exp["must_cite"] if i not in d.cited_ids]
        prop("must_cite", not missing, f"missing {missing}")
    if "must_not_cite" in exp:
        bad = [i for i in exp["must_not_cite"] if i in d.cited_ids]
        prop("must_not_cite", not bad, f"cited {bad}")
    if "actor" in exp:
        prop("actor", d.actor == exp["actor"], f"{d.actor} != {exp['actor']}")
    if "due_within_days" in exp:
        days = (d.due_date - packet.as_of).days
        prop("due_within_days", 1 <= days <= int(exp["due_within_days"]), f"{days} days")
    if "must_not_contain" in exp:
        hits = [s for s in exp["must_not_contain"] if str(s).lower() in text]
        prop("must_not_contain", not hits, f"contains {hits}")
    if "must_mention_any" in exp:
        prop("must_mention_any", any(str(s).lower() in text for s in exp["must_mention_any"]),
             f"none of {exp['must_mention_any']}")
    if "max_confidence" in exp:
        prop("max_confidence", d.confidence <= float(exp["max_confidence"]) + 1e-9,
             f"{d.confidence} > {exp['max_confidence']}")
    return CaseResult(case_id=case["id"], tags=case.get("tags", []), passed=all(props.values()), properties=props,
                      failures=failures, draft=d.model_dump(mode="json"))


def run_eval(
    drafter: Drafter,
    golden_path: Path | str = GOLDEN_PATH,
    *,
    out_path: Path | str | None = None,
    gate: float = GATE,
    budget_usd: float | None = None,
) -> EvalReport:
    import hashlib

    golden_path = Path(golden_path)
    cases = load_golden(golden_path)
    packets = [case_packet(c) for c in cases]
    run = draft_all(packets, drafter, budget_usd=budget_usd)
    items = {i.packet_id: i for i in run.drafts}
    results = [check_case(c, items.get(p.packet_id), p, drafter.name) for c, p in zip(cases, packets)]

    counts: dict[str, list[int]] = {}
    for r in results:
        for name, ok in r.properties.items():
            c = counts.setdefault(name, [0, 0])
            c[0] += int(ok)
            c[1] += 1
    passed = sum(r.passed for r in results)
    rate = passed / len(results) if results else 0.0
    report = EvalReport(
        drafter=drafter.name,
        golden_path=str(golden_path),
        golden_sha256=hashlib.sha256(golden_path.read_bytes()).hexdigest(),
        run_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        cases=len(results),
        passed_cases=passed,
        pass_rate=round(rate, 4),
        gate=gate,
        gate_passed=rate >= gate,
        property_pass_rates={k: round(v[0] / v[1], 4) for k, v in sorted(counts.items())},
        property_counts=dict(sorted(counts.items())),
        run_stats=run.stats.to_metadata(),
        results=results,
    )
    out = Path(out_path) if out_path is not None else default_output_path()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report.model_dump_json(indent=2))
    return report


def format_report(report: EvalReport) -> str:
    lines = [f"drafter: {report.drafter}   cases: {report.cases}", "", f"{'property':<18} {'passed':>7} {'checked':>8} {'rate':>7}"]
    for name, (ok, n) in report.property_counts.items():
        lines.append(f"{name:<18} {ok:>7} {n:>8} {ok / n:>7.1%}")
    lines.append(f"{'overall (cases)':<18} {report.passed_cases:>7} {report.cases:>8} {report.pass_rate:>7.1%}")
    lines.append("")
    lines.append(f"gate {report.gate:.0%}: {'PASS' if report.gate_passed else 'FAIL'}   "
                 f"cost ${report.run_stats.get('cost_usd', 0):.4f}   fallbacks {report.run_stats.get('fallbacks', 0)}")
    failing = [r for r in report.results if not r.passed]
    for r in failing[:15]:
        lines.append(f"  FAIL {r.case_id}: {' | '.join(r.failures)[:240]}")
    return "\n".join(lines)


def _drafter_from_env(kind: str) -> Drafter:
    from agents.drafting import TemplateDrafter

    if kind == "template":
        return TemplateDrafter()
    key = os.environ.get("ANTHROPIC_API_KEY")
    cfg = DrafterConfig(
        api_key=key,
        base_url=os.environ.get("ANTHROPIC_BASE_URL") or None,
        model=os.environ.get(DRAFTER_MODEL_ENV) or DrafterConfig().model,  # the pipeline's variable
    )
    if kind == "claude" and not cfg.has_api_key:
        raise SystemExit("--drafter claude needs ANTHROPIC_API_KEY")
    return make_drafter(cfg)


def main(argv: Sequence[str] | None = None, *, drafter: Drafter | None = None) -> int:
    ap = argparse.ArgumentParser(prog="evals.run", description="Run the drafting eval over the golden set.")
    ap.add_argument("--golden", type=Path, default=GOLDEN_PATH)
    ap.add_argument("--out", type=Path, default=None, help="report JSON (default: $SALES_SUPERVISOR_HOME/evals/latest.json)")
    ap.add_argument("--drafter", choices=["auto", "template", "claude"], default="auto")
    ap.add_argument("--gate", type=float, default=GATE)
    ap.add_argument("--json", action="store_true", help="print the report JSON instead of the table")
    args = ap.parse_args(list(argv) if argv is not None else None)
    drafter = drafter or _drafter_from_env(args.drafter)
    report = run_eval(drafter, args.golden, out_path=args.out, gate=args.gate)
    print(report.model_dump_json(indent=2) if args.json else format_report(report))
    return 0 if report.gate_passed else 1


if __name__ == "__main__":
    sys.exit(main())
