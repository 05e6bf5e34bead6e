from __future__ import annotations

import numpy as np
import pytest
from analog_train.evaluation import InvarianceSet, earth_to_mars, invariance, mars_to_mars
from analog_train.metrics import knn_predict, macro_f1, map_at_r, precision_at_k

# Hand-made embedding set: class a along x, class b along y.
G = np.array([[1, 0], [0.9, 0.1], [0.8, 0.2], [0, 1], [0.1, 0.9]], dtype=float)
GL = ["a", "a", "a", "b", "b"]


def test_knn_and_f1_known_values() -> None:
    q = np.array([[1, 0.05], [0.05, 1], [0.6, 0.4]])
    pred = knn_predict(q, G, GL, k=3)
    assert pred == ["a", "b", "a"]
    assert macro_f1(["a", "b", "b"], pred) == pytest.approx((2 / 3 + 2 / 3) / 2)


def test_map_at_r_and_precision_known_values() -> None:
    q = np.array([[0.0, 1.0]])  # class b: R = 2; ranking b, b, ... -> AP@R = 1
    assert map_at_r(q, ["b"], G, GL)[0] == pytest.approx(1.0)
    q2 = np.array([[0.5, 0.5]])  # ranking: [0.8,0.2]-> a? compute: cos sorted
    # cosines with (0.5,0.5): a0 .707, a1 .78, a2 .857, b3 .707, b4 .78 -> order a2, a1, b4, a0, b3
    ap = map_at_r(q2, ["a"], G, GL)[0]  # R=3: rel = 1,1,0 -> (1 + 1 + 0)/3
    assert ap == pytest.approx(2 / 3)
    assert precision_at_k(q2, G, GL, ["b"], 3)[0] == pytest.approx(1 / 3)


def test_mars_and_earth_summaries() -> None:
    r = mars_to_mars(np.array([[1, 0.0], [0, 1.0]]), ["a", "b"], G, GL, k=3)
    assert r["knn_accuracy"] == 1.0 and r["macro_f1"] == 1.0
    gl = ["mars:dark_dune", "mars:other", "mars:other", "mars:other", "mars:bright_dune"]
    gal = np.array([[1, 0], [0, 1], [0, 1], [0, 1], [0.9, 0.1]])
    e = earth_to_mars(np.array([[1.0, 0.0]]), gal, gl, k=2)
    assert e["precision_at_k"] == 1.0
    assert e["base_rate"] == pytest.approx(0.4)
    assert e["lift"] == pytest.approx(2.5)


def test_invariance_gap_of_identity_embedding() -> None:
    rng = np.random.default_rng(0)
    a = rng.random((4, 8, 8))
    inv = InvarianceSet({"same": (a, a.copy())}, (a, a[::-1].copy()))
    r = invariance(lambda x: x.reshape(len(x), -1) - 0.5, inv)
    assert r["same"]["same_cos"] == pytest.approx(1.0)
    assert r["gap"] == pytest.approx(1.0 - r["different_tiles_cos"])


def test_report_table_lists_every_method_and_metric() -> None:
    from analog_train.report import markdown_table

    rng = np.random.default_rng(0)
    q = rng.normal(size=(6, 4))
    g = rng.normal(size=(10, 4))
    ql = ["mars:a", "mars:b"] * 3
    gl = ["mars:a", "mars:b", "mars:dark_dune", "mars:other", "mars:a"] * 2
    a = rng.random((3, 8, 8))
    inv = InvarianceSet({"rot90": (a, a)}, (a, a[::-1].copy()), (a, a[::-1].copy()))
    res = {}
    for name in ("learned", "baseline"):
        res[name] = {
            "mars_to_mars": mars_to_mars(q, ql, g, gl),
            "earth_to_mars": earth_to_mars(q[:2], g, gl, k=3),
            "earth_to_mars_all_tiles": earth_to_mars(q[:2], g, gl, k=3),
            "invariance": invariance(lambda x: x.reshape(len(x), -1) - 0.5, inv),
        }
    md = markdown_table(res)
    assert "| metric (validation split) | learned | baseline |" in md
    assert "kNN (k=5) accuracy" in md and "rot90" in md and "| a |" in md
