"""QGIS plugin object: registers the "analog" Processing provider (no menus, no toolbar)."""

from __future__ import annotations

from typing import Any

from qgis.core import QgsApplication

from . import deps


class AnalogPlugin:
    """Plugin instance created by :func:`analog_plugin.classFactory`."""

    def __init__(self, iface: Any) -> None:
        self.iface = iface  # None under qgis_process; never used at import time
        self.provider: Any = None

    def initProcessing(self) -> None:  # noqa: N802 - QGIS API name
        """Register the provider once (QGIS may call this and initGui both)."""
        if self.provider is not None:
            return
        deps.add_extra_paths()  # harmless if onnxruntime is still missing: algorithms report it
        from .processing.provider import AnalogProvider

        registry = QgsApplication.processingRegistry()
        existing = registry.providerById(AnalogProvider.ID)
        if existing is not None:  # e.g. a plugin reload left an old instance behind
            registry.removeProvider(existing)
        provider = AnalogProvider()
        if registry.addProvider(provider):
            self.provider = provider
            # The shipped graphical models chain this provider's algorithms: they resolve their
            # child steps (and so their outputs) only once the provider is registered.
            provider.refreshAlgorithms()

    def initGui(self) -> None:  # noqa: N802 - QGIS API name
        self.initProcessing()

    def unload(self) -> None:
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
