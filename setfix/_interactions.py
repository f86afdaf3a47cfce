r"""The pairwise energy of a smooth DeepSet: its exact multilinear extension and its
certified interaction bound (private).

The readout of `DeepSet(smooth=True)` acts on pooled rows $e_i = (m_i, a_i, b_i)$ of
one item score $m_i$, repulsive features $a_i$ and attractive features $b_i$:

$$F(S) = \sum_{i \in S} m_i - \tfrac12 \Big\lVert \sum_{i \in S} a_i \Big\rVert^2
+ \tfrac12 \Big\lVert \sum_{i \in S} b_i \Big\rVert^2 .$$

For $S \sim q(\psi)$, $\mathbb E \lVert \sum_{i \in S} a_i \rVert^2 =
\lVert A^\top \psi \rVert^2 + \sum_i \psi_i (1 - \psi_i) \lVert a_i \rVert^2$, so the
multilinear extension is known in closed form (no sampling), and so is its Hessian,
$H = (D_A - AA^\top) + (BB^\top - D_B)$ for every $\psi$ ($D$ the diagonal of the
Gram matrix: the multilinear extension has no $\psi_i^2$ term). By Weyl's inequality
$D_A - AA^\top$ has its eigenvalues in $[\min_i \lVert a_i \rVert^2 - \lVert A
\rVert_2^2,\; \max_i \lVert a_i \rVert^2]$, and $BB^\top - D_B$ in
$[-\max_i \lVert b_i \rVert^2,\; \lVert B \rVert_2^2 - \min_i \lVert b_i \rVert^2]$, so

$$\lVert H \rVert_2 \le \max\big(\lVert A \rVert_2^2 - \min_i \lVert a_i \rVert^2
+ \max_i \lVert b_i \rVert^2,\; \lVert B \rVert_2^2 - \min_i \lVert b_i \rVert^2
+ \max_i \lVert a_i \rVert^2\big)$$

(min and max over the real items). Subtracting the smallest diagonal matters: for
clusters of $k$ near-duplicates with $a_i^\top a_j \approx 1$ inside a cluster, the
Gram matrix has norm $k$ but $H$ has norm $k - 1$, so without it the certified scale
would be $k/(k-1)$ times too small (1.5 for clusters of three).
"""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float


# Squarings in `spectral_bound`: (tr M^p)^(1/p) with p = 2^8 = 256 exceeds the spectral
# norm of a symmetric matrix of rank r by a factor of at most r^(1/256) (1.022 at
# r = 272, the width of the default repulsive features; r <= min(n, width) for a Gram
# matrix).
_SQUARINGS = 8
# Relative slack against rounding.
_SLACK = 1e-6


def spectral_bound(matrix):
    r"""An upper bound on the spectral norm of a symmetric matrix (batched over leading
    axes): $(\operatorname{tr} M^{p})^{1/p} = (\sum_i \lambda_i^p)^{1/p} \ge
    \max_i |\lambda_i|$ for even $p$, here $p = 256$, by repeated squaring, each square
    divided by its Frobenius norm $f_k$ (so nothing underflows) and the factors kept
    aside: $(\operatorname{tr} M^p)^{1/p} = \lVert M \rVert_F \prod_k f_k^{2^{-k}}
    (\operatorname{tr} P)^{1/p}$ for the last normalised power $P$. Matrix products only
    (differentiable; batched LAPACK eigendecompositions inside a jitted solve were seen
    to hang XLA on CPU), and at most $r^{1/256}$ times the exact value for rank $r$."""
    square = jnp.sum(matrix**2, axis=(-2, -1))
    nonzero = square > 0
    # The inner `where`s keep the derivative finite at a zero matrix.
    frobenius = jnp.sqrt(jnp.where(nonzero, square, 1))
    power = matrix / frobenius[..., None, None]
    log_scale = jnp.zeros_like(frobenius)
    for k in range(1, _SQUARINGS + 1):
        power = power @ power
        norm = jnp.sqrt(jnp.sum(power**2, axis=(-2, -1)))
        norm = jnp.where(nonzero & (norm > 0), norm, 1)
        power = power / norm[..., None, None]
        log_scale = log_scale + jnp.log(norm) / 2**k
    trace = jnp.trace(power, axis1=-2, axis2=-1)
    trace = jnp.where(nonzero & (trace > 0), trace, 1)
    bound = frobenius * jnp.exp(log_scale + jnp.log(trace) / 2**_SQUARINGS)
    return jnp.where(nonzero, (1 + _SLACK) * bound, 0)


def fourier_features(coordinates, features):
    r"""Random Fourier features (Rahimi & Recht 2007) of the Gaussian kernel:
    $z(c) = \sqrt{2/D} \cos(\Omega c + \beta)$ with $D$ = `features`, $\Omega$
    standard normal and $\beta$ uniform in $[0, 2\pi)$, both drawn once from a fixed
    key (a fixed basis, not parameters), so that $\mathbb E_{\Omega, \beta}\,
    z(c)^\top z(c') = e^{-\lVert c - c' \rVert^2 / 2}$ and $\lVert z(c) \rVert^2
    \le 2$. `coordinates` `(n, k)` -> `(n, features)`."""
    dims = coordinates.shape[-1]
    omega_key, phase_key = jax.random.split(jax.random.key(0))
    omega = jax.random.normal(omega_key, (features, dims), coordinates.dtype)
    phase = jax.random.uniform(phase_key, (features,), coordinates.dtype,
                               maxval=2 * math.pi)
    return math.sqrt(2 / features) * jnp.cos(coordinates @ omega.T + phase)


def split_rows(rows, repulsive):
    """`(m, A, B)` from pooled rows `(..., 1 + repulsive + attractive)`."""
    return rows[..., 0], rows[..., 1:1 + repulsive], rows[..., 1 + repulsive:]


def pairwise_value(pooled, repulsive):
    """$F(S)$ from the pooled sum of the rows of $S$ (`repulsive`: the width of $a$)."""
    m, a, b = split_rows(pooled, repulsive)
    return m - 0.5 * jnp.sum(a**2, axis=-1) + 0.5 * jnp.sum(b**2, axis=-1)


def pairwise_multilinear(rows, psi, mask, repulsive):
    r"""$\tilde F(\psi) = \mathbb E_{S \sim q(\psi)} F(S)$, exactly, for one set."""
    psi = jnp.where(mask, psi, 0)
    m, a, b = split_rows(rows, repulsive)
    var = psi * (1 - psi)

    def second_moment(x):
        return jnp.sum((psi @ x) ** 2) + jnp.dot(var, jnp.sum(x**2, axis=-1))

    return jnp.dot(psi, m) - 0.5 * second_moment(a) + 0.5 * second_moment(b)


def smaller_gram(x):
    r"""The smaller of the Gram matrices $XX^\top$ `(n, n)` and $X^\top X$ `(k, k)` of
    `x` `(*batch, n, k)`: their nonzero eigenvalues, and so the traces of their powers
    in `spectral_bound`, are the same, and the squarings cost $O(\min(n, k)^3)$."""
    if x.shape[-2] < x.shape[-1]:
        return x @ jnp.swapaxes(x, -1, -2)
    return jnp.swapaxes(x, -1, -2) @ x


def pairwise_interaction_bound(rows, mask, repulsive):
    """The bound on $\\lVert H \\rVert_2$ above, per set (`rows` `(*batch, n, 1 +
    repulsive + attractive)`)."""
    rows = jnp.where(mask[..., None], rows, 0)
    _, a, b = split_rows(rows, repulsive)
    parts = []
    for x in (a, b):
        diagonal = jnp.sum(x**2, -1)
        smallest = jnp.min(jnp.where(mask, diagonal, jnp.inf), axis=-1)
        smallest = jnp.where(jnp.any(mask, axis=-1), smallest, 0)  # an empty set
        parts.append((spectral_bound(smaller_gram(x)) - smallest,
                      jnp.max(diagonal, axis=-1)))
    (above_a, row_a), (above_b, row_b) = parts
    # Rounding could take the first part a hair below 0 when A is one row.
    return jnp.maximum(jnp.maximum(above_a, 0) + row_b, jnp.maximum(above_b, 0) + row_a)


class PairwiseTerms(eqx.Module):
    r"""The pairwise part of a smooth energy (private): from item features $x_i$ (and
    item scores $m_i$) the rows $e_i = (m_i, a_i, b_i)$ with $b_i = Qx_i$ and
    $a_i = (Px_i,\; s\, z(Cx_i))$, and the value, exact multilinear extension and
    interaction bound of $F(S) = \sum_S m_i - \frac12\lVert \sum_S a_i \rVert^2 +
    \frac12 \lVert \sum_S b_i \rVert^2$ on such rows. `DeepSet(smooth=True)` and the
    smooth ground-set-aware energies share it."""

    pairwise: Float[Array, "twice_rank h"]
    kernel: Float[Array, "kernel_dims h"] | None
    kernel_scale: Float[Array, ""] | None
    kernel_features: int = eqx.field(static=True)

    @property
    def rank(self) -> int:
        return self.pairwise.shape[0] // 2

    @property
    def repulsive(self) -> int:
        """The width of the repulsive features $a_i$."""
        return self.rank + (0 if self.kernel is None else self.kernel_features)

    def rows(self, features: Float[Array, "n h"], scores: Float[Array, " n"]
             ) -> Float[Array, "n w"]:
        low_rank = features @ self.pairwise.T
        parts = [scores[:, None], low_rank[:, :self.rank]]
        if self.kernel is not None:
            local = fourier_features(features @ self.kernel.T, self.kernel_features)
            parts.append(self.kernel_scale * local)
        parts.append(low_rank[:, self.rank:])
        return jnp.concatenate(parts, axis=1)

    def value(self, pooled):
        return pairwise_value(pooled, self.repulsive)

    def multilinear(self, rows, psi, mask):
        return pairwise_multilinear(rows, psi, mask, self.repulsive)

    def interaction_bound(self, rows, mask):
        return pairwise_interaction_bound(rows, mask, self.repulsive)


def check_pairwise_options(rank, kernel_features, kernel_dims) -> None:
    """Clear errors for the options of a smooth energy's pairwise terms."""
    if not isinstance(rank, int) or isinstance(rank, bool) or rank < 1:
        raise ValueError(f"`rank` must be a positive integer, got {rank!r}.")
    for name, value in (("kernel_features", kernel_features), ("kernel_dims", kernel_dims)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"`{name}` must be a non-negative integer, got {value!r}.")
    if (kernel_features == 0) != (kernel_dims == 0):
        raise ValueError("`kernel_features` and `kernel_dims` must both be positive "
                         "(a local kernel) or both 0 (none), got "
                         f"{kernel_features} and {kernel_dims}.")


def init_pairwise(hidden, rank, kernel_features, kernel_dims, pair_key, kernel_key):
    """The pairwise terms at initialisation, on features of width `hidden`."""
    # Small pairwise terms at the start: the model grows the interactions it needs.
    pairwise = jax.random.normal(pair_key, (2 * rank, hidden)) * (0.1 / math.sqrt(hidden))
    # The local kernel starts at full strength (s = 1: near-duplicates repel by about
    # 1) with coordinates of scale ~2.4 |x| / sqrt(h): neither so wide that it repels
    # everything nor so narrow that its gradient vanishes (measured on the substitutes
    # task).
    local = kernel_features > 0
    kernel = (jax.random.normal(kernel_key, (kernel_dims, hidden)) * (2.4 / math.sqrt(hidden))
              if local else None)
    return PairwiseTerms(pairwise, kernel, jnp.array(1.0) if local else None,
                         kernel_features if local else 0)
