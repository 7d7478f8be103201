"""How dlcli measures speed: the timing harness, the runtimes it times, and the machine it ran on.

Not part of export: benchmark, quantize, prune and frontier all time models with it. Modules are
imported directly (`from dlcli.measure.timing import measure`), so importing this package is free.

- `timing`: `measure(fn, batches, ...)` -> `LatencyStats`, the harness every latency number comes from,
  and `measure_interleaved` for comparing several models in alternating rounds
- `runners`: PyTorch and onnxruntime behind one `Runner` interface, timed with `time_runners`
- `environment`: the CPU/GPU/library fingerprint that benchmark rows carry, and the busy-machine check
"""
