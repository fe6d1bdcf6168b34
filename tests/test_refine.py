"""refine: the refined grid, a second stage selected with the first, resume, refusals."""

import math

import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.datasets import load_digits

from lincv import config as config_lib
from lincv import experiment, sweep, training
from lincv.sweep import refine, runner as runner_lib
from _faults import Killed, resumes_at_every_write, share_populations

COARSE = [1e-4, 1e-3, 1e-2, 1e-1]


def _decades(values):
  return [round(math.log10(v), 9) for v in values]


@pytest.mark.parametrize("best,points,expected", [
    (1e-3, 3, [-3.5, -2.5]),                # the middle one is the best itself: left out
    (1e-3, 4, [-3.6, -3.2, -2.8, -2.4]),
    (1e-4, 4, [-4.6, -4.2, -3.8, -3.4]),    # at the low edge: the neighbour mirrored
    (1e-1, 1, []),                          # one point between 1e-2 and 1e0: 1e-1 itself
    (1e-1, 2, [-1 - 1 / 3, -1 + 1 / 3]),    # at the high edge
])
def test_the_grid_is_log_spaced_strictly_between_the_neighbours(best, points, expected):
  got = refine.grid(COARSE, best, points)
  np.testing.assert_allclose(_decades(got), expected, atol=1e-9)


def test_the_grid_takes_the_values_in_any_order_and_uneven_spacing():
  # neighbours 1e-3 and 1 (3 decades): 1e-2 and 1e-1 between them, 1e-2 the best itself
  np.testing.assert_allclose(_decades(refine.grid([1.0, 1e-3, 1e-2], 1e-2, 2)), [-1.0],
                             atol=1e-9)
  np.testing.assert_allclose(_decades(refine.grid([1.0, 1e-3, 1e-2], 1e-2, 5)),
                             [-2.5, -1.5, -1.0, -0.5], atol=1e-9)


def _digits(n=400):
  x, y = load_digits(return_X_y=True)
  x = jnp.asarray(x[:n] / 16.0 - 0.3, jnp.float32)
  y = jnp.asarray(y[:n], jnp.int32)
  return training.Data(x[:300], y[:300], x[300:], y[300:])


def _config(**fields):
  c = config_lib.base()
  c.optimizer, c.epochs, c.batch_size, c.learning_rate = "momentum", 2, 100, 0.1
  c.sweep = {"reg_strength": [1e-4, 1e-2, 1.0]}
  c.refine.field, c.refine.points = "reg_strength", 2
  for name, value in fields.items():
    setattr(c, name, value)
  return c


def test_the_second_stage_trains_around_the_best_and_the_selection_covers_both():
  """Full-batch L-BFGS on 100 training rows, coarse strengths 1e-6 and 1 (far too strong):
  the refined 1e-3 between them beats both on validation (0.787 against 0.776); the
  selected member's parameters are its own."""
  x, y = load_digits(return_X_y=True)
  x, y = jnp.asarray(x / 16.0 - 0.3, jnp.float32), jnp.asarray(y, jnp.int32)
  data = training.Data(x[:100], y[:100], x[100:900], y[100:900])
  c = _config(sweep={"reg_strength": [1e-6, 1.0]}, optimizer="lbfgs", epochs=4,
              lbfgs_iters=10, tol=1e-4)
  c.refine.points = 3
  result = sweep.run(c, lambda f: data, 10, test_for=lambda f: (data.x_val, data.y_val))
  rows = result.rows
  assert [(r["member"], r["stage"]) for r in rows] == [
      (0, "coarse"), (1, "coarse"), (2, "refine"), (3, "refine")]
  assert len(result.history) == 4 and all(len(h["val_accuracy"]) for h in result.history)
  # the coarse best is 1e-6, at the grid's edge: (1e-12, 1) split in 4, 1e-6 left out
  np.testing.assert_allclose([r["reg_strength"] for r in rows], [1e-6, 1.0, 1e-9, 1e-3])
  assert {r["group"] for r in rows[2:]}.isdisjoint({r["group"] for r in rows[:2]})
  assert result.best == max(rows, key=lambda r: (r["val_accuracy"], -r["member"]))
  assert result.best["member"] == 3
  assert result.best["val_accuracy"] > max(r["val_accuracy"] for r in rows[:2])
  group = sweep.group([{**sweep.expand(c)[0], "reg_strength": result.best["reg_strength"]}])
  pop = sweep.Population(group[0], data, 10)
  acc = pop.accuracy({k: jnp.asarray(v)[None] for k, v in result.best_params.items()},
                     data.x_val, data.y_val)
  assert float(acc[0]) == pytest.approx(result.best["val_accuracy"])
  assert result.test_accuracy == pytest.approx(result.best["val_accuracy"])


def test_nothing_is_refined_when_the_field_does_nothing_for_the_best():
  c = _config(sweep={"reg": ["none", "l2"], "reg_strength": [1e-6, 1.0]})
  members = sweep.expand(c)
  assert [m["reg"] for m in members] == ["none", "l2", "l2"]
  # It said nothing: a run with refine on ended without a refined member, unexplained.
  with pytest.warns(refine.NothingRefined, match=r"^lincv: refine\.field='reg_strength' does "
                    r"nothing for the best coarse member \(member 0, reg='none'; it is the "
                    r"regularization strength\): no member is refined"):
    assert refine.members(c, members, {"member": 0}) == []
  np.testing.assert_allclose([m["reg_strength"] for m in refine.members(c, members,
                                                                        {"member": 1})],
                             [1e-8, 1e-4], rtol=1e-12)    # (1e-12, 1) in 3


@pytest.mark.parametrize("field, schedule", [("momentum", "constant"),
                                             ("lr_decay", "step")])
def test_a_bounded_field_refined_at_its_top_edge_stays_in_its_range(field, schedule):
  """A coarse grid [0.5, 0.9] with 0.9 best: the mirror of 0.5 (1.62) is past the field's
  bound, 1 (lr_decay above 1 makes the rate grow); the refined values lie between 0.5 and
  1, each a valid member."""
  c = _config(sweep={field: [0.5, 0.9]}, schedule=schedule)
  c.refine.field, c.refine.points = field, 3
  members = sweep.expand(c)
  best = next(i for i, m in enumerate(members) if m[field] == 0.9)
  refined = [m[field] for m in refine.members(c, members, {"member": best})]
  assert len(refined) == 3 and all(0.5 < v < 1 for v in refined)


def test_a_run_killed_at_any_write_of_either_stage_resumes_to_the_same_results(
    tmp_path, monkeypatch):
  share_populations(monkeypatch)
  data = _digits()    # 300 training rows, 100 validation (300 left none)
  c = _config(sweep={"reg_strength": [1e-4, 1e-2, 1.0]})
  c.checkpoint_seconds = 0     # a commit after every epoch: each is a place to be killed
  run = lambda workdir: sweep.run(c, lambda f: data, 10, workdir=str(workdir))
  reference, _, differ = resumes_at_every_write(run, tmp_path)
  assert '"refine"' in reference
  assert (tmp_path / "uninterrupted" / "checkpoint" / "refine" / "sweep.json").exists()
  assert differ == [], f"killed at these operations, the resumed run differs: {differ}"


def test_the_refined_stage_halves_its_own_members_only(monkeypatch):
  """With halving, the refined stage's populations are chunked for the members its last
  rung leaves of its own (4 refined, eta 2: 2), not of both stages' (10: 5, so that its
  group of 4 trained as one chunk of 4 after every rung, the pruned members frozen)."""
  c = _config(sweep={"reg_strength": [1e-4, 1e-2, 1.0], "learning_rate": [0.01, 0.1]})
  c.refine.points, c.halving.rungs = 4, (1,)
  members = sweep.expand(c)
  coarse = runner_lib.Runner(c, members, sweep.group(members), None, 10, None, None, None,
                             0.0)
  sizes = []

  def no_training(self, *args):
    del args
    sizes.append((sum(g.size for g in self.groups), self.min_members))
    raise Killed               # stops refine.run where its stage would train
  monkeypatch.setattr(runner_lib.Runner, "train", no_training)
  best = next(i for i, m in enumerate(members) if m["reg_strength"] == 1e-2)
  with pytest.raises(Killed):
    refine.run(c, coarse, [], [], {"member": best}, (1,), 2.0, None)
  assert sizes == [(4, 2)]


@pytest.mark.parametrize("fields,message", [
    ({"refine.field": "loss"}, r"refine.field='loss' is not a numeric hyperparameter"),
    ({"refine.field": "seed"}, r"refine.field='seed' is not a numeric hyperparameter"),
    ({"refine.field": "margin"}, r"refine.field='margin' is not swept \(swept: reg_strength\)"),
    ({"sweep": {"reg_strength": [1e-3]}}, r"has 1 value in sweep.reg_strength; refine needs "
                                          r"at least 2"),
    ({"sweep": {"reg_strength": [0.0, 1e-3]}}, r"must hold values > 0, got 0.0"),
    ({"search": "random", "sweep": {"reg_strength": {"log_uniform": [1e-4, 1.0]}}},
     r"needs a list of values in sweep.reg_strength"),
    ({"refine.points": 0}, r"refine.points must be an integer >= 2 .*, got 0"),
    ({"refine.points": -3}, r"refine.points must be an integer >= 2 .*, got -3"),
    # One point is the best value itself on this evenly spaced grid: the second stage
    # trained nothing, silently.
    ({"refine.points": 1}, r"refine.points must be an integer >= 2 \(values tried between "
                           r"the best value's neighbours; 1 would be their log midpoint, the "
                           r"best value itself on an evenly spaced grid, and train nothing\), "
                           r"got 1"),
])
def test_refusals_are_one_line(fields, message):
  c = _config()
  for path, value in fields.items():
    if path.startswith("refine."):
      c.refine[path[len("refine."):]] = value
    else:
      setattr(c, path, value)
  with pytest.raises(sweep.SweepError, match=message) as e:
    refine.check(c)
  assert "\n" not in str(e.value)
  with pytest.raises(experiment.ConfigError, match=message):
    experiment.check(c)


def test_refine_is_off_by_default_and_its_points_matter_only_with_a_field():
  c = config_lib.base()
  assert not refine.enabled(c)
  refine.check(c)
  members = sweep.expand(c)
  assert "matters only with" in config_lib.idle_override(c, "refine.points", members)
  assert config_lib.idle_override(_config(), "refine.points", sweep.expand(_config())) is None
