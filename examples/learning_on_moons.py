"""Learning a set function from an optimal-subset oracle: the two-moons sets of
EquiVSet. Each ground set holds 100 points of one moon, 10 of them replaced by points of
the other moon; the oracle's subset S* is those 10 anomalies. We train a DeepSet with
iDiffMF, compare it with DiffMF on the same data, and plot the training curves.

    python examples/learning_on_moons.py [--quick] [--plot curves.png]
"""

import argparse

import jax
import jax.numpy as jnp
import numpy as np

import setfix as sf


def main(quick: bool, plot: str | None) -> None:
    sizes = dict(v_size=30, s_size=3, num_sets=48) if quick else dict(num_sets=128)
    train, val, test = sf.datasets.moons(**sizes)
    print(f"{len(train)} training sets of {train.items.shape[1]} points, "
          f"|S*| = {int(train.target[0].sum())}")
    hidden, width = (16, 32) if quick else (128, 256)
    epochs = 2 if quick else 3

    histories = {}
    for name, method in [
        # Solve psi = sigma(2 g / (n |g|)) to tolerance, differentiate implicitly.
        ("iDiffMF", sf.idiffmf(sf.NormScaling(), num_samples=5)),
        # Five unscaled mean-field steps from psi = 0.5, differentiated by unrolling.
        ("DiffMF", sf.diffmf(steps=5, num_samples=5)),
    ]:
        model = sf.DeepSet(2, hidden=hidden, width=width, key=jax.random.key(0))
        result = sf.fit(model, method, train, val, key=jax.random.key(1),
                        learning_rate=1e-3, batch_size=16 if quick else 32,
                        epochs=epochs, progress=False)
        scores = sf.evaluate(result.model, method, test, key=jax.random.key(2))
        histories[name] = result.history
        print(f"{name:8s} best epoch {result.best_epoch}: val Jaccard "
              f"{result.best_val_jaccard:5.2f}, test Jaccard {scores['jaccard']:5.2f} "
              f"({result.history[-1]['train_seconds']:.1f} s per epoch)")
        if name == "iDiffMF":
            best = result.model

    # Look at one test set: psi* and the predicted top-|S*| points.
    items, mask, target = (jnp.asarray(x) for x in (test.items[0], test.mask[0],
                                                     test.target[0]))
    sol = sf.idiffmf()(best, items, mask, key=jax.random.key(3))
    pred = sf.predict(sol.psi, mask, int(target.sum()))
    print(f"one test set: converged {bool(sol.converged)} in {int(sol.num_steps)} steps, "
          f"Jaccard {float(sf.jaccard(pred, target, mask)):.2f}")

    if plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(9, 3.4))
        for name, history in histories.items():
            epochs_run = [r["epoch"] for r in history]
            ax0.plot(epochs_run, [r["loss"] for r in history], marker="o", label=name)
            ax1.plot(epochs_run, [r["val_jaccard"] for r in history], marker="o", label=name)
        ax0.set(xlabel="epoch", ylabel="training loss (NLL)")
        ax1.set(xlabel="epoch", ylabel="validation Jaccard (x100)")
        x, s = np.asarray(items), np.asarray(pred)
        ax1.legend()
        fig.tight_layout()
        fig.savefig(plot, dpi=120)
        fig2, ax = plt.subplots(figsize=(4, 3.4))
        ax.scatter(*x[~np.asarray(target)].T, s=10, c="0.6", label="normal")
        ax.scatter(*x[np.asarray(target)].T, s=40, marker="x", c="C3", label="S* (anomalies)")
        ax.scatter(*x[s].T, s=80, facecolors="none", edgecolors="C0", label="predicted")
        ax.legend(fontsize=7)
        fig2.tight_layout()
        fig2.savefig(plot.replace(".png", "_set.png"), dpi=120)
        print(f"wrote {plot}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (seconds)")
    parser.add_argument("--plot", default=None, help="save training curves to this PNG")
    args = parser.parse_args()
    main(args.quick, args.plot)
