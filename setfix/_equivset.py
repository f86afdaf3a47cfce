"""EquiVSet's inference (Ou et al. 2022): the recognition network's mean, then a few
mean-field steps of the set function from it."""

import equinox as eqx
import jax
from jaxtyping import ArrayLike, Bool, Float, PRNGKeyArray

from ._elbo import check_amortized, EquiVSetELBO
from ._estimator import AbstractEstimator
from ._hessian import ZeroHessian
from ._mean_field_steps import MeanFieldSteps
from ._method import AbstractMethod
from ._monte_carlo import MonteCarlo
from ._pooled_items import PooledItems
from ._scaling import NoScaling
from ._set_function import AbstractSetFunction
from ._solution import MeanFieldSolution
from ._validate import check_items_and_mask


class EquiVSet(AbstractMethod):
    r"""EquiVSet's inference (Ou et al. 2022): a [`setfix.RecognitionNetwork`][] gives
    $\psi^0 = \mu(V)$, from which `steps` mean-field steps (unscaled, from
    $\text{stop\_gradient}(\psi^0)$) give the $\psi$ used for the loss and for
    prediction. It is trained with `objective`, by default [`setfix.EquiVSetELBO`][]
    (the recognition network on the ELBO, alternating with the set function on the
    mean-field likelihood through this inference).

    The model must be an [`setfix.AmortizedSetFunction`][]. After training, its
    `set_function` can also be solved to its fixed point with [`setfix.MeanField`][].
    """

    estimator: AbstractEstimator = MonteCarlo(5, hessian=ZeroHessian())
    steps: int = 1
    objective: EquiVSetELBO = eqx.field(default=EquiVSetELBO(), kw_only=True)
    neg_num: int | None = eqx.field(default=1, kw_only=True, static=True)

    def __check_init__(self):
        if not isinstance(self.estimator, AbstractEstimator):
            raise TypeError(
                "`estimator` must be a setfix estimator such as `setfix.MonteCarlo()`, got "
                f"{self.estimator!r}. (EquiVSet's noise is a value of its objective: "
                "`objective=setfix.EquiVSetELBO(setfix.IndependentNoise())` for "
                "EquiVSet_ind, `setfix.CopulaNoise()` for EquiVSet_copula.)"
            )
        if not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"`steps` must be a positive integer, got {self.steps!r}.")
        if not isinstance(self.objective, EquiVSetELBO):
            raise TypeError(
                f"`objective` must be a setfix.EquiVSetELBO, got {self.objective!r}."
            )

    def solve(
        self,
        model: AbstractSetFunction,
        items: Float[ArrayLike, "..."] | PooledItems,
        mask: Bool[ArrayLike, "*batch n"] | None = None,
        *,
        key: PRNGKeyArray | None = None,
    ) -> MeanFieldSolution:
        """$\\psi$ after `steps` mean-field steps from the recognition network's
        $\\mu$ (`converged` says only that it is finite)."""
        check_amortized(model)
        items, mask = check_items_and_mask(items, mask)
        recognition = model.recognition
        mean = (recognition.batched(items) if mask.ndim == 2 else recognition(items))[0]
        steps = MeanFieldSteps(self.estimator, NoScaling(), self.steps)
        return steps(model.set_function, items, mask, key=key,
                     psi0=jax.lax.stop_gradient(mean))


EquiVSet.__init__.__doc__ = """**Arguments:**

- `estimator`: the estimator of $\\nabla \\tilde F$ in the mean-field steps.
- `steps`: mean-field steps from the recognition network's output (the reference: 1).
- `objective`: the training objective [`setfix.fit`][] uses by default, an
    [`setfix.EquiVSetELBO`][] (its noise, samples and temperature).
- `neg_num`: negatives per member of $S^*$ in the training loss of [`setfix.fit`][]
    (`None`: every non-member; default 1, as the published code).
"""
