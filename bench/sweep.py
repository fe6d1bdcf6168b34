"""Per member-epoch time of a lincv sweep against the GEMM roofline, and one member alone.

  python -m bench.sweep --data ../shared/data/cifar10 --members 64

On the training split (45,000 x 3,072 raw pixels of CIFAR-10, 10 classes; softmax, L2,
SGD, batch 256), in one run and in interleaved rounds (see `bench.common`):

  sweep      a K-member `lincv.sweep.Population` (learning rates log-spaced), one epoch;
  roofline   only the matrix products of those epochs, for all K members at once: per
             step the forward S = X_B W and the weight gradient dW = X_B^T S, in a plain
             jitted `lax.scan` (two weight layouts, minibatches gathered per step or
             sliced from rows permuted beforehand) and in a NumPy loop (two layouts,
             sliced); the fastest variant is the roofline;
  single     one member alone: `jax.jit(lincv.training.train_epoch)`.

The last line printed is one JSON object: per_member_epoch_s (median sweep epoch / K),
roofline_per_member_epoch_s (fastest variant's median / K), single_member_epoch_s, the
ratio sweep_over_roofline, every variant's timings, and the machine.

  python -m bench.sweep --data ../shared/data/cifar10 --members 64 --placement host

times instead an epoch of the K-member population with its training rows on the host
(`data.placement='host'`, see `lincv.placement`) against the same population with its
rows on the device, interleaved in one run (`measure_placement`): host_over_device, and
max_abs_param_diff, the largest difference of their weights after the same epochs.

  python -m bench.sweep --data ../shared/data/cifar10 --members 16 --seeds 2

times an epoch of K members, K / S learning rates x S seeds, each member on its seed's
data order: in seed blocks (`lincv.sweep.population.seed_block`: one gather and one
product per block) against each member gathering its own minibatches and forming its own
product, interleaved in one run (`measure_seed_blocks`): own_over_blocks, and
max_abs_param_diff after the same epochs.
"""

import argparse
import functools

import jax
import jax.numpy as jnp
import numpy as np

from bench import common, reference
from lincv import config as config_lib
from lincv import sweep, training


def structure(batch_size: int = 256, optimizer: str = "sgd") -> training.Structure:
  """The benchmarked training program: linear softmax with L2, constant learning rate."""
  return training.Structure(model="linear", loss="softmax", reg="l2", optimizer=optimizer,
                            batch_size=batch_size, epochs=1000)


def as_data(prepared) -> training.Data:
  """The device arrays a sweep trains on."""
  return training.Data(*(jnp.asarray(getattr(prepared, f)) for f in
                         ("x_train", "y_train", "x_val", "y_val")))


def population(data: training.Data, k: int, s: training.Structure, num_classes: int,
               placement: str = "device", block_steps: int = 0, seeds: int = 1):
  """A K-member population: learning rates log-spaced in [1e-3, 3e-2], L2 1e-4; with
  `seeds` > 1, K / seeds of them, each with every seed 0, 1, ..."""
  c = config_lib.base()
  for name, value in vars(s).items():
    c[name] = value
  c.reg_strength = 1e-4
  c.sweep = {"learning_rate": [float(v) for v in np.geomspace(1e-3, 3e-2, k // seeds)]}
  if seeds > 1:
    c.sweep["seed"] = list(range(seeds))
  (group,) = sweep.group(sweep.expand(c))
  return sweep.Population(group, data, num_classes, placement, block_steps)


def sweep_runner(data, k, s, num_classes, key):
  """() -> state: one more epoch of a K-member population."""
  pop = population(data, k, s, num_classes)
  state = [pop.init()]

  def run():
    state[0], _ = pop.epoch(state[0], key)
    return state[0]
  return run


def single_runner(data, s, num_classes, key, learning_rate=0.01):
  """() -> state: one more epoch of one member, through the plain jitted train_epoch."""
  hp = {k: jnp.asarray(v, jnp.int32 if k == "seed" else data.x_train.dtype)
        for k, v in training.HPARAM_DEFAULTS.items()}
  hp["learning_rate"] = jnp.asarray(learning_rate, data.x_train.dtype)
  epoch = jax.jit(training.train_epoch, static_argnums=4)
  state = [training.init_state(hp, data, s, num_classes)]

  def run():
    state[0], _ = epoch(state[0], hp, data, key, s)
    return state[0]
  return run


@functools.partial(jax.jit, static_argnames=("layout", "gather"))
def _jax_gemm_epoch(w, x_NxD, idx_SxB, *, layout, gather):
  """The two products per step for all members at once: the JAX roofline loop."""
  b = idx_SxB.shape[1]
  eps = jnp.asarray(1e-9, w.dtype)

  def step(w, s):
    xb = x_NxD[idx_SxB[s]] if gather else jax.lax.dynamic_slice_in_dim(x_NxD, s * b, b)
    if layout == "KC,D":
      return w - eps * ((w @ xb.T) @ xb), None
    return w - eps * (xb.T @ (xb @ w)), None
  return jax.lax.scan(step, w, jnp.arange(idx_SxB.shape[0]))[0]


LAYOUTS = ("KC,D", "D,KC")


def roofline_runners(x_NxD: np.ndarray, k: int, c: int, batch_size: int,
                     numpy: bool = True, layouts=LAYOUTS) -> dict:
  """name -> () -> weights: the product-only loops over one epoch (see module doc)."""
  n, d = x_NxD.shape
  steps = n // batch_size
  order = np.random.default_rng(0).permutation(n)[: steps * batch_size]
  x_dev = jnp.asarray(x_NxD)
  xp_dev = jnp.asarray(x_NxD[order])
  idx = jnp.asarray(order.reshape(steps, batch_size))
  runners = {}
  for layout in layouts:
    shape = (k * c, d) if layout == "KC,D" else (d, k * c)
    w = jnp.zeros(shape, jnp.float32)
    runners[f"jax {layout} gather"] = functools.partial(
        _jax_gemm_epoch, w, x_dev, idx, layout=layout, gather=True)
    runners[f"jax {layout} slice"] = functools.partial(
        _jax_gemm_epoch, w, xp_dev, idx, layout=layout, gather=False)
  if numpy:
    xp = np.ascontiguousarray(x_NxD[order])
    for layout in layouts:
      shape = (k * c, d) if layout == "KC,D" else (d, k * c)
      w = np.zeros(shape, np.float32)
      runners[f"numpy {layout} slice"] = functools.partial(
          reference.gemm_epoch, w, xp, batch_size=batch_size, layout=layout)
  return runners


def numpy_softmax_runner(x_NxD, y_N, k, c, batch_size):
  """() -> weights: one epoch of the NumPy reference loop for K stacked members."""
  rng = np.random.default_rng(0)
  w = (1e-3 * rng.standard_normal((x_NxD.shape[1], k, c))).astype(np.float32)
  b = np.zeros((k, c), np.float32)
  lr = np.geomspace(1e-3, 3e-2, k).astype(np.float32)
  reg = np.full(k, 1e-4, np.float32)
  epoch = [0]

  def run():
    order = np.random.default_rng(epoch[0]).permutation(len(y_N))
    epoch[0] += 1
    reference.softmax_sgd_epoch(w, b, x_NxD, y_N, order, lr_K=lr, reg_K=reg,
                                batch_size=batch_size)
    return w
  return run


def measure(prepared, k: int, *, reps: int = 5, warmup: int = 1, batch_size: int = 256,
            optimizer: str = "sgd", numpy: bool = True, single: bool = True,
            numpy_softmax: bool = False, layouts=LAYOUTS) -> dict:
  """Every figure of the module doc for a K-member sweep, in one interleaved run (the
  rooflines in the weight `layouts` given)."""
  num_classes = len(prepared.class_names)
  data = as_data(prepared)
  s = structure(batch_size, optimizer)
  n, d = prepared.x_train.shape
  steps = training.steps_per_epoch(s, n)
  key = jax.random.key(0)
  runners = {"sweep": sweep_runner(data, k, s, num_classes, key)}
  roofs = roofline_runners(prepared.x_train, k, num_classes, batch_size, numpy=numpy,
                           layouts=layouts)
  runners.update(roofs)
  if single:
    runners["single"] = single_runner(data, s, num_classes, key)
  if numpy_softmax:
    runners["numpy softmax"] = numpy_softmax_runner(prepared.x_train, prepared.y_train, k,
                                                    num_classes, batch_size)
  times = common.interleaved(runners, reps, warmup)
  stats = {name: common.summary(t) for name, t in times.items()}
  per_member = {name: st["median_s"] / (1 if name == "single" else k)
                for name, st in stats.items()}
  roof_name = min(roofs, key=lambda name: per_member[name])
  jax_roof = min((nm for nm in roofs if nm.startswith("jax")), key=per_member.get)
  out = {
      "bench": "sweep", "members": k, "num_train": n, "dim": d, "classes": num_classes,
      "batch_size": batch_size, "steps_per_epoch": steps, "optimizer": optimizer,
      "gflop_per_member_epoch": 4 * batch_size * d * num_classes * steps / 1e9,
      "per_member_epoch_s": per_member["sweep"],
      "per_member_epoch_min_s": stats["sweep"]["min_s"] / k,
      "roofline_per_member_epoch_s": per_member[roof_name],
      "roofline_variant": roof_name,
      "jax_roofline_per_member_epoch_s": per_member[jax_roof],
      "sweep_over_roofline": per_member["sweep"] / per_member[roof_name],
      "sweep_over_roofline_min": stats["sweep"]["min_s"] / stats[roof_name]["min_s"],
      "sweep_over_jax_roofline": per_member["sweep"] / per_member[jax_roof],
  }
  if numpy:
    np_roof = min((nm for nm in roofs if nm.startswith("numpy")), key=per_member.get)
    out["numpy_roofline_per_member_epoch_s"] = per_member[np_roof]
    out["sweep_over_numpy_roofline"] = per_member["sweep"] / per_member[np_roof]
  if single:
    out["single_member_epoch_s"] = stats["single"]["median_s"]
    out["single_member_epoch_min_s"] = stats["single"]["min_s"]
  if numpy_softmax:
    out["numpy_softmax_per_member_epoch_s"] = per_member["numpy softmax"]
    out["numpy_softmax_over_sweep"] = per_member["numpy softmax"] / per_member["sweep"]
  out["variants"] = stats
  return out


def _interleaved_epochs(pops: dict, key, reps: int, warmup: int) -> tuple[dict, dict]:
  """Epochs of each named population by turns (`common.interleaved`): the timings' summary
  and each one's weights W after them, by name."""
  states = {name: [pop.init()] for name, pop in pops.items()}

  def runner(name):
    def run():
      states[name][0], _ = pops[name].epoch(states[name][0], key)
      return states[name][0]
    return run
  times = common.interleaved({name: runner(name) for name in pops}, reps, warmup)
  stats = {name: common.summary(t) for name, t in times.items()}
  return stats, {name: np.asarray(st[0].params["W"]) for name, st in states.items()}


def measure_placement(prepared, k: int, *, reps: int = 5, warmup: int = 1,
                      batch_size: int = 256, block_steps: int = 0) -> dict:
  """A `host` epoch against a `device` epoch of the same K members, in one run.

  Both populations train the members of `population` on one shared data order (so on
  the same minibatches), from NumPy rows; after the same number of epochs the largest
  difference of their weights is reported (0.0 where the results are identical).
  """
  num_classes = len(prepared.class_names)
  s = structure(batch_size)
  rows = training.Data(prepared.x_train, prepared.y_train, prepared.x_val, prepared.y_val)
  pops = {name: population(rows, k, s, num_classes, name, block_steps)
          for name in ("device", "host")}
  stats, w = _interleaved_epochs(pops, jax.random.key(0), reps, warmup)
  n, d = prepared.x_train.shape
  return {
      "bench": "placement", "members": k, "num_train": n, "dim": d, "classes": num_classes,
      "batch_size": batch_size, "steps_per_epoch": training.steps_per_epoch(s, n),
      "block_steps": pops["host"]._host.block, "device": str(jax.devices()[0].device_kind),
      "device_epoch_s": stats["device"]["median_s"],
      "host_epoch_s": stats["host"]["median_s"],
      "host_over_device": stats["host"]["median_s"] / stats["device"]["median_s"],
      "host_over_device_min": stats["host"]["min_s"] / stats["device"]["min_s"],
      "max_abs_param_diff": float(np.max(np.abs(w["host"] - w["device"]))),
      "variants": stats}


def measure_seed_blocks(prepared, k: int, seeds: int, *, reps: int = 5, warmup: int = 1,
                        batch_size: int = 256) -> dict:
  """An epoch of K members of `seeds` seeds in seed blocks against the same members each
  gathering its own minibatches (block 1), in one run."""
  num_classes = len(prepared.class_names)
  s = structure(batch_size)
  data = as_data(prepared)
  pops = {name: population(data, k, s, num_classes, seeds=seeds) for name in ("blocks", "own")}
  pops["own"].block = 1      # before its program is built: one order per member
  stats, w = _interleaved_epochs(pops, None, reps, warmup)
  n, d = prepared.x_train.shape
  return {
      "bench": "seed_blocks", "members": k, "seeds": seeds, "block": pops["blocks"].block,
      "own_block": pops["own"].block,
      "chunk": pops["blocks"].chunk, "num_train": n, "dim": d, "classes": num_classes,
      "batch_size": batch_size, "blocks_epoch_s": stats["blocks"]["median_s"],
      "own_epoch_s": stats["own"]["median_s"],
      "own_over_blocks": stats["own"]["median_s"] / stats["blocks"]["median_s"],
      "max_abs_param_diff": float(np.max(np.abs(w["blocks"] - w["own"]))),
      "variants": stats}


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--data", required=True, help="image folder root with train/ and test/")
  parser.add_argument("--members", type=int, default=64, help="K, the population size")
  parser.add_argument("--reps", type=int, default=5, help="timed rounds after the warm-up")
  parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first")
  parser.add_argument("--batch-size", type=int, default=256)
  parser.add_argument("--optimizer", default="sgd")
  parser.add_argument("--limit", type=int, default=None, help="cap on training images")
  parser.add_argument("--no-numpy", action="store_true", help="skip the NumPy roofline")
  parser.add_argument("--numpy-softmax", action="store_true",
                      help="also time the NumPy minibatch-SGD softmax reference loop")
  parser.add_argument("--placement", choices=("device", "host"), default="device",
                      help="host: time a host-placement epoch against a device one instead")
  parser.add_argument("--block-steps", type=int, default=0,
                      help="--placement host: minibatches per block (0: about 64 MiB)")
  parser.add_argument("--seeds", type=int, default=1,
                      help="> 1: time seed blocks against one order per member instead")
  common.add_settle_flag(parser)
  args = parser.parse_args(argv)
  common.use_settle(args)
  prepared = common.load(args.data, args.limit)
  if args.seeds > 1:
    out = measure_seed_blocks(prepared, args.members, args.seeds, reps=args.reps,
                              warmup=args.warmup, batch_size=args.batch_size)
    out["machine"] = common.machine()
    print(f"K={args.members}, {args.seeds} seeds: an epoch in seed blocks of "
          f"{out['block']} {out['blocks_epoch_s']:.3f} s, one order per member "
          f"{out['own_epoch_s']:.3f} s: {out['own_over_blocks']:.2f}x; weights differ by at "
          f"most {out['max_abs_param_diff']:.3g}")
    common.print_json(out)
    return
  if args.placement == "host":
    out = measure_placement(prepared, args.members, reps=args.reps, warmup=args.warmup,
                            batch_size=args.batch_size, block_steps=args.block_steps)
    out["machine"] = common.machine()
    print(f"K={args.members}: a host epoch {out['host_epoch_s']:.3f} s, a device epoch "
          f"{out['device_epoch_s']:.3f} s: {out['host_over_device']:.3f}x; weights differ "
          f"by at most {out['max_abs_param_diff']:.3g}")
    common.print_json(out)
    return
  out = measure(prepared, args.members, reps=args.reps, warmup=args.warmup,
                batch_size=args.batch_size, optimizer=args.optimizer,
                numpy=not args.no_numpy, numpy_softmax=args.numpy_softmax)
  out["machine"] = common.machine()
  print(f"K={args.members}: {out['per_member_epoch_s']:.4f} s per member-epoch, "
        f"{out['sweep_over_roofline']:.3f}x the roofline ({out['roofline_variant']}, "
        f"{out['roofline_per_member_epoch_s']:.4f} s); one member "
        f"{out['single_member_epoch_s']:.3f} s per epoch")
  common.print_json(out)


if __name__ == "__main__":
  main()
