"""Pictures for the model card: a retrieval grid and a 2-D PCA map of the embeddings.

Drawn with Pillow (always there) and matplotlib when importable, else Pillow for the map too.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

PALETTE = {
    "mars:other": (150, 150, 150), "mars:edge": (60, 60, 60), "mars:dark_dune": (200, 40, 40),
    "mars:bright_dune": (255, 150, 40), "mars:crater": (40, 90, 220),
    "mars:slope_streak": (150, 60, 200),
    "earth:Desert": (240, 210, 30), "earth:BareLand": (120, 200, 80),
    "earth:Mountain": (40, 160, 160),
}


def _thumb(img01: np.ndarray, size: int, border: tuple[int, int, int] | None) -> Image.Image:
    im = Image.fromarray((np.clip(img01, 0, 1) * 255).astype(np.uint8)).resize((size, size))
    im = im.convert("RGB")
    if border is not None:
        ImageDraw.Draw(im).rectangle([0, 0, size - 1, size - 1], outline=border, width=4)
    return im


def retrieval_grid(
    rows: Sequence[tuple[np.ndarray, str, list[tuple[np.ndarray, str, bool]]]],
    out: Path,
    thumb: int = 88,
) -> None:
    """One row per query: the query (framed blue), then its top matches framed green when
    relevant and red when not, with labels written under each thumbnail."""
    n_cols = 1 + max(len(r[2]) for r in rows)
    cell_h = thumb + 14
    canvas = Image.new("RGB", (n_cols * (thumb + 6) + 6, len(rows) * (cell_h + 6) + 6), "white")
    draw = ImageDraw.Draw(canvas)
    for ri, (qimg, qlab, matches) in enumerate(rows):
        y = 6 + ri * (cell_h + 6)
        canvas.paste(_thumb(qimg, thumb, (40, 80, 255)), (6, y))
        draw.text((6, y + thumb + 1), qlab.split(":")[-1][:14], fill=(0, 0, 0))
        for ci, (mimg, mlab, ok) in enumerate(matches):
            x = 6 + (ci + 1) * (thumb + 6)
            canvas.paste(_thumb(mimg, thumb, (30, 170, 60) if ok else (220, 30, 30)), (x, y))
            draw.text((x, y + thumb + 1), mlab.split(":")[-1][:14], fill=(0, 0, 0))
    out.parent.mkdir(parents=True, exist_ok=True)
    # An adaptive palette keeps the PNG small (it is committed with the model card).
    canvas.convert("P", palette=Image.Palette.ADAPTIVE, colors=96).save(out, optimize=True)


def pca2(x: np.ndarray) -> np.ndarray:
    """First two principal components."""
    xc = x - x.mean(0)
    _, _, vt = np.linalg.svd(xc, full_matrices=False)
    return np.asarray(xc @ vt[:2].T)


def embedding_map(emb: np.ndarray, labels: Sequence[str], out: Path, title: str) -> None:
    """Scatter of the 2-D PCA of ``emb`` coloured by label."""
    xy = pca2(emb)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        _map_pillow(xy, labels, out)
        return
    fig, ax = plt.subplots(figsize=(6.4, 5.2), dpi=90)
    for lab in sorted(set(labels)):
        m = np.array([lab_ == lab for lab_ in labels])
        col = np.array(PALETTE.get(lab, (200, 200, 200))) / 255.0
        ax.scatter(xy[m, 0], xy[m, 1], s=7, color=col, label=f"{lab} ({m.sum()})", alpha=0.7,
                   marker="^" if lab.startswith("earth:") else "o")
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    ax.legend(fontsize=7, markerscale=2, loc="best")
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def _map_pillow(xy: np.ndarray, labels: Sequence[str], out: Path, size: int = 520) -> None:
    canvas = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(canvas)
    lo, hi = xy.min(0), xy.max(0)
    p = (xy - lo) / np.where(hi > lo, hi - lo, 1) * (size - 40) + 20
    for (x, y), lab in zip(p, labels, strict=True):
        draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=PALETTE.get(lab, (200, 200, 200)))
    canvas.save(out)


def confusion_figure(matrix: np.ndarray, classes: Sequence[str], out: Path, title: str) -> None:
    """Row-normalised confusion matrix as a labelled heat map (Pillow: no extra dependency)."""
    from PIL import ImageFont

    cell, left, top = 64, 120, 60
    n = len(classes)
    canvas = Image.new("RGB", (left + n * cell + 20, top + n * cell + 110), "white")
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    draw.text((10, 10), title, fill="black", font=font)
    draw.text((left, top + n * cell + 80), "predicted class (columns), true class (rows)",
              fill="black", font=font)
    for i in range(n):
        draw.text((8, top + i * cell + cell // 2 - 6), classes[i], fill="black", font=font)
        # column labels: one word per line ("slope_streak" -> "slope" / "streak"), so no
        # class name is cut at the cell width
        for k, word in enumerate(classes[i].split("_")):
            draw.text((left + i * cell + 4, top + n * cell + 8 + 12 * k), word, fill="black",
                      font=font)
        for j in range(n):
            v = float(matrix[i, j])
            shade = int(255 * (1 - v))
            x0, y0 = left + j * cell, top + i * cell
            draw.rectangle([x0, y0, x0 + cell - 2, y0 + cell - 2], fill=(shade, shade, 255))
            draw.text((x0 + 18, y0 + cell // 2 - 6), f"{v:.2f}",
                      fill="white" if v > 0.5 else "black", font=font)
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out)
