"""The expected-Jaccard prediction against enumeration over every subset Y."""

import itertools

import equinox as eqx
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given

import setfix as sf


def enumerated(psi, mask, chosen, nonempty=False):
    """E[J(chosen, Y)] for independent Y_j ~ Bernoulli(psi_j) over the real items, by
    summing over all 2^|V| outcomes (J of two empty sets is 1); with `nonempty`, given
    Y != {} (the outcomes Y != {} only, over their total probability; None where that
    is 0)."""
    real = np.flatnonzero(mask)
    total = mass = 0.0
    for bits in itertools.product([False, True], repeat=len(real)):
        y = set(real[np.array(bits, bool)])
        if nonempty and not y:
            continue
        prob = np.prod([psi[j] if b else 1 - psi[j] for j, b in zip(real, bits)])
        union = len(chosen | y)
        total += prob * (len(chosen & y) / union if union else 1.0)
        mass += prob
    if nonempty:
        return total / mass if mass > 0 else None
    return total


def prefixes(psi, mask):
    """The top-k real items by psi (ties by position), k = 0..|V|."""
    real = np.flatnonzero(mask)
    order = real[np.argsort(-psi[real], kind="stable")]
    return [set(order[:k]) for k in range(len(real) + 1)]


# psi drawn from a few values, so ties, 0 and 1 occur; or anywhere in [0, 1].
probabilities = st.one_of(st.sampled_from([0.0, 0.25, 0.4, 0.5, 0.6, 1.0]),
                          st.floats(0.0, 1.0))


@given(st.integers(1, 7).flatmap(lambda n: st.tuples(
    st.lists(probabilities, min_size=n, max_size=n),
    st.lists(st.booleans(), min_size=n, max_size=n))), st.booleans())
def test_expected_jaccard_of_every_prefix_equals_enumeration(case, nonempty):
    """Exact (the quadrature is exact for the integrand's degree), so float64 agrees
    to rounding, given Y != {} or not; prefixes longer than the set are -inf. The
    prediction scores the best prefix's expectation, and given Y != {} it is never
    empty on a set with real items."""
    psi, mask = (np.array(x, np.float64) for x in case)
    mask = mask.astype(bool)
    got = np.asarray(sf.expected_jaccard_of_prefixes(psi, mask, nonempty=nonempty))
    want = [enumerated(psi, mask, a, nonempty) for a in prefixes(psi, mask)]
    if None in want:  # every psi is 0 or no item is real: the plain expectation
        want = [enumerated(psi, mask, a) for a in prefixes(psi, mask)]
    size = int(mask.sum())
    np.testing.assert_allclose(got[: size + 1], want, rtol=1e-10, atol=1e-12)
    assert np.all(got[size + 1:] == -np.inf)
    pred = np.asarray(sf.predict_expected_jaccard(psi, mask, nonempty=nonempty))
    assert not np.any(pred & ~mask)
    best = max(want[1:]) if nonempty and size else max(want)
    assert np.isclose(want[int(pred.sum())], best, rtol=1e-10, atol=1e-12)
    if nonempty and size:
        assert pred.any()


@given(st.integers(1, 6).flatmap(lambda n: st.lists(probabilities, min_size=n, max_size=n)))
def test_no_subset_beats_the_best_prefix(psi):
    """The docstring's claim, checked by enumerating every subset A as the prediction
    (and every Y): the best top-k set is the best of all subsets; given Y != {}, the
    best nonempty top-k set the best of all nonempty subsets."""
    psi = np.array(psi, np.float64)
    mask = np.ones(len(psi), bool)
    subsets = [set(np.flatnonzero(a)) for a in itertools.product([False, True], repeat=len(psi))]
    best = max(enumerated(psi, mask, a) for a in subsets)
    got = np.max(np.asarray(sf.expected_jaccard_of_prefixes(psi, mask, nonempty=False)))
    assert got >= best - 1e-12
    if psi.any():  # else nothing is nonempty
        best = max(enumerated(psi, mask, a, nonempty=True) for a in subsets if a)
        got = np.max(np.asarray(sf.expected_jaccard_of_prefixes(psi, mask))[1:])
        assert got >= best - 1e-12


def test_by_hand():
    """One item, unconditioned: take it iff psi > 1/2 (E[J] = psi against 1 - psi);
    given Y != {}, Y is that item, so taking it scores 1. Two items at psi = 0.4:
    unconditioned, nothing scores 0.6^2 = 0.36, one item 0.4 (0.6 + 0.4/2) = 0.32,
    both E[a]/2 = 0.4; given Y != {} (probability 0.64): 0, 0.5 and 0.625. So the rule
    takes both where psi > 1/2 takes neither. One item at 0.3 and three at 0.05:
    unconditioned, nothing is best (0.7 * 0.95^3 = 0.60 against 0.28 for the top
    item); given Y != {}, the top item (0.70 against 0.42 for two)."""
    one = jnp.array([True])
    np.testing.assert_allclose(
        sf.expected_jaccard_of_prefixes(jnp.array([0.3]), one, nonempty=False), [0.7, 0.3],
        rtol=1e-6)
    np.testing.assert_allclose(sf.expected_jaccard_of_prefixes(jnp.array([0.3]), one),
                               [0.0, 1.0], rtol=1e-6)
    psi, mask = jnp.array([0.4, 0.4]), jnp.array([True, True])
    np.testing.assert_allclose(sf.expected_jaccard_of_prefixes(psi, mask, nonempty=False),
                               [0.36, 0.32, 0.4], rtol=1e-6)
    np.testing.assert_allclose(sf.expected_jaccard_of_prefixes(psi, mask),
                               [0.0, 0.5, 0.625], rtol=1e-6)
    assert np.all(sf.predict_expected_jaccard(psi, mask))
    psi, mask = jnp.array([0.05, 0.3, 0.05, 0.05]), jnp.ones(4, bool)
    assert not np.any(sf.predict_expected_jaccard(psi, mask, nonempty=False))
    np.testing.assert_array_equal(sf.predict_expected_jaccard(psi, mask),
                                  jnp.arange(4) == 1)
    # All psi 0 on the real items: no prefix scores above 0; still one item.
    assert sf.predict_expected_jaccard(jnp.zeros(3), jnp.ones(3, bool)).sum() == 1
    assert not np.any(sf.predict_threshold(psi, mask))
    # Confident psi: the rule agrees with psi > 1/2.
    psi = jnp.array([0.99, 0.02, 0.97, 0.01, 0.03])
    np.testing.assert_array_equal(sf.predict_expected_jaccard(psi, jnp.ones(5, bool)),
                                  psi > 0.5)


def test_padding_batching_and_jit():
    """Padded items (any psi) change nothing; a batch is each set alone; jit agrees;
    float32 agrees with float64 to float32 rounding at n = 300 (the compounds' size)."""
    key1, key2 = jax.random.split(jax.random.key(0))
    psi = jax.random.uniform(key1, (3, 300), jnp.float64) ** 3
    mask = jax.random.uniform(key2, (3, 300)) < 0.8
    padded = jnp.where(mask, psi, 0.9)
    alone = [sf.predict_expected_jaccard(padded[b], mask[b]) for b in range(3)]
    batch = jax.jit(sf.predict_expected_jaccard)(padded, mask)
    np.testing.assert_array_equal(batch, np.stack(alone))
    np.testing.assert_array_equal(batch, sf.predict_expected_jaccard(psi, mask))
    e64 = sf.expected_jaccard_of_prefixes(psi, mask)
    e32 = sf.expected_jaccard_of_prefixes(psi.astype(jnp.float32), mask)
    finite = np.isfinite(e64)
    np.testing.assert_allclose(np.asarray(e32)[finite], np.asarray(e64)[finite],
                               rtol=1e-4, atol=1e-6)


def test_fewer_nodes_for_large_sets():
    """Past about 50 items the quadrature takes ceil(3 sqrt(n)) + 8 nodes instead of
    the exact ceil(n/2); against the exact rule at n = 2000 (float64), every prefix's
    expectation agrees to a relative 1e-9 (the worst is k = n, the integrand t^(n-1))."""
    from setfix._expected_jaccard import num_nodes

    assert num_nodes(50) == 25 and num_nodes(2000) == 143
    n = 2000
    psi = jax.random.beta(jax.random.key(3), 0.3, 3.0, (n,), jnp.float64)
    mask = jnp.ones(n, bool)
    got = np.asarray(sf.expected_jaccard_of_prefixes(psi, mask, nonempty=False))
    p = np.sort(np.asarray(psi))[::-1]
    nodes, weights = np.polynomial.legendre.leggauss(n // 2)  # exact
    t, w = (nodes + 1) / 2, weights / 2
    tail = np.cumsum(np.log1p(-p[:, None] * (1 - t))[::-1], axis=0)[::-1]
    tail = np.concatenate([tail, np.zeros((1, len(t)))])
    k = np.arange(n + 1)[:, None]
    exact = np.concatenate([[0.0], np.cumsum(p)]) * (w * np.exp((k - 1) * np.log(t) + tail)).sum(-1)
    exact[0] = np.prod(1 - p)
    np.testing.assert_allclose(got, exact, rtol=1e-9)


def test_bad_input():
    # jaxtyping's check (on in the tests) or the function's own: both name `mask`.
    with pytest.raises((ValueError, TypeError), match="mask"):
        sf.predict_expected_jaccard(jnp.zeros((2, 3)), jnp.ones((2, 4), bool))
    # Logits instead of probabilities; a padded item's value is never checked.
    with pytest.raises(eqx.EquinoxRuntimeError, match="`psi` must be probabilities"):
        sf.predict_expected_jaccard(jnp.array([0.2, 1.5]), jnp.ones(2, bool))
    # Under jit the check fires inside the compiled call (CPU: wrapped by JAX).
    with pytest.raises((eqx.EquinoxRuntimeError, jax.errors.JaxRuntimeError),
                       match="`psi` must be probabilities"):
        jax.jit(sf.expected_jaccard_of_prefixes)(jnp.array([-0.1, 0.5]), jnp.ones(2, bool))
    sf.predict_expected_jaccard(jnp.array([0.2, 1.5]), jnp.array([True, False]))
