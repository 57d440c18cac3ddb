"""Latency and cost per deal brief (issue 16): `python -m benchmarks.brief_latency [--home var] [--n 40] [--llm]`.

Serves briefs for a sample of open deals of a built warehouse (run `make demo` first) and prints the first
brief's time (it queries the semantic layer and fills the team-figures cache) and p50/p95/max of the rest.
With --llm the Claude drafter rewords each brief against a local fake Anthropic server (no network, no key):
the figure includes the HTTP round trip, the validator and the fallback, not the model's own thinking time.
Every brief served is audited in a throwaway ledger, as in production.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    import duckdb

    from agents.coach.service import serve_brief
    from agents.ledger import open_ledger
    from agents.semantic_layer import SemanticLayer, manifest_hash
    from sales_supervisor.settings import DBT_PROJECT_DIR, Settings

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", type=Path, default=None)
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--llm", action="store_true", help="reword with Claude against a local fake server")
    args = ap.parse_args(argv)
    settings = Settings(**({"home": args.home} if args.home else {}))
    wh, as_of, target = settings.warehouse_path, settings.effective_as_of(), DBT_PROJECT_DIR / "target"
    with duckdb.connect(str(wh), read_only=True) as con:
        deals = con.execute("select opportunity_id, owner_rep_id from marts.fct_opportunities where not is_closed "
                            "order by hash(opportunity_id) limit ?", [args.n]).fetchall()
    claude, server = None, None
    if args.llm:
        from agents.coach.claude import BRIEF_TOOL_NAME, ClaudeBriefDrafter
        from agents.drafting.config import DrafterConfig
        from tests.fakes.anthropic_server import FakeAnthropicServer, Reply

        def echo(body):  # the fake "model" returns the draft it was given: the grounded case
            import json

            draft = json.loads(body["messages"][0]["content"])["draft_brief"]
            return Reply(body={"content": [{"type": "tool_use", "id": "toolu_b", "name": BRIEF_TOOL_NAME, "input": draft}]})

        server = FakeAnthropicServer(echo).__enter__()
        claude = ClaudeBriefDrafter(DrafterConfig(api_key="bench", base_url=server.base_url, max_retries=0, budget_usd=100))
    times, costs, drafters = [], [], []
    with tempfile.TemporaryDirectory() as tmp, open_ledger(home=Path(tmp)) as ledger:
        for opp, rep in deals:
            started = time.monotonic()
            r = serve_brief(opp, rep, warehouse=wh, ledger=ledger, as_of=as_of, cache_dir=Path(tmp) / "coach",
                            layer_factory=lambda: SemanticLayer(DBT_PROJECT_DIR, DBT_PROJECT_DIR, target, wh),
                            manifest_sha=manifest_hash(target / "semantic_manifest.json"), claude=claude, channel="bench")
            times.append(time.monotonic() - started)
            costs.append(r.cost_usd)
            drafters.append(r.brief.drafter)
    if server is not None:
        server.__exit__(None, None, None)
    first, rest = times[0], times[1:]
    p95 = statistics.quantiles(rest, n=20)[-1] if len(rest) >= 2 else rest[0]
    print(f"briefs: {len(times)} ({'claude via local fake' if args.llm else 'template, offline'}) on {wh}")
    print(f"first brief (team figures queried and cached): {first:.2f} s")
    print(f"next {len(rest)}: p50 {statistics.median(rest):.3f} s, p95 {p95:.3f} s, max {max(rest):.3f} s")
    print(f"cost per brief: mean ${statistics.mean(costs):.5f}, total ${sum(costs):.4f}; drafted by "
          + ", ".join(f"{d} {drafters.count(d)}" for d in sorted(set(drafters))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
