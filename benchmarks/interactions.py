"""When the fixed point matters: the interaction tasks (substitutes, coverage,
complements) and, for reference, Moons and Gaussian, with

- `modular`: a per-item score (a DeepSet whose readout is linear, so F is modular and
  psi_i = sigmoid(w(v_i))): the best a modular ranking learns;
- `norm`: today's default, `DeepSet` + `idiffmf()` (NormScaling, per set);
- `certified`: `DeepSet(smooth=True)` + `idiffmf(CertifiedScaling(0.9))`;
- `certified_onestep`: the same model and scaling trained with the one-step gradient
  (`onestep(CertifiedScaling(0.9))`), to see what the implicit gradient buys;
- ablations: `norm_all` (the default with the full likelihood, all negatives, as the
  certified method trains), `certified_neg1` (the certified method with the published
  loss, one negative per member), `certified_lowrank` (without the local kernel,
  `kernel_features=0`) and `certified_k64` (64 random Fourier features, the default
  before 256);
- energies that see the ground set: `superset` and `attention` (`SupersetDeepSet`,
  `AttentionSet`, with today's default `idiffmf()`) and `attention_certified`
  (`AttentionSet(smooth=True)` + `idiffmf(CertifiedScaling(0.9))`), same encoder;
- `superset_certified`: `SupersetDeepSet(smooth=True)` + `idiffmf(CertifiedScaling(0.9))`;
- the certified variants with only the interactions scaled (the singleton gains at full
  strength, `CertifiedScaling(0.9, interactions_only=True)`): `certified_interactions`,
  `superset_certified_interactions` and `attention_certified_interactions`.

Every model is trained with `setfix.fit` (Adam, lr 1e-3, batch 64, early stopping on
validation) and scored on the test split twice: at the solved fixed point and one map
step from psi = 1/2 (`reference_prediction`), with every figure `setfix.evaluate`
reports (top-|S*| Jaccard, size-free Jaccard, Brier, ECE, size error, max |psi - 1/2|,
converged fraction), plus the training cost.

    python -m benchmarks interactions [--quick] [--tasks substitutes,coverage]
        [--variants norm,certified] [--seeds 3] [--train-sets 1000] [--epochs 15]
        [--collect]

Each (task, variant, seed) is saved as it finishes in
`benchmarks/results/interactions/<task>-<variant>-s<seed>.json`, and an existing file
is not recomputed, so an interrupted run resumes; `interactions.json` gathers every
record saved at the same sizes, whichever tasks and variants this run named
(`--collect`: gather what is saved, run nothing) with a reliability plot,
`interactions_reliability.png`.
"""

import argparse
import json
import time

import jax
import numpy as np

import setfix as sf

from ._common import pyplot, RESULTS, save, save_figure


TASKS = ("substitutes", "coverage", "complements", "moons", "gaussian")
# The sizes of the recorded runs (the command line's defaults).
SIZES = dict(train_sets=1000, val_sets=500, test_sets=1000, epochs=15, patience=6)
VARIANTS = ("modular", "norm", "norm_all", "certified", "certified_onestep",
            "certified_neg1", "certified_lowrank", "certified_k64", "superset", "attention",
            "attention_certified", "superset_certified", "certified_interactions",
            "superset_certified_interactions", "attention_certified_interactions")


def build(variant, d, key):
    """The model and training method of a variant, for items of `d` features."""
    k1, k2 = jax.random.split(key)
    encoder = sf.MLPEncoder(d, 64, width=128, key=k1)
    if variant == "modular":
        return sf.DeepSet(encoder=encoder, depth=0, key=k2), sf.idiffmf(sf.NoScaling())
    if variant in ("norm", "norm_all"):
        neg_num = None if variant == "norm_all" else 1
        return sf.DeepSet(encoder=encoder, width=256, key=k2), sf.idiffmf(neg_num=neg_num)
    if variant in ("superset", "attention"):
        energy = sf.SupersetDeepSet if variant == "superset" else sf.AttentionSet
        return energy(encoder=encoder, width=256, key=k2), sf.idiffmf()
    scaling = sf.CertifiedScaling(omega=0.9,
                                  interactions_only=variant.endswith("_interactions"))
    for prefix, energy in (("attention", sf.AttentionSet), ("superset", sf.SupersetDeepSet)):
        if variant.startswith(prefix + "_certified"):
            model = energy(encoder=encoder, width=256, smooth=True, key=k2)
            return model, sf.idiffmf(scaling)
    local = {"certified_lowrank": {"kernel_features": 0, "kernel_dims": 0},
             "certified_k64": {"kernel_features": 64}}.get(variant, {})
    model = sf.DeepSet(encoder=encoder, width=256, smooth=True, key=k2, **local)
    if variant == "certified_onestep":
        return model, sf.onestep(scaling)
    if variant == "certified_neg1":
        return model, sf.idiffmf(scaling, neg_num=1)
    return model, sf.idiffmf(scaling)


def load(task, num_sets, seed):
    if task in ("moons", "gaussian"):
        train, val, test = getattr(sf.datasets, task)()
    else:
        train, val, test = getattr(sf.datasets, task)(num_sets, seed=seed)
    return train, val, test


def _subset(data, count):
    return data if count is None or count >= len(data) else data[:count]


def run_one(task, variant, seed, *, train_sets, val_sets, test_sets, epochs, patience):
    train, val, test = load(task, max(train_sets, val_sets, test_sets), 0)
    train, val, test = (_subset(train, train_sets), _subset(val, val_sets),
                        _subset(test, test_sets))
    key = jax.random.key(seed)
    model_key, fit_key, test_key = jax.random.split(key, 3)
    model, method = build(variant, train.feature_shape[0], model_key)
    start = time.perf_counter()
    result = sf.fit(model, method, train, val, key=fit_key, learning_rate=1e-3,
                    epochs=epochs, batch_size=64, patience=patience, progress=False)
    seconds = time.perf_counter() - start
    solved = sf.evaluate(result.model, method, test, key=test_key)
    one_step = sf.evaluate(result.model, sf.reference_prediction(method), test, key=test_key)
    history = result.history
    bins = 0
    for start in range(0, len(test), 250):
        chunk = test[start:start + 250]
        items, mask, target = (jax.numpy.asarray(x) for x in
                               (chunk.items, chunk.mask, chunk.target))
        sol = method(result.model, items, mask, key=jax.random.fold_in(test_key, start))
        bins = bins + np.asarray(sf.calibration_bins(sol.psi, target, mask))
    return {
        "task": task, "variant": variant, "seed": seed, "neg_num": method.neg_num,
        "solved": solved, "one_step": one_step,
        "best_epoch": result.best_epoch, "epochs_run": len(history),
        "fit_seconds": seconds,
        "seconds_per_epoch": sf._fit.seconds_per_epoch(history),
        "train_converged_min": min(r["train_converged"] for r in history),
        "val_converged_min": min(r["val_converged"] for r in history),
        "train_steps_mean": float(np.mean([r["train_steps"] for r in history])),
        "calibration_bins": bins.tolist(),
    }


def summarise(records):
    """Mean and std over seeds of the main figures, by task and variant."""
    table = {}
    for r in records:
        table.setdefault(r["task"], {}).setdefault(r["variant"], []).append(r)
    out = {}
    for task, by_variant in table.items():
        for variant, rs in by_variant.items():
            def stat(get):
                values = np.array([get(r) for r in rs])
                return [float(values.mean()), float(values.std())]
            out.setdefault(task, {})[variant] = {
                "seeds": len(rs),
                "jaccard": stat(lambda r: r["solved"]["jaccard"]),
                "jaccard_one_step": stat(lambda r: r["one_step"]["jaccard"]),
                "jaccard_threshold": stat(lambda r: r["solved"]["jaccard_threshold"]),
                "jaccard_size": stat(lambda r: r["solved"]["jaccard_size"]),
                # Records made before the rule existed lack it: NaN, shown as blank.
                "jaccard_expected": stat(
                    lambda r: r["solved"].get("jaccard_expected", np.nan)),
                "ece": stat(lambda r: r["solved"]["ece"]),
                "brier": stat(lambda r: r["solved"]["brier"]),
                "size_error": stat(lambda r: r["solved"]["size_error"]),
                "max_deviation": stat(lambda r: r["solved"]["max_deviation"]),
                "converged": stat(lambda r: r["solved"]["converged"]),
                "train_converged_min": float(min(r["train_converged_min"] for r in rs)),
                "seconds_per_epoch": stat(lambda r: r["seconds_per_epoch"]),
            }
    return out


def markdown(summary) -> str:
    """The summary as a Markdown table."""
    lines = ["| task | variant | seeds | top-\\|S*\\| solved | one step from ½ | ψ > ½ | "
             "top-round(Σψ) | top-k of most E[J] | ECE | \\|Σψ − \\|S*\\|\\| | "
             "max \\|ψ − ½\\| | converged (test / worst train epoch) | s per epoch |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- "
             "| --- |"]
    for task, by_variant in summary.items():
        for variant in VARIANTS:
            c = by_variant.get(variant)
            if c is None:
                continue
            def pm(name, digits=2):
                mean, std = c[name]
                return "" if np.isnan(mean) else f"{mean:.{digits}f} ± {std:.{digits}f}"
            lines.append(
                f"| {task} | {variant} | {c['seeds']} | {pm('jaccard')} | "
                f"{pm('jaccard_one_step')} | {pm('jaccard_threshold')} | "
                f"{pm('jaccard_size')} | {pm('jaccard_expected')} | {pm('ece', 3)} | "
                f"{pm('size_error')} | "
                f"{c['max_deviation'][0]:.3f} | {100 * c['converged'][0]:.1f} % / "
                f"{100 * c['train_converged_min']:.1f} % | "
                f"{c['seconds_per_epoch'][0]:.1f} |")
    return "\n".join(lines)


def reliability_plot(records, name):
    """Reliability diagrams (mean psi against the fraction in S* per bin, the bins of
    every seed pooled), one panel per task, one line per variant; `results/NAME.png`."""
    plt = pyplot()
    pooled = {}
    for r in records:
        if "calibration_bins" in r:
            key = (r["task"], r["variant"])
            pooled[key] = pooled.get(key, 0) + np.asarray(r["calibration_bins"])
    tasks = sorted({task for task, _ in pooled})
    if not tasks:
        return None
    fig, axes = plt.subplots(1, len(tasks), figsize=(4 * len(tasks), 4), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls=":")
        for variant in VARIANTS:
            bins = pooled.get((task, variant))
            if bins is None:
                continue
            count, total_psi, positives = bins
            used = count > 0
            ax.plot(total_psi[used] / count[used], positives[used] / count[used], "o-",
                    ms=3, label=variant)
        ax.set(title=task, xlabel="mean ψ in bin", ylabel="fraction in S*",
               xlim=(0, 1), ylim=(0, 1))
    axes[0][0].legend(fontsize=8)
    return save_figure(fig, name)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks interactions")
    parser.add_argument("--quick", action="store_true",
                        help="tiny sets and one epoch (a smoke test)")
    parser.add_argument("--tasks", default="substitutes,coverage,complements")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--seeds", type=int, default=3)
    for name, value in SIZES.items():
        parser.add_argument("--" + name.replace("_", "-"), type=int, default=value)
    parser.add_argument("--collect", action="store_true",
                        help="only gather the records already saved (run nothing)")
    args = parser.parse_args(argv)
    tasks = [t for t in args.tasks.split(",") if t]
    variants = [v for v in args.variants.split(",") if v]
    for name, names, known in (("task", tasks, TASKS), ("variant", variants, VARIANTS)):
        unknown = [x for x in names if x not in known]
        if unknown:
            raise SystemExit(f"unknown {name}(s) {unknown}; choose from {list(known)}")
    sizes = dict(train_sets=args.train_sets, val_sets=args.val_sets,
                 test_sets=args.test_sets, epochs=args.epochs, patience=args.patience)
    if args.quick:
        sizes = dict(train_sets=16, val_sets=16, test_sets=16, epochs=1, patience=1)
    folder = RESULTS / ("interactions-quick" if args.quick else "interactions")
    folder.mkdir(parents=True, exist_ok=True)
    for task in tasks:
        for variant in variants:
            for seed in range(1 if args.quick else args.seeds):
                path = folder / f"{task}-{variant}-s{seed}.json"
                if path.exists() and json.loads(path.read_text()).get("sizes") == sizes:
                    continue
                if args.collect:
                    continue
                record = {**run_one(task, variant, seed, **sizes), "sizes": sizes}
                path.write_text(json.dumps(record, indent=1))
                s = record["solved"]
                print(f"{task} {variant} s{seed}: solved {s['jaccard']:.2f}, one step "
                      f"{record['one_step']['jaccard']:.2f}, psi>1/2 "
                      f"{s['jaccard_threshold']:.2f}, ECE {s['ece']:.3f}, max|psi-1/2| "
                      f"{s['max_deviation']:.3f}, converged {s['converged']:.3f} "
                      f"({record['seconds_per_epoch']:.1f} s/epoch)", flush=True)
    # The summary gathers every saved record, not only this run's.
    records = gather(folder, sizes)
    summary = summarise(records)
    table = markdown(summary)
    print(table)
    reliability_plot(records, "interactions-quick_reliability" if args.quick
                     else "interactions_reliability")
    save("interactions-quick" if args.quick else "interactions",
         {"tasks": sorted({r["task"] for r in records}, key=TASKS.index),
          "variants": sorted({r["variant"] for r in records}, key=VARIANTS.index),
          **sizes},
         {"summary": summary, "markdown": table})


def documented_table() -> str:
    """The table of `docs/assets/interactions.md`: every record at the default sizes."""
    return markdown(summarise(gather(RESULTS / "interactions", SIZES))) + "\n"


def gather(folder, sizes):
    """Every record saved in `folder` at these sizes, by task, variant and seed."""
    records = [json.loads(path.read_text()) for path in folder.glob("*.json")]
    records = [r for r in records if r.get("sizes") == sizes
               and r["task"] in TASKS and r["variant"] in VARIANTS]
    return sorted(records, key=lambda r: (TASKS.index(r["task"]),
                                          VARIANTS.index(r["variant"]), r["seed"]))


if __name__ == "__main__":
    main()
