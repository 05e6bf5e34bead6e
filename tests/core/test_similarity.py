"""Cosine scores: exact values, argmax, vectorised shape."""

from __future__ import annotations

import numpy as np
import pytest

from analog_plugin.core.class_scores import ClassScorer
from analog_plugin.core.errors import LibraryError
from analog_plugin.core.similarity import cosine_matrix, score_from_cosine


def test_score_mapping() -> None:
    np.testing.assert_allclose(score_from_cosine(np.array([-1.0, 0.0, 1.0, 1.2, -1.3])),
                               [0.0, 0.5, 1.0, 1.0, 0.0])


def test_best_matches_exact() -> None:
    s = np.sqrt(0.5)
    lib = np.array([[1.0, 0.0], [0.0, 1.0], [s, s]], np.float32)
    tiles = np.array([[1.0, 0.0], [0.6, 0.8], [-1.0, 0.0]], np.float32)
    m = ClassScorer(["a", "b", "c"]).score(tiles, lib)  # one exemplar per class
    best_cos = np.array([1.0, (0.6 + 0.8) * s, 0.0])
    assert m.best_index.tolist() == [0, 2, 1]
    np.testing.assert_allclose(m.per_class.max(axis=1), (1 + best_cos) / 2, rtol=1e-6,
                               atol=1e-7)
    np.testing.assert_allclose(m.score, (1 + best_cos) / 2, rtol=1e-6, atol=1e-7)
    # several exemplars per class, interleaved: per-class maxima by hand
    m2 = ClassScorer(["y", "x", "y"]).score(tiles, lib)
    cos = tiles.astype(np.float64) @ lib.T.astype(np.float64)
    np.testing.assert_allclose(m2.per_class[:, 0], (1 + cos[:, 1]) / 2)  # x: column 1
    np.testing.assert_allclose(m2.per_class[:, 1], (1 + cos[:, [0, 2]].max(axis=1)) / 2)
    assert cosine_matrix(tiles, lib).shape == (3, 3)


def test_dimension_mismatch_and_empty_library() -> None:
    with pytest.raises(LibraryError, match="dimensions differ"):
        cosine_matrix(np.zeros((2, 3)), np.zeros((4, 2)))
    with pytest.raises(LibraryError, match="no exemplars"):
        ClassScorer([]).score(np.zeros((2, 2)), np.zeros((0, 2)))
