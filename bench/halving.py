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

Measured on the 2-core development CPU, the machine quiet (load average 0.7 to 2, this
bench's own two threads), 2026-11-26, while every member's final training accuracy was
still computed in halving's chunks of 8:

  python -m bench.halving --data ../shared/data/cifar10
    with halving 27.61 s, without 67.70 s: 0.408 (ideal 0.312), the same best
    validation accuracy (41.2%). Per epoch (a separate run, timed epoch by epoch): 4.8 s
    at 64 members (8 chunks of 8; 3.7 s as one chunk of 64 without halving), 2.2 s at
    32, 1.1 s at 16, 0.6 s at 8, the first epoch 1.4 s more (its compilation); 3.6 s
    outside the epochs (the programs' set-up and the final training accuracy).
  ... --compilation-cache /tmp/cache
    with halving 30.18 s, without 71.68 s: 0.421.

The final training accuracy now runs in the widest chunks the group's size allows (one
of 64 here), as without halving. On a faster 2-core machine (AMD EPYC with AVX-512, the
products 3.5 times as fast), quiet (load average under 1.7), 2026-11-27:

  python -m bench.halving --data ../shared/data/cifar10
    with halving 8.54 s, without 18.51 s: 0.462 (ideal 0.312), best validation accuracy
    41.2% for both. Timed epoch by epoch: 1.40 s at 64 members in chunks of 8 against
    1.05 s as one chunk of 64, 0.72 s at 32, 0.365 s at 16 and 0.188 s at 8 (1.33 to
    1.43 times the full population's cost per member), the first epoch 0.7 s more; the
    final training accuracy 0.47 s (0.80 to 1.0 s in chunks of 8).

Those runs reused, in every timed round, programs the warm-up round had compiled (the
initialisation, the accuracy, the compaction's own), so they measured less compilation
than a user's run pays. Each timed run now starts with none compiled
(`bench.common.forget_programs`). The same faster machine, 2026-11-27, two runs (load
average 1.4 to 2):

  python -m bench.halving --data ../shared/data/cifar10
    with halving 8.79 s, without 17.34 s: 0.507; and 11.13 s (fastest 8.85 s), without
    17.69 s: 0.629. Best validation accuracy 41.2% for both.

The chunks of 8, the fewest members the sweep trains after its last rung, are what
keeps the ratio above the ideal: their products are narrower (`python -m bench.sweep
--members 8` on the development CPU: 0.077 s per member-epoch, the products alone
0.060 s; at 64 members 0.063 s and 0.046 s). Where the products are faster, the
compilation and the first epoch weigh more. Under load the ratio moved between 0.33 and
0.48 from run to run.

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
      common.forget_programs()     # each run compiles its programs, as a user's run does
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
  common.add_settle_flag(parser)
  args = parser.parse_args(argv)
  common.use_settle(args)
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
