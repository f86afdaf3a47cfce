"""The real-data figures (`docs/assets/real_data.md`) and the runs behind them.

`python -m benchmarks.real_data collect RUNS_DIR` copies the `results.json` of every
finished run under `RUNS_DIR` (a `setfix reproduce --out` or `setfix train --out`
folder) to `benchmarks/results/real_data/<dataset>-<method label>-s<seed>.json` (see
`record_path`), so the figures outlive the machine they were measured on (runs of
another protocol than the table's, see `protocol`, are left out);
`python -m benchmarks.real_data table` prints the table from those records, beside the
published figures, and `python -m benchmarks.real_data energies` the table of iDiffMF
with each energy (`docs/assets/energies.md`). Runs of other protocols that the tutorial
cites are kept in `other/` there, outside the table.

Cells measured before runs were recorded one by one are in `earlier.json` in the same
folder: their mean, standard deviation, number of seeds and seconds per epoch, and, where
they were written down, the scores of seeds 0, 1, ... in order. A cell takes new runs
only where it has the scores of its earlier seeds, and only of other seeds.
"""

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np

from setfix.experiments import differences, Experiment, summarise


RECORDS = Path(__file__).parent / "results" / "real_data"
EARLIER = RECORDS / "earlier.json"
METHODS = ("idiffmf-fro", "diffmf-shared", "diffmf", "equivset_copula-standardised",
           "equivset_copula")
# The energies table (`docs/assets/energies.md`): iDiffMF with each energy.
ENERGIES = {"idiffmf-fro": "DeepSet", "idiffmf-fro-superset": "SupersetDeepSet",
            "idiffmf-fro-attention": "AttentionSet",
            "idiffmf-certified-superset-smooth":
                "SupersetDeepSet(smooth=True), CertifiedScaling(0.9)",
            "idiffmf-certified-interactions-superset-smooth":
                "SupersetDeepSet(smooth=True), CertifiedScaling(0.9, interactions_only=True)"}
# The cells of the certified energies (by dataset and label) still trained with setfix
# at commit ee648f5, before commit 274819d tightened the certified bound of the pairwise
# energies and raised their random Fourier features from 64 to 256. The tables mark them
# with a dagger: they reproduce at ee648f5, not on main. The others were retrained at
# commit 6580989.
BEFORE_274819D = frozenset(
    (f"amazon:{category}", "idiffmf-certified-interactions-superset-smooth")
    for category in ("apparel", "bath", "bedding", "diaper", "feeding", "gear"))
STALE = "†"
LEARNING_RATE = 1e-3
# The training protocol the table was recorded under: setfix's earlier defaults, not
# the published code's (patience 7, weight decay 1e-5, last batch kept), which are
# `setfix train`'s defaults now. Method options (`copula`, `draws`) are columns.
TRAINING = {"patience": 6, "weight_decay": 0.0, "drop_last": True}
# Compound rows train on the first 250 of the 1000 training sets, 32 sets a step: the
# same 7 steps an epoch as 1000 sets at 128 (training drops the last incomplete batch),
# at about a third of the cost per epoch.
REDUCED = {"compounds": {"train_sets": 250, "batch_size": 32}}

# Table 1 of Ou et al. (2022), as on EquiVSet's project page: test Jaccard x100.
PUBLISHED = {
    "amazon:apparel": (67.08, 75.21), "amazon:bath": (69.01, 75.67),
    "amazon:bedding": (64.08, 76.88), "amazon:carseats": (22.29, 21.49),
    "amazon:diaper": (70.11, 82.75), "amazon:feeding": (74.96, 81.01),
    "amazon:furniture": (17.44, 17.24), "amazon:gear": (56.22, 69.73),
    "amazon:health": (56.50, 70.03), "amazon:media": (51.45, 56.94),
    "amazon:safety": (20.07, 25.24), "amazon:toys": (61.47, 67.62),
}


def protocol(config: Experiment) -> Experiment:
    """The table's protocol for `config`'s dataset, method, method options, energy and
    seed: learning rate 1e-3, the `TRAINING` settings (patience 6, no weight decay, the
    last incomplete batch dropped), the `REDUCED` training sets and batch size for
    compounds, and otherwise the defaults (at most 100 epochs, 5 samples, at most 20
    solver steps, batch 128, all the sets). The scaling is the run's when it is one of
    the certified scalings (at the default omega 0.9, for the energies table), else
    per-set Frobenius for iDiffMF."""
    certified = ({"scaling": config.scaling}
                 if config.scaling in ("certified", "certified-interactions") else {})
    return Experiment(dataset=config.dataset, root=config.root, method=config.method,
                      seed=config.seed, learning_rate=LEARNING_RATE,
                      copula=config.copula, draws=config.draws, energy=config.energy,
                      **certified,
                      **TRAINING,
                      **REDUCED.get(_kind(config.dataset), {}))


def _kind(dataset: str) -> str:
    return dataset.split(":")[0]


def _off_protocol(record: dict) -> str | None:
    """How a run record's configuration differs from the table's protocol, or `None`."""
    differ = differences(record["config"], protocol(Experiment.from_json(record["config"])))
    return f"not the table's protocol ({'; '.join(differ)})" if differ else None


def collect(runs: Path) -> tuple[list[Path], list[str]]:
    """Copies each finished run's `results.json` under `runs` into the records, and
    returns the records written and, for runs left out, why: runs of another protocol
    than the table's (see `protocol`)."""
    RECORDS.mkdir(parents=True, exist_ok=True)
    copied, skipped = [], []
    for path in sorted(runs.glob("*/results.json")):
        record = json.loads(path.read_text())
        reason = _off_protocol(record)
        if reason:
            skipped.append(f"{path.parent}: {reason}")
            continue
        target = record_path(record)
        if target.exists():
            old = json.loads(target.read_text())
            differ = "; ".join(differences(old["config"],
                                           Experiment.from_json(record["config"])))
            if differ:
                raise ValueError(f"{target} holds another run ({differ}) than "
                                 f"{path}; it is not overwritten.")
        shutil.copyfile(path, target)
        copied.append(target)
    return copied, skipped


def record_path(record: dict) -> Path:
    """Where a run's record is kept: named by dataset, method label (which names every
    method option that differs from the published code, e.g. `-standardised`) and
    seed, not by the run's own name, so that runs of two variants never share a file
    (`equivset_copula` meant the standardised noise before it meant the published)."""
    config = Experiment.from_json(record["config"])
    return RECORDS / f"{config.dataset.replace(':', '-')}-{config.label}-s{config.seed}.json"


def _runs() -> list[dict]:
    runs = []
    for path in sorted(RECORDS.glob("*.json")):
        if path == EARLIER:
            continue
        record = json.loads(path.read_text())
        reason = _off_protocol(record)
        if reason:
            raise ValueError(f"{path}: {reason}; runs of other protocols belong in "
                             f"{RECORDS / 'other'}.")
        runs.append(record)
    return runs


def cells() -> dict[tuple[str, str], dict]:
    """Mean and standard deviation of test Jaccard over seeds, the number of seeds and
    the seconds per epoch (each run's median epoch, averaged over runs), by dataset and
    method label, from the earlier cells and the recorded runs."""
    out = {}
    earlier = json.loads(EARLIER.read_text()) if EARLIER.exists() else []
    for cell in earlier:
        out[cell["dataset"], cell["label"]] = dict(cell)
    runs = _runs()
    configs = [(Experiment.from_json(r["config"]), r["test_jaccard"]) for r in runs]
    # `summarise` would count a seed recorded twice twice; the scores below would not.
    names = {}
    for (config, _), record in zip(configs, runs):
        key = (config.dataset, config.label, config.seed)
        if key in names:
            raise ValueError(
                f"{RECORDS}: {names[key]} and {record['name']} are both the "
                f"{config.dataset} {config.label} run of seed {config.seed}."
            )
        names[key] = record["name"]
    for dataset, by_label in summarise(runs).items():
        for label, summary in by_label.items():
            new = {c.seed: score for c, score in configs
                   if c.dataset == dataset and c.label == label}
            old = out.get((dataset, label))
            if old is None:
                out[dataset, label] = {**summary, "scores": list(new.values())}
                continue
            if old.get("scores") is None:
                raise ValueError(
                    f"{EARLIER}: the {dataset} {label} cell has no per-seed scores, so "
                    f"the {len(new)} recorded run(s) cannot be added to it."
                )
            # The earlier scores are those of seeds 0, 1, ... in order.
            again = sorted(seed for seed in new if seed < len(old["scores"]))
            if again:
                raise ValueError(
                    f"{EARLIER}: the {dataset} {label} cell already counts seed(s) "
                    f"{again}, which are also recorded as runs."
                )
            scores = np.array(old["scores"] + list(new.values()))
            out[dataset, label] = {
                "mean": float(scores.mean()), "std": float(scores.std()),
                "runs": len(scores), "scores": list(scores),
                # The recorded runs' own timings where they have them.
                "seconds_per_epoch": summary["seconds_per_epoch"],
            }
    return out


def _order(dataset: str) -> tuple[int, str]:
    return ({"amazon": 0, "digits": 1}.get(_kind(dataset), 2), dataset)


def _row_name(dataset: str) -> str:
    """The dataset, with how its protocol departs from the defaults where it does."""
    reduced = REDUCED.get(_kind(dataset))
    if not reduced:
        return dataset
    return (f"{dataset} ({reduced['train_sets']} training sets, "
            f"batch {reduced['batch_size']})")


def _seconds(s: float) -> str:
    return f"{s:.1f} s" if s < 10 else f"{s:.0f} s"


def _cell(cell: dict | None, mark: str = "") -> str:
    if cell is None:
        return ""
    spread = f" ± {cell['std']:.2f}" if cell["runs"] > 1 else ""
    return (f"{cell['mean']:.2f}{spread}{mark} "
            f"({cell['runs']}, {_seconds(cell['seconds_per_epoch'])})")


def stale(*keys: tuple[str, str]) -> str:
    """The dagger where any of the (dataset, label) cells was trained before commit
    274819d (`BEFORE_274819D`), else nothing."""
    return f" {STALE}" if any(key in BEFORE_274819D for key in keys) else ""


def table() -> str:
    """The Markdown table of `docs/assets/real_data.md`."""
    found = cells()
    lines = [
        "| dataset | iDiffMF (setfix) | DiffMF, shared draws (setfix) "
        "| DiffMF, fresh draws (setfix) "
        "| EquiVSet$_{copula}$, standardised noise (setfix) "
        "| EquiVSet$_{copula}$, published noise (setfix) "
        "| DiffMF (published) | EquiVSet$_{copula}$ (published) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for dataset in sorted({d for d, _ in found}, key=_order):
        published = PUBLISHED.get(dataset)
        reference = [f"{x:g}" for x in published] if published else ["—", "—"]
        row = [_row_name(dataset)] + [_cell(found.get((dataset, m))) for m in METHODS] + reference
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def energies_table() -> str:
    """The Markdown table of `docs/assets/energies.md`: iDiffMF with each energy, on
    the datasets where an energy other than the DeepSet has runs, and the mean over
    the twelve Amazon categories of each energy that has runs on all of them."""
    found = cells()
    rows = sorted({d for d, label in found if label in ENERGIES and label != "idiffmf-fro"},
                  key=_order)
    lines = ["| dataset | " + " | ".join(f"iDiffMF, {name}" for name in ENERGIES.values())
             + " |", "| --- |" + " --- |" * len(ENERGIES)]
    for dataset in rows:
        row = [_row_name(dataset)] + [_cell(found.get((dataset, m)), stale((dataset, m)))
                                      for m in ENERGIES]
        lines.append("| " + " | ".join(row) + " |")
    categories = [d for d in PUBLISHED if d.startswith("amazon:")]
    row = [f"mean of the {len(categories)} Amazon categories"]
    for m in ENERGIES:
        cell = [found.get((d, m)) for d in categories]
        row.append("" if None in cell else
                   _mean_cell(cell, stale(*((d, m) for d in categories))))
    lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def _mean_cell(cells: list[dict], mark: str = "") -> str:
    """The mean over datasets of the cells' means, with the fewest seeds of any cell
    and the mean seconds per epoch; `mark` after the mean, as `_cell` puts it."""
    mean = np.mean([c["mean"] for c in cells])
    seconds = np.mean([c["seconds_per_epoch"] for c in cells])
    fewest = min(c["runs"] for c in cells)
    return f"{mean:.2f}{mark} (≥ {fewest} seeds each, {_seconds(seconds)})"


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.real_data",
                                     description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    add = sub.add_parser("collect", help="record the finished runs under RUNS_DIR")
    add.add_argument("runs", type=Path, metavar="RUNS_DIR")
    sub.add_parser("table", help="print the Markdown table")
    sub.add_parser("energies", help="print the Markdown table of the energies")
    args = parser.parse_args(argv)
    if args.command == "collect":
        if not args.runs.is_dir():
            raise SystemExit(f"RUNS_DIR: {args.runs} is not a directory")
        copied, skipped = collect(args.runs)
        for path in copied:
            print(f"recorded {path.name}")
        for reason in skipped:
            print(f"left out {reason}")
    elif args.command == "energies":
        sys.stdout.write(energies_table())
    else:
        sys.stdout.write(table())


if __name__ == "__main__":
    main(sys.argv[1:])
