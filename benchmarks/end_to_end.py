"""End to end: the wall time of `setfix train` (the README's main job: Moons, 5 epochs)
to its final test Jaccard index, for iDiffMF and, on the same run settings, DiffMF and
EquiVSet_copula. Each run is a fresh process, so the time includes start-up, data
generation and compilation.

    python -m benchmarks end_to_end [--quick]

`--quick` trains on 256 sets for one epoch (a smoke test of the script, not a figure).
"""

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ._common import quick_flag, save


METHODS = ("idiffmf", "diffmf", "equivset_copula")


def run(method: str, extra: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "-m", "setfix", "train", "--method", method,
                   "--out", out, "--quiet", *extra]
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - start
        results = json.loads((Path(out) / "results.json").read_text())
    record = {
        "method": method,
        "command": "setfix train --method " + " ".join([method, *extra]),
        "wall_seconds": wall,
        "test_jaccard": results["test_jaccard"],
        "epochs_run": results["epochs_run"],
        "seconds_per_epoch": results["seconds_per_epoch"],
        "training_seconds": results["total_seconds"],
    }
    print(f"{method:16s} {wall:7.1f} s wall, {results['seconds_per_epoch']:6.1f} s/epoch, "
          f"test Jaccard {results['test_jaccard']:.2f}")
    return record


def main(argv):
    quick = quick_flag(argv)
    extra = ["--train-sets", "256", "--val-sets", "128", "--test-sets", "128",
             "--epochs", "1"] if quick else []
    records = [run(method, extra) for method in METHODS]
    save("end_to_end_quick" if quick else "end_to_end",
         {"methods": METHODS, "extra_arguments": extra}, records)
