"""Compression as transforms over an in-memory model: no files, no CLI, no training loop.

- `pruning`: unstructured (torch.nn.utils.prune) and structured channel pruning (torch-pruning),
  with per-layer statistics and helpers to fold pruning masks into a plain state_dict.
- `quantization`: post-training int8 of an ONNX model with onnxruntime.quantization (ModelProto in
  and out), its calibration reader and a per-layer error report.
- `int8_rewrites`: function-preserving ONNX graph rewrites that let onnxruntime's int8 kernels apply.

Modules are imported directly (`from dlcli.compress.pruning import make_pruner`), so importing this
package is free.
"""
