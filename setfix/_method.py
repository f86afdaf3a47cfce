"""What a learning method is: how it infers psi for a set and how it takes a training step."""

import abc
from typing import Any

import equinox as eqx
import optax
from jaxtyping import Array, Bool, Float, PRNGKeyArray, PyTree

from ._losses import check_neg_num, mean_field_nll
from ._pooled_items import PooledItems
from ._set_function import AbstractSetFunction
from ._solution import mean_over_converged, MeanFieldSolution


class AbstractMethod(eqx.Module):
    r"""A way of learning a set function from oracle examples $(V, S^*)$ and of
    inferring the mean field $\psi$ of a ground set from it.

    Subclasses implement `solve`. The default training step minimises the mean-field
    negative log-likelihood ([`setfix.mean_field_nll`][]) of $S^*$ at the inferred
    $\psi$, averaged over the sets whose inference converged; methods with other
    objectives (e.g. [`setfix.EquiVSet`][]) override `init_optimizer` and `update`.
    """

    @property
    def neg_num(self) -> int | None:
        """Negatives per member of $S^*$ in the training loss that
        [`setfix.fit`][] uses unless told otherwise (`None`: every non-member, the full
        likelihood). 1 here, as in EquiVSet's and the published iDiffMF code; methods
        with a `neg_num` field override it."""
        return 1

    def __check_init__(self):
        # Equinox runs this for every subclass too: one check of every method's field.
        check_neg_num(self.neg_num)

    @abc.abstractmethod
    def solve(
        self,
        model: AbstractSetFunction,
        items: Float[Array, "*batch n d"] | PooledItems,
        mask: Bool[Array, "*batch n"] | None = None,
        *,
        key: PRNGKeyArray | None = None,
    ) -> MeanFieldSolution:
        """Infers $\\psi$ for one set `(n, d)` or a padded batch `(b, n, d)`."""

    def loss(
        self,
        model: AbstractSetFunction,
        items: Float[Array, "b n d"] | PooledItems,
        mask: Bool[Array, "b n"],
        target: Bool[Array, "b n"],
        negatives: Bool[Array, "b n"],
        *,
        key: PRNGKeyArray,
    ) -> tuple[Float[Array, ""], MeanFieldSolution]:
        """The training loss of a batch and the solution it was computed at."""
        sol = self.solve(model, items, mask, key=key)
        nll = mean_field_nll(sol.psi, target, mask, negatives)
        return mean_over_converged(nll, sol.converged), sol

    def init_optimizer(
        self, optimizer: optax.GradientTransformation, model: AbstractSetFunction
    ) -> PyTree:
        """The optimiser state for training `model` with this method."""
        return optimizer.init(eqx.filter(model, eqx.is_inexact_array))

    def update(
        self,
        model: AbstractSetFunction,
        opt_state: PyTree,
        items: Float[Array, "b n d"] | PooledItems,
        mask: Bool[Array, "b n"],
        target: Bool[Array, "b n"],
        negatives: Bool[Array, "b n"],
        *,
        key: PRNGKeyArray,
        optimizer: optax.GradientTransformation,
    ) -> tuple[AbstractSetFunction, PyTree, dict[str, Any]]:
        """One training step on a batch. Returns the new model, the new optimiser state
        and statistics (`loss`, `num_steps`, `converged`, scalars)."""
        (loss, sol), grads = eqx.filter_value_and_grad(self.loss, has_aux=True)(
            model, items, mask, target, negatives, key=key
        )
        params = eqx.filter(model, eqx.is_inexact_array)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        stats = {"loss": loss, "num_steps": sol.num_steps.mean(),
                 "converged": sol.converged.mean()}
        return eqx.apply_updates(model, updates), opt_state, stats
