"""training: determinism, hand vs autodiff, vmap vs loop, early stopping, divergence."""

import dataclasses
import re

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lincv import scores, training
from _sweep_main import blobs


def _data(n=400, d=12, c=4):
  x, y = blobs(n + 100, d, c)
  return training.Data(jnp.asarray(x[:n]), jnp.asarray(y[:n]),
                       jnp.asarray(x[n:]), jnp.asarray(y[n:]))


def _hparams(**kw):
  hp = {k: jnp.asarray(v, jnp.int32 if k == "seed" else jnp.float32)
        for k, v in training.HPARAM_DEFAULTS.items()}
  hp.update({k: jnp.asarray(v, hp[k].dtype) for k, v in kw.items()})
  return hp


FIT = jax.jit(training.fit, static_argnums=(3, 4))
STRUCT = training.Structure(epochs=6, batch_size=32, optimizer="momentum")


def test_fit_learns_and_is_deterministic():
  data, key = _data(), jax.random.key(0)
  hp = _hparams(learning_rate=0.05)
  s1, h1 = FIT(hp, data, key, STRUCT, 4)
  s2, h2 = FIT(hp, data, key, STRUCT, 4)
  chex.assert_trees_all_equal(s1, s2)
  chex.assert_trees_all_equal(h1, h2)
  assert float(s1.best_val_acc) > 0.9
  assert h1["train_loss"][-1] < h1["train_loss"][0]
  assert int(s1.status) == training.ACTIVE and int(s1.epochs_run) == 6


def test_fit_takes_numpy_rows_and_refuses_a_nan_init_scale():
  # NumPy rows raised a TracerArrayConversionError from inside the epoch's scan; a NaN
  # init_scale made every weight NaN and the run trained nothing, without a word.
  data, key = _data(), jax.random.key(0)
  on_host = training.Data(*(np.asarray(a) for a in data[:4]))
  hp = {k: float(v) for k, v in _hparams(learning_rate=0.05).items()}
  hp["seed"] = 0
  got, _ = training.fit(hp, on_host, key, STRUCT, 4)
  want, _ = training.fit(hp, data, key, STRUCT, 4)
  chex.assert_trees_all_equal(got.params, want.params)
  with pytest.raises(ValueError, match=r"init_scale must be a finite number >= 0, got nan"):
    training.fit(hp | {"init_scale": float("nan")}, data, key, STRUCT, 4)


def test_seed_changes_the_initialisation_only():
  data, key = _data(), jax.random.key(0)
  a, _ = FIT(_hparams(seed=1), data, key, STRUCT, 4)
  b, _ = FIT(_hparams(seed=2), data, key, STRUCT, 4)
  assert not np.array_equal(a.params["W"], b.params["W"])


def test_a_members_initial_weights_do_not_depend_on_its_population():
  # A population of one (a member alone) fused the product by init_scale with the normal
  # draw and rounded apart from a population of three: weights near 1e-3 differed by
  # 2.3e-10. At the population's optimisation level (`population._init_program`).
  data = _data()
  init = jax.jit(jax.vmap(lambda hp: training.init_state(hp, data, STRUCT, 4).params),
                 compiler_options={"xla_backend_optimization_level": 1})
  members = [_hparams(seed=s, init_scale=v) for s, v in ((0, 1e-3), (1, 1e-2), (2, 0.3))]
  together = init(jax.tree.map(lambda *x: jnp.stack(x), *members))["W"]
  for i, hp in enumerate(members):
    np.testing.assert_array_equal(init(jax.tree.map(lambda x: x[None], hp))["W"][0],
                                  together[i])


@pytest.mark.parametrize("model,loss,optimizer", [("linear", "svm", "adam"),
                                                  ("mlp", "softmax", "sgd")])
def test_hand_and_autodiff_give_the_same_trajectory(model, loss, optimizer):
  data, key = _data(), jax.random.key(3)
  s = dataclasses.replace(STRUCT, model=model, loss=loss, optimizer=optimizer, hidden=16,
                          epochs=3)
  hp = _hparams(learning_rate=0.01, reg_strength=1e-3)
  hand, hh = FIT(hp, data, key, s, 4)
  auto, ha = FIT(hp, data, key, dataclasses.replace(s, grad="autodiff"), 4)
  chex.assert_trees_all_close(hand.params, auto.params, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(hh["train_loss"], ha["train_loss"], rtol=1e-5)


def test_vmap_equals_a_loop_over_members():
  data, key = _data(), jax.random.key(0)
  lrs, lams, seeds = [0.003, 0.03, 0.3], [0.0, 1e-3, 1e-1], [0, 1, 2]
  members = [_hparams(learning_rate=a, reg_strength=b, seed=c)
             for a, b, c in zip(lrs, lams, seeds)]
  stacked = jax.tree.map(lambda *x: jnp.stack(x), *members)
  vm = jax.jit(jax.vmap(training.fit, in_axes=(0, None, None, None, None)),
               static_argnums=(3, 4))
  states, hist = vm(stacked, data, key, STRUCT, 4)
  for i, hp in enumerate(members):
    s, h = FIT(hp, data, key, STRUCT, 4)
    chex.assert_trees_all_close(jax.tree.map(lambda x: x[i], states.params), s.params,
                                rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(hist["val_accuracy"][i], h["val_accuracy"], atol=1e-6)


def test_train_epoch_compiles_once():
  data, key = _data(), jax.random.key(0)
  fn = chex.assert_max_traces(lambda st, hp: training.train_epoch(st, hp, data, key, STRUCT),
                              n=1)
  fn = jax.jit(fn)
  state = training.init_state(_hparams(), data, STRUCT, 4)
  for lr in (0.01, 0.1, 0.5):
    state, _ = fn(state, _hparams(learning_rate=lr))
  assert int(state.epoch) == 3


def test_early_stopping_keeps_best_parameters():
  data, key = _data(), jax.random.key(0)
  s = dataclasses.replace(STRUCT, epochs=30, patience=2)
  state, hist = FIT(_hparams(learning_rate=0.05), data, key, s, 4)
  assert int(state.status) == training.STOPPED
  assert int(state.epochs_run) < 30
  best = int(state.best_epoch)
  np.testing.assert_allclose(state.best_val_acc, hist["val_accuracy"][best - 1])
  acc = training.accuracy(s, state.best_params, data.x_val, data.y_val)
  np.testing.assert_allclose(acc, state.best_val_acc)


def test_epochs_without_updates_report_no_metrics():
  data, key = _data(), jax.random.key(0)
  s = dataclasses.replace(STRUCT, epochs=30, patience=2)
  state, hist = FIT(_hparams(learning_rate=0.05), data, key, s, 4)
  run = int(state.epochs_run)
  assert int(state.status) == training.STOPPED and run < 30
  for name in ("train_loss", "val_accuracy"):
    assert np.all(np.isfinite(hist[name][:run])) and np.all(np.isnan(hist[name][run:]))
  np.testing.assert_allclose(state.last_loss, hist["train_loss"][run - 1])


def test_divergence_freezes_the_member():
  data, key = _data(), jax.random.key(0)
  state, hist = FIT(_hparams(learning_rate=1e6), data, key, STRUCT, 4)
  assert int(state.status) == training.DIVERGED
  assert all(bool(jnp.all(jnp.isfinite(p))) for p in jax.tree.leaves(state.params))
  assert int(state.epochs_run) == 1
  assert np.all(np.isnan(hist["val_accuracy"][1:]))


def test_a_diverged_member_keeps_its_parameters_before_the_diverging_step():
  """One full-batch step per epoch, so the state after each epoch is the state after each
  step. Epoch k's update blows the loss past diverge_factor times its start: the check
  at that epoch's end catches it (before, only the next step did, and the last update of
  a run went unchecked), and the member keeps the parameters before it, epoch k-1's."""
  data, key = _data(), jax.random.key(0)
  s = dataclasses.replace(STRUCT, batch_size=400, optimizer="sgd", loss="squared_svm",
                          epochs=10)
  hp = _hparams(learning_rate=3.0)
  epoch = jax.jit(training.train_epoch, static_argnums=4)
  states = [training.init_state(hp, data, s, 4)]
  while int(states[-1].status) == training.ACTIVE and len(states) <= s.epochs:
    states.append(epoch(states[-1], hp, data, key, s)[0])
  k = len(states) - 1
  assert int(states[k].status) == training.DIVERGED and k >= 2
  chex.assert_trees_all_equal(states[k].params, states[k - 1].params)
  assert int(states[k].epochs_run) == k
  after, _ = epoch(states[k], hp, data, key, s)
  chex.assert_trees_all_equal(after.params, states[k - 1].params)
  fitted, _ = FIT(hp, data, key, dataclasses.replace(s, epochs=k), 4)   # k is its last epoch
  assert int(fitted.status) == training.DIVERGED and int(fitted.epochs_run) == k
  chex.assert_trees_all_close(fitted.params, states[k - 1].params, rtol=1e-5, atol=1e-6)


def test_batch_larger_than_data():
  with pytest.raises(ValueError, match="batch_size 1000 is larger than the 400 training"):
    training.steps_per_epoch(dataclasses.replace(STRUCT, batch_size=1000), 400)


def test_an_epoch_in_blocks_of_gathered_rows_equals_the_epoch_on_all_rows():
  # What data.placement='host' does (lincv.placement): the epoch's minibatches, a few
  # steps at a time, as rows gathered beforehand and indices into them.
  data, hp = _data(), _hparams(learning_rate=0.05)
  s = dataclasses.replace(STRUCT, optimizer="adam")
  state = training.init_state(hp, data, s, 4)
  whole = jax.jit(training.train_epoch, static_argnums=4)(state, hp, data, None, s)
  n = data.x_train.shape[0]
  idx = np.asarray(training.epoch_batches(hp, None, 0, s, n))        # (12, 32)
  steps = jax.jit(training.epoch_steps, static_argnums=(5, 6))
  carry = jax.jit(training.epoch_start, static_argnums=1)(state, s)
  for a in range(0, len(idx), 5):                                     # 5, 5 and 2 steps
    rows = idx[a:a + 5].reshape(-1)
    local = np.arange(rows.size, dtype=np.int32).reshape(-1, s.batch_size)
    carry = steps(carry, hp, data.x_train[rows], data.y_train[rows], local, s, n)
  blocked = jax.jit(training.epoch_end, static_argnums=5)(state, carry, hp, data.x_val,
                                                          data.y_val, s)
  chex.assert_trees_all_equal(blocked, whole)


@pytest.mark.parametrize("factor", [0.0, -1.0, 0.5, float("nan")])
def test_a_diverge_factor_below_1_is_refused(factor):
  # Below 1 a member's first loss (its starting loss) already counts as a blow-up: every
  # member ended diverged, and the sweep said to lower the learning rate. NaN turned the
  # test off.
  with pytest.raises(ValueError, match=r"diverge_factor must be >= 1 \(a member diverges"):
    dataclasses.replace(STRUCT, diverge_factor=factor)


@pytest.mark.parametrize("field", ["batch_size", "epochs", "warmup_epochs", "patience"])
def test_a_fractional_count_is_refused(field):
  # batch_size=1.5 was accepted: steps_per_epoch then said 6.0 and the batches failed
  # with a raw TypeError.
  with pytest.raises(ValueError, match=f"{field} must be an integer, got 1.5"):
    dataclasses.replace(STRUCT, **{field: 1.5})


@pytest.mark.parametrize("kw, message", [
    (dict(schedule="step", decay_every=6), "schedule 'step' with decay_every 6 and "
                                           "warmup_epochs 0 never steps in a run of 6"),
    (dict(schedule="cosine", warmup_epochs=6), "schedule 'cosine' never decays"),
])
def test_a_schedule_that_never_decays_is_refused(kw, message):
  # fit ran at a constant rate, whatever lr_decay said.
  with pytest.raises(ValueError, match=re.escape(message)):
    dataclasses.replace(STRUCT, **kw)


def test_predict_and_accuracy_refuse_what_is_not_rows():
  params = {"W": jnp.ones((3, 2)), "b": jnp.zeros(2)}
  s = training.Structure()
  for fn, extra in ((training.predict, ()), (training.accuracy, (jnp.array([0]),))):
    # A list of rows raised an IndexError from the chunking.
    with pytest.raises(TypeError, match="x_NxD must be a JAX or NumPy array, got a list of 1 "
                                        "entries"):
      fn(s, params, [[1.0, 2.0, 3.0]], *extra)
    with pytest.raises(ValueError, match=r"x_NxD must be rows \(N, D\), got shape \(3,\)"):
      fn(s, params, jnp.ones(3), *extra)


def test_accuracy_refuses_labels_that_are_not_one_class_per_row():
  # (60, 1) labels were compared with every prediction: 0.3317 for an accuracy of 0.3333;
  # a label out of range counted as a wrong prediction, no rows gave NaN.
  params = scores.init_linear(jax.random.key(0), 8, 3)
  x = jax.random.normal(jax.random.key(1), (60, 8))
  y = jax.random.randint(jax.random.key(2), (60,), 0, 3)
  s = training.Structure()
  want = np.mean(np.argmax(scores.linear(params, x), axis=1) == y)
  assert float(training.accuracy(s, params, x, y)) == pytest.approx(want)
  for bad, shape in ((y[:, None], r"\(60, 1\)"), (y[:59], r"\(59,\)"),
                     (y.astype(jnp.float32), r"\(60,\) and dtype float32")):
    with pytest.raises(ValueError, match=r"y_N: labels must be integers of shape \(60,\), "
                                         f"got shape {shape}"):
      training.accuracy(s, params, x, bad)
  with pytest.raises(ValueError, match=r"y_N: label 3 \(example 5\) is out of range for 3 "
                                       r"classes"):
    training.accuracy(s, params, x, y.at[5].set(3))
  with pytest.raises(ValueError, match="x_NxD has no rows: the accuracy of none is undefined"):
    training.accuracy(s, params, x[:0], y[:0])
  with pytest.raises(TypeError, match="y_N must be a JAX or NumPy array, got a list"):
    training.accuracy(s, params, x[:2], [0, 1])


@pytest.mark.parametrize("field", ["x_train", "x_val"])
def test_fit_names_rows_that_are_not_a_matrix(field):
  # A vector of values raised an IndexError from inside the epoch.
  data = _data()
  data = data._replace(**{field: getattr(data, field)[:, 0]})
  with pytest.raises(AssertionError, match=re.escape(f"[data.{field} must be rows (N, D)]")):
    training.fit(_hparams(), data, None, STRUCT, 4)


@pytest.mark.parametrize("optimizer", ["momentum", "lbfgs"])
@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16, jnp.int32, jnp.uint8])
def test_fit_refuses_rows_that_are_not_float32_or_float64(optimizer, dtype):
  # int32 rows failed in the initialisation ("dtype argument to `normal`"), 16-bit floats
  # in L-BFGS's loop ("carry types differ"), or trained weights of 16 bits.
  data = _data()
  data = data._replace(x_train=data.x_train.astype(dtype))
  s = dataclasses.replace(STRUCT, optimizer=optimizer)
  with pytest.raises(ValueError, match=f"data.x_train is {jnp.dtype(dtype).name}: fit trains "
                     r"on float32 or float64 rows; convert them \(x.astype\(np.float32\)\)"):
    training.fit(_hparams(), data, None, s, 4)


def test_fit_refuses_a_seed_as_the_key_and_a_class_count_that_is_not_a_count():
  # An int key failed inside fold_in, a float class count inside one_hot.
  with pytest.raises(TypeError, match="key must be one JAX random key, .*got int 3"):
    training.fit(_hparams(), _data(), 3, STRUCT, 4)
  for bad in (0, 4.0):
    with pytest.raises(ValueError, match=f"num_classes must be a positive integer, got {bad}"):
      training.fit(_hparams(), _data(), None, STRUCT, bad)


@pytest.mark.parametrize("optimizer", ["momentum", "lbfgs"])
def test_fit_without_validation_rows_is_refused(optimizer):
  # No validation accuracy ever beat -1: fit returned the initial parameters as the best.
  data = _data()
  data = data._replace(x_val=data.x_val[:0], y_val=data.y_val[:0])
  s = dataclasses.replace(STRUCT, optimizer=optimizer)
  with pytest.raises(ValueError, match="the validation split has no rows"):
    training.fit(_hparams(), data, None, s, 4)


@pytest.mark.parametrize("optimizer", ["momentum", "lbfgs"])
@pytest.mark.parametrize("split", ["y_train", "y_val"])
def test_fit_refuses_labels_out_of_range(optimizer, split):
  # A bad training label made the member "diverged" (a NaN loss); a bad validation label
  # was counted as a wrong prediction (lbfgs).
  data = _data()
  data = data._replace(**{split: getattr(data, split).at[3].set(4)})
  s = dataclasses.replace(STRUCT, epochs=1, optimizer=optimizer)
  with pytest.raises(ValueError, match=rf"{split}: label 4 \(example 3\) is out of range for "
                     r"4 classes; labels must be in \[0, 3\]"):
    training.fit(_hparams(), data, None, s, 4)


@pytest.mark.parametrize("patience", [3, 5])
def test_a_patience_that_can_never_stop_the_run_is_refused(patience):
  # Epoch 1 always improves on no epoch, so a run of 3 epochs has at most 2 without
  # improvement: patience 3 or more never stopped a member, silently.
  with pytest.raises(ValueError, match=re.escape(
      f"patience {patience} never stops a run of 3 epochs")):
    dataclasses.replace(STRUCT, epochs=3, patience=patience)


def test_the_largest_patience_a_run_allows_stops_it():
  # patience = epochs - 1 stops a member whose first epoch is its best: a learning rate
  # too small to change a prediction on the validation rows after the first epoch.
  data, key = _data(), jax.random.key(0)
  s = dataclasses.replace(STRUCT, epochs=3, patience=2)
  state, _ = FIT(_hparams(learning_rate=1e-12, init_scale=0.0), data, key, s, 4)
  assert int(state.best_epoch) == 1 and int(state.status) == training.STOPPED


def test_patience_is_not_checked_for_the_full_batch_optimizers():
  # lbfgs does not stop early (patience is ignored there; lincv.config.ONLY_WITH).
  training.Structure(optimizer="lbfgs", epochs=2, patience=5)


def test_fit_refuses_validation_rows_of_another_width():
  # chex raised an AssertionError about x_NxD and W from inside the validation pass.
  data = _data()
  data = data._replace(x_val=data.x_val[:, :5])
  with pytest.raises(ValueError, match=re.escape(
      "data.x_val rows have 5 columns but data.x_train rows have 12")):
    FIT(_hparams(), data, None, STRUCT, 4)


def test_accuracy_is_the_correctly_rounded_fraction_alone_and_vmapped():
  """k right of n rows is float32(k / n), as a fraction divided on the host is (the closed
  form's): XLA's product with 1/n was one unit low for 30 of the 101 counts of 100 rows,
  and a tie between an L-BFGS member and a closed-form one went to the higher member."""
  n = 100
  params = {"W": jnp.zeros((2, 3)), "b": jnp.array([1.0, 0.0, 0.0])}   # every row: class 0
  x = jnp.zeros((n, 2))
  labels = jnp.asarray((np.arange(n)[None, :] >= np.arange(n + 1)[:, None]).astype(np.int32))
  want = (np.arange(n + 1) / n).astype(np.float32)              # row k: k of n right
  s = training.Structure()
  got = jax.jit(jax.vmap(lambda y: training.accuracy(s, params, x, y)))(labels)
  np.testing.assert_array_equal(np.asarray(got), want)
  for k in (29, 57, 99):
    assert np.float32(training.accuracy_program(s, params, x, labels[k])) == want[k]


@pytest.mark.parametrize("split,row", [("x_val", 29), ("x_train", 7)])
def test_fit_refuses_rows_that_are_not_finite(split, row):
  # A NaN among the first validation rows showed as a diverged member; a later one was
  # scored as some class and counted; an inf in a training row, "diverged" too.
  rng = np.random.default_rng(0)
  x = rng.normal(size=(50, 5)).astype(np.float32)
  y = rng.integers(0, 3, 50).astype(np.int32)
  data = training.Data(x, y, x[:30].copy(), y[:30])
  getattr(data, split)[row, 2] = np.nan if split == "x_val" else np.inf
  hp = {k: jnp.asarray(v) for k, v in training.HPARAM_DEFAULTS.items()}
  with pytest.raises(ValueError, match=re.escape(
      f"data.{split} row {row} holds a NaN or infinite value; fit needs finite rows")):
    training.fit(hp, data, None, training.Structure(batch_size=16, epochs=2), 3)
