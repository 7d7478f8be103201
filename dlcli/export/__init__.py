"""ONNX export and verification, onnxruntime sessions, timing and the machine fingerprint.

No CLI code and no output file names here: workflows decide where artifacts go. Modules are small
and imported directly (`from dlcli.export.timing import measure`), so importing this package is free.

- `onnx_export`: `export_onnx(model, input_shape, ...)` -> an in-memory ONNX model (dynamo, with fallback)
- `metadata`: the `dlcli.*` metadata_props that make an .onnx file self-describing; `describe_onnx`
- `verify`: checker + shape inference, and onnxruntime-vs-PyTorch parity
- `runtime`: `load_onnx`, `ort_session`, batched onnxruntime inference
- `timing`: `measure(fn, batches, ...)` -> `LatencyStats`, the harness every latency number comes from,
  and `measure_interleaved` for comparing several models in alternating rounds
- `runners`: PyTorch and onnxruntime behind one `Runner` interface, timed with `time_runners`
- `environment`: the CPU/GPU/library fingerprint that benchmark rows carry
"""
