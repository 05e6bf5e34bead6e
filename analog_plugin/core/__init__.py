"""Core engine of the Mars Analogue Finder: pure Python + numpy/rasterio/GDAL/onnxruntime, no qgis.

The same core serves the QGIS Processing algorithms, the command line and batch runs.
"""
