"""analog:diagnostics: versions, execution providers, CUDA status and the bundled model, as text."""

from __future__ import annotations

from typing import Any

from qgis.core import Qgis, QgsProcessingContext, QgsProcessingFeedback, QgsProcessingOutputString

from .base import AnalogAlgorithm

REPORT, CUDA = "REPORT", "CUDA"

HELP = """Reports what this installation can do, as text to copy into a support request: the \
versions of QGIS, Python, numpy, GDAL and onnxruntime; the onnxruntime execution providers; \
whether CUDA is usable and, if not, why (no onnxruntime-gpu, no driver, missing CUDA libraries); \
the bundled model's version, sha256 and pixel contract. No parameters. Outputs REPORT (the text) \
and CUDA (a yes/no line)."""


class DiagnosticsAlgorithm(AnalogAlgorithm):
    """Processing algorithm ``analog:diagnostics``."""

    ALG_ID = "diagnostics"
    DISPLAY_NAME = "Diagnostics (versions, GPU, model)"
    HELP = HELP
    TAGS = ("diagnostics", "version", "cuda", "gpu", "onnxruntime", "support")
    OUTPUTS = ((QgsProcessingOutputString, REPORT, "Diagnostics report"),
               (QgsProcessingOutputString, CUDA, "CUDA usable"))

    def run_job(self, parameters: dict[str, Any], context: QgsProcessingContext,
                feedback: QgsProcessingFeedback) -> dict[str, Any]:
        from analog_plugin import deps
        from analog_plugin.core.diagnostics import format_report, report

        deps.add_extra_paths()
        doc = report({"qgis": f"{Qgis.version()}"})
        text = format_report(doc)
        for line in text.splitlines():
            feedback.pushInfo(line)
        return {REPORT: text, CUDA: ("yes: " if doc["cuda_usable"] else "no: ")
                + str(doc["cuda_detail"])}
