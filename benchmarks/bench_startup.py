"""What a training command's start costs before its loop (issue #15: at most 2 s outside the loop), and
what two start-up measures save, each in fresh processes, the variants alternating round by round:

- `import torch` as usual, against the executable's way (dlcli.process_start: no garbage collection
  during the import, its objects frozen after);
- `import torch` and then reading the MNIST files (gzip inflate + md5, dlcli.data.idx), against
  reading them on a thread during the import (dlcli.data.idx.prefetch), both measures together (as
  `dlcli train` starts), and the thread reading through gzip.open (the design idx.py's docstring
  explains it does not use).

Run:  DLCLI_DATA_DIR=../shared/data python benchmarks/bench_startup.py [--rounds 8]
Prints a table (seconds from the child's first line to the end of the measured work) and writes
benchmarks/results/startup.json. Nothing else should run meanwhile.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "startup.json"
FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
         "t10k-labels-idx1-ubyte.gz")

PRELUDE = "import time; t0 = time.perf_counter()\nimport sys; paths = sys.argv[1:]\n"
VARIANTS = {
    "import torch": "import torch\n",
    "import torch (dlcli's quiet import)": (
        "from dlcli.process_start import import_torch_quietly; import_torch_quietly()\nimport torch\n"),
    "import torch, then read MNIST": (
        "import torch\nfrom dlcli.data.idx import read_idx_with_md5\n"
        "for p in paths: read_idx_with_md5(p)\n"),
    "read MNIST during import torch (prefetch)": (
        "from pathlib import Path\nfrom dlcli.data.idx import prefetch, read_idx_with_md5\n"
        "prefetch([Path(p) for p in paths])\nimport torch\nfor p in paths: read_idx_with_md5(p)\n"),
    "both, as `dlcli train` starts": (
        "from pathlib import Path\nfrom dlcli.data.idx import prefetch, read_idx_with_md5\n"
        "from dlcli.process_start import import_torch_quietly; import_torch_quietly()\n"
        "prefetch([Path(p) for p in paths])\nimport torch\nfor p in paths: read_idx_with_md5(p)\n"),
    "the prefetch via gzip.open on a thread": (
        "import gzip, hashlib, threading\n"
        "def read():\n"
        "    for p in paths:\n"
        "        digest, data = hashlib.md5(), bytearray()\n"
        "        with gzip.open(p) as f:\n"
        "            while chunk := f.read(1 << 20):\n"
        "                digest.update(chunk); data += chunk\n"
        "reader = threading.Thread(target=read); reader.start()\nimport torch\nreader.join()\n"),
}
EPILOGUE = "print(time.perf_counter() - t0)\n"


def one(code: str, paths: list[str]) -> float:
    out = subprocess.run([sys.executable, "-c", PRELUDE + code + EPILOGUE, *paths], capture_output=True, text=True,
                         check=True)
    return float(out.stdout.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    root = os.environ.get("DLCLI_DATA_DIR")
    if not root:
        raise SystemExit("set DLCLI_DATA_DIR to a folder holding mnist/")
    paths = [str(Path(root) / "mnist" / name) for name in FILES]
    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for _ in range(args.rounds):
        for name, code in VARIANTS.items():
            times[name].append(round(one(code, paths), 3))
    print(f"{'seconds (fresh process)':44s}{'median':>8s}{'min':>8s}{'max':>8s}")
    for name, values in times.items():
        print(f"{name:44s}{statistics.median(values):8.3f}{min(values):8.3f}{max(values):8.3f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "command": f"DLCLI_DATA_DIR=... python benchmarks/bench_startup.py --rounds {args.rounds}",
        "seconds": times, "medians": {k: statistics.median(v) for k, v in times.items()}}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
