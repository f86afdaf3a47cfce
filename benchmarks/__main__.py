"""`python -m benchmarks [memory|solvers|gradients|implicit_fd ...] [--quick]`: runs the named
benchmarks (default: all), each writing JSON and PNG under benchmarks/results/."""

import sys

from . import gradients, implicit_fd, memory, solvers


BENCHMARKS = {
    "memory": memory.main,
    "solvers": solvers.main,
    "gradients": gradients.main,
    "implicit_fd": implicit_fd.main,
}


def main(argv):
    names = [a for a in argv if not a.startswith("-")] or list(BENCHMARKS)
    flags = [a for a in argv if a.startswith("-")]
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        raise SystemExit(f"unknown benchmark(s) {unknown}; choose from {list(BENCHMARKS)}")
    for name in names:
        print(f"== {name}")
        BENCHMARKS[name](flags)


main(sys.argv[1:])
