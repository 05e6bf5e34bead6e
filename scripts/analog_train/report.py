"""Markdown tables of the evaluation results (learned model beside every baseline)."""

from __future__ import annotations


def _fmt(v: float) -> str:
    return f"{v:.3f}"


def markdown_table(results: dict[str, dict]) -> str:
    """Main table (one column per method) plus per-class mAP@R / P@10 and invariance detail."""
    names = list(results)
    lines = ["| metric (validation split) | " + " | ".join(names) + " |",
             "|---|" + "---|" * len(names)]

    def row(label: str, get) -> None:  # type: ignore[no-untyped-def]
        lines.append(f"| {label} | " + " | ".join(_fmt(get(results[n])) for n in names) + " |")

    row("Mars→Mars kNN (k=5) accuracy", lambda r: r["mars_to_mars"]["knn_accuracy"])
    row("Mars→Mars kNN macro-F1", lambda r: r["mars_to_mars"]["macro_f1"])
    row("Mars→Mars mAP@R (macro over classes)", lambda r: r["mars_to_mars"]["map_at_r_macro"])
    row("Mars→Mars precision@10 (macro)", lambda r: r["mars_to_mars"]["p_at_10_macro"])
    row("Earth→Mars dune precision@50", lambda r: r["earth_to_mars"]["precision_at_k"])
    row("Earth→Mars dune lift (x base rate)", lambda r: r["earth_to_mars"]["lift"])
    row("Earth→Mars lift, all 2,970 tiles as gallery",
        lambda r: r["earth_to_mars_all_tiles"]["lift"])
    row("Invariance: cos(tile, transformed tile)", lambda r: r["invariance"]["mean_same_cos"])
    row("Invariance: cos(different tiles)", lambda r: r["invariance"]["different_tiles_cos"])
    row("Invariance gap (higher is better)", lambda r: r["invariance"]["gap"])
    row("Invariance: cos(different tiles, different classes)",
        lambda r: r["invariance"]["different_class_cos"])
    row("Invariance gap vs different-class tiles", lambda r: r["invariance"]["gap_different_class"])
    first = results[names[0]]
    base = first["earth_to_mars"]["base_rate"]
    lines.append("")
    lines.append(f"Dune base rate in the validation gallery: {base:.3f} "
                 f"({first['earth_to_mars']['n_queries']} AID Desert validation queries).")
    lines.append("")
    classes = list(first["mars_to_mars"]["map_at_r_per_class"])
    lines.append("| class: mAP@R / P@10 / F1 | " + " | ".join(names) + " |")
    lines.append("|---|" + "---|" * len(names))
    for c in classes:
        cells = []
        for n in names:
            m = results[n]["mars_to_mars"]
            cells.append(f"{m['map_at_r_per_class'][c]:.2f} / {m['p_at_10_per_class'][c]:.2f} / "
                         f"{m['f1_per_class'].get(c, 0.0):.2f}")
        lines.append(f"| {c.split(':')[-1]} | " + " | ".join(cells) + " |")
    lines.append("")
    transforms = [k for k, v in first["invariance"].items() if isinstance(v, dict)]
    lines.append("| invariance: mean cos / share beating a different tile | "
                 + " | ".join(names) + " |")
    lines.append("|---|" + "---|" * len(names))
    for t in transforms:
        cells = [f"{results[n]['invariance'][t]['same_cos']:.3f} / "
                 f"{results[n]['invariance'][t]['beats_different']:.2f}" for n in names]
        lines.append(f"| {t} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
