"""A sweep group solved in closed form: every member's ridge solution in one "epoch".

A group with `optimizer="closed_form"` (model linear, loss least_squares, reg l2) has
no steps to take: its one epoch sets each member's parameters to the exact minimiser of
its objective (`lincv.ridge.path`: one reduction of the Gram matrix for all of the
group's `reg_strength` values) and stops the member. The runner, results.csv, selection,
checkpoints and reports then see an ordinary group whose members ran one epoch (status
ok, epochs_run 1, best_epoch 1, final_loss the objective at the solution, the validation
accuracy of the solution); a member whose solution is not finite is marked diverged.

This is a hook in `lincv.sweep.Population` (its `init` and `epoch`) rather than a path of
its own in the runner, so that everything downstream of a group's training is shared.

Fields that do nothing here (`UNUSED`: the learning rate and every other optimizer and
schedule setting, batch size, epochs, seed, ...) may not vary among a sweep's closed-form
members: `check_members` refuses such a sweep with one line.
"""

import jax
import numpy as np
import optax

from lincv import config as config_lib
from lincv import distributed, ridge, training
from lincv.data.dataset import DataError

# The fields a closed-form member's solution depends on; it ignores every other one.
USED = ("model", "loss", "reg", "optimizer", "reg_strength", "features")
UNUSED = tuple(f for f in config_lib.SWEEPABLE if f not in USED)


def check_members(members: list[dict], swept) -> str | None:
  """A line refusing a swept field that varies among the closed-form members of
  `members` and does nothing for them; None if there is none."""
  solved = [m for m in members if m["optimizer"] == ridge.OPTIMIZER]
  for field in swept:
    if field in UNUSED and len({m[field] for m in solved}) > 1:
      return (f"sweep.{field} does nothing with optimizer={ridge.OPTIMIZER!r}, which solves "
              f"each reg_strength exactly in one step; remove it, or sweep it in a config "
              f"whose members use another optimizer")
  return None


def _local(x):
  """This process's copy of a replicated array (every process solves the same path)."""
  if isinstance(x, jax.Array) and not x.is_fully_addressable:
    return x.addressable_data(0)
  return x


class ClosedForm:
  """`init` and `epoch` of a `Population` whose group is solved in closed form."""

  def __init__(self, pop):
    self.pop = pop

  def init(self) -> training.TrainState:
    """Every member at W = 0, b = 0, active, no epoch run."""
    pop = self.pop
    k, d = pop.k_pad, pop.data.x_train.shape[1]
    dtype = np.dtype(pop.data.x_train.dtype)
    params = {"W": np.zeros((k, d, pop.num_classes), dtype),
              "b": np.zeros((k, pop.num_classes), dtype)}
    zero = np.zeros(k, np.int32)
    nan = np.full(k, np.nan, dtype)
    return pop.restore(training.TrainState(
        params=params, opt_state=optax.EmptyState(), best_params=params,
        best_val_acc=np.full(k, -1.0, dtype), best_epoch=zero, epoch=zero, epochs_run=zero,
        status=np.full(k, training.ACTIVE, np.int32), bad_epochs=zero, loss_ref=nan,
        last_loss=nan, prev_params=params))

  def epoch(self, state: training.TrainState):
    """Solves every member and stops it: (state, {"train_loss", "val_accuracy"})."""
    pop = self.pop
    data = jax.tree.map(_local, pop.data)
    lam = distributed.fetch(pop.hparams["reg_strength"])
    try:
      params = ridge.path(data.x_train, data.y_train, lam, pop.num_classes)
      loss, _ = ridge.evaluate(params, data.x_train, data.y_train, lam)
      _, val_acc = ridge.evaluate(params, data.x_val, data.y_val, lam)
    except ridge.BadRows as e:   # the rows' problem, said in one line; no run is left
      raise DataError(str(e)) from None
    dtype = np.dtype(data.x_train.dtype)
    ok = np.isfinite(loss)     # the objective is finite where the parameters are
    status = np.where(ok, training.STOPPED, training.DIVERGED).astype(np.int32)
    one = np.ones(len(lam), np.int32)
    loss, val_acc = loss.astype(dtype), val_acc.astype(dtype)
    epoch = distributed.fetch(state.epoch) + 1
    new = training.TrainState(
        params=params, opt_state=state.opt_state, best_params=params,
        best_val_acc=np.where(ok, val_acc, -1).astype(dtype), best_epoch=one, epoch=epoch,
        epochs_run=one, status=status, bad_epochs=np.zeros_like(one), loss_ref=loss,
        last_loss=loss, prev_params=params)
    return pop.restore(new), pop.restore({"train_loss": loss, "val_accuracy": val_acc})
