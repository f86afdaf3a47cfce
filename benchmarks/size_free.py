"""Size-free prediction on the real data: the recorded runs' best models scored on their
test split with every rule `setfix.evaluate` reports, by the code of today.

`python -m benchmarks.size_free rescore RUNS_DIR` re-evaluates the best model of every
finished run under `RUNS_DIR` (a `setfix reproduce --out` folder) that follows the
real-data table's protocol (`benchmarks.real_data.protocol`), with the run's own test
key (`setfix.experiments.evaluate_run`), and keeps the figures in
`benchmarks/results/size_free/<dataset>-<method label>-s<seed>.json` beside the
figures recorded when the run finished. The top-|S*| Jaccard of the two must agree
(the same model, data and key): a record where it does not is refused. The
size-free figures are today's rules, so a rule changed since the run trained (as
`predict_expected_jaccard` conditioning on a nonempty oracle set) is scored as it is
now. `python -m benchmarks.size_free table` prints the Markdown table
(`docs/assets/size_free.md`) from the records.
"""

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from setfix.experiments import evaluate_run, Experiment

from . import real_data
from ._common import machine, RESULTS


RECORDS = RESULTS / "size_free"
# The figures of the table, as `setfix.evaluate` names them, and their headings.
COLUMNS = {"jaccard": "top-\\|S*\\| (told \\|S*\\|)", "jaccard_threshold": "ψ > ½",
           "jaccard_size": "top-round(Σψ)", "jaccard_expected": "top-k of most E[J]",
           "ece": "ECE", "size_error": "\\|Σψ − \\|S*\\|\\|"}


def rescore(runs: Path) -> tuple[list[Path], list[str]]:
    """Scores every finished run of the table's protocol under `runs`; returns the
    records written and, for the runs left out, why."""
    RECORDS.mkdir(parents=True, exist_ok=True)
    written, skipped = [], []
    where = machine()
    for path in sorted(runs.glob("*/results.json")):
        recorded = json.loads(path.read_text())
        reason = real_data._off_protocol(recorded)
        if reason:
            skipped.append(f"{path.parent}: {reason}")
            continue
        scores = evaluate_run(path.parent, "test")
        before = recorded["test_scores"]["jaccard"]
        if not np.isclose(scores["jaccard"], before, atol=1e-3):
            raise ValueError(f"{path.parent}: the best model scores {scores['jaccard']:.4f} "
                             f"top-|S*| now against {before:.4f} when it was recorded; it "
                             "is not the run that was recorded, or not deterministic.")
        target = RECORDS / real_data.record_path(recorded).name
        target.write_text(json.dumps({"name": recorded["name"],
                                      "config": recorded["config"],
                                      "recorded": recorded["test_scores"],
                                      "rescored": scores, "machine": where}, indent=1))
        written.append(target)
        print(f"{recorded['name']}: " + ", ".join(f"{k} {scores[k]:.2f}" for k in COLUMNS),
              flush=True)
    return written, skipped


def table() -> str:
    """Mean ± std over seeds of each rule, by dataset and method label, beside the
    DeepSet's top-|S*| Jaccard of the real-data table (iDiffMF as published)."""
    by_cell = defaultdict(list)
    for path in sorted(RECORDS.glob("*.json")):
        record = json.loads(path.read_text())
        config = Experiment.from_json(record["config"])
        by_cell[config.dataset, config.label].append(record["rescored"])
    deepset = real_data.cells()
    lines = ["| dataset | method | seeds | " + " | ".join(COLUMNS.values())
             + " | DeepSet iDiffMF, top-\\|S*\\| |",
             "| --- | --- | --- |" + " --- |" * (len(COLUMNS) + 1)]
    for dataset, label in sorted(by_cell, key=lambda c: (real_data._order(c[0]), c[1])):
        scores = by_cell[dataset, label]
        cells = []
        for name in COLUMNS:
            values = np.array([s[name] for s in scores])
            digits = 3 if name == "ece" else 2
            spread = f" ± {values.std():.{digits}f}" if len(values) > 1 else ""
            cells.append(f"{values.mean():.{digits}f}{spread}")
        reference = deepset.get((dataset, "idiffmf-fro"))
        cells.append(real_data._cell(reference))
        lines.append(f"| {dataset} | {label}{real_data.stale((dataset, label))} | "
                     f"{len(scores)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.size_free",
                                     description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    add = sub.add_parser("rescore", help="score the finished runs under RUNS_DIR")
    add.add_argument("runs", type=Path, metavar="RUNS_DIR")
    sub.add_parser("table", help="print the Markdown table")
    args = parser.parse_args(argv)
    if args.command == "rescore":
        if not args.runs.is_dir():
            raise SystemExit(f"RUNS_DIR: {args.runs} is not a directory")
        written, skipped = rescore(args.runs)
        print(f"recorded {len(written)} runs")
        for reason in skipped:
            print(f"left out {reason}", file=sys.stderr)
    else:
        print(table(), end="")


if __name__ == "__main__":
    main(sys.argv[1:])
