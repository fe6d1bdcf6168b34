"""Fault injection for the checkpoint tests: a process "killed" at its n-th file operation.

Every write of lincv's run files goes through `checkpoint.atomic_write` and every removal
through `checkpoint.remove`; `kill_at(n)` makes the n-th of these operations (counting
from 1) leave a torn temporary file, as a kill in the middle of a write would, and raise
`Killed`, which no code of lincv catches.
"""

import contextlib
import io
import os

from lincv import checkpoint
from lincv.progress import Progress


class Killed(BaseException):
  """The simulated kill."""


class KillAt(Progress):
  """Progress that kills the run after epoch `epoch` of group `group`."""

  def __init__(self, group, epoch):
    super().__init__(io.StringIO())
    self.at = (group, epoch)

  def __call__(self, p):
    super().__call__(p)
    if (p["group"], p["epoch"]) == self.at:
      raise Killed(f"killed after epoch {p['epoch']} of group {p['group']}")


@contextlib.contextmanager
def kill_at(n: int | None):
  """Counts file operations (`ops[0]`); the n-th raises `Killed` (never, for n=None)."""
  ops = [0]
  write, remove = checkpoint.atomic_write, getattr(checkpoint, "remove", None)

  def tick(path):
    ops[0] += 1
    if ops[0] == n:
      folder = os.path.dirname(os.path.abspath(path))
      if os.path.isdir(folder):
        with open(os.path.join(folder, ".tmp-torn"), "wb") as f:
          f.write(b"half a file")
      raise Killed(f"killed at operation {n}: {path}")

  def killing_write(path, fn):
    tick(path)
    write(path, fn)

  def killing_remove(path):
    tick(path)
    remove(path)

  checkpoint.atomic_write = killing_write
  if remove is not None:
    checkpoint.remove = killing_remove
  try:
    yield ops
  finally:
    checkpoint.atomic_write = write
    if remove is not None:
      checkpoint.remove = remove


def outcome(result) -> str:
  """Everything a sweep reports, but the time it took, as one comparable string."""
  import json  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  rows = [{k: v for k, v in r.items() if k != "seconds"} for r in result.rows]
  params = {k: np.asarray(v).tolist() for k, v in result.best_params.items()}
  return json.dumps({"rows": rows, "history": result.history, "params": params})


def share_populations(monkeypatch) -> None:
  """Runs of the same group share its Population (pure compiled functions), so that a
  test killing and resuming a sweep many times compiles once."""
  from lincv import sweep  # pylint: disable=import-outside-toplevel
  built, new = {}, sweep.Population

  def population(group, data, num_classes, *placement, **options):
    key = (group.structure, group.members, tuple(sorted(options.items())),
           tuple((k, v.tobytes()) for k, v in sorted(group.hparams.items())))
    if key not in built:
      built[key] = new(group, data, num_classes, *placement, **options)
    return built[key]

  monkeypatch.setattr(sweep.population, "Population", population)


def resumes_at_every_write(run, tmp_path, after=lambda workdir: None):
  """`run(workdir)` killed at its first file operation, then (a fresh workdir) at its
  second, ..., each time resumed: (the uninterrupted run's `outcome`, its number of
  operations, the operations after which the resumed run differed). `after(workdir)` is
  called on each resumed workdir."""
  with kill_at(None) as ops:
    reference = outcome(run(tmp_path / "uninterrupted"))
  differ = []
  for n in range(1, ops[0] + 1):
    workdir = tmp_path / f"kill{n}"
    with kill_at(n):
      try:
        run(workdir)
      except Killed:
        pass
      else:
        raise AssertionError(f"operation {n} of {ops[0]} did not kill the run")
    if outcome(run(workdir)) != reference:
      differ.append(n)
    after(workdir)
  return reference, ops[0], differ
