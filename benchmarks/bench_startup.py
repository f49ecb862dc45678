"""Start-up cost of the command line: ``greensim --help`` and ``greensim run --no-plots`` of the
quickstart, as CPU seconds (user + system of the child process) and wall seconds.

    python benchmarks/bench_startup.py                          # this checkout, 5 rounds
    python benchmarks/bench_startup.py --tree /tmp/wt_before    # A/B: alternate with another checkout

Each tree runs with ``PYTHONPATH=<tree>`` and the current interpreter, one command at a time,
alternating between trees in every round, so that both see the same machine load; the medians
per tree and command are printed, with the ratio against the first tree. CPU time is the stable
number on a shared machine (wall time waits for a free core).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]

COMMANDS = {
    "--help": ["--help"],
    "run --no-plots": ["run", "--no-plots", "-q", "--out", "{out}"],
    "import greensim.api.run": None,
}


def _child_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def time_once(tree: Path, cmd: str, out: str) -> tuple[float, float]:
    """(CPU s, wall s) of one command in ``tree``."""
    if COMMANDS[cmd] is None:
        argv = [sys.executable, "-c", "import greensim.api.run"]
    else:
        argv = [sys.executable, "-m", "greensim.cli", *(a.format(out=out) for a in COMMANDS[cmd])]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    c0, t0 = _child_cpu(), time.perf_counter()
    subprocess.run(argv, cwd=tree, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return _child_cpu() - c0, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tree", action="append", default=[], help="another checkout to compare (repeatable)")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    trees = [Path(t).resolve() for t in args.tree] + [HERE]
    res: dict[tuple[str, str], list[tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory() as out:
        for _ in range(args.rounds):
            for cmd in COMMANDS:
                for tree in trees:
                    res.setdefault((str(tree), cmd), []).append(time_once(tree, cmd, out))
    print(f"load average {os.getloadavg()[0]:.1f}; {args.rounds} rounds; medians")
    print("| command | tree | CPU s | wall s | CPU ratio vs first tree |")
    print("| --- | --- | ---: | ---: | ---: |")
    for cmd in COMMANDS:
        first = None
        for tree in trees:
            xs = res[(str(tree), cmd)]
            cpu, wall = statistics.median(x[0] for x in xs), statistics.median(x[1] for x in xs)
            first = cpu if first is None else first
            print(f"| {cmd} | {tree} | {cpu:.2f} | {wall:.2f} | {cpu / first:.2f} |")


if __name__ == "__main__":
    main()
