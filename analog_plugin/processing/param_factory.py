"""QGIS parameter definitions built from core/params.py, and raw value reading for core validation.

Nothing here decides a default, a range or a message: that is core's (one definition for the
toolbox, ``qgis_process``, the modeler and the command line). This module only maps a
``Param.kind`` to the matching ``QgsProcessingParameter*`` class.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from qgis.core import (
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingParameterBand,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsProcessingParameterVectorDestination,
)

from analog_plugin.core import params as P
from analog_plugin.core import paths

from . import common


def make_param(p: P.Param, bands_parent: str = "") -> QgsProcessingParameterDefinition:
    """The QGIS parameter for ``p`` (help text and advanced flag included)."""
    opt = p.optional
    param: QgsProcessingParameterDefinition
    if p.kind == "raster":
        param = QgsProcessingParameterRasterLayer(p.name, p.label, optional=opt)
    elif p.kind == "file":
        default = str(paths.bundled_model_path()) if p is P.MODEL else None
        param = QgsProcessingParameterFile(p.name, p.label, extension=p.extension,
                                           defaultValue=default, optional=opt)
    elif p.kind == "folder":
        param = QgsProcessingParameterFile(p.name, p.label, behavior=common.FILE_FOLDER,
                                           optional=opt)
    elif p.kind == "polygons":
        param = QgsProcessingParameterFeatureSource(p.name, p.label, [common.SOURCE_POLYGON],
                                                    optional=opt)
    elif p.kind == "field":
        param = QgsProcessingParameterField(p.name, p.label, defaultValue=p.default,
                                            parentLayerParameterName=p.parent, optional=opt)
    elif p.kind in ("number", "integer"):
        kind = common.NUMBER_INTEGER if p.kind == "integer" else common.NUMBER_DOUBLE
        kw: dict[str, Any] = {"type": kind, "optional": opt, "defaultValue": p.default}
        if p.minimum is not None:
            kw["minValue"] = p.minimum
        if p.maximum is not None:
            kw["maxValue"] = p.maximum
        param = QgsProcessingParameterNumber(p.name, p.label, **kw)
    elif p.kind == "enum":
        param = QgsProcessingParameterEnum(p.name, p.label, options=list(p.options),
                                           defaultValue=p.default, usesStaticStrings=True)
    elif p.kind == "extent":
        param = QgsProcessingParameterExtent(p.name, p.label, optional=opt)
    elif p.kind == "bands":
        param = QgsProcessingParameterBand(p.name, p.label, parentLayerParameterName=bands_parent,
                                           optional=opt, allowMultiple=True)
    elif p.kind in ("string", "names"):
        param = QgsProcessingParameterString(p.name, p.label, defaultValue=p.default,
                                             optional=opt)
    elif p.kind == "output_vector":
        param = QgsProcessingParameterVectorDestination(p.name, p.label,
                                                        type=common.SOURCE_POLYGON)
    elif p.kind == "output_raster":
        param = QgsProcessingParameterRasterDestination(p.name, p.label, optional=opt)
    else:  # pragma: no cover - a new kind must be mapped here
        raise ValueError(f"no QGIS parameter for kind {p.kind!r}")
    param.setHelp(p.full_help())
    if p.advanced:
        param.setFlags(param.flags() | common.FLAG_ADVANCED)
    return param


def add_params(alg: QgsProcessingAlgorithm, specs: Sequence[P.Param], bands_parent: str) -> None:
    for p in specs:
        alg.addParameter(make_param(p, bands_parent))


def raw_scalar(
    alg: QgsProcessingAlgorithm, parameters: Mapping[str, Any], p: P.Param,
    context: QgsProcessingContext,
) -> Any:
    """The value of a number/enum parameter as given (names for enums, numbers as numbers), for
    core's ``Param.validate``; None when unset. QgsProperty values (modeler) are evaluated."""
    raw = parameters.get(p.name)
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    if isinstance(raw, (str, int, float)):
        return raw
    if p.kind == "enum":
        return alg.parameterAsEnumString(parameters, p.name, context)
    if p.kind in ("names", "string"):
        return alg.parameterAsString(parameters, p.name, context)
    return alg.parameterAsDouble(parameters, p.name, context)


def validated(
    alg: QgsProcessingAlgorithm, parameters: Mapping[str, Any], specs: Sequence[P.Param],
    context: QgsProcessingContext,
) -> dict[str, Any]:
    """Core-validated values of the number/enum/text parameters among ``specs``, keyed by core
    argument name (``tile_size``...); QgsProcessingException with core's message otherwise."""
    from analog_plugin.core.errors import AnalogError

    out: dict[str, Any] = {}
    for p in specs:
        if p.kind not in ("number", "integer", "enum", "names", "string"):
            continue
        try:
            out[p.arg] = p.validate(raw_scalar(alg, parameters, p, context))
        except AnalogError as err:
            raise QgsProcessingException(str(err)) from err
    return out


def check_scalars(
    alg: QgsProcessingAlgorithm, parameters: Mapping[str, Any], specs: Sequence[P.Param],
    context: QgsProcessingContext,
) -> tuple[bool, str]:
    """``checkParameterValues`` part: core's message instead of 'Incorrect parameter value'."""
    try:
        validated(alg, parameters, specs, context)
    except QgsProcessingException as err:
        return False, str(err)
    except Exception as err:  # noqa: BLE001 - an unconvertible value, e.g. BATCH_SIZE='many'
        return False, f"Invalid parameter value: {err}"
    return True, ""
