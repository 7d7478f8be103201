"""Peak memory and throughput of one training epoch (a small cnn: the default at width 0.5) over a
folder of 50,000 RGB 64x64 PNGs, streamed from disk with 0, 1 and 2 DataLoader workers, and (with
--in-memory) decoded into memory for reference.

    python -m benchmarks.bench_streaming [--images 50000] [--workers 0 1 2] [--in-memory]

The folder is generated once into $DLCLI_CACHE_DIR (default ~/.cache/dlcli)/bench-streaming-N and
reused (never inside the repository). Each configuration runs `dlcli train` in a subprocess while a
sampler thread reads /proc every 0.1 s for the whole process tree (dlcli and its DataLoader workers):

- tree RSS: the largest sampled sum of the processes' resident sets. It counts pages that forked
  workers share with the main process once per process, so it overstates real use;
- tree PSS: the same with proportional set sizes (shared pages split between their users), the
  memory the tree really holds;
- hwm bound: the sum of every process's own peak (VmHWM), a bound no sampling can miss.

Prints a table and writes benchmarks/results/streaming.json. A measurement, not a test: nothing asserts.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results" / "streaming.json"
CLASSES = 10
SIZE = 64


def cache_dir() -> Path:
    return Path(os.environ.get("DLCLI_CACHE_DIR") or Path.home() / ".cache" / "dlcli")


def make_folder(count: int) -> Path:
    """count RGB 64x64 PNGs in 10 class folders: a class tint plus noise (so PNG cannot compress them
    away: about 12 KB each, like small photos). Reused when a previous run completed it."""
    from PIL import Image

    root = cache_dir() / f"bench-streaming-{count}"
    done = root / ".complete"
    if done.is_file():
        return root
    rng = np.random.default_rng(0)
    tints = rng.integers(0, 256, (CLASSES, 3))
    for i in range(count):
        label = i % CLASSES
        folder = root / f"class{label}"
        folder.mkdir(parents=True, exist_ok=True)
        noise = rng.integers(-64, 64, (SIZE, SIZE, 3))
        pixels = np.clip(tints[label] + noise, 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"{i:06d}.png")
    done.write_text(str(count))
    return root


def _tree(root_pid: int) -> list[int]:
    """root_pid and all its descendants (from /proc/*/stat parent ids)."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [root_pid]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(parents.get(pid, []))
    return found


def _kib(path: Path, key: str) -> int:
    try:
        for line in path.read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class TreeMemory(threading.Thread):
    """Samples a process tree's memory until `stop` is set (see the module docstring)."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.stop = threading.Event()
        self.rss = self.pss = 0
        self.hwm: dict[int, int] = {}
        self.most_processes = 0

    def run(self) -> None:
        while not self.stop.is_set():
            pids = _tree(self.pid)
            self.most_processes = max(self.most_processes, len(pids))
            self.rss = max(self.rss, sum(_kib(Path(f"/proc/{p}/status"), "VmRSS:") for p in pids))
            self.pss = max(self.pss, sum(_kib(Path(f"/proc/{p}/smaps_rollup"), "Pss:") for p in pids))
            for p in pids:
                self.hwm[p] = max(self.hwm.get(p, 0), _kib(Path(f"/proc/{p}/status"), "VmHWM:"))
            time.sleep(self.interval)


def train_epoch(folder: Path, extra: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "dlcli", "train", "--data", f"folder:{folder}", "--model", "cnn",
               "--model-arg", "width=0.5", "--epochs", "1", "--val-split", "0", "--out", str(Path(tmp) / "run"),
               "--json", "-q", *extra]
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, "NO_COLOR": "1"})
        memory = TreeMemory(proc.pid)
        memory.start()
        out, err = proc.communicate()
        memory.stop.set()
        memory.join()
        wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {err.strip()}")
    result = json.loads(out)
    seconds = result["metrics"]["train_seconds"]
    return {
        "options": " ".join(extra), "wall_seconds": round(wall, 1), "train_seconds": seconds,
        "samples_per_second": round(count_images(folder) / seconds, 1),
        "tree_rss_mb": round(memory.rss / 1024, 1), "tree_pss_mb": round(memory.pss / 1024, 1),
        "hwm_bound_mb": round(sum(memory.hwm.values()) / 1024, 1), "processes": memory.most_processes,
    }


def count_images(folder: Path) -> int:
    return int((folder / ".complete").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=50_000)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--in-memory", action="store_true", help="also train with --no-stream, for reference")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    start = time.perf_counter()
    folder = make_folder(args.images)
    print(f"folder: {folder} ({args.images} images, ready after {time.perf_counter() - start:.0f} s)",
          file=sys.stderr)
    configs = [["--stream", "--workers", str(w)] for w in args.workers]
    configs += [["--no-stream"]] if args.in_memory else []
    rows = []
    for extra in configs:
        rows.append(train_epoch(folder, extra))
        print(json.dumps(rows[-1]), file=sys.stderr)
    header = f"{'options':<22} {'samples/s':>9} {'train s':>8} {'tree RSS MB':>11} {'tree PSS MB':>11} {'HWM bound':>9}"
    print(header)
    for r in rows:
        print(f"{r['options']:<22} {r['samples_per_second']:>9.0f} {r['train_seconds']:>8.1f} "
              f"{r['tree_rss_mb']:>11.0f} {r['tree_pss_mb']:>11.0f} {r['hwm_bound_mb']:>9.0f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "benchmark": "one training epoch (cnn width 0.5, --val-split 0) over a folder of RGB 64x64 PNGs",
        "images": args.images, "command": " ".join(sys.argv),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "runs": rows,
    }, indent=2) + "\n")


if __name__ == "__main__":
    main()
