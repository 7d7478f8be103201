"""ONNX export and verification, and onnxruntime sessions (timing lives in dlcli.measure).

No CLI code and no output file names here: workflows decide where artifacts go. Modules are small
and imported directly (`from dlcli.export.runtime import load_onnx`), so importing this package is free.

- `onnx_export`: `export_onnx(model, input_shape, ...)` -> an in-memory ONNX model (dynamo, with fallback)
- `metadata`: the `dlcli.*` metadata_props that make an .onnx file self-describing (read and written
  here; `dlcli info` shows them: dlcli.workflows.inspect)
- `verify`: checker + shape inference, and onnxruntime-vs-PyTorch parity
- `runtime`: `load_onnx`, `ort_session`, batched onnxruntime inference
"""
