"""Mars Analogue Finder QGIS plugin.

QGIS (desktop and ``qgis_process``) calls :func:`classFactory`; ``qgis_process`` passes ``None`` as
``iface`` and then calls ``initProcessing()``. Nothing here touches ``iface`` or imports
onnxruntime at import time.
"""

from __future__ import annotations

from typing import Any


def classFactory(iface: Any) -> Any:  # noqa: N802 - name fixed by QGIS
    """Entry point QGIS calls to create the plugin instance."""
    from .plugin import AnalogPlugin

    return AnalogPlugin(iface)
