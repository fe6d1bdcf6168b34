"""A halving sweep with and without compaction on the devices XLA_FLAGS gives, run by
tests/test_compaction.py: prints, as JSON, the device count, both outcomes, the
population sizes the compacted epochs trained, and the epoch programs each group compiled.

Usage: python _halving_main.py
"""

import json

import jax
import pytest

from test_compaction import _run, compiled_epochs, populations, three_device_config


def main():
  c = three_device_config()
  with pytest.MonkeyPatch.context() as monkeypatch:
    frozen, _ = _run(c, monkeypatch, compact=False)
    built = populations(monkeypatch)
    compacted, sizes = _run(c, monkeypatch, compact=True)
    compiled = [sum(compiled_epochs(pop).values()) for pop in built]
  print(json.dumps({"devices": jax.device_count(), "frozen": frozen,
                    "compacted": compacted, "sizes": sizes, "compiled": compiled}))


if __name__ == "__main__":
  main()
