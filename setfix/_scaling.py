"""Scalings of the gradient estimate, to meet Assumption 4.1 of the paper."""

import abc
from typing import ClassVar, Literal

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float


class AbstractScaling(eqx.Module):
    r"""Rescales the gradient estimate $\hat g$ before the sigmoid of the fixed-point map
    $T(\psi) = \sigma(\text{scale}(\hat g(\psi)))$.

    Called on a gradient of shape `(n,)` (one set) or `(b, n)` (a batch) together with
    its mask; padded entries (mask false) are zero on input and on output. A scaling
    with `couples_batch = True` mixes the sets of a batch, so
    [`setfix.MeanField`][] then solves one joint fixed point for the whole batch.
    """

    couples_batch: ClassVar[bool] = False
    # Whether scale(grad) has a symmetric Jacobian wherever grad does (a constant factor).
    preserves_symmetry: ClassVar[bool] = False

    @abc.abstractmethod
    def __call__(
        self, grad: Float[Array, "*batch n"], mask: Bool[Array, "*batch n"]
    ) -> Float[Array, "*batch n"]:
        """Returns the scaled gradient."""


def _set_size(mask):
    return jnp.maximum(jnp.sum(mask, axis=-1, keepdims=True), 1)


class NoScaling(AbstractScaling):
    r"""The identity: $T(\psi) = \sigma(\nabla \tilde F(\psi))$."""

    preserves_symmetry: ClassVar[bool] = True

    def __call__(self, grad, mask):
        return grad


NoScaling.__init__.__doc__ = """**Arguments:** none."""


class ConstantScaling(AbstractScaling):
    r"""$\hat g \mapsto \frac{2}{n c}\,\hat g$ with $n$ the number of items in the set
    (iDiffMF$_c$). This is the oracle model at temperature $nc/2$; it meets
    Assumption 4.1 when $\max_S |F(S)| < c/2$.
    """

    c: float
    preserves_symmetry: ClassVar[bool] = True

    def __check_init__(self):
        if not self.c > 0:
            raise ValueError(f"`c` must be positive, got {self.c!r}.")

    def __call__(self, grad, mask):
        return jnp.where(mask, 2 * grad / (_set_size(mask) * self.c), 0)


ConstantScaling.__init__.__doc__ = """**Arguments:**

- `c`: the positive constant $c$.
"""


class NormScaling(AbstractScaling):
    r"""$\hat g \mapsto \frac{2\,\hat g}{n\,\lVert \hat g \rVert}$, the normalisation of
    iDiffMF$_2$ (Frobenius) and iDiffMF$_*$ (nuclear norm).

    With `over="set"` (the default) the norm is taken per set, where Frobenius and
    nuclear norm both equal the Euclidean norm of the set's gradient, and each set's
    solution is independent of the batch. `over="batch"` takes the norm of the whole
    $b \times n$ batch matrix, as the published code does: predictions then depend on
    which sets share the batch.
    """

    norm: Literal["fro", "nuc"] = "fro"
    over: Literal["set", "batch"] = "set"

    def __check_init__(self):
        if self.norm not in ("fro", "nuc"):
            raise ValueError(f"`norm` must be 'fro' or 'nuc', got {self.norm!r}.")
        if self.over not in ("set", "batch"):
            raise ValueError(f"`over` must be 'set' or 'batch', got {self.over!r}.")

    @property
    def couples_batch(self) -> bool:  # pyright: ignore
        return self.over == "batch"

    def __call__(self, grad, mask):
        grad = jnp.where(mask, grad, 0)
        if self.over == "set" or grad.ndim == 1:
            sq = jnp.sum(grad**2, axis=-1, keepdims=True)
            # The double `where` keeps the derivative finite at a zero gradient.
            norm = jnp.sqrt(jnp.where(sq > 0, sq, 1))
        elif self.norm == "fro":
            sq = jnp.sum(grad**2)
            norm = jnp.sqrt(jnp.where(sq > 0, sq, 1))
        else:
            norm = jnp.linalg.norm(grad, ord="nuc")
            norm = jnp.where(norm > 0, norm, 1)
        return 2 * grad / (_set_size(mask) * norm)


NormScaling.__init__.__doc__ = """**Arguments:**

- `norm`: `"fro"` (Frobenius, iDiffMF$_2$) or `"nuc"` (nuclear, iDiffMF$_*$); the two
    agree for `over="set"`.
- `over`: `"set"` to normalise each set on its own, `"batch"` to normalise by the norm
    of the whole batch (the reference behaviour).
"""
