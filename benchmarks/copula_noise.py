"""What trained EquiVSet_copula models do with their copula noise.

`python -m benchmarks.copula_noise RUN_DIR [RUN_DIR ...]` reads the best model of each
EquiVSet_copula run directory (`setfix train --method equivset_copula --out RUN_DIR`),
and on its test split reports, over the real items: the copula noise's standard
deviation $\\sqrt{\\sigma_i^2 + \\lVert u_i \\rVert^2}$ (median and 90th percentile), the
range of the recognition network's $\\mu$ (5th and 95th percentiles, and the fraction
in (0.3, 0.7)), and how often one relaxed sample agrees with the threshold
$\\mathbb 1[\\mu_i > 1/2]$. With the published (unstandardised) noise a small standard
deviation makes every sample nearly that threshold. Writes
`benchmarks/results/copula_noise.json` (or `--json PATH`).
"""

import argparse
import json
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from setfix.experiments import build_method, load_run, load_splits


RESULTS = Path(__file__).parent / "results" / "copula_noise.json"


def statistics(run: Path, max_sets: int = 256) -> dict:
    config, model = load_run(run)
    if config.method != "equivset_copula":
        raise ValueError(f"{run}: an {config.method} run, not equivset_copula.")
    test = load_splits(config)[2][:max_sets]
    items, mask = jnp.asarray(test.features()), np.asarray(test.mask)
    mean, scale, factors = jax.vmap(model.recognition)(items)
    spread = np.sqrt(scale**2 + np.sum(factors**2, axis=-1))[mask]
    mu = np.asarray(mean)[mask]
    method = build_method(config)
    keys = jax.random.split(jax.random.key(0), len(test))
    samples = jax.vmap(lambda x, m, k: method.objective.sample(model, x, m, key=k)[0])(
        items, jnp.asarray(mask), keys)
    agree = np.asarray(samples)[mask] == (mu > 0.5)
    return {
        "run": run.name, "copula": config.copula, "seed": config.seed,
        "test_sets": len(test),
        "noise_sd_median": float(np.median(spread)),
        "noise_sd_p90": float(np.quantile(spread, 0.9)),
        "mu_p05": float(np.quantile(mu, 0.05)), "mu_p95": float(np.quantile(mu, 0.95)),
        "mu_in_0.3_0.7": float(np.mean((mu > 0.3) & (mu < 0.7))),
        "sample_is_threshold": float(np.mean(agree)),
    }


def main(argv: list[str]) -> list[dict]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.copula_noise",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", type=Path, nargs="+", metavar="RUN_DIR")
    parser.add_argument("--json", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    rows = [statistics(run) for run in args.runs]
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(rows, indent=1))
    print("| run | noise sd (median / p90) | mu p05–p95 | mu in (0.3, 0.7) "
          "| sample = 1[mu > 1/2] |")
    print("| --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['run']} | {r['noise_sd_median']:.3f} / {r['noise_sd_p90']:.3f} "
              f"| {r['mu_p05']:.2f}–{r['mu_p95']:.2f} | {100 * r['mu_in_0.3_0.7']:.1f}% "
              f"| {100 * r['sample_is_threshold']:.1f}% |")
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
