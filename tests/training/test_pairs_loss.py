from __future__ import annotations

import numpy as np
import pytest
import torch
from analog_train.loss import batch_contrastive_loss, contrastive_loss, pair_distances
from analog_train.pairs import BalancedSampler, labels_similar, pair_masks


def test_pair_masks_same_place_same_label_and_cross_planet() -> None:
    labels = ["mars:crater", "mars:crater", "mars:dark_dune", "earth:Desert", "earth:Forest",
              "mars:bright_dune", "mars:crater"]
    places = ["a", "b", "c", "d", "e", "f", "a"]  # items 0 and 6: two views of one image
    sim, dis = pair_masks(labels, places)
    assert sim[0, 1] and sim[0, 6]  # same label; same place
    assert sim[2, 3] and sim[3, 5]  # Earth desert ~ Mars dunes (both kinds)
    assert dis[2, 5]  # dark vs bright dune stay different landforms
    assert dis[3, 4] and dis[0, 2]
    assert (sim == sim.T).all() and (sim ^ dis).all()
    assert labels_similar("earth:Desert", "mars:dark_dune")
    assert not labels_similar("earth:BareLand", "mars:dark_dune")


def test_same_place_overrides_different_label() -> None:
    sim, _ = pair_masks(["mars:edge", "mars:other"], ["x", "x"])
    assert sim[0, 1]


def test_balanced_sampler_is_deterministic_and_sees_rare_labels() -> None:
    labels = ["mars:other"] * 500 + ["mars:slope_streak"] * 3
    a = BalancedSampler(labels, seed=5).batch(200)
    b = BalancedSampler(labels, seed=5).batch(200)
    assert (a == b).all()
    rare = np.isin(a, [500, 501, 502]).mean()
    assert rare > 0.2  # ~0.7/(1.5+0.7) of draws, far above the 3/503 of uniform sampling


def test_contrastive_loss_hand_computed() -> None:
    d = torch.tensor([0.5, 0.2, 1.5, 0.0])
    y = torch.tensor([1, 0, 0, 1])
    # y d^2/2 + (1-y) max(0, m-d)^2/2 with m = 1
    expected = [0.125, 0.32, 0.0, 0.0]
    assert float(contrastive_loss(d, y, 1.0)) == pytest.approx(np.mean(expected))
    w = torch.tensor([1.0, 3.0, 0.0, 0.0])
    assert float(contrastive_loss(d, y, 1.0, w)) == pytest.approx((0.125 + 3 * 0.32) / 4)
    assert float(contrastive_loss(d, y, 2.0)) == pytest.approx(
        np.mean([0.125, 1.8**2 / 2, 0.5**2 / 2, 0.0])
    )


def test_batch_loss_mines_hard_negatives() -> None:
    # Unit vectors at angles 0, 10, 60 and 180 degrees; 0 and 1 similar, the rest dissimilar.
    ang = np.deg2rad([0.0, 10.0, 60.0, 180.0])
    emb = torch.tensor(np.stack([np.cos(ang), np.sin(ang)], 1), dtype=torch.float32)
    d = pair_distances(emb)
    assert float(d[0, 3]) == pytest.approx(2.0, abs=1e-4)
    sim = torch.zeros(4, 4, dtype=torch.bool)
    sim[0, 1] = sim[1, 0] = True
    sim |= torch.eye(4, dtype=torch.bool)
    loss, stats = batch_contrastive_loss(emb, sim, ~sim, margin=1.0, hard_k=1)
    # hard negative of 0 and of 1 is item 2; of 2 it is 1 (50 deg); of 3 it is 2 (120 deg).
    dd = d.numpy()
    pos = dd[0, 1] ** 2 / 2
    negs = [dd[0, 2], dd[1, 2], dd[2, 1], dd[3, 2]]
    neg = np.mean([max(0.0, 1 - x) ** 2 / 2 for x in negs])
    assert float(loss) == pytest.approx(0.5 * pos + 0.5 * neg, rel=1e-4)
    assert stats["d_pos"] == pytest.approx(dd[0, 1], rel=1e-4)


def _unit(angles_deg: list[float]) -> torch.Tensor:
    a = torch.tensor(angles_deg, dtype=torch.float64) * np.pi / 180
    return torch.stack([torch.cos(a), torch.sin(a)], dim=1)


def test_band_loss_hand_computed() -> None:
    """Four unit vectors in the plane, cosines known exactly. Items 0, 1: views of one image
    (cos 60 deg = 0.5); items 0, 2: same label, other image, cos 90 deg = 0 (below the band
    0.2..0.5); item 3: a cross-planet analogue of item 0 at cos 30 deg = 0.866 (inside its band
    0.6..1: free); every other pair dissimilar and beyond the margin except (1, 2) and (2, 3)."""
    e = _unit([0.0, 60.0, 90.0, 30.0])
    similar = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 1, 0], [1, 0, 0, 1]], dtype=bool)
    same_image = torch.tensor([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=bool)
    same_label = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 0], [1, 1, 1, 0], [0, 0, 0, 1]], dtype=bool)
    loss, _ = batch_contrastive_loss(e, similar, ~similar, margin=1.25, hard_k=3,
                                     same_image=same_image, label_band=(0.2, 0.5),
                                     same_label=same_label, cross_band=(0.6, 1.0))
    d = lambda cos: float(np.sqrt(2 - 2 * cos))  # noqa: E731
    views = d(0.5) ** 2 / 2                              # pulled to 0
    band = (d(0.0) - d(0.2)) ** 2 / 2                    # pulled up to cos 0.2
    cross = 0.0                                          # inside 0.6..1
    # dissimilar pairs: (1,2) cos(30) and (1,3) cos(30), (2,3) cos(60): all inside margin 1.25
    negs = [(1.25 - d(np.cos(np.pi / 6))) ** 2 / 2] * 2 + [(1.25 - d(0.5)) ** 2 / 2]
    # each kind gets an equal share: mean within kind, then mean over the four kinds
    expected = (views + band + cross + float(np.mean(negs))) / 4
    assert float(loss) == pytest.approx(expected, rel=1e-6)


def test_band_pushes_same_label_pairs_apart_when_too_close() -> None:
    e = _unit([0.0, 10.0]).requires_grad_(True)  # cos 0.985, above the band's 0.5
    sim = torch.ones(2, 2, dtype=bool)
    loss, _ = batch_contrastive_loss(e, sim, ~sim, same_image=torch.eye(2, dtype=bool),
                                     label_band=(0.2, 0.5), same_label=sim)
    loss.backward()
    assert float(loss) > 0
    g = e.grad
    assert g is not None
    # descending the gradient moves item 1 away from item 0 (its angle grows)
    step = e.detach() - 0.1 * g
    angle = torch.atan2(step[:, 1], step[:, 0])
    assert float(angle[1] - angle[0]) > np.radians(10)
