"""Run every ``benchmarks/bench_*.py`` in turn and summarise which passed (``make bench``).

Each benchmark runs as its own subprocess with this interpreter, from the repository root, and its output is
streamed as it comes. A benchmark passes when it exits 0; this script exits 1 if any failed.

    .venv/bin/python benchmarks/run_all.py                    # all of them
    .venv/bin/python benchmarks/run_all.py sandbox            # those whose name contains "sandbox"
    .venv/bin/python benchmarks/run_all.py --list             # what would run
    .venv/bin/python benchmarks/run_all.py sandbox -- --seconds 3   # pass arguments on to each benchmark
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def discover(filters: list[str]) -> list[Path]:
    benches = sorted(HERE.glob("bench_*.py"))
    if filters:
        benches = [b for b in benches if any(f in b.stem for f in filters)]
    return benches


def run(bench: Path, extra: list[str], timeout: float) -> tuple[str, float]:
    """Run one benchmark, streaming its output; returns (outcome, seconds)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, str(bench), *extra],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
        # Own process group, so a stop also ends what the benchmark started (e.g. its sandbox server).
        start_new_session=True,
    )
    assert proc.stdout is not None
    timed_out = threading.Event()

    def kill() -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)

    def on_timeout() -> None:  # a benchmark that hangs, even silently, is stopped and counted as failed
        timed_out.set()
        kill()

    watchdog = threading.Timer(timeout, on_timeout)
    watchdog.start()
    try:
        for line in proc.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
        code = proc.wait()
    except KeyboardInterrupt:
        kill()
        raise
    finally:
        watchdog.cancel()
    elapsed = time.perf_counter() - started
    if timed_out.is_set():
        return f"FAIL (timed out after {timeout:g} s)", elapsed
    return ("PASS" if code == 0 else f"FAIL (exit {code})"), elapsed


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    extra: list[str] = []
    if "--" in argv:
        at = argv.index("--")
        argv, extra = argv[:at], argv[at + 1 :]
    p = argparse.ArgumentParser(description="Run every benchmarks/bench_*.py and summarise which passed.")
    p.add_argument("filters", nargs="*", help="run only benchmarks whose name contains one of these")
    p.add_argument("--list", action="store_true", help="list the benchmarks that would run, and stop")
    p.add_argument("--timeout", type=float, default=900, help="seconds allowed per benchmark (default 900)")
    args = p.parse_args(argv)

    benches = discover(args.filters)
    if args.list:
        print("\n".join(b.name for b in benches))
        return 0
    if not benches:
        print(f"no benchmarks/bench_*.py match {args.filters}", file=sys.stderr)
        return 1

    outcomes: list[tuple[str, str, float]] = []
    for bench in benches:
        print(f"\n{'=' * 30} {bench.name} {'=' * 30}", flush=True)
        outcome, elapsed = run(bench, extra, args.timeout)
        outcomes.append((bench.name, outcome, elapsed))

    width = max(len(name) for name, _, _ in outcomes)
    print(f"\n{'=' * 30} summary {'=' * 30}")
    for name, outcome, elapsed in outcomes:
        print(f"{name.ljust(width)}  {outcome:<10}  {elapsed:6.1f} s")
    failed = [name for name, outcome, _ in outcomes if outcome != "PASS"]
    print(f"{len(outcomes) - len(failed)} passed, {len(failed)} failed" + (f": {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
