import os

import jax
from hypothesis import settings


# Gradient and finite-difference checks need double precision; tests that check the
# float32 default create float32 arrays explicitly.
jax.config.update("jax_enable_x64", True)

settings.register_profile(
    "ci", derandomize=True, max_examples=10, deadline=None, print_blob=True
)
settings.register_profile("dev", max_examples=40, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
