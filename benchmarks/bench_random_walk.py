"""IRN's random walk: sparse propagation against IRN's dense matrix power, time and peak memory.

For each grid, a random boundary map B (values rand⁴, mostly low as in a
trained IRN) and random scores x are propagated with the defaults (radius 5,
β = 10, 2⁸ steps) by

- ``sparse``: :func:`training.irn.inference.propagate` (256 sparse products,
  float64 walk, float32 output), with C = 1 and C = 16 channels;
- ``dense``: :func:`training.irn.random_walk.dense_propagate`, IRN's
  formulation in float32 (the (hw)² transition squared 8 times).

Every case runs in a fresh process; peak memory is the growth of that
process's resident set (VmHWM reset through /proc/self/clear_refs) during the
call. A dense run whose matrix exceeds ``--full-dense-max`` pixels is timed on
one squaring only and its total extrapolated (build + 8 × squaring); its peak
memory is still measured (every squaring holds the same two matrices).

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/bench_random_walk.py [--grids 32x48,64x80,128x160]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import multiprocessing as mp  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def _reset_peak() -> None:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # "5" resets VmHWM to the current RSS
    except OSError:
        pass


def _inputs(h: int, w: int, c: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.random((c, h, w)).astype(np.float32)
    boundary = (rng.random((h, w)) ** 4).astype(np.float32)
    return x, boundary


def _run_case(method: str, h: int, w: int, c: int, exp_times: int, dtype: str) -> dict:
    """One measurement in this (fresh) process: seconds, peak MiB, output."""
    import torch

    from training.irn.inference import propagate
    from training.irn.random_walk import dense_propagate

    x, boundary = _inputs(h, w, c)
    xt, bt = torch.from_numpy(x), torch.from_numpy(boundary)
    torch_dtype = torch.float64 if dtype == "float64" else torch.float32
    if method == "sparse":
        propagate(x[:, :8, :8], boundary[:8, :8])  # first-call overheads (sparse kernels) out of the timing
    base = _status_kib("VmRSS")
    _reset_peak()
    t0 = time.perf_counter()
    if method == "sparse":
        out = propagate(x, boundary)
    else:
        out = dense_propagate(xt, bt, exp_times=exp_times, dtype=torch_dtype).numpy()
    seconds = time.perf_counter() - t0
    peak = (_status_kib("VmHWM") - base) / 1024
    if method == "sparse":  # best of three for the small, noisy timings
        for _ in range(2):
            t0 = time.perf_counter()
            propagate(x, boundary)
            seconds = min(seconds, time.perf_counter() - t0)
    return {"seconds": seconds, "peak_mib": peak, "out": out}


def _dense_square_seconds(h: int, w: int) -> tuple[float, float, float]:
    """Build + one squaring of the dense transition: (build s, one squaring s, peak MiB)."""
    import torch

    from training.irn.random_walk import dense_transition

    _, boundary = _inputs(h, w, 1)
    bt = torch.from_numpy(boundary)
    base = _status_kib("VmRSS")
    _reset_peak()
    t0 = time.perf_counter()
    t = dense_transition(bt, exp_times=0)
    build = time.perf_counter() - t0
    t0 = time.perf_counter()
    t = t @ t
    square = time.perf_counter() - t0
    peak = (_status_kib("VmHWM") - base) / 1024
    del t
    return build, square, peak


def _in_child(fn, *args):
    with mp.get_context("spawn").Pool(1) as pool:
        return pool.apply(fn, args)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grids", default="32x48,64x80,128x160", help="comma-separated HxW stride-4 grids")
    ap.add_argument("--full-dense-max", type=int, default=64 * 80, help="largest h*w run with all 8 dense squarings")
    ap.add_argument("--f64-max", type=int, default=64 * 80, help="largest h*w also compared with a float64 dense run")
    args = ap.parse_args()
    import torch

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs")
    rows = []
    for grid in args.grids.split(","):
        h, w = (int(v) for v in grid.lower().split("x"))
        n = h * w
        sparse = _in_child(_run_case, "sparse", h, w, 1, 8, "float32")
        sparse16 = _in_child(_run_case, "sparse", h, w, 16, 8, "float32")
        row = {
            "grid": f"{h}×{w}",
            "n": n,
            "sparse_s": sparse["seconds"],
            "sparse_mib": sparse["peak_mib"],
            "sparse16_s": sparse16["seconds"],
            "sparse16_mib": sparse16["peak_mib"],
        }
        if n <= args.full_dense_max:
            dense = _in_child(_run_case, "dense", h, w, 1, 8, "float32")
            row.update(dense_s=dense["seconds"], dense_mib=dense["peak_mib"], measured="8/8")
            row["diff32"] = float(np.abs(sparse["out"] - dense["out"]).max())
        else:
            build, square, peak = _in_child(_dense_square_seconds, h, w)
            row.update(dense_s=build + 8 * square, dense_mib=peak, measured="1/8, extrapolated", diff32=None)
        if n <= args.f64_max:
            dense64 = _in_child(_run_case, "dense", h, w, 1, 8, "float64")
            row["diff64"] = float(np.abs(sparse["out"] - dense64["out"]).max())
        else:
            row["diff64"] = None
        rows.append(row)
        print(row | {"dense_s": round(row["dense_s"], 3)}, flush=True)

    fmt = lambda v, spec: "n/a" if v is None else format(v, spec)  # noqa: E731
    print()
    print(
        "| grid (pixels) | dense f32: time | dense: peak memory | sparse C=1: time | sparse: peak memory "
        "| sparse C=16: time | speed-up (C=1) | max abs diff vs dense f32 | vs dense f64 |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        dense_time = f"{r['dense_s']:.2f} s" + ("" if r["measured"] == "8/8" else f" ({r['measured']})")
        print(
            f"| {r['grid']} ({r['n']}) | {dense_time} | {r['dense_mib']:.0f} MiB | {r['sparse_s'] * 1000:.0f} ms "
            f"| {r['sparse_mib']:.1f} MiB | {r['sparse16_s'] * 1000:.0f} ms | {r['dense_s'] / r['sparse_s']:.0f}× "
            f"| {fmt(r['diff32'], '.1e')} | {fmt(r['diff64'], '.1e')} |"
        )


if __name__ == "__main__":
    main()
