"""What an inference method is: how it infers psi for a set (training is an objective's
job: `_objective.py`)."""

import abc
from typing import TYPE_CHECKING

import equinox as eqx
from equinox import AbstractVar
from jaxtyping import ArrayLike, Bool, Float, PRNGKeyArray

from ._losses import check_neg_num
from ._pooled_items import PooledItems
from ._set_function import AbstractSetFunction
from ._solution import MeanFieldSolution


if TYPE_CHECKING:
    from ._objective import AbstractObjective


class AbstractMethod(eqx.Module):
    r"""A way of inferring the mean field $\psi$ of a ground set from a set function:
    [`setfix.MeanField`][] (solve the fixed point), [`setfix.MeanFieldSteps`][] (a few
    steps, unrolled), [`setfix.EquiVSet`][] (a recognition network, then steps).

    Subclasses implement `solve` and name the training objective the method is
    published with (`objective`), which [`setfix.fit`][] uses unless given another;
    the inference itself never trains.
    """

    # The training objective this method is published with: the one `setfix.fit` uses
    # unless given `objective=` (a property of the mean-field methods, a field of
    # EquiVSet's).
    objective: AbstractVar["AbstractObjective"]

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
        items: Float[ArrayLike, "..."] | PooledItems,
        mask: Bool[ArrayLike, "*batch n"] | None = None,
        *,
        key: PRNGKeyArray | None = None,
    ) -> MeanFieldSolution:
        """Infers $\\psi$ for one set `(n, d)` or a padded batch `(b, n, d)`."""
