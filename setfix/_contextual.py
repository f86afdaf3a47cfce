"""Set functions that see their ground set: the interface, and the pieces its energies
share."""

import abc

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, PyTree

from ._interactions import PairwiseTerms
from ._set_function import AbstractSetFunction, AddBias


class AbstractContextualSetFunction(AbstractSetFunction):
    r"""A set function that sees the ground set $V$ as well as the subset $S$, in the
    pooled form

    $$F(S, V) = \rho\Big(\sum_{i \in S} r_i(V),\; c(V)\Big),$$

    the rows $r_i(V)$ and the context $c(V)$ computed once per ground set. Its three
    stages each run as rarely as they can:

    - `embed`: per item, as in [`setfix.AbstractPooledSetFunction`][] (row $i$ depends
      on item $i$ alone, so on [`setfix.PooledItems`][] it runs once per pool row);
    - `context`: once per ground set, from its items' embeddings and its mask, the rows
      that pool and the context (any PyTree of arrays), e.g. a summary of $V$ or
      embeddings after attention over $V$;
    - `readout`: $\rho(s, c)$ of a pooled sum, the only stage inside the fixed-point
      loop, so estimators still evaluate $F(S \pm i)$ as a readout of $s \pm r_i$.

    Padded items (mask false) must change neither the context nor the rows of real
    items. Called as `f(items, subset)`, every item is in the ground set.
    """

    @abc.abstractmethod
    def embed(self, items: Float[Array, "n ..."]) -> Float[Array, "n e"]:
        """Per-item embeddings, one row per item, row $i$ a function of item $i$ alone."""

    @abc.abstractmethod
    def context(
        self, embedding: Float[Array, "n e"], mask: Bool[Array, " n"]
    ) -> tuple[Float[Array, "n h"], PyTree[Array]]:
        r"""`(rows, context)` of one ground set: the rows $r_i(V)$ whose sums over
        subsets the readout takes, and the context $c(V)$ it takes beside them."""

    @abc.abstractmethod
    def readout(self, pooled: Float[Array, " h"], context: PyTree[Array]) -> Float[Array, ""]:
        r"""$\rho(s, c)$ of a pooled sum $s = \sum_{i \in S} r_i(V)$ and the context."""

    @property
    def closed_form(self) -> bool:
        """Whether `multilinear` gives the multilinear extension exactly."""
        return False

    def multilinear(
        self, rows: Float[Array, "n h"], psi: Float[Array, " n"], mask: Bool[Array, " n"],
        context: PyTree[Array],
    ) -> Float[Array, ""]:
        r"""$\tilde F(\psi)$ in closed form from one set's rows and context; only for
        set functions with `closed_form`."""
        raise NotImplementedError(f"{type(self).__name__} has no closed-form multilinear "
                                  "extension.")

    def folded(self) -> "AbstractContextualSetFunction":
        """An equivalent set function that is cheaper to evaluate many times on one
        ground set (see [`setfix.AbstractPooledSetFunction.folded`][]); `self` by
        default."""
        return self

    def __call__(
        self, items: Float[Array, "n ..."], subset: Float[Array, " n"]
    ) -> Float[Array, ""]:
        mask = jnp.ones(subset.shape, bool)
        rows, context = self.context(self.embed(items), mask)
        return self.readout(subset @ rows, context)


class AbstractSmoothContextual(AbstractContextualSetFunction):
    """A contextual set function that, when its pairwise `terms` are set
    (`smooth=True`), is the certified pairwise energy on its rows: exact multilinear
    extension and interaction bound from `PairwiseTerms` (private)."""

    terms: eqx.AbstractVar[PairwiseTerms | None]

    @property
    def smooth(self) -> bool:
        """Whether this is the certified pairwise energy."""
        return self.terms is not None

    @property
    def closed_form(self) -> bool:  # pyright: ignore
        return self.terms is not None

    def multilinear(self, rows, psi, mask, context):
        if self.terms is None:
            return super().multilinear(rows, psi, mask, context)
        return self.terms.multilinear(rows, psi, mask)

    def interaction_bound(self, embedding, mask):
        if self.terms is None:
            return super().interaction_bound(embedding, mask)
        return self.terms.interaction_bound(embedding, mask)


def masked_mean(x: Float[Array, "n h"], mask: Bool[Array, " n"]) -> Float[Array, " h"]:
    """The mean of the rows of the real items (zero for a set of none)."""
    count = jnp.maximum(jnp.sum(mask), 1).astype(x.dtype)
    return jnp.sum(jnp.where(mask[:, None], x, 0), axis=0) / count


class FoldedReadout(eqx.Module):
    r"""What is left of $\rho$ once its first layer $x \mapsto Wx + b$ is folded: the
    pooled sum of folded rows $W r_i$ plus a per-set bias $c$ (the folded context and
    $b$), then $\rho$'s other layers (private)."""

    rest: eqx.nn.MLP  # rho with its first layer replaced by the identity

    def __call__(self, pooled: Float[Array, " w"], bias: Float[Array, " w"]) -> Float[Array, ""]:
        return self.rest(pooled + bias)


def split_first_layer(rho: eqx.nn.MLP):
    """`(weight, bias, rest)`: $\\rho$'s first layer and $\\rho$ without it."""
    first = rho.layers[0]
    rest = eqx.tree_at(lambda r: r.layers[0], rho, AddBias(None),
                       is_leaf=lambda x: x is None)
    bias = first.bias if first.bias is not None else jnp.zeros(first.out_features)
    return first.weight, bias, FoldedReadout(rest)

