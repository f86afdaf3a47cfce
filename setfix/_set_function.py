"""Set functions F_θ(S, V) as Equinox modules."""

import abc
import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from ._encoders import AbstractEncoder, item_encoder


class AbstractSetFunction(eqx.Module):
    r"""A learnable set function $F_\theta(S, V)$.

    Called as `f(items, subset)`, where `items` holds the features of the $n$ items of
    the ground set $V$ (one row each) and `subset` is the indicator vector of
    $S \subseteq V$ (entries in $\{0, 1\}$). Returns the scalar $F_\theta(S, V)$.

    Subclasses whose value depends on $S$ only through a pooled sum of per-item
    embeddings should subclass [`setfix.AbstractPooledSetFunction`][] instead, so that
    estimators run the per-item encoder once per ground set.
    """

    @abc.abstractmethod
    def __call__(
        self, items: Float[Array, "n d"], subset: Float[Array, " n"]
    ) -> Float[Array, ""]:
        """Evaluate $F_\\theta(S, V)$ for the subset with indicator vector `subset`."""


class AbstractPooledSetFunction(AbstractSetFunction):
    r"""A set function of the form $F(S, V) = \rho\big(\sum_{i \in S} \phi(v_i)\big)$.

    Subclasses implement `embed` ($\phi$, applied to every item once) and `readout`
    ($\rho$, applied to a pooled sum). Estimators use the split to compute
    $F(S \pm i)$ from pooled sums $s \pm \phi(v_i)$ without re-running $\phi$.
    """

    @abc.abstractmethod
    def embed(self, items: Float[Array, "n d"]) -> Float[Array, "n h"]:
        r"""The per-item embeddings $\phi(v_i)$, one row per item. Row $i$ must depend
        on item $i$ alone: on [`setfix.PooledItems`][] the embedding is computed once
        for a table of items shared by several sets and gathered."""

    @abc.abstractmethod
    def readout(self, pooled: Float[Array, " h"]) -> Float[Array, ""]:
        r"""The value $\rho(s)$ of a pooled sum $s = \sum_{i \in S} \phi(v_i)$."""

    def folded(self) -> "AbstractPooledSetFunction":
        r"""An equivalent pooled set function (the same $F(S, V)$ for every $S$ and
        $V$) that is cheaper to evaluate many times on one ground set. Estimators and
        solvers call it once per solve and evaluate its `readout` on pooled sums of its
        `embed`. The default is `self`; [`setfix.DeepSet`][] folds the first linear
        layer of $\rho$ into the embeddings."""
        return self

    def __call__(
        self, items: Float[Array, "n d"], subset: Float[Array, " n"]
    ) -> Float[Array, ""]:
        return self.readout(subset @ self.embed(items))


class _AddBias(eqx.Module):
    """What is left of a linear layer whose weight was folded into the embeddings."""

    bias: Float[Array, " out"] | None

    def __call__(self, x: Float[Array, " out"]) -> Float[Array, " out"]:
        return x if self.bias is None else x + self.bias


class _FoldedDeepSet(AbstractPooledSetFunction):
    r"""A DeepSet with $\rho$'s first layer $x \mapsto Wx + b$ folded into the
    embeddings: $\phi'(v) = W\phi(v)$ and $\rho'(s') = \rho_{>1}(s' + b)$, so that
    $\rho'(\sum_{i \in S} \phi'(v_i)) = \rho(\sum_{i \in S} \phi(v_i))$: the same
    function, up to rounding. A readout of $F(S \pm i)$ then starts from one add of
    precomputed rows, $s' \pm \phi'(v_i)$, instead of a matmul."""

    phi: eqx.nn.Linear | AbstractEncoder
    weight: Float[Array, "width h"]
    rho: eqx.nn.MLP

    def embed(self, items: Float[Array, "n ..."]) -> Float[Array, "n width"]:
        return jax.vmap(self.phi)(items) @ self.weight.T

    def readout(self, pooled: Float[Array, " width"]) -> Float[Array, ""]:
        return self.rho(pooled)


class DeepSet(AbstractPooledSetFunction):
    r"""The DeepSet set function of the reference models:
    $F(S, V) = \rho\big(\sum_{i \in S} \phi(v_i)\big)$ with $\rho$ an MLP
    (`depth` hidden layers of `width` units with ReLU, then a linear scalar output) and
    $\phi$ a linear map $\phi(v) = W v + b$, or any [`setfix.AbstractEncoder`][] (an MLP
    over fingerprints, a CNN over images).
    """

    phi: eqx.nn.Linear | AbstractEncoder
    rho: eqx.nn.MLP

    def __init__(
        self,
        in_features: int | None = None,
        *,
        encoder: AbstractEncoder | None = None,
        hidden: int | None = None,
        width: int = 500,
        depth: int = 2,
        key: PRNGKeyArray,
    ):
        if width < 1 or depth < 0:
            raise ValueError(
                f"`width` must be positive and `depth` non-negative, got width={width}, "
                f"depth={depth}."
            )
        phi_key, rho_key = jax.random.split(key)
        self.phi, hidden = item_encoder(in_features, encoder, hidden, phi_key)
        self.rho = eqx.nn.MLP(
            hidden, "scalar", width, depth, activation=jax.nn.relu, key=rho_key
        )

    def embed(self, items: Float[Array, "n ..."]) -> Float[Array, "n h"]:
        return jax.vmap(self.phi)(items)

    def readout(self, pooled: Float[Array, " h"]) -> Float[Array, ""]:
        return self.rho(pooled)

    def folded(self) -> AbstractPooledSetFunction:
        """This DeepSet with the first linear layer of $\\rho$ folded into the item
        embeddings (see [`setfix.AbstractPooledSetFunction.folded`][]); `self` when
        $\\rho$ has no hidden layer."""
        if self.rho.depth == 0:
            return self
        first = self.rho.layers[0]
        rest = eqx.tree_at(lambda r: r.layers[0], self.rho, _AddBias(first.bias))
        return _FoldedDeepSet(self.phi, first.weight, rest)


DeepSet.__init__.__doc__ = r"""**Arguments:**

- `in_features`: the dimension $d$ of each item's feature vector, for a linear $\phi$.
- `encoder`: instead of `in_features`, the per-item encoder $\phi$, e.g. a
    [`setfix.CNNEncoder`][] for images.
- `hidden`: the dimension of the item embedding $\phi(v)$ (256 by default; with an
    `encoder`, its `out_features`).
- `width`: the width of each hidden layer of $\rho$.
- `depth`: the number of hidden layers of $\rho$.
- `key`: a JAX PRNG key for the initialisation.
"""


class TableSetFunction(AbstractSetFunction):
    r"""An explicit set function on $n$ items, given by its table of $2^n$ values.

    `values[b]` is $F(S)$ for the subset $S$ whose bitmask is `b` (item $i$ is bit $i$).
    Item features are ignored; only their number is checked. Meant for theory and tests.
    """

    values: Float[Array, " 2**n"]

    def __init__(self, values: Float[Array, " 2**n"]):
        values = jnp.asarray(values)
        if values.ndim != 1 or values.shape[0] < 2:
            raise ValueError(
                "`values` must be a 1-d array of length 2**n with n >= 1, got shape "
                f"{values.shape}."
            )
        n = int(round(math.log2(values.shape[0])))
        if 2**n != values.shape[0]:
            raise ValueError(
                f"`values` must have length 2**n, got length {values.shape[0]}."
            )
        if not jnp.issubdtype(values.dtype, jnp.floating):
            values = values.astype(float)
        self.values = values

    @property
    def num_items(self) -> int:
        """The number $n$ of items the table is defined on."""
        return int(round(math.log2(self.values.shape[0])))

    def __call__(
        self, items: Float[Array, "n d"], subset: Float[Array, " n"]
    ) -> Float[Array, ""]:
        n = self.num_items
        if subset.shape != (n,):
            raise ValueError(
                f"`subset` must have shape ({n},) for a table on {n} items, got "
                f"{subset.shape}."
            )
        bits = jnp.round(subset).astype(jnp.int32)
        index = jnp.sum(bits << jnp.arange(n, dtype=jnp.int32))
        return self.values[index]


TableSetFunction.__init__.__doc__ = """**Arguments:**

- `values`: the $2^n$ values $F(S)$, indexed by the bitmask of $S$ (item $i$ is bit $i$).
"""
