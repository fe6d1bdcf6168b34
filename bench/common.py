"""What the benchmarks share: data, interleaved timing, JSON output and the machine.

Nothing here imports JAX or lincv at import time: a probe process that times
scikit-learn loads neither (see `bench.probes`).

Timings on a shared machine are noisy, so every comparison runs its variants in rounds
(one repetition of each variant per round, in turn) after a warm-up round, and reports
the median and the minimum of each. Ratios are taken between figures of the same run.
"""

import datetime
import importlib.metadata
import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Mapping

import numpy as np

# lincv's k-NN metric names -> scikit-learn's.
SK_METRIC = {"l2": "euclidean", "l1": "manhattan"}


def load(folder: str, limit: int | None = None):
  """CIFAR-style image folder -> `lincv.data.Prepared` float32 rows (train/val/test).

  Images are decoded (or read from the prepared tfds copy) by `lincv.data.load`, then
  split 90/10 into train/validation, scaled to [0, 1] and centered on the mean training
  image. `limit` caps the training images (stratified), for quick runs.
  """
  import lincv.data  # pylint: disable=import-outside-toplevel
  ds = lincv.data.load(folder=folder)
  return lincv.data.prepare(ds, val_fraction=0.1, seed=0, center="image", limit=limit)


def num_classes(d) -> int:
  return len(d.class_names)


def knn_rows(d):
  """The rows k-NN searches: training and validation rows together, with their labels."""
  return np.concatenate([d.x_train, d.x_val]), np.concatenate([d.y_train, d.y_val])


def block(tree):
  """Waits for every array in `tree` (JAX arrays are computed asynchronously)."""
  import jax  # pylint: disable=import-outside-toplevel
  return jax.block_until_ready(tree)


# Seconds of rest before each timed call. A BLAS (NumPy's OpenBLAS, XLA's thread pool)
# keeps its worker threads spinning for a while after a call returns; without a pause
# they hold the cores while the next variant runs. Measured on the 2-core development
# CPU: one member's JAX epoch took 0.28 s right after NumPy's products, 0.23 s after a
# pause of 0.25 s, 0.20 s after 1 s, and 0.18 s in a run without NumPy.
SETTLE_S = 1.0


def add_settle_flag(parser) -> None:
  """`--settle SECONDS`: the rest before each timed call (`SETTLE_S`; `use_settle` sets it).
  0 skips it, for a run whose figures are not read as timings (the tests')."""
  parser.add_argument("--settle", type=float, default=SETTLE_S, metavar="SECONDS",
                      help=f"rest before each timed call (default {SETTLE_S}; 0 for none, "
                      "where the times are not compared)")


def use_settle(args) -> None:
  """Sets `SETTLE_S` from `--settle`; a value that is not a finite number >= 0 is refused."""
  global SETTLE_S  # pylint: disable=global-statement
  if not 0 <= args.settle < float("inf"):
    raise SystemExit(f"--settle must be a finite number of seconds >= 0, got {args.settle}")
  SETTLE_S = args.settle


def forget_programs() -> None:
  """Drops the programs this process compiled, lincv's cached ones and JAX's, so that the
  next lincv call compiles everything as a fresh process's first run does (a persistent
  compilation cache, where one is on, still serves it)."""
  import jax  # pylint: disable=import-outside-toplevel
  from lincv.sweep import population  # pylint: disable=import-outside-toplevel
  population._init_program.cache_clear()  # pylint: disable=protected-access
  population._accuracy_program.cache_clear()  # pylint: disable=protected-access
  population._epoch_program.cache_clear()  # pylint: disable=protected-access
  jax.clear_caches()


def interleaved(runners: Mapping[str, Callable[[], object]], reps: int,
                warmup: int = 1) -> dict[str, list[float]]:
  """Seconds of each runner, `reps` times, in rounds that alternate the runners.

  Each runner is called `warmup` times first (compilation, caches), untimed; each
  timed call starts after `SETTLE_S` seconds of rest, so that no variant runs beside
  the threads the one before it left spinning.
  """
  for _ in range(warmup):
    for run in runners.values():
      block(run())
  times = {name: [] for name in runners}
  for _ in range(reps):
    for name, run in runners.items():
      time.sleep(SETTLE_S)
      t0 = time.perf_counter()
      block(run())
      times[name].append(time.perf_counter() - t0)
  return times


def summary(seconds: list[float]) -> dict:
  """Median, minimum and count of repeated timings."""
  return {"median_s": statistics.median(seconds), "min_s": min(seconds),
          "reps": len(seconds)}


def rounded(x, digits: int = 4):
  """Floats rounded to `digits` significant digits, recursively, for JSON output.

  NaN and infinities stay what they are, so that the strict writers below refuse them.
  """
  if isinstance(x, float):
    return float(f"{x:.{digits}g}")
  if isinstance(x, dict):
    return {k: rounded(v, digits) for k, v in x.items()}
  if isinstance(x, (list, tuple)):
    return [rounded(v, digits) for v in x]
  return x


def machine() -> dict:
  """CPU, cores, memory, load, library versions and the date, for the results header."""
  import jax  # pylint: disable=import-outside-toplevel
  cpu = platform.processor() or platform.machine()
  info = {}
  try:
    with open("/proc/cpuinfo", encoding="utf-8") as f:
      for line in f:
        if not line.strip():
          break                           # the first processor's block is enough
        key, _, value = line.partition(":")
        info[key.strip()] = value.strip()
  except OSError:
    pass
  # The model name alone can be the same for CPUs of different generations (two machines
  # with products 3.5x apart both said "AMD EPYC"): the family, model and vector width too.
  if "model name" in info:
    cpu = info["model name"]
    details = [f"{label} {info[key]}" for key, label in (("cpu family", "family"),
                                                        ("model", "model")) if key in info]
    if "avx512f" in info.get("flags", "").split():
      details.append("AVX-512")
    if details:
      cpu += f" ({', '.join(details)})"
  try:
    mem_gib = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
  except (ValueError, OSError):
    mem_gib = None  # unknown on this system: written as null
  versions = {}
  for name in ("jax", "jaxlib", "numpy", "scikit-learn", "optax", "scipy"):
    try:
      versions[name] = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      pass
  return {
      "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
      "cpu": cpu, "cores": os.cpu_count(), "memory_gib": mem_gib,
      "load_average": [round(v, 2) for v in os.getloadavg()],
      "device": str(jax.devices()[0].device_kind), "python": platform.python_version(),
      "versions": versions,
  }


def save_json(path: str, figures: dict) -> None:
  """Writes `figures`, rounded, with lincv's strict JSON writer, atomically.

  A NaN or infinite figure raises ValueError naming the file and the field: a figure
  that can legitimately be missing is None in the code, and so null in the file.
  """
  from lincv import checkpoint  # pylint: disable=import-outside-toplevel
  checkpoint.save_json(path, rounded(figures))


def print_json(figures: dict) -> None:
  """Prints `figures` as one JSON object on one line (the last line the tools read).

  Strict as `save_json`: a NaN or infinite figure raises ValueError naming the field.
  """
  from lincv import checkpoint  # pylint: disable=import-outside-toplevel
  print(json.dumps(checkpoint.strict(rounded(figures)), allow_nan=False), flush=True)
