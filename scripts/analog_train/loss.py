"""Contrastive loss of Hadsell, Chopra & LeCun (2006), margin form, on L2-normalised embeddings.

For a pair with Euclidean distance ``d`` and label ``y`` (1 = similar, 0 = dissimilar)::

    l(d, y) = y * d**2 / 2 + (1 - y) * max(0, m - d)**2 / 2

The loss we minimise is the *weighted mean* of ``l`` over the pairs we pick:
``L = sum_p w_p * l_p / sum_p w_p``. With unit weights this is the plain mean of Hadsell's pair loss
(that is what :func:`contrastive_loss` computes when ``weight`` is None). In training
(:func:`batch_contrastive_loss`) positives and mined hard negatives each get total weight 1/2, so a
batch with thousands of easy negatives does not drown its few positives.

Embeddings are on the unit sphere, so ``d`` lies in [0, 2] and ``d**2 = 2 - 2 cos``. The margin
(default 1.0, i.e. cosine 0.5) is the distance beyond which a dissimilar pair costs nothing.
"""

from __future__ import annotations

import torch


def pair_distances(emb: torch.Tensor) -> torch.Tensor:
    """All pairwise Euclidean distances of L2-normalised rows, ``(N, N)``.

    ``sqrt(2 - 2 cos)`` with a small floor: the gradient of sqrt at exactly 0 is infinite.
    """
    cos = emb @ emb.T
    return torch.sqrt((2.0 - 2.0 * cos).clamp(min=1e-9))


def contrastive_loss(
    d: torch.Tensor, y: torch.Tensor, margin: float = 1.0, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """(Weighted) mean of ``y d^2/2 + (1-y) max(0, m-d)^2/2`` over the given pairs."""
    y = y.to(d.dtype)
    per_pair = y * d.pow(2) / 2 + (1 - y) * torch.clamp(margin - d, min=0).pow(2) / 2
    if weight is None:
        return per_pair.mean()
    w = weight.to(d.dtype)
    return (per_pair * w).sum() / w.sum().clamp(min=1e-12)


def cos_to_distance(cos: float) -> float:
    """Distance of two unit vectors with this cosine: ``sqrt(2 - 2 cos)``."""
    return float((2.0 - 2.0 * cos) ** 0.5)


def _band_loss(d: torch.Tensor, band: tuple[float, float]) -> torch.Tensor:
    """Zero inside the cosine band ``(cos_lo, cos_hi)``, quadratic in the distance outside."""
    d_far, d_near = cos_to_distance(band[0]), cos_to_distance(band[1])
    return (torch.clamp(d - d_far, min=0).pow(2) + torch.clamp(d_near - d, min=0).pow(2)) / 2


def batch_contrastive_loss(
    emb: torch.Tensor,
    similar: torch.Tensor,
    dissimilar: torch.Tensor,
    margin: float = 1.0,
    hard_k: int = 8,
    same_image: torch.Tensor | None = None,
    label_band: tuple[float, float] | None = None,
    same_label: torch.Tensor | None = None,
    cross_band: tuple[float, float] | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Contrastive loss over all in-batch pairs, with hard-negative mining.

    ``similar`` / ``dissimilar`` are boolean ``(N, N)`` masks (a pair may be neither: ignored).
    Every similar pair is used; for dissimilar pairs each anchor keeps only its ``hard_k`` closest
    ones (the hard negatives: easy ones already beyond the margin would add zeros anyway and dilute
    the mean). Positives and negatives get half of the total weight each.

    With ``label_band = (cos_lo, cos_hi)`` (and ``same_image``, the pairs that are views of one
    image), similar pairs of *different* images (same landform, or a cross-planet analogue) are
    not pulled together but kept inside that cosine band: pulled when below ``cos_lo``, pushed
    when above ``cos_hi``. Why: Hadsell's loss pulls every same-landform pair to distance 0, so a
    landform collapses to one point and two unrelated tiles of the big "other" class look like
    copies of each other (cosine ~0.9), which is what the invariance gap measures and what makes
    a score map flat inside a class. Views of one image, landform pairs, analogue pairs and
    negatives then get an equal share of the weight each. With ``same_label``, the
    cross-planet analogue pairs (similar, but different labels) are kept apart from that rule:
    pulled together as positives (``cross_band`` None) or kept in ``cross_band`` -- the analogy
    is the product's main use, and in the band it lost a third of the Earth->Mars dune lift.
    """
    d = pair_distances(emb)
    n = d.shape[0]
    eye = torch.eye(n, dtype=torch.bool)
    pos = similar & ~eye
    neg = dissimilar & ~eye
    k = min(hard_k, n - 1)
    masked = torch.where(neg, d.detach(), torch.full_like(d, float("inf")))
    idx = torch.topk(masked, k, dim=1, largest=False).indices
    hard = torch.zeros_like(neg)
    hard.scatter_(1, idx, True)
    hard &= neg
    n_neg = hard.sum().clamp(min=1)
    if label_band is None or same_image is None:
        n_pos = pos.sum().clamp(min=1)
        weight = pos.to(d.dtype) / n_pos + hard.to(d.dtype) / n_neg
        loss = contrastive_loss(d, pos, margin, weight)
    else:
        views = pos & same_image
        cross = (pos & ~same_image & ~same_label if same_label is not None
                 else torch.zeros_like(pos))
        band = pos & ~same_image & ~cross
        per_pair = torch.where(views, d.pow(2) / 2, torch.clamp(margin - d, min=0).pow(2) / 2)
        per_pair = torch.where(band, _band_loss(d, label_band), per_pair)
        per_pair = torch.where(cross, d.pow(2) / 2 if cross_band is None
                               else _band_loss(d, cross_band), per_pair)
        # each kind of pair gets an equal share of the weight, whatever its count in the batch
        weight = sum((m.to(d.dtype) / m.sum().clamp(min=1) for m in (views, band, cross, hard)),
                     torch.zeros_like(d))
        loss = (per_pair * weight).sum() / weight.sum().clamp(min=1e-12)
    with torch.no_grad():
        stats = {
            "d_pos": float(d[pos].mean()) if bool(pos.any()) else float("nan"),
            "d_hardneg": float(d[hard].mean()) if bool(hard.any()) else float("nan"),
            "active_neg": float((d[hard] < margin).float().mean()) if bool(hard.any()) else 0.0,
        }
    return loss, stats
