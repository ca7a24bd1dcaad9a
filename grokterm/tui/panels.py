"""The monitor's built-in charts: which metrics of a run each one draws, and how.

A chart is either a fixed set of metrics (accuracy: train and test), or a family of
per-layer metrics drawn together (HTSR α: `alpha/<layer>`, one curve per layer, with the
α = 2 line of Prakash & Martin). No Textual here, only the chart's data classes.
"""

from __future__ import annotations

from dataclasses import dataclass

from grokterm.tui.series import RunSeries, Series
from grokterm.tui.widgets.chart import PALETTE, Curve, Guide, Marker

ALPHA_FAMILY = "alpha/"
TRAPS_METRIC = "traps_total"  # correlation traps summed over layers, at the trap probes
HTSR_OPTIMUM = Guide(2.0, "α=2")  # HTSR: α ≈ 2 is the optimum, α < 2 over-fit (DESIGN §5)


@dataclass(frozen=True)
class Panel:
    title: str
    fixed: tuple[tuple[str, str, str], ...] = ()  # (metric, label, colour)
    family: str | None = None  # a prefix: one curve per metric under it, in palette colours
    log_y: bool = False
    guides: tuple[Guide, ...] = ()
    traps: bool = False  # mark the steps where correlation traps appear or change

    def metrics(self, series: RunSeries) -> list[str]:
        """The metrics of `series` this chart draws."""
        names = [name for name, _, _ in self.fixed]
        if self.family:
            names += [name for name in series.names() if name.startswith(self.family)]
        return names

    def curves(self, series: RunSeries) -> list[Curve]:
        curves = [
            Curve(label, series.get(name), colour)
            for name, label, colour in self.fixed
            if len(series.get(name))
        ]
        if self.family:  # a layer without a finite value (alpha of pos_embed: NaN) has none
            layers = [n for n in self.metrics(series)[len(self.fixed) :] if len(series.get(n))]
            for index, name in enumerate(layers):
                colour = PALETTE[index % len(PALETTE)]
                curves.append(Curve(layer_label(name, self.family), series.get(name), colour))
        return curves


PANELS: dict[str, Panel] = {
    "accuracy": Panel(
        "accuracy", fixed=(("train_acc", "train", "cyan+"), ("test_acc", "test", "orange+"))
    ),
    "loss": Panel(
        "loss",
        fixed=(
            ("loss", "step loss", "gray"),
            ("train_loss", "train", "cyan+"),
            ("test_loss", "test", "orange+"),
        ),
        log_y=True,
    ),
    "norm": Panel(
        "weight norm",
        fixed=(("weight_norm", "‖θ‖", "green+"), ("last_layer_norm", "last layer", "magenta+")),
    ),
    "alpha": Panel("HTSR α per layer", family=ALPHA_FAMILY, guides=(HTSR_OPTIMUM,), traps=True),
    "energy": Panel(
        "spectral energy of the loss",
        fixed=(
            ("spectral/energy", "energy", "yellow"),
            ("spectral/low_energy", "low-freq", "blue+"),
        ),
        log_y=True,
    ),
}


def layer_label(name: str, family: str) -> str:
    """`alpha/blocks.0.mlp_in.weight` -> `blocks.0.mlp_in`: the legend names layers."""
    return name.removeprefix(family).removesuffix(".weight")


def charted_by_panels(series: RunSeries) -> set[str]:
    """Metrics that some built-in chart draws: `m` offers the others."""
    return {name for panel in PANELS.values() for name in panel.metrics(series)}


def trap_markers(series: RunSeries) -> list[Marker]:
    """A mark where the count of correlation traps becomes non-zero or changes, labelled
    ×count: a trap probe that repeats the last count adds nothing to read."""
    traps = series.get(TRAPS_METRIC)
    if not isinstance(traps, Series):
        return []
    marks, last = [], 0.0
    for step, count in zip(traps.steps, traps.values, strict=False):
        if count != last and count > 0:
            marks.append(Marker(int(step), f"×{count:.3g}"))
        last = count
    return marks
