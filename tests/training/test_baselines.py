from __future__ import annotations

import numpy as np
from analog_train.baselines import TextureDescriptor, glcm_features, lbp_histogram, raw_pixels
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
