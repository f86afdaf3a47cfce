"""The baselines behave as their published code does, on a small fixed case.

Side by side with the original EquiVSet code on Amazon `bath` (issue 33), the published
EquiVSet_copula's recognition network shrinks its copula noise (standard deviation
about 0.03) and keeps mu near 1/2, so each relaxed sample is close to the threshold
1[mu > 1/2]; with the noise standardised before Phi the noise scale is free and mu
moves toward 0 and 1. These tests train both variants for a few epochs on tiny Moons
and check those statistics, so a change that loses the published behaviour fails here.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import setfix as sf


# Training runs as users run it (float32, standard promotion: optax's Adam needs it).
pytestmark = pytest.mark.user_defaults


def _copula_statistics(method, epochs=10):
    """Noise standard deviation sqrt(sigma^2 + |u|^2) (median over the real items of
    the test sets), mu's 5th and 95th percentiles, and how often one relaxed sample
    equals 1[mu > 1/2], before and after `epochs` epochs at learning rate 1e-2."""
    train, val, test = sf.datasets.moons(v_size=20, s_size=4, num_sets=128)
    k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
    model = sf.AmortizedSetFunction(
        sf.DeepSet(2, hidden=32, width=32, key=k1),
        sf.RecognitionNetwork(2, rank=3, hidden=32, width=32, key=k2))
    items, mask = jnp.asarray(test.items), np.asarray(test.mask)

    def statistics(model):
        mu, scale, factors = jax.vmap(model.recognition)(items)
        spread = np.sqrt(scale**2 + np.sum(factors**2, axis=-1))[mask]
        mu = np.asarray(mu)[mask]
        keys = jax.random.split(jax.random.key(1), len(test))
        samples = jax.vmap(lambda x, m, k: method.objective.sample(model, x, m, key=k)[0])(
            items, jnp.asarray(mask), keys)
        return {"sd": float(np.median(spread)), "mu_p05": float(np.quantile(mu, 0.05)),
                "mu_p95": float(np.quantile(mu, 0.95)),
                "threshold": float(np.mean(np.asarray(samples)[mask] == (mu > 0.5)))}

    before = statistics(model)
    fitted = sf.fit(model, method, train, val, key=k3, learning_rate=1e-2,
                    batch_size=32, epochs=epochs, patience=epochs, progress=False)
    return before, statistics(fitted.model)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_published_copula_learns_to_shrink_its_noise():
    """Measured (in this suite's double precision): noise sd 0.74 -> 0.084, mu's 5th-95th
    percentiles 0.33-0.47, samples equal to the threshold 53 % -> 89 %. Bounds: a third
    of the initial sd, mu inside (0.2, 0.6), and more agreement with the threshold than
    at initialisation and at least 80 %."""
    before, after = _copula_statistics(sf.equivset_copula(num_samples=5))
    assert after["sd"] < before["sd"] / 3, (before, after)
    assert 0.2 < after["mu_p05"] and after["mu_p95"] < 0.6, after
    assert after["threshold"] > max(before["threshold"], 0.8), (before, after)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_standardised_copula_does_not():
    """The contrast that tells the two apart: with the noise standardised before Phi
    the noise scale grows (measured 0.74 -> 1.27) and samples follow mu, not its
    threshold (measured agreement 69 %; bound 80 %, the published variant's floor)."""
    before, after = _copula_statistics(sf.equivset_copula(num_samples=5, standardise=True))
    assert after["sd"] > before["sd"], (before, after)
    assert after["threshold"] < 0.8, after
