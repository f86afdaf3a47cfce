r"""Synthetic oracle tasks where items interact, so that no modular (per-item) ranking
can reproduce the oracle: substitutes, coverage and complements. Generated offline with
NumPy from a seed; each oracle is a known function of the features."""

import numpy as np

from .._dataset import SetDataset


_SPLITS = ("train", "val", "test")


def _check_positive(**values):
    for name, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")


def _splits(name, make, num_sets, seed, metadata):
    """Three splits of `num_sets` sets, each drawn by `make(rng)` from its own stream."""
    out = []
    for index, split in enumerate(_SPLITS):
        rng = np.random.default_rng([seed, index])
        items, targets = zip(*(make(rng) for _ in range(num_sets)))
        out.append(SetDataset.from_sets(list(items), list(targets), name=f"{name}/{split}",
                                        metadata={"seed": seed, **metadata}))
    return tuple(out)


def substitutes_oracle(cluster: np.ndarray, quality: np.ndarray, k: int) -> np.ndarray:
    """Indices of the best item (highest `quality`) of each of the `k` clusters whose
    best item is best: the maximiser over $|S| \\le k$ of
    $F(S) = \\sum_C \\max_{i \\in S \\cap C} q_i$ when qualities are positive."""
    best = {}
    for i in np.argsort(-quality, kind="stable"):
        best.setdefault(int(cluster[i]), int(i))
    winners = sorted(best.values(), key=lambda i: -quality[i])[:k]
    return np.sort(np.array(winners, dtype=np.intp))


def substitutes(
    num_sets: int = 1000,
    seed: int = 0,
    *,
    num_clusters: int = 12,
    cluster_size: int = 3,
    subset_size: int = 6,
    spread: float = 0.05,
) -> tuple[SetDataset, SetDataset, SetDataset]:
    r"""Substitutes (diversity): `(train, val, test)`.

    Each ground set holds `num_clusters` clusters of `cluster_size` near-duplicate
    items. An item's 4 features are its cluster's position (2-d, uniform in
    $[-2, 2]^2$, plus noise of scale `spread`), its quality $q$ (the cluster's
    quality, standard normal, plus an item's own offset of scale 0.5) and a
    distractor (standard normal). The oracle takes the best item of each of the
    `subset_size` clusters whose best items are best:
    $S^* = \arg\max_{|S| = k} \sum_C \max_{i \in S \cap C} (q_i - \min q)$.

    A modular ranking fails here: the top-$k$ items by quality come from few
    clusters (near-duplicates of good items are good too), while $S^*$ takes one
    item per cluster. Seeing that two items are substitutes needs their interaction.

    **Arguments:**

    - `num_sets`: sets per split.
    - `seed`: the seed; splits use independent streams of it.
    - `num_clusters`, `cluster_size`: the ground set has their product of items.
    - `subset_size`: $|S^*|$, at most `num_clusters`.
    - `spread`: the positional noise within a cluster.
    """
    _check_positive(num_sets=num_sets, num_clusters=num_clusters,
                    cluster_size=cluster_size, subset_size=subset_size)
    if subset_size > num_clusters:
        raise ValueError(f"`subset_size` ({subset_size}) must not exceed `num_clusters` "
                         f"({num_clusters}): S* takes one item per cluster.")
    n = num_clusters * cluster_size

    def make(rng):
        centre = rng.uniform(-2, 2, (num_clusters, 2))
        level = rng.normal(size=num_clusters)
        cluster = np.repeat(np.arange(num_clusters), cluster_size)
        position = centre[cluster] + spread * rng.normal(size=(n, 2))
        quality = level[cluster] + 0.5 * rng.normal(size=n)
        items = np.column_stack([position, quality, rng.normal(size=n)])
        order = rng.permutation(n)
        items, cluster, quality = items[order], cluster[order], quality[order]
        return items, substitutes_oracle(cluster, quality, subset_size)

    meta = {"source": "setfix substitutes", "num_clusters": num_clusters,
            "cluster_size": cluster_size, "subset_size": subset_size, "spread": spread}
    return _splits("substitutes", make, num_sets, seed, meta)


def coverage_value(cover: np.ndarray, weight: np.ndarray, subset) -> float:
    """$f(S) = \\sum_u w_u \\,[\\exists i \\in S: \\text{cover}_{iu}]$."""
    covered = np.any(cover[np.asarray(subset, dtype=np.intp)], axis=0)
    return float(np.sum(weight * covered))


def coverage_oracle(cover: np.ndarray, weight: np.ndarray, k: int) -> np.ndarray:
    """The greedy maximiser of the weighted coverage under $|S| \\le k$ (ties to the
    lowest index): within $1 - 1/e$ of the optimum (Nemhauser et al. 1978)."""
    chosen: list[int] = []
    covered = np.zeros(cover.shape[1], bool)
    for _ in range(k):
        gains = (cover & ~covered) @ weight
        gains[chosen] = -np.inf
        best = int(np.argmax(gains))
        chosen.append(best)
        covered |= cover[best]
    return np.sort(np.array(chosen, dtype=np.intp))


def coverage(
    num_sets: int = 1000,
    seed: int = 0,
    *,
    num_items: int = 30,
    num_topics: int = 8,
    subset_size: int = 4,
) -> tuple[SetDataset, SetDataset, SetDataset]:
    r"""Coverage (a monotone submodular oracle): `(train, val, test)`.

    There are `num_topics` topics with weights $w_u$ (uniform in $[0.5, 1.5]$, drawn
    per set); each item covers each topic with probability 0.3. An item's features
    are its coverage row scaled by the weights, $(w_u [i \text{ covers } u])_u$. The
    oracle is the greedy maximiser of $f(S) = \sum_u w_u [\exists i \in S$ covering
    $u]$ under $|S| \le $ `subset_size`.

    A modular ranking takes the items that cover the most weight, which overlap; the
    oracle's items cover different topics: the value of an item depends on what else
    is taken.

    **Arguments:** `num_sets`, `seed` as [`setfix.datasets.substitutes`][];
    `num_items` $n$, `num_topics`, `subset_size` $|S^*|$.
    """
    _check_positive(num_sets=num_sets, num_items=num_items, num_topics=num_topics,
                    subset_size=subset_size)
    if subset_size > num_items:
        raise ValueError(f"`subset_size` ({subset_size}) must not exceed `num_items` "
                         f"({num_items}).")

    def make(rng):
        weight = rng.uniform(0.5, 1.5, num_topics)
        cover = rng.random((num_items, num_topics)) < 0.3
        return cover * weight, coverage_oracle(cover, weight, subset_size)

    meta = {"source": "setfix coverage", "num_items": num_items, "num_topics": num_topics,
            "subset_size": subset_size}
    return _splits("coverage", make, num_sets, seed, meta)


def complements_value(partner: np.ndarray, value: np.ndarray, subset) -> float:
    """$F(S) = \\sum_{i \\in S,\\ \\text{partner}(i) \\in S} v_i$: an item is worth its
    value only together with its partner (`partner[i] = -1`: it has none)."""
    chosen = set(int(i) for i in subset)
    return float(sum(value[i] for i in chosen if partner[i] in chosen))


def complements(
    num_sets: int = 1000,
    seed: int = 0,
    *,
    num_pairs: int = 10,
    num_singles: int = 10,
    subset_size: int = 6,
) -> tuple[SetDataset, SetDataset, SetDataset]:
    r"""Complements: `(train, val, test)`.

    A ground set holds `num_pairs` complementary pairs and `num_singles` items whose
    partner is missing. A pair shares a random code (3-d, standard normal) and its
    two items carry opposite roles $\pm 1$; an item's features are its code, its
    role and its value (pairs: uniform in $[0, 1]$, the same for both; singles:
    uniform in $[0.5, 1.5]$, so singles are worth more on their own). The oracle
    takes the `subset_size / 2` most valuable complete pairs: the maximiser of
    $F(S) = \sum_{i \in S,\ \text{partner}(i) \in S} v_i$ over $|S| = $
    `subset_size`.

    A modular ranking prefers the singles, which are worth nothing without their
    partner; whether an item is worth taking depends on whether its partner is in
    the ground set and taken.

    **Arguments:** `num_sets`, `seed` as [`setfix.datasets.substitutes`][];
    `num_pairs`, `num_singles`, `subset_size` (even, at most `2 * num_pairs`).
    """
    _check_positive(num_sets=num_sets, num_pairs=num_pairs, subset_size=subset_size)
    if not isinstance(num_singles, int) or num_singles < 0:
        raise ValueError(f"`num_singles` must be a non-negative integer, got {num_singles!r}.")
    if subset_size % 2 or subset_size > 2 * num_pairs:
        raise ValueError(f"`subset_size` must be even and at most 2 * num_pairs "
                         f"({2 * num_pairs}), got {subset_size}.")
    meta = {"source": "setfix complements", "num_pairs": num_pairs,
            "num_singles": num_singles, "subset_size": subset_size}
    return _splits(
        "complements",
        lambda rng: complements_set(rng, num_pairs, num_singles, subset_size)[:2],
        num_sets, seed, meta)


def complements_set(rng, num_pairs, num_singles, subset_size):
    """One set of [`setfix.datasets.complements`][]: `(items, target, partner)`, with
    `partner[i]` the index of item `i`'s partner (-1: none)."""
    n = 2 * num_pairs + num_singles
    codes = rng.normal(size=(num_pairs + num_singles, 3))
    pair_value = rng.uniform(0, 1, num_pairs)
    code = np.concatenate([np.repeat(codes[:num_pairs], 2, axis=0), codes[num_pairs:]])
    role = np.concatenate([np.tile([1.0, -1.0], num_pairs),
                           rng.choice([1.0, -1.0], num_singles)])
    value = np.concatenate([np.repeat(pair_value, 2), rng.uniform(0.5, 1.5, num_singles)])
    partner = np.concatenate([np.arange(2 * num_pairs) ^ 1, np.full(num_singles, -1)])
    order = rng.permutation(n)  # position p holds original item order[p]
    inverse = np.argsort(order)  # original item o sits at position inverse[o]
    partner = np.where(partner[order] >= 0, inverse[np.maximum(partner[order], 0)], -1)
    items = np.column_stack([code, role, value])[order]
    best = np.argsort(-pair_value, kind="stable")[: subset_size // 2]
    target = np.sort(inverse[np.concatenate([2 * best, 2 * best + 1])])
    return items, target, partner
