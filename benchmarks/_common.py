"""Shared helpers of the benchmarks: machine record, result files, plots."""

import argparse
import importlib.metadata
import json
import os
import platform
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp


RESULTS = Path(__file__).parent / "results"


def machine() -> dict:
    """What the numbers were measured on."""
    versions = {}
    for name in ("setfix", "jax", "jaxlib", "equinox", "optimistix", "lineax", "optax"):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        # The cores this process may run on (e.g. under `taskset`).
        "cpus_used": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "jax_backend": jax.default_backend(),
        "jax_devices": [str(d) for d in jax.devices()],
        "x64": bool(jax.config.jax_enable_x64),
        "versions": versions,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def save(name: str, config: dict, results) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    record = {"benchmark": name, "machine": machine(), "config": config,
              "results": results}
    path.write_text(json.dumps(record, indent=2, default=float))
    print(f"wrote {path}")
    return path


def timed(fn, *args, repeats: int = 3, statistic=min):
    """(output, `statistic` (the best, by default) of the wall seconds of `repeats` runs
    after one warm-up)."""
    out = jax.block_until_ready(fn(*args))
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = jax.block_until_ready(fn(*args))
        seconds.append(time.perf_counter() - start)
    return out, float(statistic(seconds))


def save_figure(fig, name: str) -> Path:
    """Saves a matplotlib figure as `results/NAME.png`."""
    fig.tight_layout()
    path = RESULTS / f"{name}.png"
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")
    return path


def pyplot():
    """matplotlib's pyplot on the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def quick_flag(argv) -> bool:
    """Parses a benchmark's only option, `--quick` (small sizes)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    return parser.parse_args(argv).quick


def as_float64(tree):
    """Casts every floating-point array of a pytree (e.g. a model) to float64."""
    return jax.tree.map(
        lambda x: x.astype(jnp.float64) if eqx.is_inexact_array(x) else x, tree
    )
