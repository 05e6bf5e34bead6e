"""Runs INSIDE a real QGIS desktop (``qgis --code``) under Xvfb, driven by test_desktop.py: loads
the plugin from QGIS_PLUGINPATH, checks its menu entry and toolbar button, opens the panel, runs it
on the demo data, saves screenshots and a status JSON to $ANALOG_SHOT_DIR, then exits QGIS."""
# ruff: noqa
import json, os, traceback
from pathlib import Path
from qgis.utils import iface, plugins, loadPlugin, startPlugin
from qgis.core import QgsProject, QgsRasterLayer
from qgis.PyQt.QtCore import QTimer
from qgis.PyQt.QtWidgets import QApplication

OUT = Path(os.environ["ANALOG_SHOT_DIR"])
REPO = Path(os.environ["ANALOG_REPO"])
status = {}

def step():
    try:
        if "analog_plugin" not in plugins:
            loadPlugin("analog_plugin"); startPlugin("analog_plugin")
        p = plugins["analog_plugin"]
        status["menu_action"] = any(a.objectName() == "analogFindAnalogues" for a in p.actions)
        from qgis.PyQt.QtWidgets import QToolBar
        status["toolbar_button"] = any(
            a.objectName() == "analogFindAnalogues"
            for tb in iface.mainWindow().findChildren(QToolBar) for a in tb.actions())
        status["plugins_menu"] = any(
            "Mars Analogue Finder" in a.text().replace("&", "")
            for a in iface.pluginMenu().actions())
        scene = QgsRasterLayer(str(REPO / "demo" / "mars_scene.tif"), "mars scene")
        QgsProject.instance().setCrs(scene.crs())
        QgsProject.instance().addMapLayer(scene)
        iface.mapCanvas().setExtent(scene.extent())
        # Switching a new (Earth) project to a Mars CRS makes QGIS itself post "No transform
        # available" messages once the canvas catches up: let it, then clear them, so that
        # what the message bar holds after the run comes from the plugin's run alone.
        for _ in range(20):
            QApplication.processEvents()
        iface.mapCanvas().waitWhileRendering()
        status["setup_messages"] = [w.text() for w in iface.messageBar().items()]
        iface.messageBar().clearWidgets()
        dock = p.show_dock()
        dock.out_dir = OUT
        dock.raster.setLayer(scene)
        dock.folder.setFilePath(str(REPO / "demo" / "earth_exemplars"))
        dock.tile_size.setValue(227); dock.units.setCurrentText("metres")
        iface.mainWindow().resize(1600, 1000)
        QApplication.processEvents()
        iface.mainWindow().grab().save(str(OUT / "panel_open.png"))
        dock.run(blocking=True)
        dock.zoom_to(0)
        for _ in range(20):
            QApplication.processEvents()
        iface.mapCanvas().waitWhileRendering()
        iface.mainWindow().grab().save(str(OUT / "panel_results.png"))
        status["rows"] = dock.table.rowCount()
        status["status"] = dock.status.text()
        status["crs"] = {l.name(): l.crs().authid() or l.crs().description() for l in QgsProject.instance().mapLayers().values()}
        status["project_crs"] = QgsProject.instance().crs().authid() or QgsProject.instance().crs().description()
        status["messages"] = [w.text() for w in iface.messageBar().items()]
    except Exception:
        status["error"] = traceback.format_exc()
    (OUT / "desktop_status.json").write_text(json.dumps(status))
    QTimer.singleShot(500, lambda: os._exit(0))

QTimer.singleShot(3000, step)
