"""How fast does :func:`minicontainer.image.layers.unpack` unpack a layer, next to ``tar -xzf``?

Run as root (so that both keep owners, as they would for a real layer)::

    .venv/bin/python benchmarks/bench_unpack.py [--runs 5] [--dir /var/tmp]

Two gzip-compressed layers are made with GNU tar in a temporary directory (under ``--dir``: put it on
the filesystem the store lives on), then each is unpacked ``--runs`` times by us and by
``tar -xzf`` (which runs ``gzip -d`` in a second process) into fresh directories, alternating:

* **small**: 35,000 files of 0-4 KiB in 350 directories, like a distribution's base layer;
* **big**: one 200 MB file (half random, half text: it compresses about 2:1).

Both sides do the same work: decompress, create the files with their owners, modes and mtimes.  We
also compute the DiffID (sha256 of the uncompressed tar), which tar does not.  The report gives the
median and best times, ours/tar, and MB/s of uncompressed tar for the big layer.

**Targets: small: ours/tar <= 1.0; big: >= 150 MB/s.**  Other work on the machine makes file-system
timings noisy: compare medians, and rerun when the numbers look odd.  The script removes its
temporary directory at the end and always exits 0 (a report, not a test).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from minicontainer.image import layers

MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
SMALL_TARGET = 1.0  # ours/tar
BIG_TARGET_MBS = 150.0


def make_small_tree(root: Path, files: int = 35_000, per_dir: int = 100) -> None:
    rng = random.Random(42)
    words = [rng.randbytes(rng.randint(2, 9)).hex().encode() for _ in range(2000)]
    for i in range(files):
        d = root / f"d{i // per_dir:04d}"
        if i % per_dir == 0:
            d.mkdir()
        size = rng.randint(0, 4096)
        text = b" ".join(rng.choices(words, k=size // 8 + 1))[:size]
        (d / f"f{i:05d}.txt").write_bytes(text)
        if i % 7 == 0:
            os.chmod(d / f"f{i:05d}.txt", 0o755)


def make_big_tree(root: Path, size: int = 200 * 1000 * 1000) -> None:
    rng = random.Random(7)
    text = b"".join(rng.choice([b"lorem ", b"ipsum ", b"dolor ", b"sit ", b"amet\n"]) for _ in range(200_000))
    with open(root / "big.bin", "wb") as f:
        written = 0
        while written < size:
            piece = os.urandom(1 << 20) if (written >> 20) % 2 else text[: 1 << 20]
            piece = piece[: size - written]
            f.write(piece)
            written += len(piece)


def time_ours(layer: Path, dest: Path) -> float:
    dest.mkdir()
    start = time.perf_counter()
    with open(layer, "rb") as f:
        layers.unpack(f, str(dest), MEDIA_TYPE)
    return time.perf_counter() - start


def time_tar(layer: Path, dest: Path) -> float:
    dest.mkdir()
    start = time.perf_counter()
    subprocess.run(["tar", "-C", str(dest), "-xzf", str(layer)], check=True)
    return time.perf_counter() - start


def bench(name: str, layer: Path, work: Path, runs: int) -> tuple[list[float], list[float]]:
    ours: list[float] = []
    tar: list[float] = []
    for i in range(runs):
        for label, fn, times in (("ours", time_ours, ours), ("tar", time_tar, tar)):
            dest = work / f"{name}-{label}-{i}"
            times.append(fn(layer, dest))
            shutil.rmtree(dest)
    return ours, tar


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--dir", default=None, help="where to make the layers and unpack them")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-unpack-", dir=args.dir))
    try:
        print(f"making the layers in {work} ...", flush=True)
        results = []
        for name, make in (("small", make_small_tree), ("big", make_big_tree)):
            tree = work / f"{name}-tree"
            tree.mkdir()
            make(tree)
            layer = work / f"{name}.tar.gz"
            subprocess.run(["tar", "-C", str(tree), "-czf", str(layer), "."], check=True)
            shutil.rmtree(tree)
            with open(layer, "rb") as f:
                tar_bytes = sum(len(c) for c in layers.uncompressed_chunks(f, MEDIA_TYPE))
            ours, tar = bench(name, layer, work, args.runs)
            results.append((name, layer.stat().st_size, tar_bytes, ours, tar))

        print(f"\n{'layer':6} {'gzip MB':>8} {'tar MB':>7} {'ours med s':>11} {'tar med s':>10} "
              f"{'ours best':>10} {'tar best':>9} {'ours/tar':>9} {'ours MB/s':>10}")
        for name, gz, raw, ours, tar in results:
            mo, mt = statistics.median(ours), statistics.median(tar)
            print(f"{name:6} {gz / 1e6:8.1f} {raw / 1e6:7.1f} {mo:11.3f} {mt:10.3f} {min(ours):10.3f} "
                  f"{min(tar):9.3f} {mo / mt:8.2f}x {raw / 1e6 / mo:10.0f}")
        small, big = results[0], results[1]
        ratio = statistics.median(small[3]) / statistics.median(small[4])
        mbs = big[2] / 1e6 / statistics.median(big[3])
        print(f"\nsmall: ours/tar {ratio:.2f}x (target <= {SMALL_TARGET}x: {'met' if ratio <= SMALL_TARGET else 'NOT met'})")
        print(f"big:   {mbs:.0f} MB/s (target >= {BIG_TARGET_MBS:.0f}: {'met' if mbs >= BIG_TARGET_MBS else 'NOT met'})")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
