"""Benchmark the demo CRM generator: rows per file, wall time, rows/s and peak memory per scale.

    python benchmarks/bench_demo_generator.py              # scales 1 and 10
    python benchmarks/bench_demo_generator.py --scale 100  # about 100x scale 1

Each scale runs in a fresh child process so its peak RSS is its own.
Output goes to a temporary folder that is removed afterwards (--keep DIR keeps it).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def _run_one(scale: int, seed: int, out_dir: Path) -> dict:
    sys.path.insert(0, str(REPO_ROOT))
    from connectors.demo import generate_demo_crm

    last = [0.0]

    def progress(phase: str, count: int) -> None:
        now = time.perf_counter()
        if phase == "reps" and now - last[0] > 10:
            last[0] = now
            print(f"  ... {count} reps", file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    manifest = generate_demo_crm(out_dir, seed=seed, scale=scale, progress=progress)
    wall = time.perf_counter() - t0
    usage = resource.getrusage(resource.RUSAGE_SELF)
    size = sum(p.stat().st_size for p in out_dir.iterdir())
    return {
        "scale": scale,
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,  # wall time suffers on a shared machine; CPU time less so
        "peak_rss_mb": usage.ru_maxrss / 1024,  # ru_maxrss is in kilobytes on Linux
        "bytes": size,
        "files": manifest["files"],
    }


def _report(r: dict) -> None:
    total = sum(r["files"].values())
    print(f"\nscale {r['scale']}: {total:,} rows in {r['wall_s']:.1f} s wall ({r['cpu_s']:.1f} s CPU) = "
          f"{total / r['wall_s']:,.0f} rows/s, peak RSS {r['peak_rss_mb']:.0f} MB, {r['bytes'] / 1e6:,.0f} MB on disk")
    for name, n in r["files"].items():
        print(f"  {name:<24} {n:>12,}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=int, action="append", help="scale to run (repeatable; default 1 and 10)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--keep", type=Path, help="write into DIR/scale<N> and keep the files")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.child:  # one scale, in this process; result as JSON on stdout
        print(json.dumps(_run_one(args.scale[0], args.seed, args.out)))
        return 0

    for scale in args.scale or [1, 10]:
        with tempfile.TemporaryDirectory(prefix="bench_demo_") as tmp:
            out = (args.keep / f"scale{scale}") if args.keep else Path(tmp) / "demo"
            proc = subprocess.run(
                [sys.executable, __file__, "--child", "--scale", str(scale), "--seed", str(args.seed), "--out", str(out)],
                stdout=subprocess.PIPE, text=True, check=True,
            )
            _report(json.loads(proc.stdout.strip().splitlines()[-1]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
