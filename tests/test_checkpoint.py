import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import setfix as sf


def test_round_trip_and_errors(tmp_path):
    f = sf.DeepSet(2, hidden=4, width=4, key=jax.random.key(0))
    opt_state = optax.adam(1e-3).init(eqx.filter(f, eqx.is_array))
    tree = (f, opt_state, jnp.array(3))
    path = sf.save_checkpoint(tmp_path / "run" / "ckpt.eqx", tree)
    other = sf.DeepSet(2, hidden=4, width=4, key=jax.random.key(1))
    like = (other, optax.adam(1e-3).init(eqx.filter(other, eqx.is_array)), jnp.array(0))
    loaded = sf.load_checkpoint(path, like)
    assert int(loaded[2]) == 3
    assert np.array_equal(loaded[0].phi.weight, f.phi.weight)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        sf.load_checkpoint(tmp_path / "missing.eqx", like)
    wrong = sf.DeepSet(2, hidden=8, width=4, key=jax.random.key(1))
    with pytest.raises(ValueError, match="does not match"):
        sf.load_checkpoint(path, (wrong, like[1], like[2]))
    corrupt = tmp_path / "corrupt.eqx"
    corrupt.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="corrupt"):
        sf.load_checkpoint(corrupt, like)
