"""Oracle datasets. Each loader returns `(train, val, test)` `setfix.SetDataset`s."""

from ._amazon import amazon as amazon, CATEGORIES as AMAZON_CATEGORIES  # noqa: F401
from ._compounds import (
    bindingdb as bindingdb,
    compounds as compounds,
    fingerprints as fingerprints,
)
from ._images import celeba as celeba, digits as digits
from ._interactions import (
    complements as complements,
    coverage as coverage,
    substitutes as substitutes,
)
from ._synthetic import gaussian as gaussian, moons as moons
