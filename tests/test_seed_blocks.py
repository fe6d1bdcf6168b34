"""Members of one seed share its data order: a group keeps each seed's members together,
and they train in seed blocks (one gather and one product per block), each member as it
trains with its seed alone; a run begun in another member order resumes in it."""

import json

import jax.numpy as jnp
import numpy as np
import pytest

from lincv import config as config_lib
from lincv import sweep, training
from lincv.sweep import population, space
from _faults import Killed, KillAt
from _sweep_main import blobs


@pytest.fixture(scope="module")
def data():
  x, y = blobs(300)
  return training.Data(jnp.asarray(x[:200]), jnp.asarray(y[:200]),
                       jnp.asarray(x[200:]), jnp.asarray(y[200:]))


def _config(seeds, learning_rates=(0.01, 0.03, 0.1, 0.3), epochs=3):
  c = config_lib.base()
  c.epochs, c.batch_size, c.optimizer = epochs, 32, "momentum"
  c.sweep = {"learning_rate": list(learning_rates), "seed": list(seeds)}
  return c


@pytest.mark.parametrize("member_seeds,chunk,block", [
    ([0, 0, 0, 0, 1, 1, 1, 1], 8, 4),
    ([0, 1, 0, 1], 4, 1),                    # alternating: each member its own order
    ([5, 5, 5, 2, 2, 2, 2, 2, 2], 9, 3),     # runs of 3 and 6
    ([0, 0, 0, 0, 1, 1, 1, 1], 2, 2),        # blocks no wider than a chunk
    ([3, 3, 3, 3], 4, 4),
])
def test_a_seed_block_is_the_gcd_of_the_seed_runs_and_the_chunk(member_seeds, chunk, block):
  assert population.seed_block(member_seeds, chunk) == block


def test_a_group_holds_each_seeds_members_together_in_their_order():
  members = sweep.expand(_config([1, 0], learning_rates=(0.1, 0.2, 0.3)))
  assert [m["seed"] for m in members] == [1, 0] * 3        # the grid's order: seed last
  (g,) = sweep.group(members)
  assert [members[m]["seed"] for m in g.members] == [0, 0, 0, 1, 1, 1]
  assert list(g.members) == [1, 3, 5, 0, 2, 4]
  for field in ("seed", "learning_rate"):
    assert g.hparams[field].tolist() == [members[m][field] for m in g.members]


def test_members_in_seed_blocks_train_as_with_their_seed_alone(data):
  both = sweep.run(_config([0, 1]), lambda f: data, 4)
  pop = sweep.Population(sweep.group(sweep.expand(_config([0, 1])))[0], data, 4)
  assert (pop.chunk, pop.block) == (8, 4)
  for seed in (0, 1):
    alone = sweep.run(_config([seed]), lambda f: data, 4)   # one seed: one shared order
    mine = [r for r in both.rows if r["seed"] == seed]
    assert [r["learning_rate"] for r in mine] == [r["learning_rate"] for r in alone.rows]
    for name in ("final_loss", "train_accuracy", "val_accuracy"):
      np.testing.assert_allclose([r[name] for r in mine], [r[name] for r in alone.rows],
                                 rtol=1e-5, err_msg=name)
    for r, a in zip(mine, alone.history):
      np.testing.assert_allclose(both.history[r["member"]]["train_loss"], a["train_loss"],
                                 rtol=1e-5)


def test_seed_blocks_train_as_each_member_on_its_own_order(data, monkeypatch):
  """Blocks and the per-member gather give the same members, up to float32 rounding."""
  blocks = sweep.run(_config([0, 1]), lambda f: data, 4)
  monkeypatch.setattr(population, "seed_block", lambda member_seeds, chunk: 1)
  own = sweep.run(_config([0, 1]), lambda f: data, 4)
  for name in ("final_loss", "train_accuracy", "val_accuracy"):
    np.testing.assert_allclose([r[name] for r in blocks.rows], [r[name] for r in own.rows],
                               rtol=1e-5, err_msg=name)
  assert blocks.best["member"] == own.best["member"]


def _in_member_order(members):
  """The groups as an earlier lincv made them: each group's members in member order."""
  return [g.in_order(members, sorted(g.members)) for g in space.group(members)]


@pytest.mark.parametrize("with_layout", [True, False])   # False: saved before layouts were
def test_a_run_begun_in_another_member_order_resumes_in_it(data, monkeypatch, tmp_path,
                                                          with_layout):
  c = _config([0, 1])
  c.checkpoint_seconds = 0       # a commit after every epoch, so that the kill lands past one
  with monkeypatch.context() as m:
    m.setattr(sweep, "group", _in_member_order)
    full = sweep.run(c, lambda f: data, 4)
    with pytest.raises(Killed):
      sweep.run(c, lambda f: data, 4, workdir=str(tmp_path), progress=KillAt(0, 1))
  path = tmp_path / "checkpoint" / "sweep.json"
  meta = json.loads(path.read_text())
  assert meta["groups"]["0"]["epoch"] == 1 and meta["layout"] == [[0, 1, 2, 3, 4, 5, 6, 7]]
  if not with_layout:
    del meta["layout"]
    path.write_text(json.dumps(meta))
  resumed = sweep.run(c, lambda f: data, 4, workdir=str(tmp_path))
  drop = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]
  assert drop(resumed.rows) == drop(full.rows)
  assert resumed.history == full.history


def test_chunks_that_would_cut_across_the_seeds_follow_them(data, monkeypatch):
  """99 members of 3 seeds would train in chunks of 50 (`chunking`), which no block of
  one seed fills: they train in chunks of 33 instead, each one seed's block, as the
  members would with one order each."""
  c = _config([0, 1, 2], learning_rates=np.geomspace(1e-3, 0.3, 33).tolist(), epochs=2)
  (g,) = sweep.group(sweep.expand(c))
  assert population.chunking(g.size, 1)[0] == 50
  pop = sweep.Population(g, data, 4)
  assert (pop.chunk, pop.block, pop.k_pad) == (33, 33, 99)
  blocks = sweep.run(c, lambda f: data, 4)
  monkeypatch.setattr(population, "seed_block", lambda member_seeds, chunk: 1)
  own = sweep.run(c, lambda f: data, 4)
  for name in ("final_loss", "train_accuracy", "val_accuracy"):
    np.testing.assert_allclose([r[name] for r in blocks.rows], [r[name] for r in own.rows],
                               rtol=1e-5, atol=1e-6, err_msg=name)
