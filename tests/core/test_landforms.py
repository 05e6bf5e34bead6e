"""kNN votes, neighbour smoothing and the fitted categorized style, on hand-built cases."""

from __future__ import annotations

import xml.etree.ElementTree as ET  # nosec B405 - parses our own test output
from pathlib import Path

import numpy as np
import pytest

from analog_plugin.core.categorized_style import fit_categories
from analog_plugin.core.class_scores import ClassScorer
from analog_plugin.core.errors import LibraryError
from analog_plugin.core.landforms import decide, knn_votes, smooth

STYLES = Path(__file__).resolve().parents[2] / "resources" / "styles"


def unit(deg: float) -> np.ndarray:
    return np.array([np.cos(np.radians(deg)), np.sin(np.radians(deg))])


def test_knn_votes_weight_by_score() -> None:
    # exemplars at 0, 10 (class 0) and 90 deg (class 1); a tile at 20 deg
    lib = np.stack([unit(0), unit(10), unit(90)])
    codes = np.array([0, 0, 1])
    v = knn_votes(unit(20)[None], lib, codes, 2, k=2)  # nearest two: 10 and 0 deg
    cos10, cos20 = np.cos(np.radians(10)), np.cos(np.radians(20))
    assert v[0, 0] == pytest.approx((1 + cos10) / 2 + (1 + cos20) / 2)
    assert v[0, 1] == 0
    v3 = knn_votes(unit(20)[None], lib, codes, 2, k=3)
    assert v3[0, 1] == pytest.approx((1 + np.cos(np.radians(70))) / 2)
    d = decide(v3)
    assert (d.label[0], d.second[0]) == (0, 1)
    assert d.confidence[0] == pytest.approx(v3[0, 0] / v3[0].sum())
    assert knn_votes(unit(20)[None], lib, codes, 2, k=50).sum() == pytest.approx(v3.sum())


def test_decide_without_runner_up() -> None:
    d = decide(np.array([[0.0, 2.0, 0.0]]))
    assert (d.label[0], d.second[0], d.confidence[0]) == (1, -1, 1.0)


def grid_votes(labels: list[list[int]], n: int = 3, strength: float = 1.0
               ) -> tuple[np.ndarray, ...]:
    rows, cols, votes = [], [], []
    for r, line in enumerate(labels):
        for c, lab in enumerate(line):
            v = np.full(n, (1 - strength) / max(n - 1, 1))
            v[lab] = strength
            rows.append(r)
            cols.append(c)
            votes.append(v)
    return np.array(votes), np.array(rows), np.array(cols)


def test_majority_overrules_an_isolated_tile_but_not_a_region() -> None:
    labels = [[0, 0, 0, 1, 1],
              [0, 2, 0, 1, 1],
              [0, 0, 0, 1, 1]]
    votes, rows, cols = grid_votes(labels)
    d = smooth(votes, rows, cols, (3, 5), "majority")
    got = d.label.reshape(3, 5)
    assert got[1, 1] == 0  # 2x own vote (2) < 8 neighbours of class 0
    # the boundary between the 0 and 1 regions stays where it was
    assert (got[:, :3] == 0).all() and (got[:, 3:] == 1).all()
    none = smooth(votes, rows, cols, (3, 5), "none")
    assert none.label.reshape(3, 5)[1, 1] == 2


def test_majority_respects_missing_tiles() -> None:
    # a lone tile with no scored neighbours keeps its label
    votes, rows, cols = grid_votes([[2]])
    d = smooth(votes, rows + 5, cols + 5, (10, 10), "majority")
    assert d.label[0] == 2 and d.confidence[0] == pytest.approx(1.0)


def test_mrf_removes_weak_flips_keeps_confident_ones() -> None:
    labels = [[0, 0, 0], [0, 1, 0], [0, 0, 0]]
    weak, rows, cols = grid_votes(labels, n=2, strength=0.55)  # centre barely prefers 1
    d = smooth(weak, rows, cols, (3, 3), "mrf")
    assert d.label[4] == 0
    # strong evidence (share 1.0 vs 0.0) beats beta = 0.5 x full neighbour agreement
    strong, rows, cols = grid_votes(labels, n=2, strength=1.0)
    assert smooth(strong, rows, cols, (3, 3), "mrf").label[4] == 1


def test_unknown_smoothing_is_refused() -> None:
    votes, rows, cols = grid_votes([[0]])
    with pytest.raises(ValueError, match="SMOOTH"):
        smooth(votes, rows, cols, (1, 1), "gaussian")


def test_fit_categories_one_per_class_with_template_colours() -> None:
    qml = fit_categories((STYLES / "landforms.qml").read_text(), ["dark_dune", "yardang_field",
                                                                  "zz"])
    root = ET.fromstring(qml)  # nosec B314 - our own output
    cats = root.findall(".//categories/category")
    assert [c.get("value") for c in cats] == ["dark_dune", "yardang_field", "zz"]
    assert [c.get("label") for c in cats] == ["dark dune", "yardang field", "zz"]
    symbols = {s.get("name"): s for s in root.findall(".//symbols/symbol")}
    assert set(symbols) == {"0", "1", "2"}

    def colour(sym: ET.Element) -> str:
        return next(o.get("value") for o in sym.iter("Option") if o.get("name") == "color")

    assert colour(symbols["0"]).startswith("178,24,43")  # the template's dark_dune #b2182b
    assert colour(symbols["1"]) != colour(symbols["2"])  # new names get distinct colours


def test_negatives_cannot_be_every_class() -> None:
    with pytest.raises(LibraryError, match="at least one"):
        ClassScorer(["a", "b", "a"], ["a", "b"])
    with pytest.raises(LibraryError, match="not classes"):
        ClassScorer(["a", "b"], ["c"])


def test_negative_formula_by_hand() -> None:
    lib = np.stack([unit(0), unit(60)])  # class p at 0 deg, negative n at 60 deg
    s = ClassScorer(["p", "n"], ["n"])
    tiles = np.stack([unit(10), unit(50), unit(30)])
    m = s.score(tiles, lib)
    for t, deg in enumerate((10, 50, 30)):
        p = (1 + np.cos(np.radians(deg))) / 2
        n = (1 + np.cos(np.radians(60 - deg))) / 2
        assert m.score[t] == pytest.approx(min(1, max(0, p - max(0, n - p))))
        assert m.best_index[t] == 0  # always a positive exemplar
    assert m.score[1] < m.per_class[1, s.classes.index("p")]  # pushed down
    assert m.score[0] == pytest.approx(m.per_class[0, s.classes.index("p")])  # untouched
