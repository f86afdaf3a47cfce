"""The interaction tasks' oracles against brute force, and the size-free and
calibration metrics against hand-computed values."""

import itertools

import jax.numpy as jnp
import numpy as np
import pytest

import setfix as sf
from setfix.datasets._interactions import (
    complements_set,
    complements_value,
    coverage_oracle,
    coverage_value,
    substitutes_oracle,
)

from .helpers import unchecked


def _best_subsets(n, k, value):
    """All maximisers of `value` over subsets of size k, by enumeration."""
    scored = [(value(s), s) for s in itertools.combinations(range(n), k)]
    top = max(v for v, _ in scored)
    return [set(s) for v, s in scored if v >= top - 1e-12]


@pytest.mark.parametrize("seed", range(5))
def test_substitutes_oracle_is_the_brute_force_maximiser(seed):
    rng = np.random.default_rng(seed)
    cluster = rng.integers(0, 4, 9)
    quality = rng.normal(size=9)
    shifted = quality - quality.min() + 1  # positive qualities, same order

    def value(s):
        return sum(max(shifted[i] for i in s if cluster[i] == c) for c in set(cluster[list(s)]))

    k = min(3, len(set(cluster)))
    assert set(substitutes_oracle(cluster, quality, k).tolist()) in _best_subsets(9, k, value)


@pytest.mark.parametrize("seed", range(5))
def test_coverage_oracle_is_greedy_and_near_optimal(seed):
    rng = np.random.default_rng(seed)
    cover = rng.random((9, 6)) < 0.3
    weight = rng.uniform(0.5, 1.5, 6)
    chosen = coverage_oracle(cover, weight, 3)
    # Greedy by hand: each pick has the largest marginal gain.
    picked: list[int] = []
    for _ in range(3):
        gains = [coverage_value(cover, weight, picked + [i]) - coverage_value(cover, weight, picked)
                 if i not in picked else -1 for i in range(9)]
        picked.append(int(np.argmax(gains)))
    assert sorted(picked) == chosen.tolist()
    best = max(coverage_value(cover, weight, s) for s in itertools.combinations(range(9), 3))
    assert coverage_value(cover, weight, chosen) >= (1 - 1 / np.e) * best - 1e-12


@pytest.mark.parametrize("seed", range(5))
def test_complements_oracle_is_the_brute_force_maximiser(seed):
    rng = np.random.default_rng(seed)
    items, target, partner = complements_set(rng, num_pairs=4, num_singles=3, subset_size=4)
    value = items[:, -1]
    assert set(target.tolist()) in _best_subsets(
        len(items), 4, lambda s: complements_value(partner, value, s))
    # Partners share their code and have opposite roles.
    for i, j in enumerate(partner):
        if j >= 0:
            np.testing.assert_allclose(items[i, :3], items[j, :3])
            assert items[i, 3] == -items[j, 3]


@pytest.mark.parametrize("name", ["substitutes", "coverage", "complements"])
def test_generators_are_seeded_and_fail_a_modular_ranking(name):
    gen = getattr(sf.datasets, name)
    train, val, test = gen(40, seed=3)
    again = gen(40, seed=3)[2]
    np.testing.assert_array_equal(test.items, again.items)
    assert not np.array_equal(train.items, test.items)
    assert not np.array_equal(test.items, gen(40, seed=4)[2].items)
    assert len(train) == len(val) == len(test) == 40
    k = test.target.sum(axis=1)
    assert (k == k[0]).all() and k[0] > 0


def test_generators_check_their_arguments():
    with pytest.raises(ValueError, match="subset_size"):
        sf.datasets.substitutes(5, num_clusters=3, subset_size=4)
    with pytest.raises(ValueError, match="num_sets"):
        sf.datasets.coverage(0)
    with pytest.raises(ValueError, match="even"):
        sf.datasets.complements(5, subset_size=3)


def test_metrics_by_hand():
    psi = jnp.array([[0.9, 0.6, 0.2, 0.0], [0.3, 0.4, 0.8, 0.7]])
    target = jnp.array([[True, False, False, False], [False, False, True, True]])
    mask = jnp.array([[True, True, True, False], [True, True, True, True]])
    # psi > 1/2: {0, 1} vs {0} -> 1/2; {2, 3} vs {2, 3} -> 1.
    np.testing.assert_allclose(sf.jaccard(sf.predict_threshold(psi, mask), target, mask),
                               [0.5, 1.0])
    # round(sum psi): round(1.7) = 2 -> {0, 1}; round(2.2) = 2 -> {2, 3}.
    np.testing.assert_allclose(sf.jaccard(sf.predict_size(psi, mask), target, mask), [0.5, 1.0])
    np.testing.assert_allclose(sf.brier_score(psi, target, mask),
                               [(0.01 + 0.36 + 0.04) / 3, (0.09 + 0.16 + 0.04 + 0.09) / 4],
                               rtol=1e-6)
    np.testing.assert_allclose(sf.size_error(psi, target, mask), [0.7, 0.2], rtol=1e-6)
    # Two bins: [0, .5) holds 0.2, 0.3, 0.4 (mean .3, none in S*); [.5, 1] holds .9,
    # .6, .8, .7 (mean .75, 3 of 4 in S*). ECE = 3/7 * .3 + 4/7 * 0 = 0.1286.
    ece = sf.expected_calibration_error(psi, target, mask, num_bins=2)
    np.testing.assert_allclose(ece, 3 / 7 * 0.3, rtol=1e-6)
    bins = sf.calibration_bins(psi, target, mask, num_bins=2)
    np.testing.assert_allclose(bins, [[3, 4], [0.9, 3.0], [0, 3]], rtol=1e-6)
    # Perfect probabilities have zero error.
    exact = target.astype(float)
    assert float(sf.expected_calibration_error(exact, target, mask)) == 0
    with unchecked(), pytest.raises(ValueError, match="same shape"):
        sf.brier_score(psi[0], target, mask)
    with pytest.raises(ValueError, match="num_bins"):
        sf.calibration_bins(psi, target, mask, num_bins=0)
