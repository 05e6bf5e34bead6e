"""analog:ranksites: the best non-overlapping landing ellipses on a scores layer."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    Qgis,
    QgsCoordinateReferenceSystem,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputNumber,
)

from analog_plugin.core import params as P

from . import common
from .base import AnalogAlgorithm
from .common import (
    attach_style,
    core_errors,
    is_unset,
    output_gpkg_path,
    polygons_as_wkb,
    raster_file_path,
)

N_SITES = "N_SITES"
TOP_LAT, TOP_LON, TOP_SCORE = "TOP_LAT", "TOP_LON", "TOP_MEAN_SCORE"

HELP = """Proposes landing sites: the COUNT best non-overlapping ellipses (ELLIPSE_MAJOR_KM x \
ELLIPSE_MINOR_KM, major axis at AZIMUTH degrees from north) on a layer of tile scores, ranked by \
the mean of SCORE_FIELD inside the ellipse (ties: frac_above, the share scoring >= THRESHOLD). \
Sizes and slopes are measured in metres on the layer's own body (an azimuthal equidistant frame \
centred on the scored area), right on Mars CRSs, in degrees or projected, at any latitude.

An ellipse is never proposed if any part of it is outside the scored area (or over skipped \
tiles), touches an EXCLUDE polygon, lies outside LATITUDE_MIN..LATITUDE_MAX, or - with a DEM - \
has a slope above MAX_SLOPE (computed at the DEM's resolution) or ground outside \
MIN_ELEVATION..MAX_ELEVATION. Candidates sit on a SPACING_KM lattice. The output polygons carry \
rank, mean_score, frac_above, max_slope, mean_elevation, lat and lon, labelled by rank. \
For scale: Mars 2020 7.7 x 6.6 km, Curiosity 20 x 7 km; Zhurong's zone 5-30 N below -3000 m.

Parameters a script can set: SCORES, SCORE_FIELD, ELLIPSE_MAJOR_KM, ELLIPSE_MINOR_KM, AZIMUTH, \
SPACING_KM, DEM, MAX_SLOPE, MIN_ELEVATION, MAX_ELEVATION, EXCLUDE, LATITUDE_MIN, LATITUDE_MAX, \
THRESHOLD, COUNT, OUTPUT."""

def _wkt(crs: QgsCoordinateReferenceSystem) -> str:
    try:
        return str(crs.toWkt(Qgis.CrsWktVariant.Preferred))
    except AttributeError:  # QGIS < 3.36
        return str(crs.toWkt(QgsCoordinateReferenceSystem.WKT_PREFERRED))


class RankSitesAlgorithm(AnalogAlgorithm):
    """Processing algorithm ``analog:ranksites``."""

    ALG_ID = "ranksites"
    DISPLAY_NAME = "Rank candidate landing sites"
    HELP = HELP
    TAGS = ("mars", "landing", "ellipse", "site selection", "slope", "dem", "planetary")

    PARAMS = P.SITES_PARAMS
    OUTPUTS = ((QgsProcessingOutputNumber, N_SITES, "Number of sites"),
               (QgsProcessingOutputNumber, TOP_LAT, "Latitude of the best site"),
               (QgsProcessingOutputNumber, TOP_LON, "Longitude of the best site"),
               (QgsProcessingOutputNumber, TOP_SCORE, "Mean score of the best site"))

    def run_job(self, parameters: dict[str, Any], context: QgsProcessingContext,
            feedback: QgsProcessingFeedback) -> dict[str, Any]:
        settings = self.settings(parameters, context)
        source = self.parameterAsSource(parameters, P.SCORES.name, context)
        if source is None:
            raise QgsProcessingException("SCORES: give the polygon layer of 'Score raster tiles'.")
        field = self.parameterAsString(parameters, P.SCORE_FIELD.name, context) or "score"
        idx = source.fields().lookupField(field)
        if idx < 0:
            names = [f.name() for f in source.fields()]
            raise QgsProcessingException(f"SCORE_FIELD '{field}' is not a field of SCORES "
                                         f"({names}); use 'score' or a 'score_<class>' field.")
        if not source.fields().at(idx).isNumeric():
            raise QgsProcessingException(f"SCORE_FIELD '{field}' is not numeric.")
        crs = source.sourceCrs()
        wkbs, values = [], []
        for feat in source.getFeatures():
            if feedback.isCanceled():
                break
            geom = feat.geometry()
            if geom is None or geom.isEmpty():
                continue
            v = feat[idx]
            wkbs.append(bytes(geom.asWkb()))
            values.append(None if v is None or v != v or not isinstance(v, (int, float))
                          else float(v))
        exclude: list[bytes] = []
        if not is_unset(parameters, P.EXCLUDE.name):
            zones = self.parameterAsSource(parameters, P.EXCLUDE.name, context)
            if zones is None:
                raise QgsProcessingException("EXCLUDE could not be read.")
            exclude = [w for w, _c, _f in polygons_as_wkb(zones, crs, context, feedback)]
        dem = None
        if not is_unset(parameters, P.DEM.name):
            dem = raster_file_path(self.parameterAsRasterLayer(parameters, P.DEM.name, context),
                                   P.DEM.name)
        dest = output_gpkg_path(self, parameters, context)
        scores_path = source.sourceName() if hasattr(source, "sourceName") else ""
        with core_errors():
            from analog_plugin.core import pipeline

            summary = pipeline.rank_sites(
                scores_wkb=wkbs, scores=values, crs_wkt=_wkt(crs),
                output_path=dest.split("|", 1)[0], dem=dem, exclude_wkb=exclude,
                score_field=field, feedback=feedback, style_qml=str(common.style_path("sites")),
                inputs=[("SCORES", str(parameters.get(P.SCORES.name) or scores_path))],
                **settings,
            )
        attach_style(context, dest, "sites")
        top = summary.sites[0]
        return {common.OUTPUT: dest, N_SITES: summary.n_sites, TOP_LAT: top["lat"],
                TOP_LON: top["lon"], TOP_SCORE: top["mean_score"]}
