"""Forms of the mean-field equation handed to Optimistix: the fixed point
psi = T(psi), or the root of scale(grad F~(psi)) - logit(psi)."""

import abc

import equinox as eqx
import lineax as lx
import optimistix as optx
from jaxtyping import Array, Float, PyTree

from ._problem import MeanFieldProblem


def _fixed_point(psi, problem):
    return problem.fixed_point(psi)


def _logit_residual(psi, problem):
    return problem.logit_residual(psi)


class AbstractForm(eqx.Module):
    """How [`setfix.MeanField`][] poses the mean-field equation to its solver. Every
    form has the same solution $\\psi^*$; they differ in which solvers apply and in the
    structure of the Jacobian the adjoint solves with."""

    @abc.abstractmethod
    def check_solver(self, solver: optx.AbstractFixedPointSolver | optx.AbstractRootFinder
                     ) -> None:
        """Raises `TypeError` when `solver` cannot solve this form."""

    @abc.abstractmethod
    def solve(
        self,
        problem: MeanFieldProblem,
        solver: optx.AbstractFixedPointSolver | optx.AbstractRootFinder,
        psi0: Float[Array, "*batch n"],
        *,
        max_steps: int,
        adjoint: optx.AbstractAdjoint,
        throw: bool,
        symmetric: bool,
    ) -> optx.Solution:
        """The Optimistix solution of `problem` from `psi0`; `symmetric` says whether
        the estimator's Hessian and the scaling keep the problem's Jacobian
        symmetric."""


class FixedPointForm(AbstractForm):
    r"""The fixed point $\psi = T(\psi) = \sigma(\text{scale}(\nabla \tilde F(\psi)))$:
    for Optimistix fixed-point solvers, or root finders (which then find the root of
    $T(\psi) - \psi$). The default."""

    def check_solver(self, solver) -> None:
        pass

    def solve(self, problem, solver, psi0, *, max_steps, adjoint, throw, symmetric):
        return optx.fixed_point(_fixed_point, solver, psi0, problem, max_steps=max_steps,
                                adjoint=adjoint, throw=throw)


class LogitRootForm(AbstractForm):
    r"""The root of $R(\psi) = \text{scale}(\nabla \tilde F(\psi)) -
    \operatorname{logit}(\psi)$, for Optimistix root finders (`optx.Newton`,
    `optx.Chord`). Its Jacobian $\nabla^2 \tilde F - \operatorname{diag}(1/(\psi(1 -
    \psi)))$ is symmetric with a symmetric Hessian estimate (`Exact`, or `MonteCarlo`
    with `hessian=PairwiseHessian()`) and no or constant scaling, and negative definite
    under Assumption 4.1 ($\lVert \nabla^2 \tilde F \rVert < 4 \le 1/(\psi(1-\psi))$);
    the solve is then tagged so, and `lx.CG` or `lx.Cholesky` may be used in
    `optx.ImplicitAdjoint`."""

    def check_solver(self, solver) -> None:
        if not isinstance(solver, optx.AbstractRootFinder):
            raise TypeError(
                "`LogitRootForm()` needs a root finder as `solver` (e.g. `optx.Newton`), "
                f"got {type(solver).__name__}."
            )

    def solve(self, problem, solver, psi0, *, max_steps, adjoint, throw, symmetric):
        tags: PyTree = (frozenset({lx.symmetric_tag, lx.negative_semidefinite_tag})
                        if symmetric else frozenset())
        return optx.root_find(_logit_residual, solver, psi0, problem, max_steps=max_steps,
                              adjoint=adjoint, throw=throw, tags=tags)


FixedPointForm.__init__.__doc__ = """**Arguments:** none."""
LogitRootForm.__init__.__doc__ = """**Arguments:** none."""
