import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import setfix as sf


def test_deepset_is_pooled_sum():
    key = jax.random.key(0)
    f = sf.DeepSet(3, hidden=5, width=7, depth=2, key=key)
    items = jax.random.normal(key, (6, 3))
    subset = jnp.array([1.0, 0, 1, 1, 0, 0])
    pooled = jnp.sum(jax.vmap(f.phi)(items) * subset[:, None], axis=0)
    assert np.allclose(f(items, subset), f.rho(pooled))
    # Structure of the reference model: depth x [Linear(width) + ReLU], Linear(1).
    assert len(f.rho.layers) == 3
    assert f.rho.layers[0].weight.shape == (7, 5)
    assert f.rho.layers[-1].weight.shape == (1, 7)
    # Sum pooling: invariant to the order of the items.
    perm = jnp.array([5, 3, 1, 0, 2, 4])
    assert np.allclose(f(items, subset), f(items[perm], subset[perm]))


def test_table_indexing():
    values = jnp.arange(8.0)
    f = sf.TableSetFunction(values)
    items = jnp.zeros((3, 1))
    assert f.num_items == 3
    assert float(f(items, jnp.array([1.0, 0, 1]))) == 5.0  # bits 0 and 2
    assert float(f(items, jnp.array([0.0, 1, 0]))) == 2.0


def test_modules_are_abstract_or_final():
    for cls in (sf.DeepSet, sf.TableSetFunction, sf.Exact, sf.MonteCarlo,
                sf.NoScaling, sf.ConstantScaling, sf.NormScaling, sf.MeanField):
        assert issubclass(cls, eqx.Module)
        assert cls.__init__.__doc__, cls
