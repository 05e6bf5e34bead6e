"""QGIS plugin object: the "analog" Processing provider always; in the desktop also a Plugins menu
entry and toolbar button opening the "Mars Analogue Finder" dock, a Help menu entry for the
diagnostics, and - when onnxruntime is missing - a message bar offering the installer.

``qgis_process`` calls ``classFactory(None)`` then ``initProcessing()``: nothing here touches
``iface`` outside ``initGui``."""

from __future__ import annotations

from typing import Any

from qgis.core import QgsApplication

from . import deps


class AnalogPlugin:
    """Plugin instance created by :func:`analog_plugin.classFactory`."""

    MENU = "&Mars Analogue Finder"

    def __init__(self, iface: Any) -> None:
        self.iface = iface  # None under qgis_process; never used at import time
        self.provider: Any = None
        self.actions: list[Any] = []
        self.dock: Any = None
        self.help_action: Any = None

    def initProcessing(self) -> None:  # noqa: N802 - QGIS API name
        """Register the provider once (QGIS may call this and initGui both)."""
        if self.provider is not None:
            return
        deps.set_profile_dir(QgsApplication.qgisSettingsDirPath())
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
        if self.iface is None:
            return
        from qgis.PyQt.QtGui import QIcon
        from qgis.PyQt.QtWidgets import QAction

        from .processing.common import resource_path

        icon = QIcon(str(resource_path("icon.svg")))
        action = QAction(icon, "Find analogues...", self.iface.mainWindow())
        action.setObjectName("analogFindAnalogues")
        action.setToolTip("Mars Analogue Finder: find Mars terrain like your Earth exemplars")
        action.triggered.connect(self.show_dock)
        self.iface.addPluginToMenu(self.MENU, action)
        self.iface.addToolBarIcon(action)
        diag = QAction("Mars Analogue Finder diagnostics...", self.iface.mainWindow())
        diag.setObjectName("analogDiagnostics")
        diag.triggered.connect(self.show_diagnostics)
        self.iface.addPluginToMenu(self.MENU, diag)
        help_menu = getattr(self.iface, "helpMenu", None)
        if help_menu is not None and help_menu() is not None:
            help_menu().addAction(diag)
            self.help_action = diag
        self.actions = [action, diag]
        if not deps.onnxruntime_available():
            self.offer_installer()

    def show_dock(self) -> Any:
        from qgis.PyQt.QtCore import Qt

        from .gui.panel import AnalogueDock

        if self.dock is None:
            self.dock = AnalogueDock(self.iface, self.iface.mainWindow())
            self.iface.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.dock)
        self.dock.show()
        self.dock.raise_()
        return self.dock

    def show_diagnostics(self) -> None:
        from .gui.dialogs import DiagnosticsDialog

        DiagnosticsDialog(self.iface.mainWindow()).exec()

    def offer_installer(self) -> None:
        """A message bar: onnxruntime is missing, with a button opening the installer."""
        from qgis.core import Qgis
        from qgis.PyQt.QtWidgets import QPushButton

        bar = self.iface.messageBar()
        item = bar.createMessage("Mars Analogue Finder", "needs the Python package onnxruntime.")
        button = QPushButton("Install onnxruntime...")
        button.clicked.connect(self.show_installer)
        item.layout().addWidget(button)
        bar.pushWidget(item, Qgis.MessageLevel.Warning)

    def show_installer(self) -> None:
        from .gui.dialogs import InstallDialog

        InstallDialog(QgsApplication.qgisSettingsDirPath(), self.iface.mainWindow()).exec()

    def unload(self) -> None:
        if self.iface is not None:
            for action in self.actions:
                remove = getattr(self.iface, "removePluginMenu", None)
                if remove is not None:
                    remove(self.MENU, action)
                self.iface.removeToolBarIcon(action)
            if self.help_action is not None and getattr(self.iface, "helpMenu", None):
                self.iface.helpMenu().removeAction(self.help_action)
            if self.dock is not None:
                self.iface.removeDockWidget(self.dock)
                self.dock.deleteLater()
                self.dock = None
            self.actions = []
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
