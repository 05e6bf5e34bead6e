"""QGIS Processing glue for the Mars Analogue Finder (imports qgis; the engine is ``core``)."""
