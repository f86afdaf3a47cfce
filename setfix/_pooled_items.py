"""Items given as rows of a shared table, and per-item work done once per row."""

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int


class PooledItems(eqx.Module):
    r"""The items of one ground set (`rows` of shape `(n,)`) or of a padded batch
    (`(b, n)`), given as rows of a table `pool` of item features that the sets share.

    Wherever setfix takes `items` (mean-field solves, methods, EquiVSet, the theory
    checks), `PooledItems(pool, rows)` stands for the gathered `pool[rows]`, with one
    difference in cost: per-item work, the encoder $\phi$ of a
    [`setfix.AbstractPooledSetFunction`][] and EquiVSet's recognition network, runs
    once on every row of `pool` and is then gathered, instead of once per (set, item).
    That is cheaper whenever a batch holds more items than the pool has rows, as
    batches of compounds drawn from one target do (128 sets of 300 out of about 3000
    molecules). [`setfix.fit`][] and [`setfix.evaluate`][] pass a
    [`setfix.SetDataset`][]'s pool this way when it has fewer rows than a batch has
    items.

    **Example:**

    ```python
    import jax, jax.numpy as jnp
    import setfix as sf

    pool = jax.random.normal(jax.random.key(0), (50, 4))    # 50 distinct items
    rows = jax.random.randint(jax.random.key(1), (8, 10), 0, 50)  # 8 sets of 10
    f = sf.DeepSet(4, key=jax.random.key(2))
    solve = sf.MeanField(sf.MonteCarlo(5), sf.NormScaling())
    a = solve(f, sf.PooledItems(pool, rows), key=jax.random.key(3))
    b = solve(f, pool[rows], key=jax.random.key(3))        # the same, up to rounding
    assert jnp.allclose(a.psi, b.psi, atol=1e-5)
    ```
    """

    pool: Float[Array, "m ..."]
    rows: Int[Array, "*batch n"]

    def __check_init__(self):
        pool, rows = self.pool, self.rows
        if not hasattr(pool, "dtype") or jnp.ndim(pool) < 2:
            raise ValueError(
                "`pool` must be an array of shape (num_rows, ...features), got "
                f"{getattr(pool, 'shape', type(pool).__name__)}."
            )
        if not jnp.issubdtype(pool.dtype, jnp.floating):
            raise TypeError(f"`pool` must be floating point, got dtype {pool.dtype}.")
        if not hasattr(rows, "dtype") or not jnp.issubdtype(rows.dtype, jnp.integer):
            raise TypeError(
                "`rows` must be an integer array of rows of `pool`, got "
                f"{getattr(rows, 'dtype', type(rows).__name__)}."
            )
        if jnp.ndim(rows) not in (1, 2):
            raise ValueError(
                f"`rows` must have shape (n,) or (batch, n), got {jnp.shape(rows)}."
            )

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of the gathered items, `rows.shape + pool.shape[1:]`."""
        return tuple(self.rows.shape) + tuple(self.pool.shape[1:])

    @property
    def ndim(self) -> int:
        """The number of dimensions of the gathered items."""
        return len(self.shape)

    @property
    def dtype(self):
        """The dtype of the features."""
        return self.pool.dtype

    def gather(self) -> Float[Array, "*batch n d"]:
        """The items as one array, `pool[rows]`."""
        return self.pool[self.rows]


PooledItems.__init__.__doc__ = """**Arguments:**

- `pool`: the `(M, ...)` table of item features.
- `rows`: the `(n,)` or `(b, n)` integer rows of `pool` of one set or a batch (padded
    positions may hold any valid row; the `mask` passed beside them says which are real).
"""


def gathered(items) -> Array:
    """`items` as one array (gathered from its pool if it is a `PooledItems`)."""
    return items.gather() if isinstance(items, PooledItems) else items


def embed_items(embed: Callable[[Array], Array], items, *, batched: bool) -> Array:
    """`embed` (a row-wise map of an `(n, ...)` array of items to `(n, h)`) of one set or
    of every set of a batch; on `PooledItems`, applied once to the pool and gathered."""
    if isinstance(items, PooledItems):
        return embed(items.pool)[items.rows]
    return jax.vmap(embed)(items) if batched else embed(items)


def per_item(fn: Callable[[Array], Any], items, *, batched: bool) -> Any:
    """`fn` (of one item's features) on every item of one set or of a batch, as a
    PyTree of arrays with the leading shape of the items; on `PooledItems`, applied
    once to every row of the pool and gathered."""
    if isinstance(items, PooledItems):
        return jax.tree.map(lambda out: out[items.rows], jax.vmap(fn)(items.pool))
    fn = jax.vmap(fn)
    return jax.vmap(fn)(items) if batched else fn(items)
