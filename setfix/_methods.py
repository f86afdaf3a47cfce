"""The methods of the papers as compositions of setfix's pieces, each named here once."""

import lineax as lx
import optimistix as optx

from ._adjoints import OneStep
from ._elbo import EquiVSetELBO
from ._equivset import EquiVSet
from ._forms import FixedPointForm
from ._hessian import AbstractHessianRule, ScoreHessian, ZeroHessian
from ._mean_field import MeanField
from ._mean_field_steps import MeanFieldSteps
from ._misc import Default
from ._monte_carlo import MonteCarlo
from ._relaxed_noise import CopulaNoise, IndependentNoise
from ._scaling import AbstractScaling, CertifiedScaling, NormScaling, NoScaling
from ._theory import iteration_bound


_NEG_NUM = Default("None if scaling is certified else 1")


_MAX_STEPS = Default("100, or more as certified")


def certified_max_steps(scaling: AbstractScaling, tolerance: float, max_steps: int) -> int:
    r"""`max_steps`, raised for a [`setfix.CertifiedScaling`][] to the iterations its
    contraction needs to meet the solver's stopping rule: with $\omega$ certified, the
    step $\lVert \psi_{k+1} - \psi_k \rVert_{\text{rms}} \le \omega^k \le$
    `tolerance` after `iteration_bound(omega, tolerance, 1)` steps (132 at
    $\omega = 0.9$, $10^{-5}$)."""
    if isinstance(scaling, CertifiedScaling):
        return max(max_steps, iteration_bound(scaling.omega, tolerance, 1))
    return max_steps


def _check_tolerance(tolerance):
    if not (isinstance(tolerance, (int, float)) and 0 < tolerance < float("inf")):
        raise ValueError(f"`tolerance` must be a positive number, got {tolerance!r}.")


def _steps(max_steps, scaling, tolerance):
    if isinstance(max_steps, Default):
        return certified_max_steps(scaling, tolerance, 100)
    return max_steps


def _neg_num(neg_num, scaling):
    if isinstance(neg_num, Default):
        return None if isinstance(scaling, CertifiedScaling) else 1
    return neg_num


def idiffmf(
    scaling: AbstractScaling = NormScaling(),
    *,
    num_samples: int = 5,
    hessian: AbstractHessianRule = ScoreHessian(),
    tolerance: float = 1e-5,
    max_steps: int | Default = _MAX_STEPS,
    solver: optx.AbstractFixedPointSolver | optx.AbstractRootFinder | None = None,
    linear_solver: lx.AbstractLinearSolver | None = None,
    neg_num: int | None | Default = _NEG_NUM,
) -> MeanField:
    r"""iDiffMF (Özcan, Shi & Ioannidis 2025): solve the scaled fixed point to
    `tolerance` and differentiate it with the implicit function theorem, using the
    Monte Carlo estimator's multilinear-Hessian JVP (a true implicit gradient; the
    published code's gradient is [`setfix.onestep`][]).

    The paper's variants are the scalings: iDiffMF$_c$ is `ConstantScaling(c)`,
    iDiffMF$_2$ and iDiffMF$_*$ are `NormScaling()` per set (the default, where
    Frobenius and nuclear norms are both the $\ell_2$ norm) or, as published, over the
    whole batch: `BatchNormScaling("fro")` and `BatchNormScaling("nuc")`.

    **Arguments:**

    - `scaling`: the scaling of the gradient.
    - `num_samples`: Monte Carlo samples per gradient estimate.
    - `hessian`: the Hessian-JVP rule of [`setfix.MonteCarlo`][].
    - `tolerance`: relative and absolute tolerance of the solve and of the adjoint.
    - `max_steps`: the most solver steps; slower solves are reported as not converged.
        Default 100, or with a [`setfix.CertifiedScaling`][] the steps its certified
        contraction needs, if more (132 at `omega=0.9`).
    - `solver`: the fixed-point solver (default `optx.FixedPointIteration`).
    - `linear_solver`: the adjoint's linear solver (default `lx.GMRES`). With a
        [`setfix.CertifiedScaling`][], whose marginals may come near 0 and 1, the
        adjoint is taken in the logits (`FixedPointForm(in_logits=True)`), where its
        right-hand side stays bounded; with the paper's scalings, in $\psi$ as
        published (there $\psi$ stays near $\tfrac12$).
    - `neg_num`: negatives per member of $S^*$ in the training loss. Default: with a
        [`setfix.CertifiedScaling`][], `None` (every non-member: the full likelihood,
        so that $\psi$ learns to be a calibrated inclusion probability); with the
        paper's scalings, 1 as the published code.
    """
    _check_tolerance(tolerance)
    if solver is None:
        solver = optx.FixedPointIteration(rtol=tolerance, atol=tolerance)
    if linear_solver is None:
        linear_solver = lx.GMRES(rtol=tolerance, atol=tolerance)
    # Certified marginals may come near 0 and 1: differentiate in the logits there.
    form = FixedPointForm(in_logits=isinstance(scaling, CertifiedScaling))
    return MeanField(MonteCarlo(num_samples, hessian=hessian), scaling, solver,
                     optx.ImplicitAdjoint(linear_solver), _steps(max_steps, scaling, tolerance),
                     form=form, neg_num=_neg_num(neg_num, scaling))


def onestep(
    scaling: AbstractScaling = NormScaling(),
    *,
    num_samples: int = 5,
    tolerance: float = 1e-5,
    max_steps: int | Default = _MAX_STEPS,
    neg_num: int | None | Default = _NEG_NUM,
) -> MeanField:
    r"""The gradient the published iDiffMF code computes: solve to `tolerance`, then
    differentiate one map step at the solution, $\partial_\theta T(\psi^*)$ (the
    estimator's Hessian is zero under autodiff there; Jacobian-free backpropagation).

    **Arguments:** as [`setfix.idiffmf`][].
    """
    _check_tolerance(tolerance)
    return MeanField(MonteCarlo(num_samples, hessian=ZeroHessian()), scaling,
                     optx.FixedPointIteration(rtol=tolerance, atol=tolerance),
                     OneStep(1), _steps(max_steps, scaling, tolerance),
                     neg_num=_neg_num(neg_num, scaling))


def diffmf(
    steps: int = 5,
    *,
    num_samples: int = 5,
    scaling: AbstractScaling = NoScaling(),
    shared_draws: bool = False,
) -> MeanFieldSteps:
    r"""DiffMF (Ou et al. 2022): `steps` unscaled mean-field steps from $\psi = 0.5$,
    differentiated by unrolling.

    As the published code, every step draws fresh subsets, and every item's marginal
    gain has subsets of its own (`MonteCarlo(per_coordinate=True)` and
    `MeanFieldSteps(redraw=True)`). `shared_draws=True` is setfix's cheaper variant:
    one set of $m$ subsets shared by all items and all steps.

    **Arguments:**

    - `steps`: the number $K$ of steps (the paper: 5).
    - `num_samples`: Monte Carlo samples per gradient estimate.
    - `scaling`: the scaling of the gradient (DiffMF: none).
    - `shared_draws`: share the sampled subsets across items and steps.
    """
    if not isinstance(shared_draws, bool):
        raise TypeError(f"`shared_draws` must be True or False, got {shared_draws!r}.")
    estimator = MonteCarlo(num_samples, hessian=ZeroHessian(), per_coordinate=not shared_draws)
    return MeanFieldSteps(estimator, scaling, steps, redraw=not shared_draws)


def equivset_ind(*, num_samples: int = 5, tau: float = 0.1) -> EquiVSet:
    r"""EquiVSet$_{ind}$ (Ou et al. 2022): a recognition network with independent
    relaxed Bernoulli samples, one mean-field step. The model must be an
    [`setfix.AmortizedSetFunction`][].

    **Arguments:** `num_samples` (Monte Carlo and ELBO samples), `tau` (temperature).
    """
    return EquiVSet(MonteCarlo(num_samples, hessian=ZeroHessian()), 1,
                    objective=EquiVSetELBO(IndependentNoise(), num_samples, tau))


def equivset_copula(
    *, num_samples: int = 5, tau: float = 0.1, standardise: bool = False
) -> EquiVSet:
    r"""EquiVSet$_{copula}$ (Ou et al. 2022): as [`setfix.equivset_ind`][] with
    Gaussian-copula samples.

    **Arguments:** `num_samples` (Monte Carlo and ELBO samples), `tau` (temperature),
    `standardise` (divide the copula's noise by its standard deviation before $\Phi$,
    so that samples follow $\mu$; default `False`, the published code's noise).
    """
    return EquiVSet(MonteCarlo(num_samples, hessian=ZeroHessian()), 1,
                    objective=EquiVSetELBO(CopulaNoise(standardise), num_samples, tau))


def reference_prediction(method: MeanField | MeanFieldSteps) -> MeanFieldSteps:
    r"""The test-time rule of the published iDiffMF code: one mean-field step from
    $\psi = 0.5$ with `method`'s estimator and scaling, instead of solving to the fixed
    point. Pass it as `inference=` to [`setfix.fit`][] or [`setfix.evaluate`][]."""
    if not isinstance(method, (MeanField, MeanFieldSteps)):
        raise TypeError(
            "`method` must be a setfix.MeanField or setfix.MeanFieldSteps, got "
            f"{type(method).__name__}."
        )
    return MeanFieldSteps(method.estimator, method.scaling, 1, neg_num=method.neg_num)
