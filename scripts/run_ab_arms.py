#!/usr/bin/env python
"""Run the arms of a training A/B side by side at equal CPU time.

Each arm is one ``vocoder train`` process on one thread (``OMP_NUM_THREADS=1``, no data-loader workers should be
asked for, so that all of an arm's work is counted in its own process), started together so that they share the
machine's noise alike. Each is stopped with SIGTERM (which saves ``last.ckpt``) once its process has used
``--cpu-seconds`` of CPU time (user + system); ``ARM.cpu`` in the output folder holds the running count.

    python scripts/run_ab_arms.py --out runs/ab_specdiff --cpu-seconds 1800 \\
        --common "--data data/corpus/train.txt --init-generator recipes/warm_start/default_22khz_generator.pt" \\
        plain="--config recipes/hifigan_v2.yaml" specdiff="--config recipes/hifigan_v2_specdiff.yaml"

Runs go to ``OUT/ARM`` with logs ``OUT/ARM.log``. Score the checkpoints with ``scripts/training_curve.py``.
"""
from __future__ import annotations

import argparse
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (its threads included, not its children)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="folder for the runs (OUT/ARM) and their logs")
    ap.add_argument("--cpu-seconds", type=float, required=True, help="CPU time each arm trains for")
    ap.add_argument("--common", default="", help="arguments every arm's `vocoder train` gets")
    ap.add_argument("arms", nargs="+", metavar="NAME=ARGS", help="an arm: its name and its own arguments")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    procs = {}
    for spec in args.arms:
        name, _, own = spec.partition("=")
        if not name or not own:
            ap.error(f"an arm is NAME=ARGS, got {spec!r}")
        cmd = ["vocoder", "train", "--out", str(out / name), "--no-progress-bar"] + shlex.split(args.common) \
            + shlex.split(own)
        log = open(out / f"{name}.log", "ab")
        procs[name] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        print(f"{name}: pid {procs[name].pid}: {shlex.join(cmd)}", flush=True)
    stopped = set()
    while any(p.poll() is None for p in procs.values()):
        for name, p in procs.items():
            if p.poll() is not None:
                continue
            try:
                used = cpu_seconds(p.pid)
            except (FileNotFoundError, ProcessLookupError):
                continue
            (out / f"{name}.cpu").write_text(f"{used:.0f}\n")
            if used >= args.cpu_seconds and name not in stopped:
                p.send_signal(signal.SIGTERM)
                stopped.add(name)
                print(f"{name}: {used:.0f} CPU-seconds, stopped", flush=True)
        time.sleep(5)
    failed = [name for name, p in procs.items() if p.returncode != 0]
    for name in failed:
        print(f"{name}: exited {procs[name].returncode}, see {out / (name + '.log')}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
