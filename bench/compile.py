"""Where a run's time goes: imports, each compiled program, training, the report.

  python -m bench.compile                                      # configs/default.py
  python -m bench.compile --config configs/cifar10_linear.py \\
      --config.data.folder=../shared/data/cifar10 --config.data.limit=5000

Runs `python train.py` with the given config and overrides twice, each in a fresh
process and run directory: first with an empty compilation cache (`lincv.compile_cache`),
then with the cache the first run filled, as a user's first and second runs of a
config. For each run it prints the wall time of the process, where the time went
(importing, loading the data, training, evaluation and the report: timers around the
functions `lincv.experiment` calls) and a table of the programs JAX built: for each, how many
times it was traced, lowered and compiled (or read from the cache), and the seconds of
each. The last line printed is the figures as strict JSON.

JAX reports these through `jax.monitoring`: tracing (`jaxpr_trace_duration`), lowering
to StableHLO (`jaxpr_to_mlir_module_duration`) and the backend compilation, which on a
cache hit is the time to read the executable (`backend_compile_duration`).
"""

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import time

from bench import common

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EVENTS = {"jaxpr_trace_duration": "trace", "jaxpr_to_mlir_module_duration": "lower",
          "backend_compile_duration": "compile"}


class Recorder:
  """Collects jax.monitoring's per-program durations and cache hits."""

  def __init__(self):
    self.programs = collections.defaultdict(collections.Counter)
    self._hits = 0

  def on_duration(self, event: str, seconds: float, **kwargs) -> None:
    phase = EVENTS.get(event.rsplit("/", 1)[-1])
    if phase is None:
      return
    name = kwargs.get("fun_name", "?")
    name = name[4:-1] if name.startswith("jit(") else name
    entry = self.programs[name]
    entry[phase + "_s"] += seconds
    entry[phase + "s"] += 1
    if phase == "compile" and self._hits:  # the hit this compilation request read
      entry["cache_hits"] += self._hits
      self._hits = 0

  def on_event(self, event: str, **kwargs) -> None:
    del kwargs
    if event == "/jax/compilation_cache/cache_hits":
      self._hits += 1

  def figures(self) -> list[dict]:
    rows = [{"program": name, **{k: common.rounded(v) for k, v in c.items()}}
            for name, c in self.programs.items()]
    total = lambda r: sum(r.get(p + "_s", 0.0) for p in EVENTS.values())
    return sorted(rows, key=total, reverse=True)


def child(argv: list[str], out: str) -> None:
  """Runs train.py's main in this process, recording, and writes the figures to `out`."""
  t0 = time.perf_counter()
  from jax import monitoring  # pylint: disable=import-outside-toplevel
  recorder = Recorder()
  monitoring.register_event_duration_secs_listener(recorder.on_duration)
  monitoring.register_event_listener(recorder.on_event)
  sys.path.insert(0, ROOT)
  import train  # pylint: disable=import-outside-toplevel
  phases = collections.Counter()
  timed(phases)
  phases["import"] = time.perf_counter() - t0
  try:
    train.main(["train.py", *argv])
  finally:
    phases["total"] = time.perf_counter() - t0
    with open(out, "w", encoding="utf-8") as f:
      json.dump({"phases": {k: common.rounded(v) for k, v in phases.items()},
                 "programs": recorder.figures()}, f)
  from lincv import distributed  # pylint: disable=import-outside-toplevel
  distributed.exit_without_teardown()   # as `python train.py` ends


def timed(phases: collections.Counter) -> None:
  """Wraps the functions `lincv.experiment` calls for each phase of a run in timers."""
  from lincv import inputs, methods, report  # pylint: disable=import-outside-toplevel
  for module, name, phase in ((inputs, "load", "data"), (methods, "train", "train"),
                              (methods, "evaluate", "evaluate"), (report, "write", "report")):
    fn = getattr(module, name)

    def wrapper(*args, _fn=fn, _phase=phase, **kwargs):
      t = time.perf_counter()
      try:
        return _fn(*args, **kwargs)
      finally:
        phases[_phase] += time.perf_counter() - t
    setattr(module, name, wrapper)


def measure(argv: list[str]) -> dict:
  """A cold and a warm run of train.py with `argv`, each in a fresh process."""
  res = {}
  with tempfile.TemporaryDirectory(prefix="lincv-compile-") as tmp:
    env = dict(os.environ, LINCV_COMPILATION_CACHE=os.path.join(tmp, "cache"))
    for run in ("cold", "warm"):
      out = os.path.join(tmp, f"{run}.json")
      cmd = [sys.executable, "-m", "bench.compile", "--child", out, "--",
             *argv, f"--workdir={os.path.join(tmp, run)}"]
      t = time.perf_counter()
      subprocess.run(cmd, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
      wall = time.perf_counter() - t
      with open(out, encoding="utf-8") as f:
        res[run] = {"wall_s": common.rounded(wall), **json.load(f)}
  return res


def table(run: dict) -> str:
  """The programs of one run as a markdown table, with the phase times above it."""
  phases = ", ".join(f"{k} {v:.2f} s" for k, v in run["phases"].items())
  lines = [f"wall {run['wall_s']:.2f} s ({phases})", "",
           "| program | traced | lowered | compiled (cache hits) | trace s | lower s | compile s |",
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
  totals = collections.Counter()
  for r in run["programs"]:
    totals.update({k: v for k, v in r.items() if k != "program"})
    lines.append(_row(r["program"], r))
  lines.append(_row("**all**", totals))
  return "\n".join(lines)


def _row(name: str, r) -> str:
  hits = f" ({r['cache_hits']})" if r.get("cache_hits") else ""
  return (f"| {name} | {r.get('traces', 0)} | {r.get('lowers', 0)} | "
          f"{r.get('compiles', 0)}{hits} | {r.get('trace_s', 0):.3f} | "
          f"{r.get('lower_s', 0):.3f} | {r.get('compile_s', 0):.3f} |")


def main(argv=None):
  argv = sys.argv[1:] if argv is None else argv
  if argv[:1] == ["--child"]:
    return child(argv[3:], argv[1])
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--config", default="configs/default.py", help="config FILE[:VARIANT]")
  args, overrides = parser.parse_known_args(argv)
  res = {"machine": common.machine(), "config": args.config, "overrides": overrides,
         **measure([f"--config={args.config}", *overrides])}
  for run in ("cold", "warm"):
    print(f"\n{run} compilation cache: {table(res[run])}")
  common.print_json(res)
  return res


if __name__ == "__main__":
  main()
