"""Cosine similarity between tile and exemplar embeddings, and the score mapping.

Both sides are L2-normalised (the model contract), so cosine is a plain dot product and the whole
batch is one matrix product ``E_tiles @ E_library.T``.
score = clip((1 + max_cos) / 2, 0, 1) maps cosine [-1, 1] to [0, 1] monotonically, so 0.5 means
"orthogonal" and the graduated style can use fixed class breaks.
"""

from __future__ import annotations

import numpy as np

from .errors import LibraryError


def cosine_matrix(embeddings: np.ndarray, library: np.ndarray) -> np.ndarray:
    """(N, D) x (M, D) -> (N, M) cosines (float64 accumulation for exact, stable scores)."""
    a = np.asarray(embeddings, dtype=np.float64)
    b = np.asarray(library, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise LibraryError(
            f"embedding dimensions differ: tiles {a.shape}, library {b.shape}; rebuild the "
            "library with the same model used for scoring"
        )
    return a @ b.T


def score_from_cosine(cos: np.ndarray) -> np.ndarray:
    """``clip((1 + cos) / 2, 0, 1)``."""
    return np.clip((1.0 + np.asarray(cos, dtype=np.float64)) / 2.0, 0.0, 1.0)
