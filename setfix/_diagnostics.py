"""Diagnostics of a mean-field solve, measured only when asked for."""

import abc
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from equinox import AbstractClassVar
from jaxtyping import Array, PRNGKeyArray

from ._spectral import spectral_norm
from ._trace import traced


class AbstractDiagnostic(eqx.Module):
    r"""Something measured about a solve that the solve itself does not need, and so
    does not pay for unless asked: pass instances as `MeanField(diagnostics=(...))`.
    Each fills the field of [`setfix.MeanFieldSolution`][] named by its `field`
    (`None` there when not asked for)."""

    field: AbstractClassVar[str]

    def solver(self, solver: Any, max_steps: int) -> Any:
        """The solver to run in place of `solver` (default: `solver` itself)."""
        del max_steps
        return solver

    @abc.abstractmethod
    def measure(self, problem: Any, psi: Array, stats: dict, key: PRNGKeyArray) -> Array:
        """The measurement for one solve, from its `MeanFieldProblem` (gradients
        stopped), its solution `psi`, the solver's `stats` and a key of its own."""


class ResidualTrace(AbstractDiagnostic):
    r"""$\max_i |T(\psi_k) - \psi_k|_i$ at the start of every step $k$ (NaN after the
    last step), as `MeanFieldSolution.residual_trace`, of length `max_steps`. Costs one
    more evaluation of the map per step."""

    field: ClassVar[str] = "residual_trace"

    def solver(self, solver, max_steps):
        return traced(solver, _residual, max_steps)

    def measure(self, problem, psi, stats, key):
        return stats["residual_trace"]


class ContractionEstimate(AbstractDiagnostic):
    r"""An estimate of $\omega = \lVert \partial T / \partial \psi \rVert_2$ at the
    solution $\psi^*$, the local contraction factor of the map (below 1: the iteration
    contracts near $\psi^*$), as `MeanFieldSolution.omega`: `num_iterations` steps of
    power iteration on $J^\top J$ from a random start, one linearisation of $T$."""

    num_iterations: int = 30
    field: ClassVar[str] = "omega"

    def __check_init__(self):
        if not isinstance(self.num_iterations, int) or self.num_iterations < 1:
            raise ValueError(
                f"`num_iterations` must be a positive integer, got {self.num_iterations!r}.")

    def measure(self, problem, psi, stats, key):
        start = jnp.where(problem.mask, jax.random.normal(key, psi.shape, psi.dtype), 0)
        return spectral_norm(problem.fixed_point, psi, start, self.num_iterations)


def _residual(psi, problem):
    return problem.residual(psi)


ResidualTrace.__init__.__doc__ = """**Arguments:** none."""

ContractionEstimate.__init__.__doc__ = """**Arguments:**

- `num_iterations`: steps of power iteration (30 by default).
"""
