"""lincv side by side with NumPy, scikit-learn and the machine's GEMM roofline, in one run.

  python -m bench --data ../shared/data/cifar10            # full run (about 55 minutes)
  python -m bench --data ../shared/data/cifar10 --quick    # a subset, under 2 minutes

Writes bench/RESULTS.md (tables, the machine, versions, date, and the figures of the
results.json it replaces beside the new ones; `bench.report`), bench/scaling.png (time
per member-epoch and peak memory over K = 1 .. 1,024) and
bench/results.json (the same figures; headline ratios sweep_k64_over_roofline,
time_to_40_speedup_vs_lbfgs, grid64_speedup_vs_gridsearchcv and the linear probe's
probe_* ratios as plain numbers, null where not measured), with lincv's strict JSON
writer: a NaN or infinite figure stops the run with its name. Every time is the median of --reps repetitions after a warm-up;
`bench.sweep`, `bench.compare`, `bench.probes` and `bench.probe` say what each comparison
runs. The linear probe section runs `bench.probe` on --probe-features FILE, else on a
stratified 5,000 (quick: 500) of the bench's own pixel rows (quick: no memory runs).
The quick run times K = 1 and 64 only, against the JAX roofline in the (K*C, D) layout.
The full run also tables the programs of `python train.py` (`bench.compile`).
"""

import argparse
import concurrent.futures
import json
import os
import shutil
import tempfile
import time
import types

from bench import common, compare, probe, probes, report
from bench import compile as bench_compile
from bench import sweep as bench_sweep
# Moved to bench.report; reachable here under their old names.
from bench.report import TARGETS, markdown  # pylint: disable=unused-import

HERE = os.path.dirname(os.path.abspath(__file__))


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--data", required=True, help="image folder root with train/ and test/")
  parser.add_argument("--quick", action="store_true", help="a subset, under 2 minutes")
  parser.add_argument("--out-dir", default=HERE, help="where RESULTS.md and results.json go")
  parser.add_argument("--reps", type=int, default=None, help="timed repetitions")
  parser.add_argument("--limit", type=int, default=None, help="cap on training images")
  parser.add_argument("--target", type=float, default=None,
                      help="test accuracy of the time-to-target race (0.40; quick: 0.30)")
  parser.add_argument("--probe-features", default=None,
                      help="features file of the linear probe section (default: the "
                      "bench's own rows, capped)")
  common.add_settle_flag(parser)
  args = parser.parse_args(argv)
  common.use_settle(args)
  res = run(args)
  os.makedirs(args.out_dir, exist_ok=True)
  res["previous"] = previous(os.path.join(args.out_dir, "results.json"))
  common.save_json(os.path.join(args.out_dir, "results.json"), res)
  report.scaling_plot(res, os.path.join(args.out_dir, "scaling.png"))
  with open(os.path.join(args.out_dir, "RESULTS.md"), "w", encoding="utf-8") as f:
    f.write(report.markdown(res))
  common.print_json({k: res[k] for k in (*report.TARGETS, "total_s")})


def run(args) -> dict:
  """Every comparison, in turn, on the same prepared rows; their figures in one dict."""
  cfg = _settings(args)
  t_start = time.perf_counter()
  log = lambda msg: print(f"[{time.perf_counter() - t_start:7.1f} s] {msg}", flush=True)
  prepared = common.load(args.data, cfg["limit"])
  n, d = prepared.x_train.shape
  batch = min(256, n)
  log(f"data: {n} train, {len(prepared.y_val)} val, {len(prepared.y_test)} test rows of {d}")
  res = {"mode": "quick" if args.quick else "full", "machine": common.machine(),
         "data": {"folder": os.path.basename(os.path.normpath(args.data)), "num_train": n,
                  "num_val": len(prepared.y_val), "num_test": len(prepared.y_test),
                  "dim": d, "classes": len(prepared.class_names), "batch_size": batch},
         "settings": dict(cfg)}
  cache = tempfile.mkdtemp(prefix="lincv-bench-")
  try:
    probes.save_cache(prepared, cache)
    res["sweep"] = _sweeps(prepared, cfg, batch, log)
    res["placement"] = bench_sweep.measure_placement(prepared, max(cfg["members"][:3]),
                                                     reps=cfg["reps"], batch_size=batch)
    log(f"placement: a host epoch {res['placement']['host_over_device']:.2f}x a device epoch")
    res["gradients"] = compare.gradients(prepared, members=max(cfg["members"][:3]),
                                         reps=cfg["reps"], batch_size=batch)
    log("gradients done")
    res["time_to_target"] = _time_to_target(cache, cfg, batch, log)
    res["grid"] = compare.grid(prepared, epochs=cfg["grid_epochs"], reps=cfg["grid_reps"],
                               batch_size=batch, warmup=not args.quick)
    log(f"grid: {res['grid']['speedup']:.1f}x")
    res["knn"] = compare.knn(prepared, reps=cfg["reps"])
    log(f"knn: {res['knn']['speedup']:.2f}x")
    res["memory"] = _memory(cache, cfg, batch, res["time_to_target"])
    if cfg["sweep_memory"]:
      _sweep_memory(cache, cfg, batch, res["sweep"], log)
    log("memory done")
    if cfg["compile_config"]:
      res["compile"] = bench_compile.measure([f"--config={cfg['compile_config']}"])
      res["compile"]["config"] = cfg["compile_config"]
      log(f"compile: {cfg['compile_config']} in {res['compile']['cold']['wall_s']:.1f} s "
          f"cold, {res['compile']['warm']['wall_s']:.1f} s warm")
    res["probe"] = _probe(prepared, cfg, args.probe_features, log)
  finally:
    shutil.rmtree(cache, ignore_errors=True)
  res.update(headlines(res))
  res["total_s"] = time.perf_counter() - t_start
  res["load_average_end"] = [round(v, 2) for v in os.getloadavg()]
  return res


def previous(path: str) -> dict | None:
  """The headline figures and per-K sweep figures of the run that wrote `path` before,
  for the report to show beside the new ones; None if there was none."""
  try:
    with open(path, encoding="utf-8") as f:
      old = json.load(f)
  except (OSError, ValueError):
    return None
  return {"date": old["machine"]["date"], "mode": old.get("mode"),
          **{name: old.get(name) for name in report.TARGETS},
          "sweep": {k: {f: r.get(f) for f in report.SWEEP_FIGURES}
                    for k, r in old.get("sweep", {}).items()}}


def _settings(args):
  if args.quick:
    return dict(limit=args.limit or 5000, members=(1, 64), layouts=("KC,D",),
                reps=args.reps or 1, probe_reps=1, probe_warmup=0, grid_epochs=1,
                grid_reps=1, target=args.target or 0.30, lbfgs_max_iters=100,
                sgd_max_epochs=3, t2t_epochs=3, memory_workers=6, path_rows=500,
                path_reps=1, path_memory=False, sweep_memory=False, compile_config=None)
  return dict(limit=args.limit, members=(1, 16, 64, 256, 1024), layouts=bench_sweep.LAYOUTS,
              reps=args.reps or 3, probe_reps=3, probe_warmup=1, grid_epochs=2, grid_reps=3,
              target=args.target or 0.40, lbfgs_max_iters=300, sgd_max_epochs=10,
              t2t_epochs=3, memory_workers=2, path_rows=5000, path_reps=1, path_memory=True,
              sweep_memory=True, compile_config="configs/default.py")


def _sweeps(prepared, cfg, batch, log) -> dict:
  """Population size K (as a string) -> `bench.sweep.measure`'s figures."""
  out = {}
  for k in cfg["members"]:
    # The far end of the curve (K > 256, an epoch of a minute here): one repetition,
    # against the JAX roofline in the layout that wins at every smaller K.
    big = k > 256
    out[str(k)] = bench_sweep.measure(prepared, k, reps=1 if big else cfg["reps"], warmup=1,
                                      batch_size=batch, numpy=not big, single=k == 1,
                                      numpy_softmax=not big,
                                      layouts=("KC,D",) if big else cfg["layouts"])
    log(f"sweep K={k}: {out[str(k)]['sweep_over_roofline']:.3f}x roofline")
  return out


def _sweep_memory(cache, cfg, batch, sweeps, log) -> None:
  """Adds to each K of `sweeps` the peak memory of one epoch of K members, each in a
  fresh process (one at a time: the largest populations need most of the machine)."""
  for k in cfg["members"]:
    r = probes.run_probe("sweep_epoch", cache, members=k, batch_size=batch)
    sweeps[str(k)].update({name: r[name] for name in ("peak_rss_mib", "over_data_mib")})
    log(f"sweep K={k}: peak memory {r['peak_rss_mib']:.0f} MiB")


def _time_to_target(cache, cfg, batch, log) -> dict:
  """The race to `cfg["target"]` test accuracy, each approach in fresh processes."""
  kw = dict(reps=cfg["probe_reps"], warmup=cfg["probe_warmup"], target=cfg["target"])
  # Each cold run compiles into an empty persistent cache; the warm runs then read the
  # last one's.
  jax_cache = lambda i: {"compilation_cache": os.path.join(cache, f"jax-cache-{i}")}
  last = cfg["probe_reps"] + cfg["probe_warmup"] - 1
  t2t = {"target": cfg["target"]}
  t2t["lincv"] = probes.median("lincv_to_target", cache, epochs=cfg["t2t_epochs"],
                               batch_size=batch, per_run=jax_cache, **kw)
  log(f"lincv to target: {t2t['lincv']['seconds']:.2f} s")
  t2t["lincv_warm_cache"] = probes.median(
      "lincv_to_target", cache, epochs=cfg["t2t_epochs"], batch_size=batch,
      per_run=lambda i: jax_cache(last), **kw)
  log(f"lincv to target, warm compilation cache: {t2t['lincv_warm_cache']['seconds']:.2f} s")
  t2t["lbfgs"] = probes.median("lbfgs_to_target", cache, max_iters=cfg["lbfgs_max_iters"], **kw)
  log(f"lbfgs to target: {t2t['lbfgs']['seconds']:.2f} s")
  t2t["sgd"] = probes.median("sgd_to_target", cache, max_epochs=cfg["sgd_max_epochs"], **kw)
  log(f"SGDClassifier: {t2t['sgd']['seconds']:.2f} s")
  return t2t


def _memory(cache, cfg, batch, t2t) -> dict:
  """Approach -> peak memory of a fresh process running it once (the time-to-target
  runs measured theirs already)."""
  mem = {report.ONE_MEMBER: t2t["lincv"],
         "LogisticRegression lbfgs (to target)": t2t["lbfgs"],
         "SGDClassifier (to target)": t2t["sgd"]}
  runs = (
      (report.SWEEP_K64, "sweep_epoch", dict(members=64, batch_size=batch)),
      ("NumPy loop K=64, one epoch", "numpy_epoch", dict(members=64, batch_size=batch)),
      ("NumPy loop K=1, one epoch", "numpy_epoch", dict(members=1, batch_size=batch)),
      ("SGDClassifier, one grid fit", "sgd_fit", dict(epochs=1)),
      ("lincv k-NN", "knn_lincv", {}), ("KNeighborsClassifier brute", "knn_sklearn", {}))
  # Peak memory is per process, so these untimed probes may run side by side.
  with concurrent.futures.ThreadPoolExecutor(cfg["memory_workers"]) as pool:
    futures = [pool.submit(probes.run_probe, name, cache, **kw) for _, name, kw in runs]
    for (label, _, _), future in zip(runs, futures):
      mem[label] = future.result()
  return {label: {k: r[k] for k in ("peak_rss_mib", "data_rss_mib", "over_data_mib")}
          for label, r in mem.items()}


def _probe(prepared, cfg, features, log) -> dict:
  """The linear probe's path (`bench.probe`) on a features file, or on the bench's own
  rows: `path_rows` training rows (a stratified subset), every validation and test row."""
  if features:
    rows, source = probe.load(features, None), os.path.basename(os.path.normpath(features))
  else:
    from lincv.data import stratified_subset  # pylint: disable=import-outside-toplevel
    keep = stratified_subset(prepared.y_train, min(cfg["path_rows"], len(prepared.y_train)))
    rows = types.SimpleNamespace(
        **{f: getattr(prepared, f) for f in probes.FIELDS}, class_names=prepared.class_names)
    rows.x_train, rows.y_train = prepared.x_train[keep], prepared.y_train[keep]
    source = None
  out = probe.measure(rows, probe.strengths(16), reps=cfg["path_reps"],
                      with_memory=cfg["path_memory"], log=log)
  return {"features": source, **out}


def headlines(res) -> dict:
  """The headline ratios of `report.TARGETS`, from the sections' figures.

  A ratio that was not measured (no K=64 sweep, no placement run, an approach that never reached the
  target accuracy, no memory probes) is None, written as null; every other figure must
  be finite. The memory ratios are peak memory over (float32 rows + 0.3 GiB), see
  `report.memory_over_rows`.
  """
  t2t, mem = res["time_to_target"], res.get("memory", {})
  lincv_t, warm, lbfgs_t = t2t["lincv"], t2t["lincv_warm_cache"], t2t["lbfgs"]
  over_rows = lambda label: (report.memory_over_rows(mem[label]["peak_rss_mib"], res["data"])
                             if label in mem else None)
  ratio = lambda ours: (lbfgs_t["seconds"] / ours["seconds"]
                        if ours["reached"] and lbfgs_t["reached"] else None)
  one = res["sweep"]["1"]
  return {"sweep_k64_over_roofline": res["sweep"].get("64", {}).get("sweep_over_roofline"),
          "single_member_epoch_s": one["single_member_epoch_s"],
          "single_over_k1_roofline": (
              one["single_member_epoch_s"] / one["jax_roofline_per_member_epoch_s"]
              if "jax_roofline_per_member_epoch_s" in one else None),
          "time_to_40_speedup_vs_lbfgs": ratio(lincv_t),
          "time_to_40_speedup_vs_lbfgs_warm_cache": ratio(warm),
          "grid64_speedup_vs_gridsearchcv": res["grid"]["speedup"],
          "placement_host_over_device": res.get("placement", {}).get("host_over_device"),
          "memory_one_member_over_rows": over_rows(report.ONE_MEMBER),
          "memory_k64_over_rows": over_rows(report.SWEEP_K64),
          **{k: res["probe"][k] if "probe" in res else None for k in probe.HEADLINES}}


if __name__ == "__main__":
  main()
