"""The names `dlcli quantize` accepts, kept apart from `quantization` (which imports onnx and
onnxruntime) so that the CLI can offer them as choices without importing either."""

METHODS = ("static", "dynamic")
"""static: calibrated activation ranges, QDQ; dynamic: int8 weights, activations quantized at run time."""
CALIBRATIONS = ("minmax", "entropy", "percentile")
"""How static quantization picks activation ranges from the calibration data."""
