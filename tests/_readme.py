"""What tests/test_readme.py reads out of README.md, and the data its folder holds."""

import dataclasses
import io
import os
import re
import shlex
from unittest import mock

import numpy as np
from PIL import Image
import tensorflow_datasets as tfds

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as _f:
  README = _f.read()


@dataclasses.dataclass(frozen=True)
class Block:
  lang: str
  code: str
  line: int  # of the block's first code line in README.md

  def __repr__(self):
    return f"README.md:{self.line}"


def blocks() -> list[Block]:
  return [Block(m.group(1), m.group(2), README.count("\n", 0, m.start(2)) + 1)
          for m in re.finditer(r"^```(\w*)\n(.*?)^```$", README, re.M | re.S)]


BLOCKS = blocks()
PROSE = re.sub(r"^```\w*\n.*?^```$", "", README, flags=re.M | re.S)


def commands() -> list[tuple[str, list[str]]]:
  """(where, words) of every shell command: the sh blocks' lines (comments and `\\`
  continuations taken care of) and the prose's inline `python train.py ...`."""
  found = []
  for block in BLOCKS:
    if block.lang == "sh":
      for i, line in enumerate(block.code.replace("\\\n", " ").splitlines()):
        words = shlex.split(line, comments=True)
        if words:
          found.append((f"README.md:{block.line + i}", words))
  for span in re.findall(r"`([^`]*python train\.py[^`]*)`", PROSE):
    found.append(("README.md prose", shlex.split(span)))
  return [(where, without_env(words)) for where, words in found]


def without_env(words: list[str]) -> list[str]:
  """The command without its leading VAR=value settings."""
  while words and re.fullmatch(r"[A-Z_]+=.*", words[0]):
    words = words[1:]
  return words


COMMANDS = commands()


def digit_files(folder, data_dir, n):
  """The first n test images of the digits dataset as 8x8 grayscale PNG files in `folder`."""
  from lincv import data as data_lib  # pylint: disable=import-outside-toplevel
  images, _ = data_lib.load("digits", data_dir=str(data_dir))["test"]
  folder.mkdir(parents=True)
  for i in range(n):
    Image.fromarray(images[i, :, :, 0]).save(folder / f"{i}.png")


def _png(feature, pixels):
  """PNG bytes via PIL; tfds's own Image encoder needs TensorFlow."""
  del feature
  buf = io.BytesIO()
  Image.fromarray(np.asarray(pixels)).save(buf, format="PNG")
  return buf.getvalue()


def prepare_cifar10(data_dir, tmp):
  """A tiny CIFAR-10 prepared as ArrayRecord in `data_dir`, as `tfds build` leaves it."""
  rng = np.random.default_rng(0)

  class MadeUp(tfds.builder_cls("cifar10"), skip_registration=True):
    """The catalog builder, with made-up examples in place of the download."""

    name = "cifar10"
    code_path = None

    def _split_generators(self, dl_manager):
      del dl_manager
      return {split: self._examples(split, n) for split, n in (("train", 20), ("test", 10))}

    def _examples(self, split, n):
      for i in range(n):
        yield i, {"id": f"{split}_{i}", "label": i % 10,
                  "image": rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)}

  with mock.patch.object(tfds.features.Image, "encode_example", _png):
    MadeUp(data_dir=data_dir, file_format="array_record").download_and_prepare(
        download_dir=tmp, download_config=tfds.download.DownloadConfig(try_download_gcs=False))


def expected_prints(code: str) -> list[re.Pattern]:
  return [re.compile(".*".join(map(re.escape, text.strip().split("..."))))
          for text in re.findall(r"^\s*print\(.*\)\s+#\s*(.+)$", code, re.M)]


def named_configs() -> set[str]:
  """Every `X.py[:variant]` the prose names that is not a file at the repo's root, and the
  `:variant`s a table row lists next to its config."""
  names = set()
  for line in PROSE.splitlines():
    found = [(f, v) for f, v in re.findall(r"`(?:configs/)?(\w+\.py)(:\w+)?`", line)
             if not os.path.isfile(os.path.join(ROOT, f))]
    names.update(f + v for f, v in found)
    if line.startswith("|") and len(found) == 1:
      names.update(found[0][0] + v for v in re.findall(r"`(:\w+)`", line))
  return names


def run_table() -> list[list[str]]:
  start = README.index("| file | what |")
  rows = README[start:README.index("\n\n", start)].splitlines()[2:]
  return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows]


def file_pattern(name: str) -> re.Pattern:
  return re.compile(re.sub(r"<\w+>", r"\\d+", re.escape(name)))
