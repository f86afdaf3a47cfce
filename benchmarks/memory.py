"""Memory vs iterations (the paper's Figure 1): peak memory of one training gradient
step of a DeepSet (n = 100, m = 5, batch 128) with the unrolled adjoint (DiffMF) and the
implicit adjoint, for K (or max_steps) iterations.

Memory is XLA's compiled memory analysis of the jitted step (temporaries + arguments +
outputs); as a cross-check, the peak resident memory of a fresh process that runs the
step, for the smallest and largest K.

    python -m benchmarks memory [--quick]
"""

import json
import subprocess
import sys

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
import optimistix as optx

import setfix as sf

from ._common import pyplot, quick_flag, save, save_figure


def make_step(adjoint_name: str, k: int, batch: int, n: int, m: int):
    """The jitted gradient step and its arguments. The tolerance is 0, so the solve
    always runs exactly `k` iterations, with either adjoint."""
    key = jax.random.key(0)
    f = sf.DeepSet(2, key=key)
    items = jax.random.normal(key, (batch, n, 2))
    target = jax.random.bernoulli(jax.random.key(1), 0.1, (batch, n))
    if adjoint_name == "unrolled":
        adjoint = sf.Unrolled(k)
    else:
        adjoint = optx.ImplicitAdjoint(lx.GMRES(rtol=1e-6, atol=1e-6, max_steps=50))
    mf = sf.MeanField(
        estimator=sf.MonteCarlo(m),
        scaling=sf.NormScaling(),
        solver=optx.FixedPointIteration(rtol=0.0, atol=0.0),
        adjoint=adjoint,
        max_steps=k,
    )

    params, static = eqx.partition(f, eqx.is_array)

    @jax.jit
    def step(params, items, target, key):
        def loss(params):
            f = eqx.combine(params, static)
            psi = jnp.clip(mf(f, items, key=key).psi, 1e-6, 1 - 1e-6)
            return -jnp.mean(jnp.where(target, jnp.log(psi), jnp.log1p(-psi)))

        return jax.value_and_grad(loss)(params)

    return step, (params, items, target, jax.random.key(2))


def compiled_bytes(adjoint_name, k, batch, n, m) -> dict:
    step, args = make_step(adjoint_name, k, batch, n, m)
    stats = step.lower(*args).compile().memory_analysis()
    return {
        "temp_bytes": int(stats.temp_size_in_bytes),
        "argument_bytes": int(stats.argument_size_in_bytes),
        "output_bytes": int(stats.output_size_in_bytes),
        "total_bytes": int(stats.temp_size_in_bytes + stats.argument_size_in_bytes
                           + stats.output_size_in_bytes),
    }


def _child(adjoint_name, k, batch, n, m):
    import resource

    step, args = make_step(adjoint_name, k, batch, n, m)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    jax.block_until_ready(step(*args))
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"peak_rss_kib": after, "peak_rss_before_run_kib": before}))


def process_peak(adjoint_name, k, batch, n, m) -> dict:
    code = (
        "from benchmarks.memory import _child; "
        f"_child({adjoint_name!r}, {k}, {batch}, {n}, {m})"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    quick = quick_flag(argv)
    batch, n, m = (16, 30, 5) if quick else (128, 100, 5)
    ks = [1, 2, 5, 10] if quick else [1, 2, 5, 10, 20, 50, 100]
    results = []
    for name in ("implicit", "unrolled"):
        for k in ks:
            row = {"adjoint": name, "k": k, **compiled_bytes(name, k, batch, n, m)}
            # Cross-check by running the step in a fresh process, where it fits.
            if k in (ks[0], ks[-1]) and row["total_bytes"] < 4 * 2**30:
                row.update(process_peak(name, k, batch, n, m))
            print(row)
            results.append(row)
    config = {"batch": batch, "n": n, "num_samples": m, "ks": ks,
              "model": "DeepSet(2, hidden=256, width=500, depth=2)", "dtype": "float32",
              "solver": "FixedPointIteration(tol=0), i.e. exactly k iterations",
              "implicit": "ImplicitAdjoint(GMRES(1e-6, 1e-6, max_steps=50))"}
    save("memory" + ("_quick" if quick else ""), config, results)
    plot(results, config, "memory" + ("_quick" if quick else ""))


def plot(results, config, name):
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for adjoint, style in (("implicit", "o-"), ("unrolled", "s--")):
        rows = [r for r in results if r["adjoint"] == adjoint]
        ax.plot([r["k"] for r in rows], [r["total_bytes"] / 2**20 for r in rows], style,
                label=adjoint)
    ax.set_xscale("log")
    ax.set_xlabel("iterations K (unrolled) / max_steps (implicit)")
    ax.set_ylabel("compiled peak memory (MiB)")
    ax.set_title(f"one gradient step, batch {config['batch']}, n = {config['n']}")
    ax.legend()
    save_figure(fig, name)


if __name__ == "__main__":
    main()
