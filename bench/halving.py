"""Successive halving that saves compute: one sweep with and without halving.

  python -m bench.halving --data ../shared/data/cifar10 [--members 64] [--reps 3]

A K-member sweep on the CIFAR-10 training split (45,000 x 3,072 raw pixels; softmax, L2
1e-4, SGD, batch 256, 16 epochs, learning rates log-spaced over [1e-3, 3e-2], one data
order for all) run by `lincv.sweep.run` with `halving.rungs = (2, 4, 8)` and
`halving.eta = 2`, and the same sweep without halving, in interleaved rounds after a
warm-up round (`bench.common.interleaved`). Each run builds and compiles its programs,
as a user's run does.

After each rung the members still training go on as a smaller population (see
`lincv.sweep.Population`): 64 members train 2 epochs, then 32 for 2, 16 for 4 and 8 for
8, 320 member-epochs where the sweep without halving trains 1,024.
`halving_over_full` is the ratio of the median times (target <= 0.4); `ideal` is
320 / 1,024 for K = 64, the ratio of member-epochs. Every population size runs the
group's one epoch program, which computes only each device's first n chunks, n traced
(`lincv.sweep.compaction`): the sweep compiles it once, not once per size. With
`--compilation-cache DIR` (`lincv.compile_cache`), the warm-up round fills that cache
and the timed rounds read their programs from it, as a user's second run of a config does.

The last line printed is the figures as strict JSON.

Measured on the 2-core development CPU, cold cache, one timed round, the machine shared
(2026-11-26, load average 3.5 to 6.5 while they ran, so the ratios vary by +-50% between
runs of the same code):

  python -m bench.halving --data ../shared/data/cifar10 --reps 1
    one program for every size: with halving 37.0 s, without 112.4 s: 0.329 (load
    average 3.5 to 4.1); 91.3 s / 191.7 s = 0.476 in another run (load 6.5). One
    program per size, as before: 61.6 s / 236.0 s = 0.261 (load 5.1) and 73.3 s /
    93.4 s = 0.784 (load 3.7 to 6.5). The same best validation accuracy (41.2%). The
    halving sweep compiles 1 epoch program instead of 4 (64, 32, 16 and 8 members).

Earlier (one program per size, load average about 2, 3 rounds):

  python -m bench.halving --data ../shared/data/cifar10
    with halving 32.8 s, without 63.3 s: 0.518 (ideal 0.312), the same best validation
    accuracy (41.2%). Per epoch: 4.1 s at 64 members (chunks of 8; 3.4 to 3.9 s as one
    chunk of 64 without halving), 2.2 s at 32, 1.0 s at 16, 0.5 s at 8, and the first
    epoch at each new size 1.4 to 1.9 s more: its compilation.
  ... --compilation-cache /tmp/cache
    with halving 28.4 s, without 70.7 s: 0.401.
"""

import argparse
import math
import os

import numpy as np

from bench import common
from bench import sweep as bench_sweep
from lincv import compile_cache
from lincv import config as config_lib
from lincv import sweep

RUNGS, ETA, EPOCHS = (2, 4, 8), 2, 16


def config(k: int, halving: bool, batch_size: int = 256):
  """The benchmarked sweep, with or without successive halving."""
  c = config_lib.base()
  c.loss, c.reg, c.reg_strength, c.optimizer = "softmax", "l2", 1e-4, "sgd"
  c.batch_size, c.epochs, c.shuffle_seed = batch_size, EPOCHS, 0
  c.sweep = {"learning_rate": [float(v) for v in np.geomspace(1e-3, 3e-2, k)]}
  if halving:
    c.halving.rungs, c.halving.eta = RUNGS, ETA
  return c


def member_epochs(k: int, halving: bool) -> int:
  """Member-epochs the sweep trains when no member stops early."""
  if not halving:
    return k * EPOCHS
  total, n, start = 0, k, 0
  for stop in (*RUNGS, EPOCHS):
    total += n * (stop - start)
    n, start = math.ceil(n / ETA), stop
  return total


def measure(prepared, k: int, *, reps: int = 3, warmup: int = 1, batch_size: int = 256) -> dict:
  data = bench_sweep.as_data(prepared)
  c = common.num_classes(prepared)
  results = {}

  def runner(halving):
    def run():
      results[halving] = sweep.run(config(k, halving, batch_size), lambda _: data, c)
      return None
    return run
  times = common.interleaved({"halving": runner(True), "full": runner(False)}, reps, warmup)
  out = {name: common.summary(t) for name, t in times.items()}
  out["halving_over_full"] = out["halving"]["median_s"] / out["full"]["median_s"]
  out["ideal"] = member_epochs(k, True) / member_epochs(k, False)
  out["members"], out["rungs"], out["eta"], out["epochs"] = k, list(RUNGS), ETA, EPOCHS
  out["best_val_accuracy"] = {("halving" if h else "full"): float(r.best["val_accuracy"])
                              for h, r in results.items()}
  return out


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--data", required=True, help="image folder root with train/ and test/")
  parser.add_argument("--members", type=int, default=64, help="K, the population size")
  parser.add_argument("--reps", type=int, default=3, help="timed rounds after the warm-up")
  parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first")
  parser.add_argument("--limit", type=int, default=None, help="cap on training images")
  parser.add_argument("--batch-size", type=int, default=256)
  parser.add_argument("--compilation-cache", metavar="DIR", default=None,
                      help="a persistent compilation cache for the runs (default: none)")
  args = parser.parse_args(argv)
  if args.compilation_cache:
    os.environ[compile_cache.ENV] = args.compilation_cache
    compile_cache.enable()
  prepared = common.load(args.data, args.limit)
  out = measure(prepared, args.members, reps=args.reps, warmup=args.warmup,
                batch_size=args.batch_size)
  out["machine"] = common.machine()
  out["compilation_cache"] = bool(args.compilation_cache)
  print(f"K={args.members}, rungs {RUNGS}, eta {ETA}: with halving "
        f"{out['halving']['median_s']:.2f} s, without {out['full']['median_s']:.2f} s: "
        f"{out['halving_over_full']:.3f} of it (ideal {out['ideal']:.3f})")
  common.print_json(out)


if __name__ == "__main__":
  main()
