from __future__ import annotations

import json
from collections import Counter

from analog_train.data import (
    TileLabel,
    read_labels,
    split_aid_per_class,
    split_from_json,
    split_hirise_by_observation,
    split_to_json,
)


def _labels() -> list[TileLabel]:
    rows = []
    # 12 observations; rare class "rare" in 3 of them, "dune" in 4.
    for o in range(12):
        obs = f"OBS_{o:02d}"
        for t in range(5 + o % 4):
            rows.append(TileLabel(f"{obs}-{t}.jpg", "other", obs))
        if o < 4:
            rows += [TileLabel(f"{obs}-d{t}.jpg", "dune", obs) for t in range(3 + o)]
        if o in (5, 7, 9):
            rows.append(TileLabel(f"{obs}-r.jpg", "rare", obs))
    return rows


def test_no_observation_on_both_sides_and_all_assigned() -> None:
    labels = _labels()
    train, val = split_hirise_by_observation(labels, 0.25, seed=3)
    assert not set(train) & set(val)
    assert set(train) | set(val) == {r.observation for r in labels}


def test_every_class_in_two_or_more_observations_gets_val_and_train_tiles() -> None:
    labels = _labels()
    for seed in range(5):
        train, val = split_hirise_by_observation(labels, 0.25, seed=seed)
        for side in (train, val):
            present = Counter(r.cls for r in labels if r.observation in side)
            assert set(present) == {"other", "dune", "rare"}, (seed, side, present)


def test_split_is_deterministic_and_seed_dependent() -> None:
    labels = _labels()
    a = split_hirise_by_observation(labels, 0.25, seed=1)
    assert a == split_hirise_by_observation(labels, 0.25, seed=1)
    assert any(split_hirise_by_observation(labels, 0.25, seed=s) != a for s in range(2, 8))


def test_split_on_real_fixture_labels(fixture_dir) -> None:  # type: ignore[no-untyped-def]
    labels = read_labels(fixture_dir / "hirise" / "labels.csv")
    train, val = split_hirise_by_observation(labels, 0.3, seed=0)
    assert not set(train) & set(val)
    tiles_val = [r for r in labels if r.observation in val]
    tiles_train = [r for r in labels if r.observation in train]
    assert tiles_val and tiles_train


def test_aid_split_per_class_disjoint_and_json_roundtrip() -> None:
    files = {"Desert": [f"d{i}.jpg" for i in range(8)], "Forest": [f"f{i}.jpg" for i in range(4)]}
    tr, va = split_aid_per_class(files, 0.25, seed=0)
    for c in files:
        assert not set(tr[c]) & set(va[c])
        assert set(tr[c]) | set(va[c]) == set(files[c])
    assert len(va["Desert"]) == 2 and len(va["Forest"]) == 1
    assert (tr, va) == split_aid_per_class(files, 0.25, seed=0)

    from analog_train.data import Split

    labels = _labels()
    t, v = split_hirise_by_observation(labels, 0.25, 0)
    split = Split(tuple(t), tuple(v), tr, va)
    doc = json.loads(json.dumps(split_to_json(split, labels, 0, 0.25)))
    assert split_from_json(doc) == split
    assert sum(doc["hirise"]["val_tiles_per_class"].values()) == sum(
        1 for r in labels if r.observation in v
    )
