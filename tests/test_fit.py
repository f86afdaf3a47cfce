import equinox as eqx
import jax
import numpy as np
import optax
import optimistix as optx
import pytest

import setfix as sf


@pytest.fixture(scope="module")
def data():
    train, val, _ = sf.datasets.moons(v_size=20, s_size=3, num_sets=32)
    return train, val


def _setup():
    model = sf.DeepSet(2, hidden=16, width=16, key=jax.random.key(0))
    method = sf.MeanField(sf.MonteCarlo(4), sf.NormScaling(),
                          optx.FixedPointIteration(1e-5, 1e-5), max_steps=20)
    return model, method


def test_fit_keeps_the_best_parameters(data):
    train, val = data
    model, method = _setup()
    before = sf.evaluate(model, method, val, key=jax.random.key(1))
    result = sf.fit(model, method, train, val, key=jax.random.key(2), batch_size=8,
                    epochs=3, optimizer=optax.adam(3e-3), progress=False)
    assert [r["epoch"] for r in result.history] == [1, 2, 3]
    best = max(r["val_jaccard"] for r in result.history)
    assert result.best_val_jaccard == best
    assert result.history[result.best_epoch - 1]["val_jaccard"] == best
    val_key = jax.random.split(jax.random.fold_in(jax.random.key(2), result.best_epoch), 3)[2]
    after = sf.evaluate(result.model, method, val, key=val_key)
    assert np.isclose(after["jaccard"], best)
    assert 0 <= before["jaccard"] <= 100


def test_resume_repeats_an_uninterrupted_run(data, tmp_path):
    train, val = data
    model, method = _setup()
    kw = dict(key=jax.random.key(3), batch_size=8, optimizer=optax.adam(3e-3),
              progress=False, patience=100)
    full = sf.fit(model, method, train, val, epochs=2, **kw)
    path = tmp_path / "ckpt.eqx"
    sf.fit(model, method, train, val, epochs=1, checkpoint=path, **kw)
    resumed = sf.fit(model, method, train, val, epochs=2, checkpoint=path, **kw)
    assert [r["epoch"] for r in resumed.history] == [1, 2]
    assert np.isclose(resumed.history[1]["loss"], full.history[1]["loss"], rtol=1e-5)
    for a, b in zip(jax.tree.leaves(eqx.filter(full.model, eqx.is_array)),
                    jax.tree.leaves(eqx.filter(resumed.model, eqx.is_array))):
        assert np.allclose(a, b, atol=1e-6)


def test_fit_bad_arguments(data):
    train, val = data
    model, method = _setup()
    with pytest.raises(ValueError, match="`batch_size`"):
        sf.fit(model, method, train, val, key=jax.random.key(0), batch_size=0)
