"""Fit a categorized QML style to the classes a run actually produced (no QGIS needed).

The shipped ``landforms.qml`` has colours for the usual landform names (HiRISE landmark classes,
Qaidam analogue landforms). A library may use any names, and a legend must show one colour per
landform of THIS run: the categories are rebuilt for ``classes`` (template colour when the name is
known, else the next colour of a qualitative palette), each cloned from the template's catch-all
symbol so outline, opacity and units stay as designed.
"""

from __future__ import annotations

import copy

# The XML parsed here is the plugin's own shipped QML templates (bandit B405/B314 reviewed).
import xml.etree.ElementTree as ET  # nosec B405
from collections.abc import Sequence

# Qualitative, colour-blind-aware (Okabe-Ito + Tol bright), for names the template lacks.
PALETTE = ("#e69f00", "#56b4e9", "#009e73", "#f0e442", "#0072b2", "#d55e00", "#cc79a7",
           "#4477aa", "#66ccee", "#228833", "#ccbb44", "#ee6677", "#aa3377", "#bbbbbb")


def _rgba(hex_colour: str, alpha: int = 255) -> str:
    h = hex_colour.lstrip("#")
    r, g, b = (int(h[i:i + 2], 16) for i in (0, 2, 4))
    return f"{r},{g},{b},{alpha}"


def _set_colour(symbol: ET.Element, rgba: str) -> None:
    for opt in symbol.iter("Option"):
        if opt.get("name") == "color":
            opt.set("value", rgba)
    for prop in symbol.iter("prop"):  # QGIS < 3.26 layout
        if prop.get("k") == "color":
            prop.set("v", rgba)


def fit_categories(template_qml: str, classes: Sequence[str]) -> str:
    """The template with exactly one category per name in ``classes`` (in that order)."""
    root = ET.fromstring(template_qml)  # nosec B314
    renderer = root.find("renderer-v2")
    if renderer is None or renderer.get("type") != "categorizedSymbol":
        raise ValueError("the template is not a categorized style")
    cats, syms = renderer.find("categories"), renderer.find("symbols")
    if cats is None or syms is None:
        raise ValueError("the template has no categories or symbols")
    by_name = {s.get("name"): s for s in syms.findall("symbol")}
    known: dict[str, ET.Element] = {}
    fallback = None
    for cat in cats.findall("category"):
        sym = by_name.get(cat.get("symbol"))
        if sym is None:
            continue
        if cat.get("type") == "NULL" or cat.get("value") in ("", "NULL"):
            fallback = sym
        else:
            known[str(cat.get("value"))] = sym
    base = fallback if fallback is not None else next(iter(by_name.values()))
    for el in list(cats):
        cats.remove(el)
    for el in list(syms):
        syms.remove(el)
    spare = iter(PALETTE * (1 + len(classes) // len(PALETTE)))
    for i, name in enumerate(classes):
        if name in known:
            sym = copy.deepcopy(known[name])
        else:
            sym = copy.deepcopy(base)
            _set_colour(sym, _rgba(next(spare)))
        sym.set("name", str(i))
        syms.append(sym)
        ET.SubElement(cats, "category", {"value": name, "symbol": str(i),
                                         "label": name.replace("_", " "), "type": "string",
                                         "render": "true"})
    return ET.tostring(root, encoding="unicode")
