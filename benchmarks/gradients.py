"""Gradient quality: cosine similarity between the exact implicit gradient (Exact
estimator, n = 12) of a loss of psi* w.r.t. the DeepSet's parameters and the gradients
that Monte Carlo methods give, as num_samples grows. Mean and std over keys.

Methods: the implicit adjoint with each Hessian estimator (score, pairwise, zero =
what the published iDiffMF code computes), OneStep(1), OneStep(5) and Unrolled(5) (the
latter with the zero Hessian, which is what DiffMF computes, and with the score one).

    python -m benchmarks gradients [--quick]
"""


import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
import optimistix as optx
from jax.flatten_util import ravel_pytree

import setfix as sf

from ._common import as_float64, pyplot, quick_flag, save, save_figure
from .solvers import calibrate


def methods(m):
    implicit = optx.ImplicitAdjoint(lx.LU())
    mc = lambda h: sf.MonteCarlo(m, hessian=h)  # noqa: E731
    return {
        "implicit_score": (mc(sf.ScoreHessian()), implicit),
        "implicit_pairwise": (mc(sf.PairwiseHessian()), implicit),
        "implicit_zero (reference iDiffMF)": (mc(sf.ZeroHessian()), implicit),
        "onestep_1": (mc(sf.ScoreHessian()), sf.OneStep(1)),
        "onestep_5": (mc(sf.ScoreHessian()), sf.OneStep(5)),
        "unrolled_5_zero (reference DiffMF)": (mc(sf.ZeroHessian()), sf.Unrolled(5)),
        "unrolled_5_score": (mc(sf.ScoreHessian()), sf.Unrolled(5)),
    }


def main(argv=None):
    quick = quick_flag(argv)
    jax.config.update("jax_enable_x64", True)
    n = 8 if quick else 12
    samples = [4, 16, 64] if quick else [4, 16, 64, 256]
    repeats = 4 if quick else 8
    f = sf.DeepSet(2, key=jax.random.key(0))
    f = as_float64(f)
    params, static = eqx.partition(f, eqx.is_inexact_array)
    items = jax.random.normal(jax.random.key(1), (n, 2), jnp.float64)
    target = jnp.arange(n) < n // 4
    solver = optx.FixedPointIteration(rtol=1e-9, atol=1e-9)
    c, omega = calibrate(f, items, 0.9)
    results = []
    for scaling_name, scaling in (
        ("NormScaling (iDiffMF_2, per set)", sf.NormScaling()),
        (f"ConstantScaling(c), omega(psi*) = {omega:.2f}", sf.ConstantScaling(c)),
    ):
        results += run(scaling_name, scaling, solver, params, static, items, target,
                       samples, repeats)
    config = {"n": n, "repeats": repeats, "samples": samples, "dtype": "float64",
              "model": "DeepSet(2, hidden=256, width=500, depth=2)",
              "scalings": ["NormScaling()",
                           f"ConstantScaling({float(c):.4g}) with omega = {omega:.3f}"],
              "loss": "negative log-likelihood of psi* on a fixed target subset",
              "reference": "Exact estimator + ImplicitAdjoint(LU)"}
    name = "gradients" + ("_quick" if quick else "")
    save(name, config, results)
    plot(results, name)


def run(scaling_name, scaling, solver, params, static, items, target, samples, repeats):
    def loss_grad(estimator, adjoint, key):
        mf = sf.MeanField(estimator, scaling, solver, adjoint, max_steps=500)

        def loss(params):
            psi = mf(eqx.combine(params, static), items, key=key).psi
            return -jnp.sum(jnp.where(target, jnp.log(psi), jnp.log1p(-psi)))

        return ravel_pytree(jax.grad(loss)(params))[0]

    exact = loss_grad(sf.Exact(), optx.ImplicitAdjoint(lx.LU()), jax.random.key(0))
    keys = jax.random.split(jax.random.key(2), repeats)
    results = []
    for m in samples:
        for name, (estimator, adjoint) in methods(m).items():
            # One key at a time: the pairwise estimator's JVP is memory-hungry.
            grads = eqx.filter_jit(
                lambda ks: jax.lax.map(lambda k: loss_grad(estimator, adjoint, k), ks)
            )(keys)
            cos = grads @ exact / (jnp.linalg.norm(grads, axis=1) * jnp.linalg.norm(exact))
            row = {"scaling": scaling_name, "num_samples": m, "method": name,
                   "cosine_mean": float(cos.mean()), "cosine_std": float(cos.std())}
            print(row)
            results.append(row)
    return results


def plot(results, name):
    plt = pyplot()
    scalings = list(dict.fromkeys(r["scaling"] for r in results))
    fig, axes = plt.subplots(1, len(scalings), figsize=(6 * len(scalings), 4),
                             sharey=True, squeeze=False)
    for ax, scaling in zip(axes[0], scalings):
        rows_s = [r for r in results if r["scaling"] == scaling]
        for method in dict.fromkeys(r["method"] for r in rows_s):
            rows = [r for r in rows_s if r["method"] == method]
            ax.errorbar([r["num_samples"] for r in rows],
                        [r["cosine_mean"] for r in rows],
                        yerr=[r["cosine_std"] for r in rows], marker="o", capsize=2,
                        label=method)
        ax.set_xscale("log")
        ax.set_xlabel("num_samples m")
        ax.set_title(scaling, fontsize=9)
    axes[0][0].set_ylabel("cosine similarity to the exact implicit gradient")
    axes[0][-1].legend(fontsize=7)
    save_figure(fig, name)


if __name__ == "__main__":
    main()
