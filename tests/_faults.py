"""Fault injection for the checkpoint tests: a process "killed" at its n-th file operation.

Every write of lincv's run files goes through `checkpoint.atomic_write` and every removal
through `checkpoint.remove`; `kill_at(n)` makes the n-th of these operations (counting
from 1) leave a torn temporary file, as a kill in the middle of a write would, and raise
`Killed`, which no code of lincv catches.
"""

import contextlib
import os

from lincv import checkpoint


class Killed(BaseException):
  """The simulated kill."""


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
