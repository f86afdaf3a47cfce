import contextlib
import os

import jax
import pytest
from hypothesis import settings

from .helpers import unchecked


# Gradient and finite-difference checks need double precision; tests that check the
# float32 default create float32 arrays explicitly (or run under the `user_defaults` marker).
jax.config.update("jax_enable_x64", True)
# As the Optimistix tests do: no implicit promotion between array dtypes (a float32
# array meeting a float64 one, an integer count dividing a float), so the library's
# arithmetic keeps the dtype it was given. With `--jaxtyping-packages=setfix,...` in
# pyproject.toml's addopts, every annotated signature is also checked at run time.
jax.config.update("jax_numpy_dtype_promotion", "strict")

settings.register_profile(
    "ci", derandomize=True, max_examples=10, deadline=None, print_blob=True
)
settings.register_profile("dev", max_examples=40, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_addoption(parser):
    parser.addoption(
        "--slow", action="store_true",
        help="also run the tests marked `slow` (compile-heavy; CI runs everything)",
    )


def pytest_collection_modifyitems(config, items):
    """Without `--slow`, deselect the tests marked `slow`: plain `pytest` is the fast
    tier, `pytest --slow` (the README's test command, what CI runs) is the suite."""
    if config.getoption("--slow"):
        return
    slow = [item for item in items if item.get_closest_marker("slow")]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if not item.get_closest_marker("slow")]


@pytest.fixture(autouse=True)
def _markers(request):
    """`bad_input`: the test checks the library's own error messages for wrong
    arguments, which is what users see; jaxtyping's run-time check (on in the tests,
    not for users) would answer first, so it is off for the test. `user_defaults`: the
    test runs under JAX's defaults, as a user's program does: no 64-bit types (the
    datasets are float32, and a model built with x64 on would be float64) and standard
    dtype promotion (optax's Adam raises a Python float to its int32 step count, which
    strict promotion refuses), so training runs here. `standard_promotion`: only the
    latter."""
    marked = request.node.get_closest_marker
    with contextlib.ExitStack() as stack:
        if marked("bad_input"):
            stack.enter_context(unchecked())
        if marked("user_defaults"):
            stack.enter_context(jax.enable_x64(False))
        if marked("user_defaults") or marked("standard_promotion"):
            stack.enter_context(jax.numpy_dtype_promotion("standard"))
        yield


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drop each test module's compiled programs when it ends.

    One process running the whole suite otherwise keeps every XLA executable it
    compiled, and on CPU each holds memory maps of its own: a single-worker run of the
    full suite reached 65,402 maps against the kernel's limit of 65,530
    (`vm.max_map_count`) and segfaulted in XLA's compiler. With this, the most seen
    (sampled every 30 s) was 15,612.
    """
    yield
    jax.clear_caches()
