"""The desktop glue with pytest-qgis's iface stand-in: menu and toolbar entries, the dock's run on
the demo data with the bundled model, the explained results list, zoom on click, the percentile
filter, classify / rank sites from the panel, and the installer offer when onnxruntime is missing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from osgeo import ogr
from qgis.core import QgsProject, QgsRasterLayer, QgsRectangle
from qgis.PyQt.QtCore import Qt

from tests.conftest import REPO_ROOT

DEMO = REPO_ROOT / "demo"


@pytest.fixture
def desktop_plugin(qgis_iface: Any, provider: Any) -> Any:
    import analog_plugin

    plugin = analog_plugin.classFactory(qgis_iface)
    plugin.provider = provider  # the session's provider is already registered
    plugin.initGui()
    yield plugin
    plugin.provider = None  # the session fixture unregisters it
    plugin.unload()


def test_menu_and_toolbar_entries(desktop_plugin: Any, qgis_iface: Any) -> None:
    names = [a.objectName() for a in desktop_plugin.actions]
    assert names == ["analogFindAnalogues", "analogDiagnostics"]
    assert desktop_plugin.actions[0].text() == "Find analogues..."
    dock = desktop_plugin.show_dock()
    assert dock.windowTitle() == "Mars Analogue Finder"
    assert desktop_plugin.show_dock() is dock  # one panel, re-shown


def test_panel_finds_and_explains_analogues(desktop_plugin: Any, qgis_iface: Any,
                                            tmp_path: Path) -> None:
    project = QgsProject.instance()
    scene = QgsRasterLayer(str(DEMO / "mars_scene.tif"), "mars scene")
    assert scene.isValid()
    project.addMapLayer(scene)
    dock = desktop_plugin.show_dock()
    dock.out_dir = tmp_path
    dock.raster.setLayer(scene)
    dock.source.setCurrentIndex(0)
    dock.folder.setFilePath(str(DEMO / "earth_exemplars"))
    dock.tile_size.setValue(227)
    dock.units.setCurrentText("metres")
    dock.run(blocking=True)
    assert dock.status.text().startswith("48 tiles scored"), dock.status.text()
    assert dock.table.rowCount() == 20
    # rows in score order, each with both pictures; row 0 is the best tile of the GeoPackage
    ds = ogr.Open(str(tmp_path / "scores.gpkg"))
    best = max(ds.GetLayerByName("scores"), key=lambda f: f.GetField("score"))
    assert dock.matches[0].tile_id == best.GetField("tile_id")
    scores = [float(dock.table.item(i, 2).text()) for i in range(20)]
    assert scores == sorted(scores, reverse=True)
    for i in range(20):
        for j in (0, 1):
            assert dock.table.item(i, j).data(Qt.ItemDataRole.DecorationRole) is not None
    assert dock.table.item(0, 3).text() == "dune_field"
    assert dock.matches[0].best_exemplar.startswith("dune_field/")
    # click a row: the map shows that tile
    dock.zoom_to(3)
    xmin, ymin, xmax, ymax = dock.matches[3].bounds
    assert qgis_iface.mapCanvas().extent().contains(QgsRectangle(xmin, ymin, xmax, ymax))
    # the percentile slider filters the map layer
    dock.slider.setValue(90)
    assert dock.scores_layer.subsetString() == '"percentile" >= 90'
    assert 0 < dock.scores_layer.featureCount() <= 6
    dock.slider.setValue(0)
    assert dock.scores_layer.featureCount() == 48
    # the same result feeds classification and site ranking
    dock.classify(blocking=True)
    assert (tmp_path / "landforms.gpkg").is_file()
    dock.major.setValue(0.6)
    dock.minor.setValue(0.4)
    dock.rank_sites(blocking=True)
    assert (tmp_path / "sites.gpkg").is_file()
    titles = {lyr.name() for lyr in project.mapLayers().values()}
    assert {"analogue scores", "similarity heat map", "landforms", "landing sites"} <= titles
    project.removeAllMapLayers()


def test_panel_explains_failures(desktop_plugin: Any, tmp_path: Path) -> None:
    dock = desktop_plugin.show_dock()
    dock.run(blocking=True)
    assert "Pick the Mars raster" in dock.status.text()
    scene = QgsRasterLayer(str(DEMO / "mars_scene.tif"), "mars scene")
    QgsProject.instance().addMapLayer(scene)
    dock.out_dir = tmp_path
    dock.raster.setLayer(scene)
    dock.source.setCurrentIndex(0)
    dock.folder.setFilePath(str(tmp_path / "no such folder"))
    dock.run(blocking=True)
    assert "Building the library failed" in dock.status.text()
    assert "IMAGE_FOLDER" in dock.status.text()
    assert dock.run_button.isEnabled()
    QgsProject.instance().removeAllMapLayers()


def test_missing_onnxruntime_offers_the_installer(qgis_iface: Any, provider: Any,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import analog_plugin
    from analog_plugin import deps

    monkeypatch.setattr(deps, "onnxruntime_available", lambda: False)
    plugin = analog_plugin.classFactory(qgis_iface)
    plugin.provider = provider
    plugin.initGui()
    try:
        item = qgis_iface.messageBar().currentItem()
        assert item is not None and "onnxruntime" in item.text()
        buttons = [w for w in item.findChildren(object) if hasattr(w, "clicked")
                   and "Install" in getattr(w, "text", lambda: "")()]
        assert buttons, "no install button in the message"
    finally:
        qgis_iface.messageBar().clearWidgets()
        plugin.provider = None
        plugin.unload()


def test_install_dialog_runs_the_command_and_streams_the_log(qgis_iface: Any, tmp_path: Path,
                                                              qtbot: Any = None) -> None:
    """A fake 'python' stands in for QGIS's interpreter: the dialog runs the installer command
    in a QProcess, shows its output and the exact manual command."""
    from qgis.PyQt.QtCore import QEventLoop, QTimer

    from analog_plugin.gui.dialogs import InstallDialog

    fake = tmp_path / "python3"
    fake.write_text('#!/bin/sh\necho "fake pip: $*"\nexit 0\n')
    fake.chmod(0o755)
    dialog = InstallDialog(str(tmp_path / "profile"), python=str(fake))
    assert dialog.command.text().startswith(str(fake))
    assert "--target" in dialog.command.text() and "onnxruntime" in dialog.command.text()
    dialog.start()
    loop = QEventLoop()
    dialog.process.finished.connect(loop.quit)
    QTimer.singleShot(10000, loop.quit)
    loop.exec()
    text = dialog.log.toPlainText()
    assert "fake pip: -m pip install" in text
    assert "--target" in text
    dialog.deleteLater()


def _wait(predicate: Any, seconds: float = 60.0) -> bool:
    import time

    from qgis.PyQt.QtWidgets import QApplication

    end = time.time() + seconds
    while time.time() < end:
        QApplication.processEvents()
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_background_run_keeps_the_ui_alive_and_cancels(desktop_plugin: Any,
                                                       tmp_path: Path) -> None:
    """The real path: QgsProcessingAlgRunnerTask on QGIS's task manager, progress reported."""
    scene = QgsRasterLayer(str(DEMO / "mars_scene.tif"), "mars scene")
    QgsProject.instance().addMapLayer(scene)
    dock = desktop_plugin.show_dock()
    dock.out_dir = tmp_path
    dock.raster.setLayer(scene)
    dock.source.setCurrentIndex(0)
    dock.folder.setFilePath(str(DEMO / "earth_exemplars"))
    dock.tile_size.setValue(227)
    dock.units.setCurrentText("metres")
    dock.run()
    assert not dock.run_button.isEnabled() and dock.cancel_button.isEnabled()
    assert _wait(lambda: dock.table.rowCount() == 20), dock.status.text()
    assert dock.progress.value() == 100 and dock.run_button.isEnabled()
    # cancel right after the start: nothing is loaded, the old outputs stay
    (tmp_path / "scores.gpkg").write_bytes(b"old")
    dock.table.setRowCount(0)
    dock.run()
    dock.cancel()
    assert "Cancelled" in dock.status.text() and dock.run_button.isEnabled()
    from qgis.core import QgsApplication

    assert _wait(lambda: QgsApplication.taskManager().countActiveTasks() == 0)
    for _ in range(20):
        _wait(lambda: False, 0.05)  # let any late signal arrive
    assert dock.table.rowCount() == 0 and "Cancelled" in dock.status.text()
    assert (tmp_path / "scores.gpkg").read_bytes() == b"old"
    QgsProject.instance().removeAllMapLayers()


def test_runner_reports_a_failed_run_and_a_cancelled_run_calls_nothing(provider: Any,
                                                                       tmp_path: Path) -> None:
    """AlgorithmRunner alone: a blocking run that fails hands done(False, {}) and keeps the
    algorithm's message; a background run cancelled at once never calls done."""
    from qgis.core import QgsApplication

    from analog_plugin.gui.alg_runner import AlgorithmRunner

    progress: list[float] = []
    runner = AlgorithmRunner(progress.append)
    calls: list[tuple[bool, dict[str, Any]]] = []
    missing = str(tmp_path / "no_such_library.gpkg")
    params = {"INPUT": str(DEMO / "mars_scene.tif"), "LIBRARY": missing,
              "OUTPUT": str(tmp_path / "scores.gpkg")}
    runner.execute("analog:scoretiles", params, lambda ok, res: calls.append((ok, res)), True)
    assert calls == [(False, {})]
    assert "no_such_library" in runner.last_error, runner.last_error
    assert not runner.running

    calls.clear()
    runner.start()
    params["LIBRARY"] = str(DEMO / "earth_exemplars")  # never reached: cancelled first
    runner.execute("analog:scoretiles", params, lambda ok, res: calls.append((ok, res)), False)
    assert runner.running
    runner.cancel()
    assert not runner.running and runner.cancelled
    assert _wait(lambda: QgsApplication.taskManager().countActiveTasks() == 0)
    for _ in range(10):
        _wait(lambda: False, 0.05)  # let any late signal arrive
    assert calls == []
    assert not (tmp_path / "scores.gpkg").exists()
