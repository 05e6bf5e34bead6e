"""The "Mars Analogue Finder" dock: pick a raster and exemplars, find analogues in the background,
see WHY each top tile matched (its thumbnail beside the exemplar it matched), filter by percentile,
then classify landforms or rank landing sites on the same result.

Thin glue: every step is a Processing algorithm of this plugin, run by ``alg_runner`` (as a
QgsTask, so the map stays usable and the run can be cancelled); the explanation data comes from
``core/explain.py``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from qgis.core import (
    Qgis,
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsMapLayerProxyModel,
    QgsProject,
    QgsRasterLayer,
    QgsRectangle,
    QgsVectorLayer,
)
from qgis.gui import QgsFieldComboBox, QgsFileWidget, QgsMapLayerComboBox
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtGui import QImage, QPixmap
from qgis.PyQt.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDockWidget,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSlider,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from analog_plugin.core import params as P

from .alg_runner import AlgorithmRunner

SOURCES = ("Image folder", "Polygons on a layer", "Existing library")
THUMB_PX = 72


def _filter(name: str) -> Any:
    """QgsMapLayerProxyModel filter across QGIS versions (Qgis.LayerFilter since 3.34)."""
    try:
        return getattr(Qgis.LayerFilter, name)
    except AttributeError:  # pragma: no cover - older QGIS
        return getattr(QgsMapLayerProxyModel, name)


def to_pixmap(gray: Any, size: int = THUMB_PX) -> QPixmap:
    """(H, W) uint8 numpy array -> a QPixmap of at most ``size`` px."""
    import numpy as np

    a = np.ascontiguousarray(gray, dtype=np.uint8)
    h, w = a.shape
    img = QImage(a.data, w, h, w, QImage.Format.Format_Grayscale8).copy()
    return QPixmap.fromImage(img).scaled(size, size, Qt.AspectRatioMode.KeepAspectRatio,
                                         Qt.TransformationMode.SmoothTransformation)


class AnalogueDock(QDockWidget):
    """The panel. ``run(blocking=True)`` executes synchronously (tests, scripts)."""

    def __init__(self, iface: Any, parent: QWidget | None = None) -> None:
        super().__init__("Mars Analogue Finder", parent)
        self.setObjectName("MarsAnalogueFinderDock")
        self.iface = iface
        self.out_dir = Path(tempfile.mkdtemp(prefix="analog_"))
        self.scores_layer: QgsVectorLayer | None = None
        self.library_path: str | None = None
        self.raster_path: str | None = None
        self.matches: list[Any] = []
        self._build()
        self.runner = AlgorithmRunner(lambda p: self.progress.setValue(int(p)))

    # ---- widgets --------------------------------------------------------------------------
    def _build(self) -> None:
        body = QWidget()
        lay = QVBoxLayout(body)
        form = QFormLayout()
        self.raster = QgsMapLayerComboBox()
        self.raster.setFilters(_filter("RasterLayer"))
        form.addRow("Mars raster", self.raster)
        self.source = QComboBox()
        self.source.addItems(SOURCES)
        form.addRow("Exemplars from", self.source)
        self.folder = QgsFileWidget()
        self.folder.setStorageMode(QgsFileWidget.StorageMode.GetDirectory)
        form.addRow("Image folder", self.folder)
        self.polygons = QgsMapLayerComboBox()
        self.polygons.setFilters(_filter("PolygonLayer"))
        self.class_field = QgsFieldComboBox()
        self.polygons.layerChanged.connect(self.class_field.setLayer)
        self.exemplar_raster = QgsMapLayerComboBox()
        self.exemplar_raster.setFilters(_filter("RasterLayer"))
        form.addRow("Exemplar polygons", self.polygons)
        form.addRow("Class field", self.class_field)
        form.addRow("Raster under polygons", self.exemplar_raster)
        self.library = QgsFileWidget()
        self.library.setFilter("GeoPackage (*.gpkg)")
        form.addRow("Library", self.library)
        self.negatives = QLineEdit()
        self.negatives.setPlaceholderText("optional, e.g. river,farmland")
        self.negatives.setToolTip(P.NEGATIVE_CLASSES.full_help())
        form.addRow("Negative classes", self.negatives)
        self.tile_size = QDoubleSpinBox()
        self.tile_size.setRange(0, 1e6)
        self.tile_size.setSpecialValueText(self._default_tile_text())
        self.units = QComboBox()
        self.units.addItems(P.UNITS)
        row = QHBoxLayout()
        row.addWidget(self.tile_size)
        row.addWidget(self.units)
        form.addRow("Tile size", row)
        self.device = QComboBox()
        self.device.addItems(P.DEVICES)
        form.addRow("Device", self.device)
        self.canvas_extent = QCheckBox("Only the current map extent")
        form.addRow("", self.canvas_extent)
        lay.addLayout(form)
        self._form = form
        self.source.currentIndexChanged.connect(self._source_changed)
        buttons = QHBoxLayout()
        self.run_button = QPushButton("Find analogues")
        self.run_button.clicked.connect(lambda: self.run())
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        lay.addLayout(buttons)
        self.progress = QProgressBar()
        self.status = QLabel("")
        self.status.setWordWrap(True)
        lay.addWidget(self.progress)
        lay.addWidget(self.status)
        self.table = QTableWidget(0, 4)
        self.table.setHorizontalHeaderLabels(["tile", "matched exemplar", "score", "class"])
        self.table.cellClicked.connect(lambda r, _c: self.zoom_to(r))
        lay.addWidget(self.table, 1)
        filt = QHBoxLayout()
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, 100)
        self.slider.valueChanged.connect(self.apply_percentile)
        self.slider_label = QLabel("show all tiles")
        filt.addWidget(QLabel("Percentile >="))
        filt.addWidget(self.slider, 1)
        filt.addWidget(self.slider_label)
        lay.addLayout(filt)
        more = QHBoxLayout()
        self.classify_button = QPushButton("Classify landforms")
        self.classify_button.clicked.connect(lambda: self.classify())
        self.major = QDoubleSpinBox()
        self.major.setRange(0.01, 1000)
        self.major.setValue(20)
        self.major.setSuffix(" km")
        self.minor = QDoubleSpinBox()
        self.minor.setRange(0.01, 1000)
        self.minor.setValue(7)
        self.minor.setSuffix(" km")
        self.sites_button = QPushButton("Rank landing sites")
        self.sites_button.clicked.connect(lambda: self.rank_sites())
        for w in (self.classify_button, self.major, self.minor, self.sites_button):
            more.addWidget(w)
        lay.addLayout(more)
        self._set_result_buttons(False)
        self.setWidget(body)
        self._source_changed()

    def _source_changed(self, *_args: Any) -> None:
        """Show only the inputs of the chosen exemplar source."""
        mode = self.source.currentIndex()
        rows = {0: (self.folder,), 1: (self.polygons, self.class_field, self.exemplar_raster),
                2: (self.library,)}
        for index, widgets in rows.items():
            for w in widgets:
                w.setVisible(index == mode)
                label = self._form.labelForField(w)
                if label is not None:
                    label.setVisible(index == mode)

    def _default_tile_text(self) -> str:
        try:
            from analog_plugin.core.model import EmbeddingModel
            from analog_plugin.core.paths import bundled_model_path

            return f"model default ({EmbeddingModel(bundled_model_path()).contract.tile_px} px)"
        except Exception:  # noqa: BLE001 - onnxruntime missing: still a usable panel
            return "model default"

    def _set_result_buttons(self, on: bool) -> None:
        for w in (self.classify_button, self.sites_button, self.slider):
            w.setEnabled(on)

    # ---- building the runs ------------------------------------------------------------------
    def library_params(self) -> dict[str, Any] | None:
        """analog:buildlibrary parameters, or None when an existing library is used."""
        mode = self.source.currentText()
        out = str(self.out_dir / "library.gpkg")
        if mode == SOURCES[2]:
            return None
        if mode == SOURCES[0]:
            return {"IMAGE_FOLDER": self.folder.filePath(), "OUTPUT": out,
                    "DEVICE": self.device.currentText()}
        polygons, raster = self.polygons.currentLayer(), self.exemplar_raster.currentLayer()
        return {"POLYGONS": polygons.id() if polygons else None,
                "CLASS_FIELD": self.class_field.currentField(),
                "RASTER": raster.id() if raster else None,
                "OUTPUT": out, "DEVICE": self.device.currentText(), **self._tile()}

    def _tile(self) -> dict[str, Any]:
        size = self.tile_size.value()
        return ({"TILE_SIZE": size, "TILE_UNITS": self.units.currentText()} if size > 0
                else {"TILE_UNITS": self.units.currentText()})

    def score_params(self, library: str) -> dict[str, Any]:
        layer = self.raster.currentLayer()
        params: dict[str, Any] = {"INPUT": layer.id() if layer else None, "LIBRARY": library,
                                  "MIN_VALID": 0.3,
                                  "DEVICE": self.device.currentText(),
                                  "NEGATIVE_CLASSES": self.negatives.text().strip(),
                                  "OUTPUT": str(self.out_dir / "scores.gpkg"),
                                  "OUTPUT_HEATMAP": str(self.out_dir / "heatmap.tif"),
                                  **self._tile()}
        if self.canvas_extent.isChecked() and layer is not None:
            canvas = self.iface.mapCanvas()
            xf = QgsCoordinateTransform(canvas.mapSettings().destinationCrs(), layer.crs(),
                                        QgsProject.instance())
            r = xf.transformBoundingBox(canvas.extent())
            params["EXTENT"] = f"{r.xMinimum()},{r.xMaximum()},{r.yMinimum()},{r.yMaximum()}"
        return params

    # ---- running ----------------------------------------------------------------------------
    def _execute(self, alg: str, params: dict[str, Any], done: Any, blocking: bool) -> None:
        """Run one algorithm (see AlgorithmRunner); Cancel is live while it runs."""
        self.runner.execute(alg, params, done, blocking)
        self.cancel_button.setEnabled(self.runner.running)

    def cancel(self) -> None:
        self.runner.cancel()
        self.status.setText("Cancelled: existing outputs were left untouched.")
        self._finish()

    def _finish(self) -> None:
        self.cancel_button.setEnabled(False)
        self.run_button.setEnabled(True)
        self.runner.finish()

    def _fail(self, what: str) -> None:
        self.status.setText(f"{what} failed: {self.runner.last_error or 'see the log'} (full log: "
                            "View > Panels > Log Messages, Processing).")
        self._finish()

    def run(self, blocking: bool = False) -> None:
        """Find analogues: build the library if needed, then score the raster."""
        layer = self.raster.currentLayer()
        if not isinstance(layer, QgsRasterLayer):
            self.status.setText("Pick the Mars raster layer first.")
            return
        self.raster_path = layer.source()
        self.runner.start()
        self.run_button.setEnabled(False)
        self.progress.setValue(0)
        lib = self.library_params()

        def scored(ok: bool, res: dict[str, Any]) -> None:
            if not ok:
                return self._fail("Scoring")
            self.show_results(str(res["OUTPUT"]))
            self._finish()
            return None

        def built(ok: bool, res: dict[str, Any]) -> None:
            if not ok:
                return self._fail("Building the library")
            self.library_path = str(res["OUTPUT"])
            self.status.setText("Scoring tiles...")
            self._execute("analog:scoretiles", self.score_params(self.library_path), scored,
                          blocking)
            return None

        if lib is None:
            built(True, {"OUTPUT": self.library.filePath()})
        else:
            self.status.setText("Building the analogue library...")
            self._execute("analog:buildlibrary", lib, built, blocking)

    # ---- results ----------------------------------------------------------------------------
    def show_results(self, scores_path: str, n: int = 20) -> None:
        """Load the styled scores layer and fill the explained results list."""
        from analog_plugin.core.explain import top_matches

        layer = QgsVectorLayer(f"{scores_path}|layername=scores", "analogue scores", "ogr")
        layer.loadDefaultStyle()
        QgsProject.instance().addMapLayer(layer)
        heat = self.out_dir / "heatmap.tif"
        if heat.is_file():
            QgsProject.instance().addMapLayer(QgsRasterLayer(str(heat), "similarity heat map"))
        self.scores_layer = layer
        self.matches = top_matches(scores_path, self.library_path, self.raster_path, n)
        self.table.setRowCount(len(self.matches))
        self.table.verticalHeader().setDefaultSectionSize(THUMB_PX + 4)
        for i, m in enumerate(self.matches):
            for j, img in enumerate((m.tile, m.exemplar)):
                item = QTableWidgetItem("" if img is not None else "(no picture)")
                if img is not None:
                    item.setData(Qt.ItemDataRole.DecorationRole, to_pixmap(img))
                item.setToolTip(m.best_exemplar if j else f"tile {m.tile_id} (row {m.row}, "
                                f"col {m.col})")
                self.table.setItem(i, j, item)
            self.table.setItem(i, 2, QTableWidgetItem(f"{m.score:.3f}"))
            self.table.setItem(i, 3, QTableWidgetItem(m.best_class))
        self.table.setColumnWidth(0, THUMB_PX + 8)
        self.table.setColumnWidth(1, THUMB_PX + 40)
        self.progress.setValue(100)
        self.status.setText(f"{layer.featureCount()} tiles scored; the {len(self.matches)} best "
                            "are listed with the exemplar each matched. Click a row to zoom.")
        self._set_result_buttons(True)

    def zoom_to(self, row: int) -> None:
        if not (0 <= row < len(self.matches)) or self.scores_layer is None:
            return
        xmin, ymin, xmax, ymax = self.matches[row].bounds
        canvas = self.iface.mapCanvas()
        dest: QgsCoordinateReferenceSystem = canvas.mapSettings().destinationCrs()
        rect = QgsRectangle(xmin, ymin, xmax, ymax)
        if dest.isValid() and dest != self.scores_layer.crs():
            rect = QgsCoordinateTransform(self.scores_layer.crs(), dest,
                                          QgsProject.instance()).transformBoundingBox(rect)
        rect.scale(3.0)  # the tile and its surroundings
        canvas.setExtent(rect)
        canvas.refresh()

    def apply_percentile(self, value: int) -> None:
        if self.scores_layer is None:
            return
        self.scores_layer.setSubsetString(f'"percentile" >= {int(value)}' if value else "")
        self.slider_label.setText(f"top {100 - int(value)} %" if value else "show all tiles")
        self.scores_layer.triggerRepaint()

    def classify(self, blocking: bool = False) -> None:
        if not (self.library_path and self.raster.currentLayer()):
            return
        params = {"INPUT": self.raster.currentLayer().id(), "LIBRARY": self.library_path, "K": 5,
                  "SMOOTH": "majority", "MIN_VALID": 0.3, **self._tile(),
                  "OUTPUT": str(self.out_dir / "landforms.gpkg")}

        def done(ok: bool, res: dict[str, Any]) -> None:
            if ok:
                self._load(str(res["OUTPUT"]), "landforms", "landforms")
            self._finish()

        self._execute("analog:classifylandforms", params, done, blocking)

    def rank_sites(self, blocking: bool = False) -> None:
        if self.scores_layer is None:
            return
        params = {"SCORES": self.scores_layer.source().split("|")[0],
                  "ELLIPSE_MAJOR_KM": self.major.value(), "ELLIPSE_MINOR_KM": self.minor.value(),
                  "COUNT": 5, "OUTPUT": str(self.out_dir / "sites.gpkg")}

        def done(ok: bool, res: dict[str, Any]) -> None:
            if ok:
                self._load(str(res["OUTPUT"]), "sites", "landing sites")
            else:
                self.status.setText("No landing ellipse fits: try a smaller ellipse (the log "
                                    "says which constraint removed the candidates).")
            self._finish()

        self._execute("analog:ranksites", params, done, blocking)

    def _load(self, path: str, layer_name: str, title: str) -> QgsVectorLayer:
        layer = QgsVectorLayer(f"{path}|layername={layer_name}", title, "ogr")
        layer.loadDefaultStyle()
        QgsProject.instance().addMapLayer(layer)
        return layer
