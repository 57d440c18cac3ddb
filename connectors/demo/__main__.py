"""python -m connectors.demo OUT_DIR [--seed 7] [--scale 1] [--as-of 2026-10-01] [--verify]"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

from connectors.demo import generate_demo_crm, verify_ground_truth
from sales_supervisor.settings import DEMO_AS_OF


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m connectors.demo", description="Write the deterministic demo CRM.")
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--scale", type=int, default=1)
    ap.add_argument("--as-of", type=dt.date.fromisoformat, default=DEMO_AS_OF)
    ap.add_argument("--verify", action="store_true", help="re-check ground_truth.csv against the files afterwards")
    args = ap.parse_args(argv)
    manifest = generate_demo_crm(args.out_dir, seed=args.seed, scale=args.scale, as_of=args.as_of)
    for name, n in manifest["files"].items():
        print(f"{name:<24} {n:>12,}")
    if args.verify:
        problems = verify_ground_truth(args.out_dir)
        for p in problems:
            print(p, file=sys.stderr)
        print(f"ground truth: {len(problems)} mismatches")
        return 1 if problems else 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
