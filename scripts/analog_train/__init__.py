"""Training, export and evaluation code for the analogue-similarity Siamese network.

Kept outside ``analog_plugin`` on purpose: the plugin ships only the ONNX file and the shared
preprocessing (``analog_plugin.core.preprocess``), never torch.
"""
