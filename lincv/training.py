"""One member's training: a pure, jittable, vmappable loop built from plain pytrees.

`Structure` holds what shapes the compiled program (model, loss, optimizer, batch size,
...); it is static and hashable. `hparams` is a dict of scalar arrays (learning rate,
regularization strength, ...): the numbers a sweep stacks along a population axis. So

    epoch = lambda st, hp, d, e: train_epoch(st, hp, d, None, structure, epoch=e)
    states, metrics = jax.jit(jax.vmap(epoch, in_axes=(0, 0, None, None)))(
        states, hparams, data, e)

trains K members at once, each on its own data order (seeded by its `seed`), and
compiles once per structure; passing one shared key instead of None gives the members
one data order and one minibatch gather per step (see `train_epoch`).
`lincv.sweep.Population` does this.

Per step: a minibatch drawn without replacement (one permutation per epoch, see
`lincv.order`), the objective and its gradient (hand-derived by default, `jax.grad` on
request), one optax update. The two gradients give the same trajectory wherever the
objective is differentiable. At a kink they take different subgradients: a weight at
exactly 0 under l1 or elastic net (sign(0) = 0 by hand, 1 through `jnp.abs`) and an
svm margin at exactly 0 (0 by hand, 1/2 through `jnp.maximum`). Weights that start
there (`init_scale=0`) then train apart. Per epoch: mean train loss,
validation accuracy, the best-validation parameters kept, early stopping with patience.
A member whose loss becomes non-finite or exceeds `diverge_factor` times its starting
loss is frozen at its last good parameters (those before the update that made the loss
bad) and marked diverged. An epoch in which a member made no update (it was no longer
active, or it diverged at the epoch's first step) reports NaN metrics and does not count
in `epochs_run`.
"""

import dataclasses
import functools
from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
import optax

from lincv import chunked, lbfgs, objective, optim, ridge, scores, seeds
from lincv._checks import (check_array, check_count, check_key, check_labels, check_name,
                           check_nonnegative, first_nonfinite_row, working_float)
from lincv.order import epoch_batches, order_key, shuffle, steps_per_epoch  # noqa: F401

ACTIVE, DIVERGED, PRUNED, STOPPED = 0, 1, 2, 3
STATUS_NAMES = {ACTIVE: "ok", DIVERGED: "diverged", PRUNED: "pruned", STOPPED: "ok"}
GRADIENTS = ("hand", "autodiff")
CHECK_ROWS = 256    # validation rows whose objective checks an epoch's last update
# Full batch: lbfgs (see lincv.lbfgs) and closed_form (see lincv.ridge).
FULL_BATCH = ("lbfgs", ridge.OPTIMIZER)
OPTIMIZERS = optim.OPTIMIZERS + FULL_BATCH

# Numeric hyperparameters of one member and their defaults.
HPARAM_DEFAULTS = {
    "learning_rate": 1e-3,
    "reg_strength": 1e-4,
    "momentum": 0.9,
    "b1": 0.9,
    "b2": 0.999,
    "rms_decay": 0.9,
    "lr_decay": 0.5,
    "margin": 1.0,
    "beta": 1.0,
    "init_scale": 1e-3,
    "seed": 0,
    "tol": 1e-5,     # lbfgs: stop at |grad| <= tol * |grad at W = 0, b = 0|
}


@dataclasses.dataclass(frozen=True)
class Structure:
  """The static settings of a training program; members differing in them compile apart."""
  model: str = "linear"
  # A name in losses.LOSSES (a registered loss function becomes its name); or a tuple of
  # them, for a group of members that differ in their loss only: each member's
  # hparams["loss_index"] (int32) is the position of its loss (see `objective.loss_values`).
  loss: str | tuple[str, ...] = "softmax"
  reg: str = "l2"
  optimizer: str = "sgd"
  schedule: str = "constant"
  batch_size: int = 256
  epochs: int = 10
  hidden: int = 100
  warmup_epochs: int = 0
  decay_every: int = 1
  patience: int = 0  # epochs without validation improvement before stopping; 0 = never
  grad: str = "hand"
  diverge_factor: float = 1e3
  lbfgs_iters: int = 10  # lbfgs: iterations per epoch

  def __post_init__(self):
    check_name("model", self.model, scores.MODELS)
    object.__setattr__(self, "loss", objective.resolve_loss(self.loss))
    check_name("regularizer", self.reg, objective.regularizers.REGULARIZERS)
    check_name("optimizer", self.optimizer, OPTIMIZERS)
    if self.optimizer == ridge.OPTIMIZER:
      ridge.check_structure(self.model, self.loss, self.reg)
    check_name("schedule", self.schedule, optim.SCHEDULES)
    check_name("gradient", self.grad, GRADIENTS)
    if self.optimizer == "lbfgs" and (self.model, self.reg) not in (
        ("linear", "l2"), ("linear", "none")):
      raise ValueError(f"optimizer 'lbfgs' trains model 'linear' with reg 'l2' or 'none' (a "
                       f"smooth objective), got model {self.model!r}, reg {self.reg!r}")
    for name in ("batch_size", "epochs", "hidden", "decay_every", "lbfgs_iters",
                 "warmup_epochs", "patience"):
      value = getattr(self, name)   # 1.5 was truncated by some uses and not by others
      if isinstance(value, bool) or not float(value).is_integer():
        raise ValueError(f"{name} must be an integer, got {value!r}")
    for name in ("batch_size", "epochs", "hidden", "decay_every", "lbfgs_iters"):
      if int(getattr(self, name)) < 1:
        raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
    if self.warmup_epochs < 0 or self.patience < 0:
      raise ValueError("warmup_epochs and patience must be >= 0")
    if self.optimizer in optim.OPTIMIZERS and self.patience >= self.epochs:
      # The first epoch always improves on no epoch, so at most epochs - 1 go without
      # improvement: patience >= epochs never stopped anything, silently.
      raise ValueError(
          f"patience {self.patience} never stops a run of {self.epochs} epochs (the first "
          "epoch always improves, so at most epochs - 1 pass without improvement); give "
          "patience < epochs, or 0 for no early stopping")
    optim.check_schedule(self.schedule, total_epochs=self.epochs,
                         decay_every=self.decay_every, warmup_epochs=self.warmup_epochs)
    if not self.diverge_factor >= 1:
      raise ValueError(f"diverge_factor must be >= 1 (a member diverges when its loss passes "
                       f"diverge_factor times its starting loss, or 1), got "
                       f"{self.diverge_factor}")


class Data(NamedTuple):
  """Training and validation arrays: float rows (N, D) and int32 labels (N,).

  `basis`: the training rows' `lbfgs.Basis`, which preconditions the full-batch solver
  (`with_basis` adds it; None: L-BFGS runs unpreconditioned).
  """
  x_train: jax.Array
  y_train: jax.Array
  x_val: jax.Array
  y_val: jax.Array
  basis: "lbfgs.Basis | None" = None


def needs_basis(data: Data, structure: "Structure") -> bool:
  """Whether `data` lacks the basis of its full-batch solver's preconditioner: for
  optimizer "lbfgs", rows of at most `lbfgs.MAX_BASIS_COLUMNS` columns, no basis yet."""
  return (structure.optimizer == "lbfgs" and data.basis is None
          and data.x_train.shape[1] <= lbfgs.MAX_BASIS_COLUMNS)


def with_basis(data: Data, structure: "Structure") -> Data:
  """`data` with the basis its full-batch solver's preconditioner needs (see `lbfgs.Basis`),
  computed once; unchanged where `needs_basis` says no."""
  if not needs_basis(data, structure):
    return data
  return data._replace(basis=lbfgs.basis(data.x_train))


class TrainState(NamedTuple):
  """Everything one member carries between epochs (a pytree of arrays)."""
  params: dict
  opt_state: optax.OptState
  best_params: dict
  best_val_acc: jax.Array   # float, -1 before the first evaluation
  best_epoch: jax.Array     # int32
  epoch: jax.Array          # int32, epochs completed
  epochs_run: jax.Array     # int32, epochs in which this member made at least one update
  status: jax.Array         # int32: ACTIVE, DIVERGED, PRUNED or STOPPED
  bad_epochs: jax.Array     # int32, epochs since the last validation improvement
  loss_ref: jax.Array       # float, the loss at the first step, for divergence
  last_loss: jax.Array      # float, mean train loss of the last epoch run
  prev_params: dict         # while active: the parameters before the last update


def make_optimizer(structure: Structure, hparams, num_train: int) -> optax.GradientTransformation:
  """The member's optax optimizer, with its schedule and its injected hyperparameters."""
  lr = optim.schedule(
      structure.schedule, hparams["learning_rate"],
      steps_per_epoch=steps_per_epoch(structure, num_train), total_epochs=structure.epochs,
      decay=hparams["lr_decay"], decay_every=structure.decay_every,
      warmup_epochs=structure.warmup_epochs)
  return optim.make(structure.optimizer, lr, momentum=hparams["momentum"], b1=hparams["b1"],
                    b2=hparams["b2"], rms_decay=hparams["rms_decay"])


_INIT_IGNORES = ("loss", "reg", "grad", "patience", "diverge_factor", "lbfgs_iters")


def init_fields(structure: Structure) -> Structure:
  """`structure` with the fields `init_state` does not read at their defaults, so that
  groups that differ only in those (a loss, a regularizer) share one init program.

  The full-batch solver's initial state holds the objective at the start, so its
  structure is kept whole, as is the closed-form solver's.
  """
  if structure.optimizer in FULL_BATCH:
    return structure
  defaults = {f.name: f.default for f in dataclasses.fields(Structure)}
  return dataclasses.replace(structure, **{name: defaults[name] for name in _INIT_IGNORES})


def init_state(hparams, data: Data, structure: Structure, num_classes: int) -> TrainState:
  """Initial state of one member; its parameters are drawn from `seeds.key(seed, "init")`."""
  check_nonnegative("init_scale", hparams["init_scale"])   # NaN made every weight NaN
  dtype = data.x_train.dtype
  key = seeds.key(hparams["seed"], "init")
  params = scores.init(structure.model, key, data.x_train.shape[1], num_classes,
                       hidden=structure.hidden, scale=1.0, dtype=dtype)
  # Drawn apart from the product by init_scale: fused with it, a member alone (a scalar
  # init_scale) rounded its weights otherwise than in a population (one per member).
  params = jax.lax.optimization_barrier(params)
  if structure.model == "linear":
    params = {"W": params["W"] * jnp.asarray(hparams["init_scale"], dtype), "b": params["b"]}
  if structure.optimizer == "lbfgs":
    opt_state = lbfgs.init(params, hparams, data.x_train, data.y_train, structure,
                           data.basis)
  else:
    opt_state = make_optimizer(structure, hparams, data.x_train.shape[0]).init(params)
  zero = jnp.zeros((), jnp.int32)
  return TrainState(
      params=params, opt_state=opt_state, best_params=params,
      best_val_acc=jnp.asarray(-1.0, dtype), best_epoch=zero, epoch=zero, epochs_run=zero,
      status=jnp.asarray(ACTIVE, jnp.int32), bad_epochs=zero,
      loss_ref=jnp.asarray(jnp.nan, dtype), last_loss=jnp.asarray(jnp.nan, dtype),
      prev_params=params)


def loss_and_grad(structure: Structure, hparams, params, x_BxD, y_B):
  """The objective and its gradient, hand-derived or by `jax.grad` as `structure.grad` says."""
  value, grads_t = _loss_and_grad_t(
      structure, hparams, objective.transpose_input(params, structure.model), x_BxD, y_B)
  return value, objective.transpose_input(grads_t, structure.model)


def _objective_kwargs(structure: Structure, hparams) -> dict:
  """The keyword arguments of `lincv.objective`'s functions for a member."""
  return dict(model=structure.model, loss=structure.loss, reg=structure.reg,
              reg_strength=hparams["reg_strength"], margin=hparams["margin"],
              beta=hparams["beta"], loss_index=hparams.get("loss_index"))


def _loss_and_grad_t(structure: Structure, hparams, params_t, x_BxD, y_B):
  """`loss_and_grad` in the loop's layout (the input weight transposed, see `train_epoch`)."""
  kwargs = _objective_kwargs(structure, hparams)
  if structure.grad == "hand":
    return objective.loss_and_grad_t(params_t, x_BxD, y_B, **kwargs)
  loss = lambda p_t: objective.loss(objective.transpose_input(p_t, structure.model), x_BxD,
                                    y_B, **kwargs)
  return jax.value_and_grad(loss)(params_t)


@functools.partial(jax.jit, static_argnums=(0, 3))
def predict(structure: Structure, params, x_NxD, chunk: int = 8192) -> jax.Array:
  """Predicted labels (N,), scored in chunks so memory stays bounded (one program)."""
  _check_rows(x_NxD)
  return _predict_t(structure, objective.transpose_input(params, structure.model), x_NxD,
                    chunk)


def accuracy(structure: Structure, params, x_NxD, y_N) -> jax.Array:
  """Fraction of rows whose top-scoring class is the label.

  Raises ValueError for no rows (the accuracy of none is undefined), and unless `y_N` is
  one integer label per row ((N, 1) labels were compared with every prediction) and, when
  concrete, each in [0, C) (one out of range counted as a wrong prediction)."""
  _check_rows(x_NxD)
  n = jnp.shape(x_NxD)[0]
  if not n:
    raise ValueError("x_NxD has no rows: the accuracy of none is undefined; give at least one")
  check_array("y_N", y_N)
  bias = objective.OUTPUT_LAYER[structure.model][1]
  check_labels(y_N, jnp.shape(params[bias])[0], n, name="y_N")
  return _accuracy_t(structure, objective.transpose_input(params, structure.model), x_NxD,
                     y_N)


# `accuracy` as one program per structure and shapes (op by op it compiled six); its
# labels are then checked for their shape only, as under any `jit`.
accuracy_program = jax.jit(accuracy, static_argnums=0)


def _check_rows(x_NxD) -> None:
  check_array("x_NxD", x_NxD)     # a list of rows raised an IndexError from the chunking
  if jnp.ndim(x_NxD) != 2:
    raise ValueError(f"x_NxD must be rows (N, D), got shape {jnp.shape(x_NxD)}")


def _predict_t(structure: Structure, params_t, x_NxD, chunk: int = 8192) -> jax.Array:
  """`predict` from parameters in the loop's layout."""
  label = lambda x: jnp.argmax(objective.scores_t(params_t, x, structure.model), axis=1)
  return chunked.map_rows(label, x_NxD, chunk, mode="zeros").astype(jnp.int32)


def _accuracy_t(structure: Structure, params_t, x_NxD, y_N) -> jax.Array:
  """The count of rows predicted right over the count of rows, correctly rounded."""
  right = jnp.sum(_predict_t(structure, params_t, x_NxD) == y_N, dtype=jnp.int32)
  return fraction(right, y_N.shape[0], x_NxD.dtype)


def fraction(count, n: int, dtype) -> jax.Array:
  """count / n in `dtype`, correctly rounded, for an integer `count` and a static `n`.

  XLA turns a division by a constant (the rows, a static shape) into a product with its
  reciprocal, one unit in the last place low for about a third of the counts (99 of 100
  gave 0.98999995 where the closed form, which divides on the host, gave 0.99000001, and
  a tie between the two went against the lower member). Here the divisor is a value of
  the program: `count - count` is 0, but XLA does not fold it for floats (inf - inf is
  NaN)."""
  count = jnp.asarray(count).astype(dtype)
  return count / (count - count + n)


def _exploded(structure: Structure, loss, loss_ref):
  """The divergence test: a loss that is not finite, or past `diverge_factor` times the
  member's starting loss (at least 1)."""
  return ~jnp.isfinite(loss) | (loss > structure.diverge_factor * jnp.maximum(loss_ref, 1.0))


def _where(cond, new, old):
  return jax.tree.map(lambda a, b: jnp.where(cond, a, b), new, old)


def train_epoch(state: TrainState, hparams, data: Data, key: jax.Array | None,
                structure: Structure, *, epoch=None):
  """One epoch of one member; returns the new state and the epoch's metrics.

  `key` is the data-order key: epoch e shuffles with `fold_in(key, e)` (see
  `epoch_batches`). With `key=None` each member draws its own order from its
  `hparams["seed"]`; under `vmap` each member then gathers its own minibatches. A key
  shared by the population gives it one order and one gather per step. Members that are
  not ACTIVE pass through unchanged.

  Inside the epoch the input weight is carried transposed, W as (C, D) (and the optimizer
  moments with it), and transposed back at the end: its gradient is then `G^T x`, which
  XLA:CPU computes several times faster than `x^T G`, and a vmapped population's K
  weights form one (K*C, D) matrix, so forward and backward are one GEMM each.

  Args:
    state, hparams, data, key, structure: as their names say.
    epoch: the epoch number that picks the data order; `state.epoch` if None. Under
      `vmap` with a shared key pass it unbatched (as `lincv.sweep.Population` does):
      `state.epoch` is then batched, and every member would draw its own permutation
      and gather its own copy of each minibatch, where an unbatched epoch gives the
      population one.

  Each step checks the loss of the parameters it starts from: if it is non-finite or
  explodes, the member is marked DIVERGED and keeps the parameters before the previous
  update (`prev_params`, carried across epochs), the last ones whose loss was good. The
  epoch's last update is checked at its end, on the validation rows (`epoch_end`).

  Returns:
    (state, {"train_loss": mean minibatch loss, "val_accuracy": accuracy of this epoch's
    parameters on the validation split}); both NaN for a member that made no update in
    this epoch.

  Raises:
    ValueError: no validation rows (no epoch could keep its best parameters).
  """
  if not data.y_val.shape[0]:    # a static shape: checked once, when traced
    raise ValueError("the validation split has no rows: an epoch keeps the parameters of "
                     "the best validation accuracy, so give at least one validation row")
  if structure.optimizer == "lbfgs":
    return lbfgs.train_epoch(state, hparams, data, structure)
  chex.assert_rank([data.x_train, data.y_train], [2, 1])
  n = data.x_train.shape[0]
  epoch = state.epoch if epoch is None else epoch
  batches_SxB = epoch_batches(hparams, key, epoch, structure, n)
  carry = epoch_steps(epoch_start(state, structure), hparams, data.x_train, data.y_train,
                      batches_SxB, structure, n)
  return epoch_end(state, carry, hparams, data.x_val, data.y_val, structure)


def epoch_start(state: TrainState, structure: Structure):
  """The loop's carry at the start of an epoch: (params, prev_params, opt_state, status,
  loss_ref, loss sum, updates made), the parameter-shaped parts in the loop's layout."""
  zero = jnp.zeros((), state.last_loss.dtype)
  # Everything shaped like the parameters (they, the previous ones, the optimizer's
  # per-parameter state) changes layout; see `objective.transpose_input_like`.
  to_loop = lambda tree: objective.transpose_input_like(tree, state.params, structure.model)
  return (to_loop(state.params), to_loop(state.prev_params), to_loop(state.opt_state),
          state.status, state.loss_ref, zero, jnp.zeros((), jnp.int32))


def epoch_steps(carry, hparams, x_NxD, y_N, batches_SxB, structure: Structure,
                num_train: int):
  """The carry after one step on each minibatch `x_NxD[idx_B]` of `batches_SxB`.

  `train_epoch` is `epoch_start`, these steps on the epoch's minibatches of the training
  rows and `epoch_end`; `lincv.placement` runs them block by block on rows gathered on
  the host, with the same operations. `num_train` sets the schedule's steps per epoch.
  """
  step = _step_fn(structure, hparams, num_train)
  return jax.lax.scan(lambda c, idx_B: (step(c, x_NxD[idx_B], y_N[idx_B]), None), carry,
                      batches_SxB)[0]


def _step_fn(structure: Structure, hparams, num_train: int):
  """(carry, x_BxD, y_B) -> carry: one step of the epoch loop (see `train_epoch`)."""
  opt = make_optimizer(structure, hparams, num_train)

  def step(carry, x_BxD, y_B):
    params, prev, opt_state, status, loss_ref, loss_sum, num = carry
    loss, grads = _loss_and_grad_t(structure, hparams, params, x_BxD, y_B)
    loss_ref = jnp.where(jnp.isnan(loss_ref), loss, loss_ref)
    bad = _exploded(structure, loss, loss_ref)
    diverged = (status == ACTIVE) & bad
    status = jnp.where(diverged, DIVERGED, status)
    go = status == ACTIVE
    updates, new_opt_state = opt.update(grads, opt_state, params)
    new_params = optax.apply_updates(params, updates)
    # An active member moves on and remembers where it was; a diverging one goes back one
    # update; the others stay (prev_params matters only while a member is active).
    prev, params = params, _where(go, new_params, _where(diverged, prev, params))
    opt_state = _where(go, new_opt_state, opt_state)
    loss_sum = loss_sum + jnp.where(go, loss, 0)
    num = num + go.astype(jnp.int32)
    return params, prev, opt_state, status, loss_ref, loss_sum, num
  return step


def epoch_end(state: TrainState, carry, hparams, x_val, y_val, structure: Structure):
  """(state, metrics) of the epoch `state` started and `carry` ran: the validation
  accuracy, the best parameters, early stopping (see `train_epoch`).

  The epoch's last update is checked here, as the next step would check it: by the
  objective of the parameters it made on the first `CHECK_ROWS` validation rows (a
  blow-up is gross). That is one more forward product of 256 rows: 0.6% of the products
  of an epoch on 20,000 training rows, lost in the noise of a 2-core CPU (K = 64, D =
  3,072: 0.48 to 0.51 s an epoch before, 0.49 to 0.52 s after; the objective on all
  5,000 validation rows cost 6%). Without the check the last update of a run went
  unchecked, and a member whose weights blew up in it ended "ok"."""
  params, prev, opt_state, status, loss_ref, loss_sum, num = carry
  updated = num > 0
  train_loss = jnp.where(updated, loss_sum / jnp.maximum(num, 1), jnp.nan)
  if y_val.shape[0]:
    m = min(CHECK_ROWS, y_val.shape[0])
    val_obj = objective.loss(objective.transpose_input(params, structure.model), x_val[:m],
                             y_val[:m], **_objective_kwargs(structure, hparams))
    diverged = (status == ACTIVE) & updated & _exploded(structure, val_obj, loss_ref)
    status = jnp.where(diverged, DIVERGED, status)
    params = _where(diverged, prev, params)
  val_acc = _accuracy_t(structure, params, x_val, y_val)
  to_loop = lambda tree: objective.transpose_input_like(tree, state.params, structure.model)
  params, prev, opt_state = to_loop(params), to_loop(prev), to_loop(opt_state)

  trained = (state.status == ACTIVE) & (status == ACTIVE)
  improved = trained & (val_acc > state.best_val_acc)
  bad_epochs = jnp.where(improved, 0, state.bad_epochs + trained.astype(jnp.int32))
  if structure.patience > 0:
    status = jnp.where(trained & (bad_epochs >= structure.patience), STOPPED, status)
  epoch = state.epoch + 1
  new_state = TrainState(
      params=params, opt_state=opt_state,
      best_params=_where(improved, params, state.best_params),
      best_val_acc=jnp.where(improved, val_acc, state.best_val_acc),
      best_epoch=jnp.where(improved, epoch, state.best_epoch),
      epoch=epoch,
      epochs_run=state.epochs_run + updated.astype(jnp.int32),
      status=status, bad_epochs=bad_epochs, loss_ref=loss_ref,
      last_loss=jnp.where(updated, train_loss, state.last_loss), prev_params=prev)
  return new_state, {"train_loss": train_loss,
                     "val_accuracy": jnp.where(updated, val_acc, jnp.nan)}


def fit(hparams, data: Data, key: jax.Array | None, structure: Structure, num_classes: int):
  """Trains one member for `structure.epochs` epochs; pure, so it jits and vmaps.

  Args:
    hparams: dict of scalar hyperparameters (see HPARAM_DEFAULTS).
    data: the training and validation arrays (JAX or NumPy).
    key: the data-order key shared by the members, or None: each member's own, from
      its seed.
    structure: the static settings.
    num_classes: number of classes C.

  Returns:
    (final TrainState, history dict of per-epoch arrays "train_loss" and "val_accuracy",
    NaN in the epochs the member made no update).

  Raises:
    ValueError: labels not one per row of their split; labels outside [0, num_classes),
      when they are concrete (not under `jit`, where a bad training label shows as a NaN
      loss, a diverged member).
  """
  if key is not None:
    check_key(key)
  check_count("num_classes", num_classes)
  data = jax.tree.map(jnp.asarray, data)    # NumPy rows cannot be indexed by traced steps
  for name in ("x_train", "x_val"):   # a vector of values raised an IndexError
    chex.assert_rank(getattr(data, name), 2, custom_message=f"data.{name} must be rows (N, D)")
    dtype = getattr(data, name).dtype
    if working_float(dtype) != dtype:
      # Integer rows failed inside the initialisation, 16-bit floats inside L-BFGS's loop
      # or trained their weights in 16 bits; `sweep.run` converts its rows itself.
      raise ValueError(f"data.{name} is {dtype.name}: fit trains on float32 or float64 "
                       "rows; convert them (x.astype(np.float32))")
    rows = getattr(data, name)
    # A NaN in the rows showed as a diverged member (a validation row among the first
    # scored), or was scored as some class and counted (a later one); `sweep.run` checks
    # its rows itself.
    bad = None if isinstance(rows, jax.core.Tracer) else first_nonfinite_row(rows)
    if bad is not None:
      raise ValueError(f"data.{name} row {bad} holds a NaN or infinite value; fit needs "
                       "finite rows")
  d_train, d_val = data.x_train.shape[1], data.x_val.shape[1]
  if d_train != d_val:   # chex said "x_NxD (N, D) must match W (D, C)", naming neither
    raise ValueError(f"data.x_val rows have {d_val} columns but data.x_train rows have "
                     f"{d_train}; both splits need the same columns (the same features)")
  for name in ("y_train", "y_val"):   # one per row: shapes are known under jit too
    check_labels(getattr(data, name), num_classes,
                 num_examples=jnp.shape(getattr(data, "x" + name[1:]))[0], name=name)
  data = with_basis(data, structure)
  state = init_state(hparams, data, structure, num_classes)
  return jax.lax.scan(lambda s, e: train_epoch(s, hparams, data, key, structure, epoch=e),
                      state, jnp.arange(structure.epochs, dtype=jnp.int32))
