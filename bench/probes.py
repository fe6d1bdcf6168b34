"""The comparisons that run in fresh processes: time to a target test accuracy, and the
peak memory of each approach.

A fresh process counts what a user waits for (imports, compilation) and has a peak
resident memory of its own. The parent writes the prepared rows once as .npy files
(`save_cache`); each probe reads them back (no image decode), runs, and prints its
figures as the last line of JSON:

  python -m bench.probes PROBE CACHE_DIR KWARGS_JSON

`run_probe` starts one such process, `median` several, and takes the medians.
"""

import json
import os
import resource
import subprocess
import sys
import time
import types
import warnings

import numpy as np

from bench import common

FIELDS = ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")


# --------------------------------------------------------------------------- running


def save_cache(prepared, folder: str) -> str:
  """Writes the prepared rows as .npy files, for the subprocesses (no image decode)."""
  from lincv import checkpoint  # pylint: disable=import-outside-toplevel
  os.makedirs(folder, exist_ok=True)
  for f in FIELDS:
    np.save(os.path.join(folder, f"{f}.npy"), getattr(prepared, f))
  checkpoint.save_json(os.path.join(folder, "meta.json"),
                       {"class_names": list(prepared.class_names)})
  return folder


def load_cache(folder: str):
  """The rows `save_cache` wrote, as an object with x_train ... y_test, class_names."""
  with open(os.path.join(folder, "meta.json"), encoding="utf-8") as fh:
    meta = json.load(fh)
  # Aligned, as lincv's own rows are: `jax.device_put` then aliases them on CPU, where
  # `np.load`'s arrays would be copied (and held twice). lincv.aligned imports NumPy only.
  from lincv import aligned  # pylint: disable=import-outside-toplevel
  arrays = {f: aligned.read_npy(os.path.join(folder, f"{f}.npy")) for f in FIELDS}
  return types.SimpleNamespace(**arrays, class_names=tuple(meta["class_names"]))


def run_probe(name: str, cache: str, timeout: float = 3600, **kwargs) -> dict:
  """Runs probe `name` in a fresh Python process on the cached rows; its JSON result,
  with process_s (the process's wall time, imports included) and peak_rss_mib."""
  t0 = time.perf_counter()
  out = subprocess.run([sys.executable, "-m", "bench.probes", name, cache, json.dumps(kwargs)],
                       capture_output=True, text=True, timeout=timeout, check=False)
  if out.returncode != 0:
    raise RuntimeError(f"probe {name} failed:\n{out.stderr[-3000:]}")
  result = json.loads(out.stdout.strip().splitlines()[-1])
  result["process_s"] = time.perf_counter() - t0
  return result


def median(name, cache, reps, warmup, per_run=lambda i: {}, **kwargs) -> dict:
  """A probe run `warmup` + `reps` times in fresh processes (run i with the extra
  arguments `per_run(i)`); the medians of its figures."""
  runs = [run_probe(name, cache, **kwargs, **per_run(i))
          for i in range(warmup + reps)][warmup:]
  # The other figures (accuracy, epochs, first epoch) come from the run of median time.
  out = dict(sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2])
  for key in ("seconds", "process_s", "peak_rss_mib", "over_data_mib"):
    out[key] = float(np.median([r[key] for r in runs]))
  out["runs"] = len(runs)
  # Only the time-to-target probes report `reached`; the others get an explicit null.
  out["reached"] = all(r["reached"] for r in runs) if "reached" in out else None
  return out


def _rss_mib() -> float:
  """Peak resident memory of this process so far (MiB).

  VmHWM of /proc/self/status where there is one: `getrusage`'s ru_maxrss also counts
  the parent's memory at the fork that started this process.
  """
  try:
    with open("/proc/self/status", encoding="utf-8") as f:
      for line in f:
        if line.startswith("VmHWM:"):
          return int(line.split()[1]) / 1024
  except OSError:
    pass
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --------------------------------------------------------------------------- time to target


def _lincv_population(d, *, members, epochs, optimizer, schedule, learning_rate,
                      reg_strength, batch_size):
  import jax  # pylint: disable=import-outside-toplevel
  from lincv import config as config_lib  # pylint: disable=import-outside-toplevel
  from lincv import sweep, training  # pylint: disable=import-outside-toplevel
  c = config_lib.base()
  c.optimizer, c.schedule, c.epochs, c.batch_size = optimizer, schedule, epochs, batch_size
  c.reg_strength = reg_strength
  lrs = np.geomspace(learning_rate, learning_rate * 30, members) if members > 1 else [
      learning_rate]
  c.sweep = {"learning_rate": [float(v) for v in lrs]}
  (group,) = sweep.group(sweep.expand(c))
  # device_put aliases the probe's aligned rows on CPU, where jnp.asarray would copy them.
  data = training.Data(*jax.device_put(tuple(getattr(d, f) for f in FIELDS[:4])))
  return sweep.Population(group, data, common.num_classes(d))


def probe_lincv_to_target(d, *, target, epochs=3, optimizer="momentum", schedule="cosine",
                          learning_rate=0.03, reg_strength=1e-4, batch_size=256,
                          compilation_cache=None):
  """One lincv member until its test accuracy reaches `target`, compilation included
  (with `compilation_cache`, a folder, JAX's persistent cache serves what an earlier
  run compiled)."""
  import jax  # pylint: disable=import-outside-toplevel
  if compilation_cache:
    jax.config.update("jax_compilation_cache_dir", compilation_cache)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
  t0 = time.perf_counter()
  pop = _lincv_population(d, members=1, epochs=epochs, optimizer=optimizer,
                          schedule=schedule, learning_rate=learning_rate,
                          reg_strength=reg_strength, batch_size=batch_size)
  state = pop.init()
  key = jax.random.key(0)
  x_test, y_test = jax.device_put((d.x_test, d.y_test))
  train_s, accs, epoch_s = 0.0, [], []
  for _ in range(epochs):
    t_epoch = time.perf_counter()
    state, _ = pop.epoch(state, key)
    jax.block_until_ready(state)
    epoch_s.append(time.perf_counter() - t_epoch)
    train_s = time.perf_counter() - t0
    t_eval = time.perf_counter()
    accs.append(float(pop.accuracy(state.params, x_test, y_test)[0]))
    t0 += time.perf_counter() - t_eval  # evaluation is not training time
    if accs[-1] >= target:
      break
  return {"seconds": train_s, "reached": accs[-1] >= target, "accuracy": accs[-1],
          "epochs": len(accs), "curve": accs, "epoch_s": epoch_s}


def probe_lbfgs_to_target(d, *, target, chunk_iters=5, max_iters=300):
  """LogisticRegression (lbfgs), warm-started `chunk_iters` iterations at a time."""
  from sklearn.exceptions import ConvergenceWarning  # pylint: disable=import-outside-toplevel
  from sklearn.linear_model import LogisticRegression  # pylint: disable=import-outside-toplevel
  warnings.simplefilter("ignore", ConvergenceWarning)
  model = LogisticRegression(max_iter=chunk_iters, warm_start=True)
  train_s, accs, iters = 0.0, [], 0
  while iters < max_iters:
    t0 = time.perf_counter()
    model.fit(d.x_train, d.y_train)
    train_s += time.perf_counter() - t0
    iters += chunk_iters
    accs.append(float(np.mean(model.predict(d.x_test) == d.y_test)))
    if accs[-1] >= target:
      break
  return {"seconds": train_s, "reached": accs[-1] >= target, "accuracy": accs[-1],
          "iterations": iters, "curve": accs}


def probe_sgd_to_target(d, *, target, max_epochs=10):
  """SGDClassifier (log loss, its defaults), one `partial_fit` epoch at a time."""
  from sklearn.linear_model import SGDClassifier  # pylint: disable=import-outside-toplevel
  model = SGDClassifier(loss="log_loss", random_state=0)
  classes = np.arange(common.num_classes(d))
  train_s, accs = 0.0, []
  for _ in range(max_epochs):
    t0 = time.perf_counter()
    model.partial_fit(d.x_train, d.y_train, classes=classes)
    train_s += time.perf_counter() - t0
    accs.append(float(np.mean(model.predict(d.x_test) == d.y_test)))
    if accs[-1] >= target:
      break
  return {"seconds": train_s, "reached": accs[-1] >= target, "accuracy": accs[-1],
          "epochs": len(accs), "seconds_per_epoch": train_s / len(accs), "curve": accs}


# --------------------------------------------------------------------------- peak memory


def probe_sweep_epoch(d, *, members=64, batch_size=256):
  """Memory: one epoch of a K-member lincv sweep (SGD, softmax), compilation included."""
  import jax  # pylint: disable=import-outside-toplevel
  pop = _lincv_population(d, members=members, epochs=1, optimizer="sgd",
                          schedule="constant", learning_rate=1e-3, reg_strength=1e-4,
                          batch_size=batch_size)
  t0 = time.perf_counter()
  jax.block_until_ready(pop.epoch(pop.init(), jax.random.key(0)))
  return {"seconds": time.perf_counter() - t0}


def probe_numpy_epoch(d, *, members=64, batch_size=256):
  """Memory: one epoch of the NumPy reference loop for K stacked members."""
  from bench import reference  # pylint: disable=import-outside-toplevel
  c = common.num_classes(d)
  w = np.zeros((d.x_train.shape[1], members, c), np.float32)
  b = np.zeros((members, c), np.float32)
  order = np.random.default_rng(0).permutation(len(d.y_train))
  t0 = time.perf_counter()
  reference.softmax_sgd_epoch(w, b, d.x_train, d.y_train, order,
                              lr_K=np.full(members, 1e-3, np.float32),
                              reg_K=np.full(members, 1e-4, np.float32), batch_size=batch_size)
  return {"seconds": time.perf_counter() - t0}


def probe_sgd_fit(d, *, epochs=1):
  """Memory: one SGDClassifier fit of the grid (one process of GridSearchCV)."""
  from sklearn.linear_model import SGDClassifier  # pylint: disable=import-outside-toplevel
  warnings.simplefilter("ignore")
  t0 = time.perf_counter()
  SGDClassifier(loss="log_loss", learning_rate="constant", eta0=1e-4, max_iter=epochs,
                tol=None, random_state=0).fit(d.x_train, d.y_train)
  return {"seconds": time.perf_counter() - t0}


def probe_knn_lincv(d, *, k=1, metric="l2"):
  """Memory: lincv.knn.predict of the test rows against train + validation rows."""
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  from lincv import knn  # pylint: disable=import-outside-toplevel
  x, y = common.knn_rows(d)
  t0 = time.perf_counter()
  np.asarray(knn.predict(jnp.asarray(x), jnp.asarray(y), jnp.asarray(d.x_test), k=k,
                         metric=metric, num_classes=common.num_classes(d)))
  return {"seconds": time.perf_counter() - t0}


def probe_knn_sklearn(d, *, k=1, metric="l2"):
  """Memory: KNeighborsClassifier (brute force) on the same rows."""
  from sklearn.neighbors import KNeighborsClassifier  # pylint: disable=import-outside-toplevel
  x, y = common.knn_rows(d)
  t0 = time.perf_counter()
  KNeighborsClassifier(k, algorithm="brute", metric=common.SK_METRIC[metric]).fit(
      x, y).predict(d.x_test)
  return {"seconds": time.perf_counter() - t0}


PROBES = {name[len("probe_"):]: fn for name, fn in globals().items()
          if name.startswith("probe_")}


def main(argv):
  """`python -m bench.probes PROBE CACHE_DIR [KWARGS_JSON]`: one probe, its figures as JSON."""
  name, cache, kwargs = argv[0], argv[1], json.loads(argv[2]) if len(argv) > 2 else {}
  d = load_cache(cache)
  data_mib = _rss_mib()
  result = PROBES[name](d, **kwargs)
  peak_mib = _rss_mib()
  result.update(peak_rss_mib=peak_mib, data_rss_mib=data_mib, over_data_mib=peak_mib - data_mib)
  print(json.dumps(result))


if __name__ == "__main__":
  main(sys.argv[1:])
