"""Several processes on 127.0.0.1 (CPU, gloo): the same results as one, one writer, faults.

The digits runs share one data directory, prepared by the single-process run first, and
one compilation cache (the resumed pair compiles nothing the killed pair compiled).
"""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from lincv import distributed, launch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TRAIN = os.path.join(ROOT, "train.py")
# K = 9: not a multiple of the 2 processes; three seeds, in seed blocks of 3 (process 1
# holds the padding, copies of the last member).
ARGS = ["--config", os.path.join(ROOT, "configs", "default.py:smoke"),
        "--config.sweep={'loss': ('softmax',), 'learning_rate': (1e-2, 3e-2, 1e-1), "
        "'seed': (0, 1, 2)}",
        "--config.epochs=12"]
RUN_FILES = ["checkpoint", "config.json", "metrics.jsonl", "plots", "results.csv",
             "summary.json", "tensorboard"]


def _env(data_dir):
  return dict(os.environ, TFDS_DATA_DIR=str(data_dir), XLA_FLAGS="",
              JAX_COMPILATION_CACHE_DIR=str(data_dir.parent / "jax_cache"),
              JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
              PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))


def _same_run(a, b):
  """results.csv (but the seconds), metrics.jsonl, summary.json's best and best.npz agree."""
  def rows(workdir):
    with open(os.path.join(workdir, "results.csv"), encoding="utf-8") as f:
      lines = f.read().splitlines()
    seconds = lines[0].split(",").index("seconds")
    return [[c for i, c in enumerate(line.split(",")) if i != seconds] for line in lines]

  def best(workdir):
    with open(os.path.join(workdir, "summary.json"), encoding="utf-8") as f:
      return json.load(f)["best"]

  assert rows(a) == rows(b)
  for name in ("metrics.jsonl",):
    with open(os.path.join(a, name), encoding="utf-8") as fa, \
         open(os.path.join(b, name), encoding="utf-8") as fb:
      assert fa.read() == fb.read()
  assert best(a) == best(b)
  assert _member_curves(a) == _member_curves(b)    # written once, by process 0
  pa, pb = (np.load(os.path.join(w, "checkpoint", "best.npz")) for w in (a, b))
  assert sorted(pa.files) == sorted(pb.files) == ["W", "b"]
  for k in pa.files:
    np.testing.assert_array_equal(pa[k], pb[k])


def _member_curves(workdir):
  """{member folder: [(tag, step, value), ...]} of the event files, in file order."""
  from tensorboard.backend.event_processing import event_file_loader  # pylint: disable=import-outside-toplevel
  folder = os.path.join(workdir, "tensorboard")
  out = {}
  for name in sorted(os.listdir(folder)):
    if name.startswith("member_"):
      events = event_file_loader.EventFileLoader(
          os.path.join(folder, name, "events.out.tfevents.0.lincv")).Load()
      out[name] = [(v.tag, e.step, v.simple_value) for e in events for v in e.summary.value
                   if v.tag.startswith(("epoch/", "final/"))]
  return out


@pytest.fixture(scope="module")
def single(tmp_path_factory):
  """The digits sweep, uninterrupted, in one process: (workdir, data dir)."""
  root = tmp_path_factory.mktemp("distributed")
  workdir = root / "single"
  out = subprocess.run([sys.executable, TRAIN, *ARGS, "--workdir", str(workdir)],
                       capture_output=True, text=True, env=_env(root / "tfds"), timeout=300)
  assert out.returncode == 0, out.stderr
  return workdir, root / "tfds"


def test_a_killed_pair_ends_with_one_line_and_resumes_to_the_single_process_result(
    single, tmp_path):
  reference, data_dir = single
  workdir = tmp_path / "pair"
  env = launch.environment(1, _env(data_dir))
  cmds = launch.commands([TRAIN, *ARGS, "--workdir", str(workdir)], 2, launch.free_port())
  procs = [subprocess.Popen(c, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True) for c in cmds]
  manifest = workdir / "checkpoint" / "sweep.json"
  while not manifest.exists() and procs[0].poll() is None:
    time.sleep(0.02)
  procs[1].send_signal(signal.SIGKILL)
  # Process 0 fails at its next collective; the coordination service's heartbeat bounds it.
  _, err = procs[0].communicate(timeout=2 * distributed.HEARTBEAT_SECONDS)
  procs[1].wait()
  assert procs[0].returncode == 1
  lines = err.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("train.py: error: process 0 of 2 stopped")
  assert "start every process again with the same command" in lines[0]
  with open(manifest, encoding="utf-8") as f:
    saved = json.load(f)["groups"]
  assert not saved["0"]["finished"]

  out = subprocess.run([sys.executable, "-m", "lincv.launch", "--processes", "2", "--",
                        TRAIN, *ARGS, "--workdir", str(workdir)],
                       capture_output=True, text=True, env=_env(data_dir), timeout=300)
  assert out.returncode == 0, out.stderr
  assert "loading data (resuming)" in out.stdout
  # Process 1 prints one line; process 0 the table and where it wrote.
  assert out.stdout.count("process 1 of 2: done; process 0 writes the results to") == 1
  assert out.stdout.count("best members by validation accuracy") == 1
  assert sorted(os.listdir(workdir)) == RUN_FILES == sorted(os.listdir(reference))
  with open(workdir / "summary.json", encoding="utf-8") as f:
    assert json.load(f)["device"].startswith("2 x cpu")
  _same_run(reference, workdir)


def _sweep_main(workdir, devices, cache, kill_at_epoch=None):
  """tests/_sweep_main.py (3 members per group) on `devices` CPU devices: its rows, or
  None once killed at an epoch."""
  env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
             JAX_COMPILATION_CACHE_DIR=str(cache), JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
  proc = subprocess.Popen([sys.executable, os.path.join(HERE, "_sweep_main.py"), workdir, "3"],
                          stdout=subprocess.PIPE, text=True, env=env)
  for line in proc.stdout:
    if (kill_at_epoch and line.startswith("progress")
        and json.loads(line[9:])["epoch"] == kill_at_epoch):
      proc.send_signal(signal.SIGKILL)
      proc.wait()
      return None
    if line.startswith("rows "):
      proc.wait()
      return json.loads(line[5:])
  raise AssertionError(f"_sweep_main.py ended with status {proc.wait()}")


def test_a_checkpoint_resumes_on_another_number_of_devices(tmp_path):
  """A checkpoint holds the members, not the padding of the devices that wrote it: one
  written on 4 devices (3 members per group, padded to 12) resumes on 1 to the
  uninterrupted result."""
  cache = tmp_path / "jax_cache"
  full = _sweep_main(str(tmp_path / "full"), 1, cache)
  workdir = str(tmp_path / "resumed")
  assert _sweep_main(workdir, 4, cache, kill_at_epoch=5) is None
  assert _sweep_main(workdir, 1, cache) == full


def test_launcher_forwards_the_first_failure_and_stops_the_others():
  code = ("import sys, time; i = int(sys.argv[-1].split('=')[1]); "
          "time.sleep(0.5) if i == 1 else None; sys.exit(3) if i == 1 else time.sleep(60)")
  procs = [subprocess.Popen(c) for c in launch.commands([sys.executable, "-c", code], 3, 1)]
  assert launch.supervise(procs) == 3
  assert [p.returncode for p in procs] == [-signal.SIGTERM, 3, -signal.SIGTERM]
  ok = "import sys; sys.exit(0)"
  assert launch.main(["--processes", "2", "--", sys.executable, "-c", ok]) == 0


def test_launcher_command_lines_and_environment():
  cmds = launch.commands(["train.py", "--workdir", "w"], 2, 1234)
  assert cmds[1] == [sys.executable, "train.py", "--workdir", "w",
                     "--coordinator=127.0.0.1:1234", "--num_processes=2", "--process_id=1"]
  env = launch.environment(2, {"XLA_FLAGS": "--xla_force_host_platform_device_count=4 --x=1"})
  assert env["JAX_PLATFORMS"] == "cpu"
  assert env["XLA_FLAGS"] == "--x=1 --xla_force_host_platform_device_count=2"
  assert launch.exit_status(-9) == 137


@pytest.mark.parametrize("port", ["70000", "0", "-1"])
def test_launcher_refuses_a_port_out_of_range(capsys, port):
  # 70000 reached jax.distributed as it was; 0 silently took a free port.
  with pytest.raises(SystemExit) as e:
    launch.main(["--processes", "2", f"--port={port}", "--", sys.executable, "-c", "pass"])
  assert e.value.code == 2
  assert capsys.readouterr().err.splitlines()[-1] == (
      f"python -m lincv.launch: error: --port must be a TCP port in 1..65535, got {port}; "
      "leave --port out for a free one")


def test_launcher_refuses_a_missing_command(capsys):
  with pytest.raises(SystemExit) as e:
    launch.main(["--processes", "2"])
  assert e.value.code == 2
  assert "no command to run" in capsys.readouterr().err
