from __future__ import annotations

import numpy as np
from analog_train.baselines import (
    FrozenFeatureEmbedding,
    TextureDescriptor,
    glcm_features,
    lbp_histogram,
    raw_pixels,
)
from analog_train.evaluation import TRANSFORMS


def test_lbp_histogram_is_rotation_invariant_for_90_degrees() -> None:
    rng = np.random.default_rng(0)
    img = rng.random((40, 40))
    h0 = lbp_histogram(img, 1)
    h90 = lbp_histogram(np.rot90(img), 1)
    assert np.allclose(h0, h90)
    assert h0.sum() == np.float64(1.0) or abs(h0.sum() - 1.0) < 1e-9


def test_glcm_of_constant_image() -> None:
    f = glcm_features(np.full((20, 20), 0.5), distances=(1,))
    contrast, homog, energy, _, entropy = f
    assert contrast == 0 and homog == 1 and energy == 1 and entropy == 0


def test_descriptors_shapes() -> None:
    rng = np.random.default_rng(1)
    imgs = rng.random((4, 32, 32)).astype(np.float32)
    assert raw_pixels(imgs, 8).shape == (4, 64)
    t = TextureDescriptor().fit(imgs)(imgs)
    assert t.shape[0] == 4 and np.isfinite(t).all()


def test_invariance_transforms_keep_shape() -> None:
    img = (np.arange(50 * 50).reshape(50, 50) % 251).astype(np.uint8)
    for name, fn in TRANSFORMS.items():
        a, b = fn(img)
        assert a.shape == b.shape, name


def test_frozen_feature_embedding_by_hand() -> None:
    """Two training vectors (0, 0) and (2, 4): mean (1, 2), std (1, 2), so they standardise to
    (-1, -1) and (1, 1); normalised, their mean (the centre) is (0, 0). A query (3, 2)
    standardises to (2, 0) -> (1, 0) after normalising, minus the zero centre -> (1, 0)."""
    train = np.array([[0.0, 0.0], [2.0, 4.0]])
    emb = FrozenFeatureEmbedding(train)
    np.testing.assert_allclose(emb.centre, [0.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(emb(np.array([[3.0, 2.0]])), [[1.0, 0.0]], atol=1e-6)
    # A non-zero centre (three training vectors) is removed between the two normalisations.
    emb3 = FrozenFeatureEmbedding(np.array([[0.0, 0.0], [2.0, 4.0], [2.0, 0.0]]))
    z = (np.array([3.0, 2.0]) - emb3.mu) / emb3.sd
    want = z / np.linalg.norm(z) - emb3.centre
    np.testing.assert_allclose(emb3(np.array([[3.0, 2.0]]))[0], want / np.linalg.norm(want),
                               atol=1e-9)
    assert np.linalg.norm(emb3.centre) > 0.1
