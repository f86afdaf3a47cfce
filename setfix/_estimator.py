"""The interface of estimators of the multilinear extension."""

import abc
from collections.abc import Callable
from typing import Any

import equinox as eqx
from jaxtyping import Array, Bool, Float, PRNGKeyArray, PyTree


class AbstractEstimator(eqx.Module):
    r"""Estimates the multilinear extension of a set function and its gradient,

    $$\tilde F(\psi) = \sum_{S \subseteq V} F(S) \prod_{j \in S} \psi_j
    \prod_{j \notin S} (1 - \psi_j), \qquad
    \frac{\partial \tilde F}{\partial \psi_i} =
    \mathbb{E}_{S \sim q(\psi)}\big[F(S \cup \{i\}) - F(S \setminus \{i\})\big].$$

    Estimators work on the pooled form `F(S) = readout(S @ embedding)` of a set function
    (see [`setfix.AbstractPooledSetFunction`][]). The gradient is differentiable with
    respect to `psi` (its JVP is the estimator's choice of multilinear Hessian), to the
    parameters of `readout` and to `embedding`.

    Randomness is drawn once per solve by `noise(key, n)` and passed back in, so that
    for a fixed key the estimate is a deterministic function of `psi` (common random
    numbers).
    """

    @property
    def needs_key(self) -> bool:
        """Whether `noise` draws random numbers (so a solve needs a PRNG key)."""
        return True

    @property
    def symmetric_hessian(self) -> bool:
        """Whether the JVP in psi is symmetric (a symmetric Hessian estimate)."""
        return False

    @abc.abstractmethod
    def noise(self, key: PRNGKeyArray, num_items: int) -> PyTree[Array]:
        """The random numbers one solve uses; `None` for a deterministic estimator."""

    @abc.abstractmethod
    def value(
        self,
        readout: Callable,
        embedding: Float[Array, "n h"],
        psi: Float[Array, " n"],
        mask: Bool[Array, " n"],
        noise: Any,
    ) -> Float[Array, ""]:
        r"""Estimate of $\tilde F(\psi)$ over the items where `mask` is true."""

    @abc.abstractmethod
    def gradient(
        self,
        readout: Callable,
        embedding: Float[Array, "n h"],
        psi: Float[Array, " n"],
        mask: Bool[Array, " n"],
        noise: Any,
    ) -> Float[Array, " n"]:
        r"""Estimate of $\nabla_\psi \tilde F(\psi)$; zero where `mask` is false."""
