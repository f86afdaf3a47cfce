"""What an ideal pairwise energy gains from the fixed point on the substitutes task: the
mean field of F(S) = sum_S a q_i - (r/2) sum_{i != j in S} [i, j in the same cluster]
(the true quality q and the true cluster kernel, not learned), scaled per set by
CertifiedScaling's rule c = min(1, 4 omega / |H|_2), solved by iteration, against its
first map step from 1/2 (which is a modular ranking), on 300 test sets. A grid over
the modular weight a and the repulsion r; the best cell is the ceiling that a learned
pairwise energy could reach with a certified, contracting map. `with_diagonal`: the
same with c from the norm of the Gram matrix r (same + I) instead of H = r same, as the
pairwise energies' bound did before commit 274819d (which subtracts the smallest
diagonal): the ceiling a looser certificate leaves.

    python -m benchmarks pairwise_ceiling [--quick]
"""

import numpy as np

import setfix as sf

from ._common import quick_flag, save


def _jaccard(pred, target):
    return (pred & target).sum() / (pred | target).sum()


def score(data, a, r, omega=0.9, steps=300, with_diagonal=False):
    """(solved, one step) mean top-|S*| Jaccard x100 of the ideal energy."""
    solved, first = [], []
    for x, target in zip(data.items, data.target):
        quality, position = x[:, 2], x[:, :2]
        distance = np.linalg.norm(position[:, None] - position[None], axis=-1)
        same = (distance < 0.3).astype(float)  # clusters: spread 0.05, centres far apart
        np.fill_diagonal(same, 0)
        kernel = r * same
        norm = np.linalg.norm(kernel + (r * np.eye(len(quality)) if with_diagonal else 0), 2)
        c = min(1.0, 4 * omega / norm) if norm > 0 else 1.0
        psi = np.full(len(quality), 0.5)
        for step in range(steps):
            psi = 1 / (1 + np.exp(-c * (a * quality - kernel @ psi)))
            if step == 0:
                one = psi
        k = int(target.sum())
        for out, p in ((solved, psi), (first, one)):
            pred = np.zeros(len(p), bool)
            pred[np.argsort(-p)[:k]] = True
            out.append(_jaccard(pred, target))
    return 100 * float(np.mean(solved)), 100 * float(np.mean(first))


def _grid(test, **options):
    """Every cell of the grid over (a, r), and the cell whose solved Jaccard is best."""
    grid = {f"a={a} r={r}": score(test, a, r, **options) for a in (1, 3, 10)
            for r in (0.3, 1, 3, 10, 30)}
    return grid, max(grid, key=lambda cell: grid[cell][0])


def main(argv=None):
    quick = quick_flag(argv)
    count = 20 if quick else 300
    results = {}
    for name, options in (("12 clusters of 3, |S*| = 6", {}),
                          ("6 clusters of 6, |S*| = 6",
                           dict(num_clusters=6, cluster_size=6))):
        test = sf.datasets.substitutes(count, 0, **options)[2]
        grid, best = _grid(test)
        loose, worse = _grid(test, with_diagonal=True)
        results[name] = {"grid": grid, "best": best, "solved": grid[best][0],
                         "one_step": grid[best][1],
                         "with_diagonal": {"grid": loose, "best": worse,
                                           "solved": loose[worse][0]}}
        print(f"{name}: best {best}: solved {grid[best][0]:.1f}, one step from 1/2 "
              f"{grid[best][1]:.1f}; with the diagonal in the bound: best {worse}: "
              f"solved {loose[worse][0]:.1f}")
    save("pairwise_ceiling-quick" if quick else "pairwise_ceiling", {"sets": count}, results)


if __name__ == "__main__":
    main()
