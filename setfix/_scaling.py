"""Scalings of the gradient estimate, to meet Assumption 4.1 of the paper."""

import abc
from collections.abc import Callable
from typing import ClassVar, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
from equinox import AbstractVar
from jaxtyping import Array, Bool, Float


class AbstractScaling(eqx.Module):
    r"""Rescales the gradient estimate $\hat g$ before the sigmoid of the fixed-point map
    $T(\psi) = \sigma(\text{scale}(\hat g(\psi)))$.

    Called on a gradient of shape `(n,)` (one set) or `(b, n)` (a batch) together with
    its mask; padded entries (mask false) are zero on input and on output. A scaling
    with `couples_batch = True` mixes the sets of a batch, so
    [`setfix.MeanField`][] then solves one joint fixed point for the whole batch.

    A subclass declares `couples_batch` and `preserves_symmetry` (whether
    $\text{scale}(\hat g)$ has a symmetric Jacobian wherever $\hat g$ does, as a
    constant factor does; the root form's adjoint may then use symmetric solvers),
    as class attributes or properties.
    """

    # Whether the scaled gradient of one set depends on the other sets of a batch.
    couples_batch: AbstractVar[bool]
    # Whether scale(grad) has a symmetric Jacobian wherever grad does (a constant factor).
    preserves_symmetry: AbstractVar[bool]

    @abc.abstractmethod
    def __call__(
        self, grad: Float[Array, "*batch n"], mask: Bool[Array, "*batch n"]
    ) -> Float[Array, "*batch n"]:
        """Returns the scaled gradient."""

    def energy_scale(
        self, readout: Callable, embedding: Float[Array, "*batch n h"],
        mask: Bool[Array, "*batch n"],
    ) -> Float[Array, " *batch"] | None:
        """A factor per set by which the energy is multiplied before the solve (once
        per ground set, outside the fixed-point loop), or `None` for none. `readout`
        and `embedding` are the set function's pooled form on the ground set."""
        del readout, embedding, mask
        return None

    def gain_weight(self, scale: Float[Array, " *batch"]) -> Float[Array, " *batch"] | None:
        r"""Given the energy scale $c$ of each set, the weight $w$ with which the
        singleton gains $g^0_i = F(\{i\}) - F(\emptyset)$ are added to the scaled
        gradient, $T(\psi) = \sigma(\text{scale}(\hat g(\psi)) + w\, g^0)$, or
        `None` for none. $g^0$ does not depend on $\psi$, so the map's Jacobian (and
        its certificate) is unchanged."""
        del scale
        return None

    def linear_factor(self, mask: Bool[Array, "*batch n"]) -> Float[Array, " *batch"] | None:
        """The factor $k$ when the scaling is $\\hat g \\mapsto k \\hat g$ with $k$
        independent of $\\hat g$ (so the map's Lipschitz constant is certified by
        $k \\lVert H \\rVert / 4$); `None` when it depends on the gradient."""
        del mask
        return None


def _set_size(mask, dtype=float):
    """The number of real items per set (at least 1), as `dtype`."""
    return jnp.maximum(jnp.sum(mask, axis=-1, keepdims=True), 1).astype(dtype)


class NoScaling(AbstractScaling):
    r"""The identity: $T(\psi) = \sigma(\nabla \tilde F(\psi))$."""

    couples_batch: ClassVar[bool] = False
    preserves_symmetry: ClassVar[bool] = True

    def __call__(self, grad, mask):
        return grad

    def linear_factor(self, mask):
        return jnp.ones(jnp.shape(mask)[:-1])


NoScaling.__init__.__doc__ = """**Arguments:** none."""


class ConstantScaling(AbstractScaling):
    r"""$\hat g \mapsto \frac{2}{n c}\,\hat g$ with $n$ the number of items in the set
    (iDiffMF$_c$). This is the oracle model at temperature $nc/2$; it meets
    Assumption 4.1 when $\max_S |F(S)| < c/2$.
    """

    c: float | Float[Array, ""]
    couples_batch: ClassVar[bool] = False
    preserves_symmetry: ClassVar[bool] = True

    def __check_init__(self):
        if isinstance(self.c, jax.core.Tracer):
            return  # a value inside a transformation: not known yet
        if not self.c > 0:
            raise ValueError(f"`c` must be positive, got {self.c!r}.")

    def __call__(self, grad, mask):
        return jnp.where(mask, 2 * grad / (_set_size(mask, grad.dtype) * self.c), 0)

    def linear_factor(self, mask):
        return 2 / (_set_size(mask)[..., 0] * self.c)


ConstantScaling.__init__.__doc__ = """**Arguments:**

- `c`: the positive constant $c$: a Python float, or a scalar array (then a sweep over
    $c$ under `jit` compiles once).
"""


def _nonzero_sqrt(sq):
    # The double `where` keeps the derivative finite at a zero gradient.
    return jnp.sqrt(jnp.where(sq > 0, sq, 1))


class NormScaling(AbstractScaling):
    r"""$\hat g \mapsto \frac{2\,\hat g}{n\,\lVert \hat g \rVert_2}$ per set, the
    normalisation of iDiffMF$_2$ and iDiffMF$_*$ taken on each set alone (for one set's
    gradient, a $1 \times n$ matrix, the Frobenius and nuclear norms are both its
    Euclidean norm). Each set's solution is independent of the batch; for the published
    batch-wide normalisation see [`setfix.BatchNormScaling`][].
    """

    couples_batch: ClassVar[bool] = False
    preserves_symmetry: ClassVar[bool] = False

    def __call__(self, grad, mask):
        grad = jnp.where(mask, grad, 0)
        norm = _nonzero_sqrt(jnp.sum(grad**2, axis=-1, keepdims=True))
        return 2 * grad / (_set_size(mask, grad.dtype) * norm)


NormScaling.__init__.__doc__ = """**Arguments:** none."""


class BatchNormScaling(AbstractScaling):
    r"""$\hat G \mapsto \frac{2\,\hat G}{n\,\lVert \hat G \rVert}$ with the norm of
    the whole $b \times n$ batch matrix $\hat G$, as the published iDiffMF code
    normalises: iDiffMF$_2$ with the Frobenius norm, iDiffMF$_*$ with the nuclear norm.
    Predictions then depend on which sets share the batch, and a batch is solved as one
    problem (`couples_batch`). On one set it is [`setfix.NormScaling`][].
    """

    norm: Literal["fro", "nuc"] = "fro"
    couples_batch: ClassVar[bool] = True
    preserves_symmetry: ClassVar[bool] = False

    def __check_init__(self):
        if self.norm not in ("fro", "nuc"):
            raise ValueError(f"`norm` must be 'fro' or 'nuc', got {self.norm!r}.")

    def __call__(self, grad, mask):
        grad = jnp.where(mask, grad, 0)
        if grad.ndim == 1:
            norm = _nonzero_sqrt(jnp.sum(grad**2, axis=-1, keepdims=True))
        elif self.norm == "fro":
            norm = _nonzero_sqrt(jnp.sum(grad**2))
        else:
            norm = jnp.linalg.norm(grad, ord="nuc")
            norm = jnp.where(norm > 0, norm, 1)
        return 2 * grad / (_set_size(mask, grad.dtype) * norm)


BatchNormScaling.__init__.__doc__ = """**Arguments:**

- `norm`: the matrix norm of the batch, `"fro"` (Frobenius, iDiffMF$_2$) or `"nuc"`
    (nuclear, iDiffMF$_*$), named as `jnp.linalg.norm`'s `ord`.
"""


class CertifiedScaling(AbstractScaling):
    r"""Per set, the largest energy scale $c \le$ `max_scale` whose certified
    contraction factor is at most `omega`:

    $$c = \min\Big(c_{\max}, \frac{4\,\omega}{B(V)}\Big), \qquad
    T(\psi) = \sigma\big(c\, \nabla \tilde F(\psi)\big),$$

    with $B(V) \ge \sup_\psi \lVert H(\psi) \rVert_2$ the set function's
    [`interaction_bound`][setfix.AbstractSetFunction.interaction_bound] on the ground
    set $V$. Since $\partial T / \partial \psi = \operatorname{diag}(\sigma')\, c H$
    and $\sigma' \le 1/4$, the map is a contraction with $\omega \le cB/4 \le$
    `omega` for every $\theta$ (Theorem 4.2's conclusion) while, unlike under
    Assumption 4.1, the marginal gains $c\,\partial_i \tilde F$ are unbounded: $\psi$
    is free to approach 0 and 1. The scale is computed once per ground set (outside
    the fixed-point loop) and differentiated like the rest of the map.

    Needs a set function with an interaction bound, e.g.
    `setfix.DeepSet(..., smooth=True)` or a [`setfix.TableSetFunction`][].
    The certificate is for the map with the exact multilinear extension; a Monte Carlo
    estimate of it is a piecewise-constant map whose jumps are not covered (the solve
    still reports per set whether it converged).

    The certificate needs only the *interactions* scaled: the singleton gains
    $g^0_i = F(\{i\}) - F(\emptyset) = \partial_i \tilde F(0)$ do not depend on
    $\psi$. With `interactions_only=True` they keep their full strength,

    $$T(\psi) = \sigma\big(g^0 + c\,(\nabla \tilde F(\psi) - g^0)\big),$$

    the mean field of $F_c(S) = \sum_{i \in S} g^0_i + c\,\big(F(S) - F(\emptyset) -
    \sum_{i \in S} g^0_i\big)$: the same Jacobian $c\,\operatorname{diag}(\sigma')H$
    and certificate, but on large ground sets (where $B(V)$ grows with $n$ and $c$
    shrinks) the per-item evidence is not shrunk with the interactions, so $\psi$ can
    still reach 0 and 1 where the items alone decide.
    """

    omega: float = 0.9
    max_scale: float = 1.0
    interactions_only: bool = False
    couples_batch: ClassVar[bool] = False
    preserves_symmetry: ClassVar[bool] = True

    def __check_init__(self):
        if not (isinstance(self.omega, (int, float)) and 0 < self.omega < 1):
            raise ValueError(
                f"`omega` must lie in (0, 1) for a contraction, got {self.omega!r}.")
        if not (isinstance(self.max_scale, (int, float)) and self.max_scale > 0):
            raise ValueError(f"`max_scale` must be positive, got {self.max_scale!r}.")
        if not isinstance(self.interactions_only, bool):
            raise TypeError("`interactions_only` must be True or False, got "
                            f"{self.interactions_only!r}.")

    def __call__(self, grad, mask):
        return jnp.where(mask, grad, 0)  # the scale is applied to the energy

    def energy_scale(self, readout, embedding, mask):
        bound = readout.interaction_bound(embedding, mask)
        safe = jnp.where(bound > 0, bound, 1)
        return jnp.where(bound > 0, jnp.minimum(self.max_scale, 4 * self.omega / safe),
                         self.max_scale)

    def gain_weight(self, scale):
        return 1 - scale if self.interactions_only else None

    def linear_factor(self, mask):
        return jnp.ones(jnp.shape(mask)[:-1])


CertifiedScaling.__init__.__doc__ = """**Arguments:**

- `omega`: the certified contraction factor, in $(0, 1)$; smaller contracts faster
    (fewer solver steps) but lets the interactions act less.
- `max_scale`: the largest scale, used when the interactions are weak (1: the energy
    as learned, i.e. the oracle model $p(S) \\propto e^{F(S)}$ at temperature 1).
- `interactions_only`: scale only the interactions and keep the singleton gains
    $F(\\{i\\}) - F(\\emptyset)$ at full strength (`False`: the whole energy is
    scaled by $c$).
"""
