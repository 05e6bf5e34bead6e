"""Data loading and the train/validation split.

Why the split is by observation: tiles cut from one HiRISE observation are near-duplicates (same
illumination, same terrain, overlapping crops). A tile-level split would put copies of a validation
tile in the training gallery and turn kNN evaluation into a lookup. Every observation therefore
lives on exactly one side. AID images are independent scenes, so AID is split per class by file.

Images are decoded once and pushed through ``analog_plugin.core.preprocess.prepare_image`` under
the training pixel contract (``TRAIN_PIXELS``: area resize, per-tile 2-98 % stretch, luma for RGB)
with mean 0 / std 1, i.e. the 0..1 values the plugin feeds to the network before normalisation.
The exported model declares the same contract, so the plugin prepares every tile the same way.
The result is cached as ``.npy`` so training
epochs cost no JPEG decoding.
"""

from __future__ import annotations

import csv
import hashlib
import json
import random
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from analog_plugin.core.preprocess import prepare_image, unit_contract

HIRISE_DIR = "hirise-v1"
AID_DIR = "aid-natural"
MARS_CLASSES = ("other", "edge", "dark_dune", "bright_dune", "crater", "slope_streak")
DUNE_CLASSES = ("dark_dune", "bright_dune")
AID_DUNE_CLASS = "Desert"

TRAIN_PIXELS: dict[str, object] = {
    "stretch": "tile",
    "percentiles": (2.0, 98.0),
    "min_span_fraction": 0.1,
    "percentile_step": 2,
}
"""The pixel contract of training; exported into the model's ``preprocessing`` metadata.
Percentiles on every 2nd row and column (model 2.2): 4x cheaper selection at the same stretch
to within a grey level (preprocess.py)."""

SOURCE_TILE_PX = 227
"""HiRISE landmark tiles are 227 px; training views cover 0.8-1.0 of them (augment.py)."""
TILE_PX = round(SOURCE_TILE_PX * 0.9)
"""Source pixels the model sees per tile on average (204): the default TILE_SIZE it declares."""


@dataclass(frozen=True)
class TileLabel:
    """One row of ``hirise-v1/labels.csv``."""

    file: str
    cls: str
    observation: str


@dataclass(frozen=True)
class Split:
    """Which HiRISE observations and AID files are used for training and for validation."""

    train_observations: tuple[str, ...]
    val_observations: tuple[str, ...]
    aid_train: dict[str, tuple[str, ...]]
    aid_val: dict[str, tuple[str, ...]]


def read_labels(path: Path) -> list[TileLabel]:
    """Read ``file,class,observation`` rows."""
    with open(path, newline="") as fh:
        return [TileLabel(r["file"], r["class"], r["observation"]) for r in csv.DictReader(fh)]


def split_hirise_by_observation(
    labels: Sequence[TileLabel], val_fraction: float = 0.25, seed: int = 0
) -> tuple[list[str], list[str]]:
    """Split observations (never tiles) into train / validation, deterministically.

    Stratified-ish greedy: classes are visited from the one with the fewest observations to the one
    with the most (rare classes have almost no freedom: dark_dune lives in 4 observations). For each
    class, observations holding it are taken in a seeded random order and moved to validation while
    the class is short of ``val_fraction`` of its tiles, skipping an observation that would
    overshoot the target by more than half (unless the class has no validation tile yet) and
    always leaving at least one observation of the class in training. Every class present in two
    or more observations thus gets validation tiles, and no observation is on both sides. Returns
    sorted lists
    ``(train_observations, val_observations)``.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    per_obs: dict[str, Counter[str]] = defaultdict(Counter)
    for row in labels:
        per_obs[row.observation][row.cls] += 1
    observations = sorted(per_obs)
    rng = random.Random(seed)
    order = observations[:]
    rng.shuffle(order)
    totals: Counter[str] = Counter()
    for counts in per_obs.values():
        totals.update(counts)
    n_obs_of = {c: sum(1 for o in observations if per_obs[o][c]) for c in totals}
    val: set[str] = set()
    for cls in sorted(totals, key=lambda c: (n_obs_of[c], totals[c], c)):
        target = val_fraction * totals[cls]
        holders = [o for o in order if per_obs[o][cls]]
        for obs in holders:
            have = sum(per_obs[o][cls] for o in val)
            if have >= target:
                break
            if obs in val:
                continue
            left_in_train = [o for o in holders if o not in val and o != obs]
            if not left_in_train:
                break
            count = per_obs[obs][cls]
            if have > 0 and have + count > 1.5 * target:
                continue
            if have == 0 and count > 1.5 * target and len(left_in_train) > 1:
                continue
            if _overfills_other(per_obs, val, obs, cls, totals, val_fraction):
                continue
            val.add(obs)
    # The dominant classes are filled last and greedily too; nothing else to do here.
    train = sorted(o for o in observations if o not in val)
    return train, sorted(val)


def _overfills_other(
    per_obs: dict[str, Counter[str]],
    val: set[str],
    obs: str,
    cls: str,
    totals: Counter[str],
    val_fraction: float,
) -> bool:
    """True if moving ``obs`` to validation would push another class past 1.5x its target (a big
    observation of a rare class picked for a common one would starve training of the rare one)."""
    for other, count in per_obs[obs].items():
        if other == cls or count == 0:
            continue
        have = sum(per_obs[o][other] for o in val)
        if have + count > 1.5 * val_fraction * totals[other]:
            return True
    return False


def split_aid_per_class(
    files_by_class: Mapping[str, Sequence[str]], val_fraction: float = 0.25, seed: int = 0
) -> tuple[dict[str, tuple[str, ...]], dict[str, tuple[str, ...]]]:
    """Split AID files class by class (AID scenes are independent images): seeded shuffle of the
    sorted file list, the first ``round(val_fraction * n)`` (at least 1) go to validation."""
    train: dict[str, tuple[str, ...]] = {}
    val: dict[str, tuple[str, ...]] = {}
    for cls in sorted(files_by_class):
        files = sorted(files_by_class[cls])
        rng = random.Random(f"{seed}:{cls}")
        rng.shuffle(files)
        n_val = max(1, round(val_fraction * len(files))) if len(files) > 1 else 0
        val[cls] = tuple(sorted(files[:n_val]))
        train[cls] = tuple(sorted(files[n_val:]))
    return train, val


def list_aid(data_dir: Path) -> dict[str, list[str]]:
    """AID file names per class folder."""
    root = data_dir / AID_DIR / "images"
    return {
        d.name: sorted(f.name for f in d.glob("*.jpg"))
        for d in sorted(root.iterdir())
        if d.is_dir()
    }


def make_split(data_dir: Path, val_fraction: float = 0.25, seed: int = 0) -> Split:
    """The project's split of ``data_dir`` (``../shared/data``)."""
    labels = read_labels(data_dir / HIRISE_DIR / "labels.csv")
    train_obs, val_obs = split_hirise_by_observation(labels, val_fraction, seed)
    aid_train, aid_val = split_aid_per_class(list_aid(data_dir), val_fraction, seed)
    return Split(tuple(train_obs), tuple(val_obs), aid_train, aid_val)


def split_to_json(
    split: Split, labels: Sequence[TileLabel], seed: int, val_fraction: float
) -> dict:
    """JSON-able description of a split, with per-class tile counts so it can be audited."""
    val_set = set(split.val_observations)
    counts: dict[str, Counter[str]] = {"train": Counter(), "val": Counter()}
    for row in labels:
        counts["val" if row.observation in val_set else "train"][row.cls] += 1
    return {
        "seed": seed,
        "val_fraction": val_fraction,
        "hirise": {
            "split_by": "observation",
            "train_observations": list(split.train_observations),
            "val_observations": list(split.val_observations),
            "train_tiles_per_class": dict(sorted(counts["train"].items())),
            "val_tiles_per_class": dict(sorted(counts["val"].items())),
        },
        "aid": {
            "split_by": "file, per class",
            "train": {k: list(v) for k, v in split.aid_train.items()},
            "val": {k: list(v) for k, v in split.aid_val.items()},
        },
    }


def split_from_json(doc: dict) -> Split:
    """Inverse of :func:`split_to_json` (so evaluation uses exactly the training split)."""
    return Split(
        tuple(doc["hirise"]["train_observations"]),
        tuple(doc["hirise"]["val_observations"]),
        {k: tuple(v) for k, v in doc["aid"]["train"].items()},
        {k: tuple(v) for k, v in doc["aid"]["val"].items()},
    )


def load_split(path: Path) -> Split:
    """Read a split JSON file."""
    return split_from_json(json.loads(Path(path).read_text()))


# --------------------------------------------------------------------------------------------
# Image loading


@dataclass
class ImageSet:
    """Preprocessed 0..1 grayscale images and their metadata (one row per image).

    ``label`` is namespaced (``mars:dark_dune``, ``earth:Desert``) so that an Earth and a Mars class
    never share a label by accident; cross-planet positives are declared explicitly in pairs.py.
    """

    images: np.ndarray  # (N, S, S) float32 in 0..1
    label: list[str]
    group: list[str]  # "place" id: HiRISE observation, or the AID file
    source: list[str]  # file path relative to the data dir
    split: list[str]  # "train" / "val"

    def subset(self, mask: np.ndarray) -> ImageSet:
        """Rows where ``mask`` is true."""
        idx = np.flatnonzero(mask)
        return ImageSet(
            self.images[idx],
            [self.label[i] for i in idx],
            [self.group[i] for i in idx],
            [self.source[i] for i in idx],
            [self.split[i] for i in idx],
        )


def read_image(path: Path) -> np.ndarray:
    """Decode a JPEG to ``(B, H, W)`` uint8 (1 band for grayscale, 3 for RGB)."""
    from PIL import Image

    with Image.open(path) as im:
        arr = np.asarray(im.convert("L" if im.mode in ("L", "I", "F") else "RGB"))
    return arr[None] if arr.ndim == 2 else np.moveaxis(arr, -1, 0)


def prepare01(raw: np.ndarray, size: int) -> np.ndarray:
    """Plugin preprocessing up to (not including) normalisation: ``(size, size)`` 0..1 luma."""
    return prepare_image(raw, unit_contract(size, 1, **TRAIN_PIXELS))[0]  # type: ignore[arg-type]


def load_images(
    data_dir: Path, split: Split, size: int, cache_dir: Path | None = None
) -> ImageSet:
    """All HiRISE tiles and AID images (both splits) at ``size`` px, cached as ``.npy``."""
    labels = read_labels(data_dir / HIRISE_DIR / "labels.csv")
    val_obs = set(split.val_observations)
    rows: list[tuple[str, str, str, str]] = []  # source, label, group, split
    for r in labels:
        rows.append(
            (f"{HIRISE_DIR}/tiles/{r.file}", f"mars:{r.cls}", r.observation,
             "val" if r.observation in val_obs else "train")
        )
    for part, table in (("train", split.aid_train), ("val", split.aid_val)):
        for cls, files in sorted(table.items()):
            for f in files:
                src = f"{AID_DIR}/images/{cls}/{f}"
                rows.append((src, f"earth:{cls}", src, part))
    key = hashlib.sha1(json.dumps([size, [r[0] for r in rows]]).encode()).hexdigest()[:12]
    cache = Path(cache_dir) / f"images_{size}_{key}.npy" if cache_dir else None
    if cache is not None and cache.exists():
        images = np.load(cache)
    else:
        images = np.stack([prepare01(read_image(data_dir / r[0]), size) for r in rows])
        images = images.astype(np.float32)
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            np.save(cache, images)
    return ImageSet(
        images, [r[1] for r in rows], [r[2] for r in rows], [r[0] for r in rows],
        [r[3] for r in rows],
    )


def write_split_json(data_dir: Path, out: Path, val_fraction: float = 0.25, seed: int = 0) -> Split:
    """Compute the split of ``data_dir`` and write it to ``out``
    (``models/analog-siamese.split.json``)."""
    split = make_split(data_dir, val_fraction, seed)
    labels = read_labels(data_dir / HIRISE_DIR / "labels.csv")
    doc = split_to_json(split, labels, seed, val_fraction)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1) + "\n")
    return split
