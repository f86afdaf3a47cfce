"""What a training objective is: how one optimiser step on a batch of oracle examples
is taken, given how psi is inferred; and the mean-field likelihood, the papers' one."""

import abc
from typing import Any

import equinox as eqx
import optax
from jaxtyping import Array, Bool, Float, PRNGKeyArray, PyTree

from ._losses import mean_field_nll, mean_field_nll_from_logits
from ._method import AbstractMethod
from ._pooled_items import PooledItems
from ._set_function import AbstractSetFunction
from ._solution import mean_over_converged, MeanFieldSolution


class AbstractObjective(eqx.Module):
    r"""How a set function is trained from oracle examples $(V, S^*)$: the optimiser
    state it needs and one update on a batch. The inference (an
    [`setfix.AbstractMethod`][]) is an argument: the objective decides what to
    differentiate, the inference how $\psi$ is found. [`setfix.fit`][] takes both; its
    default objective is the inference's `objective`."""

    @abc.abstractmethod
    def init(self, optimizer: optax.GradientTransformation, model: AbstractSetFunction) -> PyTree:
        """The optimiser state for training `model` with this objective."""

    @abc.abstractmethod
    def update(
        self,
        model: AbstractSetFunction,
        opt_state: PyTree,
        inference: AbstractMethod,
        items: Float[Array, "b n ..."] | PooledItems,
        mask: Bool[Array, "b n"],
        target: Bool[Array, "b n"],
        negatives: Bool[Array, "b n"],
        *,
        key: PRNGKeyArray,
        optimizer: optax.GradientTransformation,
    ) -> tuple[AbstractSetFunction, PyTree, dict[str, Any]]:
        """One optimiser step on a batch. Returns the new model, the new optimiser state
        and scalar statistics, at least `loss`, `num_steps` (the inference's mean steps)
        and `converged` (the fraction of converged inferences)."""


def solution_stats(loss: Float[Array, ""], sol: MeanFieldSolution) -> dict[str, Any]:
    """The statistics every objective reports: the loss, the mean solver steps and the
    converged fraction of the batch's inference."""
    return {"loss": loss, "num_steps": sol.num_steps.mean(), "converged": sol.converged.mean()}


def apply_gradients(optimizer, grads, opt_state, tree):
    """`tree` after one optimiser step with `grads`, and the new optimiser state."""
    updates, opt_state = optimizer.update(grads, opt_state, eqx.filter(tree, eqx.is_inexact_array))
    return eqx.apply_updates(tree, updates), opt_state


class MeanFieldNLL(AbstractObjective):
    r"""The mean-field negative log-likelihood of $S^*$ at the inferred $\psi$
    ([`setfix.mean_field_nll`][], the papers' Eq. 9), averaged over the sets whose
    inference converged ([`setfix.mean_over_converged`][]), differentiated through the
    inference (its adjoint: implicit for [`setfix.idiffmf`][], unrolled for
    [`setfix.diffmf`][]). The objective of every mean-field method.

    Where the inference returns the logits of $\psi$ (`MeanFieldSolution.logits`, as
    [`setfix.idiffmf`][] with a [`setfix.CertifiedScaling`][] does), the likelihood is
    taken from them ([`setfix.mean_field_nll_from_logits`][]): the same value where
    $\psi \in [10^{-6}, 1 - 10^{-6}]$, and beyond that a gradient where the clipped
    likelihood of $\psi$ has none (a member with $\psi_j < 10^{-6}$, confidently
    wrong, taught nothing). Together with the [`setfix.FixedPointForm`][]'s adjoint in
    the logits, this keeps the implicit adjoint's right-hand side bounded. Methods
    without logits (the paper's scalings, where $\psi$ stays near $\tfrac12$;
    [`setfix.diffmf`][], the one-step rule, [`setfix.onestep`][]) are trained on
    $\psi$, as the published code."""

    def loss(
        self,
        model: AbstractSetFunction,
        inference: AbstractMethod,
        items: Float[Array, "b n ..."] | PooledItems,
        mask: Bool[Array, "b n"],
        target: Bool[Array, "b n"],
        negatives: Bool[Array, "b n"],
        *,
        key: PRNGKeyArray,
    ) -> tuple[Float[Array, ""], MeanFieldSolution]:
        """The loss of a batch and the solution it was computed at."""
        sol = inference.solve(model, items, mask, key=key)
        if sol.logits is None:
            nll = mean_field_nll(sol.psi, target, mask, negatives)
        else:
            nll = mean_field_nll_from_logits(sol.logits, target, mask, negatives)
        return mean_over_converged(nll, sol.converged), sol

    def init(self, optimizer: optax.GradientTransformation, model: AbstractSetFunction) -> PyTree:
        return optimizer.init(eqx.filter(model, eqx.is_inexact_array))

    def update(self, model, opt_state, inference, items, mask, target, negatives, *, key,
               optimizer):
        (loss, sol), grads = eqx.filter_value_and_grad(self.loss, has_aux=True)(
            model, inference, items, mask, target, negatives, key=key
        )
        model, opt_state = apply_gradients(optimizer, grads, opt_state, model)
        return model, opt_state, solution_stats(loss, sol)


MeanFieldNLL.__init__.__doc__ = """**Arguments:** none (which negatives enter the loss is
[`setfix.fit`][]'s `neg_num`)."""
