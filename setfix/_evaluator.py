"""Evaluation of a set function from pooled sums (private).

Every set function is evaluated as ``readout(subset @ embedding)``: a pooled set function
uses the ``embed``/``readout`` split of its ``folded`` form, so the per-item encoder runs
once per ground set; any other set function uses the identity embedding (the pooled sum
*is* the subset indicator) and ``readout(s) = f(items, s)``.
"""

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ._pooled_items import embed_items, gathered, PooledItems
from ._set_function import AbstractPooledSetFunction, AbstractSetFunction


class _PooledReadout(eqx.Module):
    f: AbstractPooledSetFunction

    def __call__(self, pooled):
        return self.f.readout(pooled)


class _SubsetReadout(eqx.Module):
    f: AbstractSetFunction
    items: Float[Array, "n d"]

    def __call__(self, subset):
        return self.f(self.items, subset)


def split_set_function(
    f: AbstractSetFunction, items: Float[Array, "n d"] | PooledItems
) -> tuple[Callable, Float[Array, "n h"]]:
    """Returns `(readout, embedding)` with `f(items, S) == readout(S @ embedding)`; a
    pooled set function is evaluated in its `folded` form (on `PooledItems`, its
    encoder runs on the pool)."""
    if isinstance(f, AbstractPooledSetFunction):
        f = f.folded()
        return _PooledReadout(f), embed_items(f.embed, items, batched=False)
    items = gathered(items)
    return _SubsetReadout(f, items), jnp.eye(items.shape[0], dtype=items.dtype)


def batched_readout(readout: Callable, pooled: Float[Array, "*batch h"]) -> Array:
    """Applies `readout` to every row of `pooled`, keeping the leading shape."""
    flat = pooled.reshape(-1, pooled.shape[-1])
    return jax.vmap(readout)(flat).reshape(pooled.shape[:-1])
