"""bench: `python -m bench --quick` and `python -m bench.sweep` run on a tiny image folder,
`python -m bench.probe` on a tiny features file, and write their figures (no timing
assertions); the figures go out as strict JSON."""

import fcntl
import json
import os
import pathlib
import subprocess
import sys
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:  # bench is a folder of scripts beside lincv, not an installed package
  sys.path.insert(0, ROOT)

from bench import __main__ as bench_main  # pylint: disable=wrong-import-position
from bench import common, probe, probes, report  # pylint: disable=wrong-import-position
from bench import sweep as bench_sweep  # pylint: disable=wrong-import-position
from _sweep_main import blobs  # pylint: disable=wrong-import-position


def _image_folder(root, classes=3, per_class=(16, 4), size=8):
  """root/{train,test}/<class>/*.png: noisy images whose mean colour gives the class."""
  rng = np.random.default_rng(0)
  for split, count in zip(("train", "test"), per_class):
    for c in range(classes):
      folder = root / split / f"class{c}"
      folder.mkdir(parents=True)
      for i in range(count):
        base = np.zeros(3)
        base[c % 3] = 160
        pixels = np.clip(base + rng.normal(0, 40, (size, size, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"{i}.png")
  return root


@pytest.fixture(scope="session")
def runs(tmp_path_factory):
  """Both commands, run side by side: (bench --quick output dir and JSON, bench.sweep JSON).

  Run once for all test processes: the first to need them runs them, under a lock in
  the folder the processes share; the others wait for it and read its outputs.
  """
  shared = tmp_path_factory.getbasetemp().parent if os.environ.get(
      "PYTEST_XDIST_WORKER") else tmp_path_factory.getbasetemp()
  with open(shared / "bench-runs.lock", "w", encoding="utf-8") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    done = shared / "bench-runs.json"
    if not done.exists():
      try:
        outputs = _run_both(shared / "bench-runs")
      except BaseException as e:
        done.write_text(json.dumps({"failed": f"{type(e).__name__}: {e}"[-3000:]}))
        raise
      done.write_text(json.dumps([str(outputs[0]), *outputs[1:]]))
    outputs = json.loads(done.read_text())
  if isinstance(outputs, dict):
    pytest.fail(f"the bench commands failed in another test process: {outputs['failed']}")
  out_dir, quick, sweep = outputs
  return pathlib.Path(out_dir), quick, sweep


def _run_both(tmp):
  tmp.mkdir()
  folder = _image_folder(tmp / "images")
  environ = dict(os.environ, TFDS_DATA_DIR=str(tmp / "tfds"), PYTHONPATH=ROOT)
  # The image folder is prepared for tfds once, before the two commands read it.
  prepare = _start(["lincv.data", "--folder", str(folder)], environ)
  _, stderr = prepare.communicate(timeout=300)
  assert prepare.returncode == 0, stderr[-3000:]
  out_dir = tmp / "out"
  # --settle 0: no rest before the timed calls, whose times no test compares.
  sweep = _start(["bench.sweep", "--data", str(folder), "--members", "4", "--reps", "1",
                  "--batch-size", "8", "--no-numpy", "--settle", "0"], environ)
  quick = _start(["bench", "--data", str(folder), "--quick", "--out-dir", str(out_dir),
                  "--settle", "0"], environ)
  return out_dir, _finish(quick), _finish(sweep)


def _start(args, environ):
  return subprocess.Popen([sys.executable, "-m", *args], cwd=ROOT, env=environ,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc):
  """Waits for `proc`; the JSON object on the last line of its output."""
  stdout, stderr = proc.communicate(timeout=300)
  assert proc.returncode == 0, stderr[-3000:]
  return json.loads(stdout.strip().splitlines()[-1])


def test_bench_quick_writes_results(runs):
  out_dir, last, _ = runs
  results = json.loads((out_dir / "results.json").read_text())
  for key in ("sweep_k64_over_roofline", "time_to_40_speedup_vs_lbfgs",
              "grid64_speedup_vs_gridsearchcv"):
    assert key in results and key in last
    assert results[key] is None or isinstance(results[key], (int, float))
  assert isinstance(results["sweep_k64_over_roofline"], float)
  assert isinstance(results["grid64_speedup_vs_gridsearchcv"], float)
  for section in ("sweep", "placement", "time_to_target", "grid", "knn", "gradients",
                  "memory", "machine", "probe"):
    assert section in results
  assert results["grid"]["configurations"] == 64
  assert results["grid"]["lincv_train_accuracy"]["median_s"] > 0   # timed beside
  assert results["data"]["num_train"] == 43  # 48 images, 10% held out for validation
  text = (out_dir / "RESULTS.md").read_text()
  for heading in ("## Targets", "## Sweep", "## Data placement", "## Time to",
                  "## 64-configuration grid",
                  "## k-NN", "## Hand-derived gradient", "## Peak memory",
                  "## Linear probe"):
    assert heading in text
  assert "jax " in text and "scikit-learn " in text
  assert "| lincv sweep, training accuracy too | " in text
  placement = results["placement"]
  assert placement["max_abs_param_diff"] == 0.0  # host and device train the same way
  assert results["placement_host_over_device"] == placement["host_over_device"] > 0


def test_bench_quick_measures_peak_memory(runs):
  """The memory probes ran in fresh processes and gave the memory headlines."""
  out_dir, last, _ = runs
  results = json.loads((out_dir / "results.json").read_text())
  memory = results["memory"]
  for label in (report.ONE_MEMBER, report.SWEEP_K64, "NumPy loop K=1, one epoch"):
    r = memory[label]
    assert r["peak_rss_mib"] >= r["data_rss_mib"] > 0
    # Each figure is rounded to 4 significant digits (0.05 MiB here) on its own.
    assert r["over_data_mib"] == pytest.approx(r["peak_rss_mib"] - r["data_rss_mib"], abs=0.16)
  for key, label in (("memory_one_member_over_rows", report.ONE_MEMBER),
                     ("memory_k64_over_rows", report.SWEEP_K64)):
    assert last[key] == results[key] == pytest.approx(
        report.memory_over_rows(memory[label]["peak_rss_mib"], results["data"]), rel=1e-3)
  assert "/ (rows + allowance)" in (out_dir / "RESULTS.md").read_text()


def test_bench_sweep_prints_figures(runs):
  figures = runs[2]
  for key in ("per_member_epoch_s", "roofline_per_member_epoch_s", "single_member_epoch_s",
              "sweep_over_roofline"):
    assert figures[key] > 0
  assert figures["members"] == 4 and figures["steps_per_epoch"] == 43 // 8


def _strict_loads(text):
  def refuse(constant):
    raise AssertionError(f"non-finite {constant} in the JSON")
  return json.loads(text, parse_constant=refuse)


def test_results_are_strict_json(runs):
  out_dir, _, _ = runs
  _strict_loads((out_dir / "results.json").read_text())


def test_a_nonfinite_figure_is_refused_and_a_missing_one_is_null(tmp_path):
  path = tmp_path / "results.json"
  common.save_json(str(path), {"sweep_k64_over_roofline": None, "grid": {"speedup": 51.23456}})
  first = path.read_text()
  assert _strict_loads(first) == {"sweep_k64_over_roofline": None, "grid": {"speedup": 51.23}}
  with pytest.raises(ValueError, match=r"results\.json: field grid\.speedup is nan"):
    common.save_json(str(path), {"grid": {"speedup": float("nan")}})
  assert path.read_text() == first  # the refused write left the old file whole
  with pytest.raises(ValueError, match=r"field total_s is inf"):
    common.print_json({"total_s": float("inf")})


def test_headline_not_measured_is_none():
  """No K=64 sweep and an lbfgs run that never reached the target: null, not NaN."""
  reached = {"seconds": 2.0, "reached": True}
  res = {"sweep": {"1": {"single_member_epoch_s": 0.1}}, "grid": {"speedup": 60.0},
         "time_to_target": {"lincv": reached, "lincv_warm_cache": reached,
                            "lbfgs": {"seconds": 9.0, "reached": False}}}
  assert bench_main.headlines(res) == {
      "sweep_k64_over_roofline": None, "single_member_epoch_s": 0.1,
      "single_over_k1_roofline": None, "time_to_40_speedup_vs_lbfgs": None,
      "time_to_40_speedup_vs_lbfgs_warm_cache": None,
      "grid64_speedup_vs_gridsearchcv": 60.0, "memory_one_member_over_rows": None,
      "memory_k64_over_rows": None, "placement_host_over_device": None,
      "probe_lbfgs_speedup_vs_cold": None, "probe_lbfgs_speedup_vs_warm": None,
      "probe_ridge_speedup_vs_loop": None, "probe_ridge_speedup_vs_cv": None,
      "probe_max_rel_objective_diff": None}
  res["time_to_target"]["lbfgs"]["reached"] = True
  assert bench_main.headlines(res)["time_to_40_speedup_vs_lbfgs"] == 4.5


def test_memory_headlines_are_peak_over_rows_and_allowance():
  """1,000 rows of 2**18 float32 values in all are 1,000 MiB; with 0.3 GiB, 1,307.2 MiB."""
  data = {"num_train": 800, "num_val": 100, "num_test": 100, "dim": 2**18}
  assert report.rows_mib(data) == 1000
  reached = {"seconds": 2.0, "reached": True}
  res = {"sweep": {"1": {"single_member_epoch_s": 0.1}}, "grid": {"speedup": 60.0},
         "time_to_target": {"lincv": reached, "lincv_warm_cache": reached, "lbfgs": reached},
         "data": data, "memory": {report.ONE_MEMBER: {"peak_rss_mib": 1307.2},
                                  report.SWEEP_K64: {"peak_rss_mib": 2614.4}}}
  figures = bench_main.headlines(res)
  assert figures["memory_one_member_over_rows"] == pytest.approx(1.0)
  assert figures["memory_k64_over_rows"] == pytest.approx(2.0)
  assert report.TARGETS["memory_k64_over_rows"] == 1.3
  verdict = report._verdict  # pylint: disable=protected-access
  assert verdict("memory_k64_over_rows", 2.0) == "**missed**"
  assert verdict("memory_one_member_over_rows", 1.0) == "met"


def test_probe_cache_round_trips(tmp_path):
  rows = {f: np.arange(6, dtype=np.float32).reshape(3, 2) if f.startswith("x")
          else np.arange(3, dtype=np.int32) for f in probes.FIELDS}
  probes.save_cache(types.SimpleNamespace(**rows, class_names=("a", "b")), str(tmp_path))
  back = probes.load_cache(str(tmp_path))
  assert back.class_names == ("a", "b")
  for f in probes.FIELDS:
    np.testing.assert_array_equal(getattr(back, f), rows[f])
    assert getattr(back, f).ctypes.data % 64 == 0  # so that JAX on CPU shares them
  _strict_loads((tmp_path / "meta.json").read_text())


def test_bench_memory_measures_the_two_memory_targets(tmp_path, monkeypatch):
  """`python -m bench.memory`: the two probes the memory targets judge, in fresh processes."""
  from bench import memory  # pylint: disable=import-outside-toplevel
  monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
  monkeypatch.setenv("PYTHONPATH", ROOT)
  res = memory.measure(str(_image_folder(tmp_path / "images")), target=0.30)
  assert res["data"]["num_train"] == 43
  for key, label in (("memory_one_member_over_rows", report.ONE_MEMBER),
                     ("memory_k64_over_rows", report.SWEEP_K64)):
    r = res["memory"][label]
    assert r["peak_rss_mib"] >= r["data_rss_mib"] > 0
    assert res[key] == report.memory_over_rows(r["peak_rss_mib"], res["data"])


def test_bench_quick_runs_the_linear_probe_on_its_rows(runs):
  """The quick bench's probe section: the path on its own rows, both objectives agreeing."""
  out_dir, last, _ = runs
  results = json.loads((out_dir / "results.json").read_text())
  p = results["probe"]
  assert p["features"] is None and p["num_train"] == 43 and len(p["strengths"]) == 16
  assert p["memory"] is None  # quick mode leaves the memory runs to bench.probe
  assert p["probe_max_rel_objective_diff"] <= 1e-3
  for key in ("probe_lbfgs_speedup_vs_cold", "probe_lbfgs_speedup_vs_warm",
              "probe_ridge_speedup_vs_loop"):
    assert key in report.TARGETS and last[key] == results[key] == p[key] > 0
  assert "Peak memory not measured" in (out_dir / "RESULTS.md").read_text()


def _features_file(path, classes=3, rows=(300, 100), dim=20, seed=0):
  """An .npz of Gaussian classes that overlap (no class is separable)."""
  rng = np.random.default_rng(seed)
  means = rng.normal(0, 1, (classes, dim))
  arrays = {}
  for split, n in zip(("train", "test"), rows):
    y = rng.integers(0, classes, n).astype(np.int32)
    arrays[f"x_{split}"] = (means[y] + rng.normal(0, 1.5, (n, dim))).astype(np.float32)
    arrays[f"y_{split}"] = y
  np.savez(path, **arrays)
  return str(path)


def test_bench_probe_prints_the_path_figures(tmp_path):
  """lincv's L-BFGS and scikit-learn's loops reach the same objective on every strength;
  ridge predicts as RidgeClassifier."""
  path = _features_file(tmp_path / "tiny.npz")
  environ = dict(os.environ, PYTHONPATH=ROOT)
  figures = _finish(_start(["bench.probe", "--features", path, "--strengths", "4",
                            "--no-memory"], environ))
  _strict_loads(json.dumps(figures))
  assert figures["num_train"] == 270 and figures["num_test"] == 100 and figures["dim"] == 20
  lb, rg = figures["lbfgs"], figures["ridge"]
  assert len(figures["strengths"]) == 4 == len(lb["objective"]["sklearn_cold"])
  assert figures["probe_max_rel_objective_diff"] <= 1e-3
  assert max(lb["max_rel_objective_diff_cold"], lb["max_rel_objective_diff_warm"]) <= 1e-3
  assert all(0 < i <= lb["max_iters"] for i in lb["iterations"]["lincv_population"])
  for side in ("cold", "warm"):      # at how many strengths lincv went deeper, 0 to 4
    assert lb[f"lincv_lower_{side}"] in range(5)
  assert rg["agreement_loop"] == rg["agreement_cv"] == 1.0
  for key in ("probe_lbfgs_speedup_vs_cold", "probe_lbfgs_speedup_vs_warm",
              "probe_ridge_speedup_vs_loop", "probe_ridge_speedup_vs_cv"):
    assert figures[key] > 0
  assert figures["memory"] is None


def test_bench_probe_runs_one_path_with_only(tmp_path):
  """`--only ridge`: the ridge path alone (L-BFGS on 45,000 rows takes hours); the L-BFGS
  headlines are null."""
  path = _features_file(tmp_path / "tiny.npz")
  environ = dict(os.environ, PYTHONPATH=ROOT)
  figures = _finish(_start(["bench.probe", "--features", path, "--strengths", "3",
                            "--only", "ridge", "--no-memory"], environ))
  _strict_loads(json.dumps(figures))
  assert "lbfgs" not in figures and figures["ridge"]["agreement_loop"] == 1.0
  assert figures["probe_ridge_speedup_vs_loop"] > 0 and figures["probe_ridge_speedup_vs_cv"] > 0
  for key in ("probe_lbfgs_speedup_vs_cold", "probe_lbfgs_speedup_vs_warm",
              "probe_max_rel_objective_diff"):
    assert figures[key] is None


def test_bench_probe_measures_a_side_in_a_fresh_process(tmp_path, monkeypatch):
  """The memory runs: each side once in its own process, on the rows written as .npy."""
  rows = {f: np.ones((12, 4), np.float32) if f.startswith("x")
          else np.arange(12, dtype=np.int32) % 3 for f in probes.FIELDS}
  d = types.SimpleNamespace(**rows, class_names=("a", "b", "c"))
  monkeypatch.setenv("PYTHONPATH", ROOT)
  monkeypatch.setattr(probe, "MEMORY_RUNS", (("RidgeClassifier, one fit", "ridge_sklearn"),))
  (r,) = probe.memory(d, [1e-3, 1e-2]).values()
  assert r["peak_rss_mib"] >= r["data_rss_mib"] > 0


@pytest.mark.parametrize("args, message", [
    (["--strengths", "1"], "--strengths must be >= 2, got 1"),
    (["--lo", "1", "--hi", "0.1"], "need 0 < --lo < --hi"),
    (["--limit", "0"], "--limit must be >= 1"),
])
def test_bench_probe_refuses_bad_arguments(tmp_path, capsys, args, message):
  # In the test's process (a process costs seconds of imports); the refusal below starts one.
  path = _features_file(tmp_path / "tiny.npz", rows=(30, 10))
  with pytest.raises(SystemExit) as e:
    probe.main(["--features", path, *args])
  (line,) = capsys.readouterr().err.strip().splitlines()
  assert e.value.code == 2 and line.startswith("bench.probe: ") and message in line


def test_bench_probe_refuses_two_classes(tmp_path):
  path = _features_file(tmp_path / "two.npz", classes=2, rows=(30, 10))
  proc = _start(["bench.probe", "--features", path], dict(os.environ, PYTHONPATH=ROOT))
  _, stderr = proc.communicate(timeout=120)
  (line,) = stderr.strip().splitlines()
  assert proc.returncode == 2 and "needs at least 3 classes" in line


def test_bench_halving_times_the_sweep_with_and_without_halving(tmp_path, monkeypatch, capsys):
  """`python -m bench.halving` on a small folder: both sweeps timed and selected, and the
  member-epochs of the ideal ratio."""
  from bench import halving  # pylint: disable=import-outside-toplevel
  monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
  monkeypatch.setattr(common, "SETTLE_S", common.SETTLE_S)   # restored after --settle 0
  assert halving.member_epochs(64, True) == 320 and halving.member_epochs(64, False) == 1024
  halving.main(["--data", str(_image_folder(tmp_path / "images")), "--members", "8",
                "--reps", "1", "--warmup", "0", "--batch-size", "8", "--settle", "0"])
  assert common.SETTLE_S == 0.0
  figures = _strict_loads(capsys.readouterr().out.strip().splitlines()[-1])
  assert figures["members"] == 8 and figures["ideal"] == halving.member_epochs(8, True) / 128
  assert figures["halving"]["median_s"] > 0 and figures["full"]["median_s"] > 0
  assert figures["halving_over_full"] == pytest.approx(
      figures["halving"]["median_s"] / figures["full"]["median_s"], rel=1e-3)
  assert set(figures["best_val_accuracy"]) == {"halving", "full"}



def test_bench_compile_tables_the_programs_a_run_builds():
  """`bench.compile`'s recorder, as its child process uses it: each program jitted here is
  traced, lowered and compiled once, a second call builds nothing, and the table and the
  report's section show those counts."""
  from jax import monitoring  # pylint: disable=import-outside-toplevel
  from bench import compile as bench_compile  # pylint: disable=import-outside-toplevel
  recorder = bench_compile.Recorder()
  monitoring.register_event_duration_secs_listener(recorder.on_duration)
  monitoring.register_event_listener(recorder.on_event)
  try:
    @jax.jit
    def bench_compile_probe(x):
      return jnp.sin(x) * 2.0
    for _ in range(2):
      bench_compile_probe(jnp.arange(3.0)).block_until_ready()
  finally:
    monitoring.unregister_event_duration_listener(recorder.on_duration)
    monitoring.unregister_event_listener(recorder.on_event)
  rows = {r["program"]: r for r in recorder.figures()}
  probe_row = rows["bench_compile_probe"]
  assert probe_row["traces"] == probe_row["lowers"] == probe_row["compiles"] == 1
  assert probe_row["compile_s"] > 0
  run = {"wall_s": 1.0, "phases": {"import": 0.5, "total": 0.9}, "programs": recorder.figures()}
  text = bench_compile.table(run)
  assert "| bench_compile_probe | 1 | 1 | 1 |" in text and "wall 1.00 s (import 0.50 s" in text
  section = "\n".join(report._compile(  # pylint: disable=protected-access
      {"compile": {"config": "configs/default.py", "cold": run, "warm": run}}))
  assert "## Compilation" in section and section.count("| bench_compile_probe |") == 2


def test_bench_keeps_the_previous_figures_beside_the_new(tmp_path):
  """`bench.__main__.previous` reads the run a new one replaces: headlines and per-K
  sweep figures, for the report's `previous` columns; nothing when there was none."""
  assert bench_main.previous(str(tmp_path / "results.json")) is None
  old = {"machine": {"date": "2026-11-22 10:00 UTC"}, "mode": "full",
         "sweep_k64_over_roofline": 1.23, "single_member_epoch_s": 0.158,
         "sweep": {"64": {"per_member_epoch_s": 0.07, "sweep_over_roofline": 1.23,
                          "numpy_roofline_per_member_epoch_s": 0.09}}}
  (tmp_path / "results.json").write_text(json.dumps(old))
  prev = bench_main.previous(str(tmp_path / "results.json"))
  assert prev["date"] == "2026-11-22 10:00 UTC" and prev["sweep_k64_over_roofline"] == 1.23
  assert prev["single_over_k1_roofline"] is None      # not measured back then
  assert prev["sweep"]["64"] == {"per_member_epoch_s": 0.07,
                                 "jax_roofline_per_member_epoch_s": None,
                                 "sweep_over_roofline": 1.23, "peak_rss_mib": None}


def test_bench_sweep_times_seed_blocks_against_one_order_per_member(monkeypatch):
  monkeypatch.setattr(common, "SETTLE_S", 0.0)   # no rest: no time is compared here
  x, y = blobs(200)
  prepared = types.SimpleNamespace(x_train=x[:150], y_train=y[:150], x_val=x[150:],
                                   y_val=y[150:], class_names=[str(c) for c in range(4)])
  out = bench_sweep.measure_seed_blocks(prepared, 8, 2, reps=1, warmup=0, batch_size=16)
  assert (out["block"], out["own_block"], out["chunk"]) == (4, 1, 8)
  assert out["own_over_blocks"] > 0
  assert out["max_abs_param_diff"] < 1e-5    # the same members, to float32 rounding


@pytest.mark.parametrize("settle", ["-1", "nan", "inf"])
def test_a_settle_that_is_not_a_finite_number_of_seconds_is_refused(settle, monkeypatch):
  monkeypatch.setattr(common, "SETTLE_S", common.SETTLE_S)
  with pytest.raises(SystemExit, match=f"--settle must be a finite number of seconds >= 0, "
                                       f"got {float(settle)}"):
    bench_sweep.main(["--data", "unused", f"--settle={settle}"])
