"""Reporting: figures from training histories and run results, and the tables
`setfix reproduce` and the benchmarks print."""

import numpy as np

from .._fit import seconds_per_epoch
from ._config import Experiment


def format_scores(scores: dict) -> str:
    """The size-free and calibration figures of a test evaluation, on one line."""
    return (f"size-free test Jaccard: {scores['jaccard_threshold']:.2f} (psi > 1/2), "
            f"{scores['jaccard_size']:.2f} (top round(sum psi)), "
            f"{scores['jaccard_expected']:.2f} (top k of most expected Jaccard); "
            f"calibration: Brier "
            f"{scores['brier']:.4f}, ECE {scores['ece']:.4f}; |sum psi - |S*||: "
            f"{scores['size_error']:.2f}; max |psi - 1/2|: {scores['max_deviation']:.4f}")


def run_seconds_per_epoch(results: dict) -> float:
    """The seconds per epoch of a run's results (`results.json`)."""
    # From the history where a run has one: runs written before `seconds_per_epoch`
    # became the median hold the mean, compilation included.
    if results.get("history"):
        return seconds_per_epoch(results["history"])
    return results["seconds_per_epoch"]


def summarise(results: list[dict]) -> dict[str, dict[str, dict[str, float]]]:
    """Test Jaccard (mean, std over runs) and seconds per epoch, by dataset and label."""
    table: dict[str, dict[str, dict[str, float]]] = {}
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in results:
        label = Experiment.from_json(r["config"]).label
        groups.setdefault((r["config"]["dataset"], label), []).append(r)
    for (dataset, label), rs in groups.items():
        scores = np.array([r["test_jaccard"] for r in rs])
        table.setdefault(dataset, {})[label] = {
            "mean": float(scores.mean()), "std": float(scores.std()), "runs": len(rs),
            "seconds_per_epoch": float(np.mean([run_seconds_per_epoch(r) for r in rs])),
            "epochs": float(np.mean([r["epochs_run"] for r in rs])),
        }
    return table


def _rows(table, cell) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """The datasets of a summary and, per label, its cells formatted by `cell` (empty
    where the label has no run on a dataset)."""
    datasets = list(table)
    labels = sorted({label for d in table.values() for label in d})
    return datasets, [(label, [cell(table[d][label]) if table[d].get(label) else ""
                               for d in datasets]) for label in labels]


def _terminal_cell(c) -> str:
    spread = f"± {c['std']:4.2f}" if c["runs"] > 1 else " " * 6  # one run
    return f"{c['mean']:6.2f} {spread} ({c['seconds_per_epoch']:4.1f} s/ep)"


def _markdown_cell(c) -> str:
    spread = f" ± {c['std']:.2f}" if c["runs"] > 1 else ""
    seeds = f"{c['runs']} seed{'s' if c['runs'] > 1 else ''}"
    return f"{c['mean']:.2f}{spread} ({seeds}, {c['seconds_per_epoch']:.0f} s/epoch)"


def format_table(table) -> str:
    """The summary as a plain-text table (for the terminal)."""
    datasets, rows = _rows(table, _terminal_cell)
    width = max(len(x) for x in [label for label, _ in rows] + ["method"])
    lines = [f"{'method':<{width}}  " + "  ".join(f"{d:>22}" for d in datasets)]
    lines += [f"{label:<{width}}  " + "  ".join(f"{x:>22}" for x in cells)
              for label, cells in rows]
    return "\n".join(lines)


def format_markdown(table) -> str:
    """The summary as a Markdown table (for documentation)."""
    datasets, rows = _rows(table, _markdown_cell)
    lines = ["| method | " + " | ".join(datasets) + " |",
             "| --- | " + " | ".join("---" for _ in datasets) + " |"]
    lines += [f"| {label} | " + " | ".join(cells) + " |" for label, cells in rows]
    return "\n".join(lines) + "\n"
