"""Set anomaly detection on images: sets of images that share a property, with a few
that do not (CelebA as in EquiVSet, and scikit-learn's bundled digits offline)."""

import numpy as np

from .._dataset import SetDataset
from ._files import check_num_sets, directory, existing_file, FileFormatError, optional


def _plant(rng, normal, anomalous, set_size, anomalies):
    """A ground set of `set_size` random rows of `normal`, `anomalies` positions of which
    are overwritten by random rows of `anomalous`. Returns (rows, positions)."""
    ground = rng.choice(normal, set_size, replace=False)
    positions = rng.choice(set_size, anomalies, replace=False)
    ground[positions] = rng.choice(anomalous, anomalies, replace=False)
    return ground, positions


def _check_sizes(set_size, num_sets):
    if not isinstance(set_size, int) or set_size < 4:
        raise ValueError(f"`set_size` must be an integer of at least 4, got {set_size!r}.")
    check_num_sets(num_sets)


def digits(
    *,
    set_size: int = 8,
    num_sets: tuple[int, int, int] = (2000, 500, 500),
    seed: int = 1,
) -> tuple[SetDataset, SetDataset, SetDataset]:
    r"""Set anomaly detection on the 8×8 handwritten digits bundled with scikit-learn
    (1797 images, no download): `(train, val, test)`.

    Each ground set holds `set_size` images of one digit, 2 or 3 of which (at random
    positions) are replaced by images of other digits; $S^*$ is those. The images are
    split 60% / 20% / 20% at random before sets are drawn, so validation and test sets
    hold images never seen in training. Items are `(1, 8, 8)` images in $[0, 1]$, stored
    once in a shared `pool`. Needs `pip install 'setfix[data]'`.

    **Arguments:**

    - `set_size`: $|V|$.
    - `num_sets`: the numbers of train, validation and test sets.
    - `seed`: seeds the image split and the sets.
    """
    _check_sizes(set_size, num_sets)
    sk = optional("sklearn.datasets", "data", "The digits dataset")
    bunch = sk.load_digits()
    images = (bunch.images / 16.0).astype(np.float32)[:, None]
    labels = np.asarray(bunch.target)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(images))
    cuts = (int(0.6 * len(images)), int(0.8 * len(images)))
    meta = {"source": "scikit-learn digits", "item_type": "image", "set_size": set_size,
            "seed": seed}
    splits = []
    for split, rows, count in zip(("train", "val", "test"), np.split(order, cuts), num_sets):
        grounds, targets = [], []
        for _ in range(count):
            digit = rng.integers(10)
            normal, anomalous = rows[labels[rows] == digit], rows[labels[rows] != digit]
            if len(normal) < set_size:
                raise ValueError(f"`set_size` {set_size} exceeds the {len(normal)} images "
                                 f"of digit {digit} in the {split} split.")
            ground, positions = _plant(rng, normal, anomalous, set_size,
                                       int(rng.integers(2, 4)))
            grounds.append(ground)
            targets.append(positions)
        splits.append(SetDataset.from_sets(grounds, targets, name=f"digits/{split}",
                                           metadata=meta, pool=images))
    return tuple(splits)


def _read_attributes(path) -> tuple[list[str], list[str], np.ndarray]:
    """CelebA's `list_attr_celeba.txt`: a count line, the attribute names, then
    `<file> ±1 …` per image. Returns (files, attribute names, 0/1 table)."""
    lines = path.read_text().splitlines()
    if len(lines) < 3 or not lines[0].strip().isdigit():
        raise FileFormatError(path, 1, "expected the number of images on the first line.")
    names = lines[1].split()
    files, rows = [], []
    for number, line in enumerate(lines[2:], start=3):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != len(names) + 1 or any(v not in ("1", "-1") for v in parts[1:]):
            raise FileFormatError(path, number, f"expected an image file and {len(names)} "
                                  f"values of 1 or -1, got {line[:60]!r}.")
        files.append(parts[0])
        rows.append([v == "1" for v in parts[1:]])
    if len(files) != int(lines[0]):
        raise FileFormatError(path, 1, f"announces {lines[0].strip()} images but lists "
                              f"{len(files)}.")
    return files, names, np.array(rows, bool)


def _load_image(path, size: int) -> np.ndarray:
    """One image as the reference transforms it: shorter side resized to `size`,
    centre-cropped to `size`×`size`, scaled to [-1, 1], channels first."""
    image_module = optional("PIL.Image", "data", "Reading CelebA images")
    try:
        with image_module.open(path) as image:
            image = image.convert("RGB")
            w, h = image.size
            scale = size / min(w, h)
            image = image.resize((max(size, round(w * scale)), max(size, round(h * scale))),
                                 image_module.Resampling.BILINEAR)
            w, h = image.size
            left, top = (w - size) // 2, (h - size) // 2
            array = np.asarray(image.crop((left, top, left + size, top + size)), np.float32)
    except OSError as error:
        raise FileFormatError(path, None, f"not a readable image ({error}).") from None
    return (array / 127.5 - 1.0).transpose(2, 0, 1)


def celeba(
    root,
    *,
    set_size: int = 8,
    num_sets: tuple[int, int, int] = (10000, 1000, 1000),
    image_size: int = 64,
    seed: int = 1,
) -> tuple[SetDataset, SetDataset, SetDataset]:
    r"""Set anomaly detection on CelebA faces, as EquiVSet builds it: `(train, val, test)`.

    For each set an image with at least two attributes is drawn and two of its attributes
    chosen; the ground set holds `set_size` images having both, 2 or 3 of which (at
    random positions) are replaced by images having neither; $S^*$ is those. Images are
    resized and centre-cropped to `image_size` and scaled to $[-1, 1]$ (`(3, size,
    size)`, channels first), each stored once in a shared `pool` (float16). The metadata
    name each pool row's file (`files`) and each set's two attributes
    (`attribute_pairs`, indices into `attributes`).

    Reads the official layout (`img_align_celeba/` and `list_attr_celeba.txt`, from
    <https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html>) under `root`; nothing is
    downloaded. Needs `pip install 'setfix[data]'` (Pillow).

    **Arguments:**

    - `root`: the directory holding `img_align_celeba/` and `list_attr_celeba.txt`.
    - `set_size`: $|V|$.
    - `num_sets`: the numbers of train, validation and test sets.
    - `image_size`: the side of the square images.
    - `seed`: seeds the sets.
    """
    _check_sizes(set_size, num_sets)
    if not isinstance(image_size, int) or image_size < 8:
        raise ValueError(f"`image_size` must be an integer of at least 8, got {image_size!r}.")
    folder = directory(root)
    files, names, table = _read_attributes(
        existing_file(folder / "list_attr_celeba.txt", "CelebA attribute file"))
    images = directory(folder / "img_align_celeba", "root/img_align_celeba")
    rng = np.random.default_rng(seed)
    grounds_per_split, targets_per_split, pairs_per_split = [], [], []
    for count in num_sets:
        grounds, targets, pairs, tries = [], [], [], 0
        while len(grounds) < count:
            tries += 1
            if tries > 100 * count + 1000:
                raise ValueError(f"{folder}: too few images share two attributes to build "
                                 f"sets of {set_size}.")
            present = np.flatnonzero(table[rng.integers(len(table))])
            if len(present) < 2:
                continue
            pair = rng.choice(present, 2, replace=False)
            anomalies = int(rng.integers(2, 4))
            hits = table[:, pair].sum(axis=1)
            normal, anomalous = np.flatnonzero(hits == 2), np.flatnonzero(hits == 0)
            if len(normal) < set_size or len(anomalous) < anomalies:
                continue
            ground, positions = _plant(rng, normal, anomalous, set_size, anomalies)
            grounds.append(ground)
            targets.append(positions)
            pairs.append(pair)
        grounds_per_split.append(grounds)
        targets_per_split.append(targets)
        pairs_per_split.append(np.array(pairs))
    used = np.unique(np.concatenate([np.concatenate(g) for g in grounds_per_split]))
    row = np.full(len(files), -1)
    row[used] = np.arange(len(used))
    pool = np.stack([_load_image(existing_file(images / files[i], "CelebA image"),
                                 image_size).astype(np.float16) for i in used])
    meta = {"source": "CelebA", "item_type": "image", "set_size": set_size,
            "image_size": image_size, "seed": seed, "attributes": names}
    return tuple(
        SetDataset.from_sets([row[g] for g in grounds], targets, name=f"celeba/{split}",
                             metadata=dict(meta, files=[files[i] for i in used],
                                           attribute_pairs=pairs),
                             pool=pool, dtype=np.float16)
        for split, grounds, targets, pairs in zip(("train", "val", "test"),
                                                  grounds_per_split, targets_per_split,
                                                  pairs_per_split)
    )
