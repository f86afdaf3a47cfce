"""Oracle datasets. Each loader returns `(train, val, test)` `setfix.SetDataset`s."""

from ._synthetic import gaussian as gaussian, moons as moons
