"""Bringing your own data: oracle examples (V, S*) from plain arrays, ground sets of
different sizes, into a SetDataset; then training and evaluation as for the built-in
datasets. The toy oracle: each set is a cloud of points around its own random centre
plus k points from a second cloud a few units away, and the oracle picks those k. What
counts as an outlier depends on the whole set, not on single items.

    python examples/your_own_data.py [--quick]
"""

import argparse

import jax
import numpy as np

import setfix as sf


def make_sets(rng, num_sets, k=3):
    items, targets = [], []
    for _ in range(num_sets):
        n = rng.integers(8, 16)  # ground sets of different sizes
        centre = rng.normal(size=2) * 2
        x = centre + 0.7 * rng.normal(size=(n, 2))
        outliers = rng.choice(n, size=k, replace=False)
        angle = rng.uniform(0, 2 * np.pi)
        x[outliers] += 3 * np.array([np.cos(angle), np.sin(angle)])
        items.append(x.astype(np.float32))
        targets.append(outliers)  # S* as indices into the set
    return items, targets


def main(quick: bool) -> None:
    rng = np.random.default_rng(0)
    num = 48 if quick else 600
    splits = []
    for name in ("train", "val", "test"):
        items, targets = make_sets(rng, num)
        # Pads to the largest ground set; `mask` marks the real items.
        splits.append(sf.SetDataset.from_sets(items, targets, name=f"outliers-{name}"))
    train, val, test = splits
    print(f"train: {len(train)} sets, padded to {train.items.shape[1]} items, "
          f"{train.mask.sum(1).min()}-{train.mask.sum(1).max()} real items per set")

    model = sf.DeepSet(2, hidden=64, width=64 if quick else 256, key=jax.random.key(0))
    method = sf.idiffmf(sf.NormScaling())
    chance = sf.evaluate(model, method, test, key=jax.random.key(1))["jaccard"]
    result = sf.fit(model, method, train, val, key=jax.random.key(2), learning_rate=1e-3,
                    batch_size=16, epochs=2 if quick else 15, progress=False)
    scores = sf.evaluate(result.model, method, test, key=jax.random.key(1))
    print(f"test Jaccard: untrained {chance:.1f}, trained {scores['jaccard']:.1f} "
          f"(best epoch {result.best_epoch}); converged on "
          f"{100 * scores['converged']:.0f}% of sets")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (seconds)")
    main(parser.parse_args().quick)
