"""EquiVSet's recognition network (the variational distribution q(S | V), item by
item) and the set function it is trained beside."""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from ._encoders import AbstractEncoder, item_encoder
from ._pooled_items import per_item, PooledItems
from ._set_function import AbstractPooledSetFunction


class RecognitionNetwork(eqx.Module):
    r"""The variational distribution $q(S \mid V)$ of EquiVSet, item by item: a
    Bernoulli mean $\mu_i \in (0, 1)$, and for the copula a scale $\sigma_i > 0$ and
    $r$ low-rank factors $u_i \in (-1, 1)^r$ of the Gaussian copula's covariance
    $\operatorname{diag}(\sigma^2) + U U^\top$.
    """

    encoder: eqx.nn.Linear | AbstractEncoder
    body: eqx.nn.MLP
    mean_head: eqx.nn.Linear
    scale_head: eqx.nn.Linear
    factor_head: eqx.nn.Linear

    def __init__(
        self,
        in_features: int | None = None,
        *,
        encoder: AbstractEncoder | None = None,
        rank: int = 5,
        hidden: int | None = None,
        width: int = 500,
        depth: int = 2,
        key: PRNGKeyArray,
    ):
        if min(rank, width, depth) < 1:
            raise ValueError(
                f"`rank`, `width` and `depth` must be positive, got {rank}, {width}, {depth}."
            )
        keys = jax.random.split(key, 5)
        self.encoder, hidden = item_encoder(in_features, encoder, hidden, keys[0])
        self.body = eqx.nn.MLP(hidden, width, width, depth - 1, activation=jax.nn.relu,
                               key=keys[1])
        self.mean_head = eqx.nn.Linear(width, "scalar", key=keys[2])
        self.scale_head = eqx.nn.Linear(width, "scalar", key=keys[3])
        self.factor_head = eqx.nn.Linear(width, rank, key=keys[4])

    def __call__(
        self, items: Float[Array, "n ..."] | PooledItems
    ) -> tuple[Float[Array, " n"], Float[Array, " n"], Float[Array, "n rank"]]:
        """Returns $(\\mu, \\sigma, U)$ for the items of one ground set (or, for
        `PooledItems` with `(b, n)` rows, of each set of the batch)."""
        return per_item(self._one, items, batched=False)

    def _one(self, x):
        h = jax.nn.relu(self.body(self.encoder(x)))
        return (jax.nn.sigmoid(self.mean_head(h)), jax.nn.softplus(self.scale_head(h)),
                jnp.tanh(self.factor_head(h)))

    def batched(
        self, items: Float[Array, "b n ..."] | PooledItems
    ) -> tuple[Float[Array, "b n"], Float[Array, "b n"], Float[Array, "b n rank"]]:
        """$(\\mu, \\sigma, U)$ of every set of a padded batch."""
        return per_item(self._one, items, batched=True)


RecognitionNetwork.__init__.__doc__ = """**Arguments:**

- `in_features`: the dimension $d$ of each item's feature vector (a linear encoder).
- `encoder`: instead of `in_features`, a per-item [`setfix.AbstractEncoder`][].
- `rank`: the rank $r$ of the copula's low-rank covariance term.
- `hidden`: the dimension of the item embedding (256 by default; with an `encoder`,
    its `out_features`).
- `width`, `depth`: the width and number of layers of the network after the embedding.
- `key`: a JAX PRNG key for the initialisation.
"""


class AmortizedSetFunction(AbstractPooledSetFunction):
    """A pooled set function together with the recognition network that amortises its
    mean-field inference; evaluates as `set_function`. What [`setfix.EquiVSet`][]
    trains."""

    set_function: AbstractPooledSetFunction
    recognition: RecognitionNetwork

    def __check_init__(self):
        if not isinstance(self.set_function, AbstractPooledSetFunction):
            raise TypeError(
                "`set_function` must be a setfix.AbstractPooledSetFunction (e.g. a "
                f"DeepSet), got {type(self.set_function).__name__}."
            )
        if not isinstance(self.recognition, RecognitionNetwork):
            raise TypeError(
                "`recognition` must be a setfix.RecognitionNetwork, got "
                f"{type(self.recognition).__name__}."
            )

    def embed(self, items: Float[Array, "n ..."]) -> Float[Array, "n h"]:
        return self.set_function.embed(items)

    def readout(self, pooled: Float[Array, " h"]) -> Float[Array, ""]:
        return self.set_function.readout(pooled)

    def folded(self) -> AbstractPooledSetFunction:
        return self.set_function.folded()


AmortizedSetFunction.__init__.__doc__ = """**Arguments:**

- `set_function`: the energy $F_\\theta$, a pooled set function such as a DeepSet.
- `recognition`: a [`setfix.RecognitionNetwork`][] on the same item features.
"""
