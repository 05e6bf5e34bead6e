"""Cosine scores: exact values, argmax, vectorised shape."""

from __future__ import annotations

import numpy as np
import pytest

from analog_plugin.core.errors import LibraryError
from analog_plugin.core.similarity import best_matches, cosine_matrix, score_from_cosine


def test_score_mapping() -> None:
    np.testing.assert_allclose(score_from_cosine(np.array([-1.0, 0.0, 1.0, 1.2, -1.3])),
                               [0.0, 0.5, 1.0, 1.0, 0.0])


def test_best_matches_exact() -> None:
    s = np.sqrt(0.5)
    lib = np.array([[1.0, 0.0], [0.0, 1.0], [s, s]], np.float32)
    tiles = np.array([[1.0, 0.0], [0.6, 0.8], [-1.0, 0.0]], np.float32)
    m = best_matches(tiles, lib)
    assert m.best_index.tolist() == [0, 2, 1]
    np.testing.assert_allclose(m.best_cos, [1.0, (0.6 + 0.8) * s, 0.0], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(m.scores, (1 + m.best_cos) / 2)
    assert cosine_matrix(tiles, lib).shape == (3, 3)


def test_dimension_mismatch_and_empty_library() -> None:
    with pytest.raises(LibraryError, match="dimensions differ"):
        cosine_matrix(np.zeros((2, 3)), np.zeros((4, 2)))
    with pytest.raises(LibraryError, match="no exemplars"):
        best_matches(np.zeros((2, 2)), np.zeros((0, 2)))
