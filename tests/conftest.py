import os

import jax
import pytest
from hypothesis import settings


# Gradient and finite-difference checks need double precision; tests that check the
# float32 default create float32 arrays explicitly.
jax.config.update("jax_enable_x64", True)

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
