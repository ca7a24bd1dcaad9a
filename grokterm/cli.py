"""The `grokterm` command: everything the lab does, headless.

Start-up stays light: torch is imported only by `grokterm run` in the foreground.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

from grokterm.errors import GrokError, UsageError
from grokterm.lab import Lab
from grokterm.lab.store import NOTE_MAX_CHARS


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def lab_from(args: argparse.Namespace) -> Lab:
    root = args.lab or os.environ.get("GROKTERM_LAB") or "grokterm-lab"
    return Lab(Path(root).expanduser())


def finite_or_none(data: Any) -> Any:
    """JSON has no NaN/Infinity (a diverged run has them): write them as null."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {key: finite_or_none(value) for key, value in data.items()}
    if isinstance(data, list | tuple):
        return [finite_or_none(value) for value in data]
    return data


def dump_json(data: Any) -> None:
    print(json.dumps(finite_or_none(data), indent=2, default=str, allow_nan=False))


def console(file=None):
    from rich.console import Console

    # Piped output is for reading later or grepping: don't squeeze tables to 80 columns.
    return Console(file=file, highlight=False, width=None if sys.stdout.isatty() else 160)


# --- commands -----------------------------------------------------------------------------


def cmd_presets(args: argparse.Namespace) -> int:
    from grokterm import views
    from grokterm.presets import list_presets, load_experiment

    rows = []
    for name in list_presets():
        _, exp = load_experiment(name)
        rows.append(views.preset_row(name, exp))
    if args.json:
        dump_json(rows)
    else:
        console().print(views.presets_table(rows))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from grokterm import launcher
    from grokterm.presets import load_experiment

    overrides = list(args.set or [])
    if args.data_root:
        overrides.append(f"task.data_root={json.dumps(args.data_root)}")
    if args.name:
        overrides.append(f"name={json.dumps(args.name)}")
    preset, experiment = load_experiment(args.experiment, overrides)
    lab = lab_from(args)
    if args.detach:
        print(launcher.launch(lab, experiment, preset))
        return 0
    run_id = launcher.create_run(lab, experiment, preset)
    from grokterm.foreground import QuietWhenHungUp, run_in_foreground

    return run_in_foreground(lab, run_id, experiment, console(QuietWhenHungUp(sys.stdout)))


def cmd_ls(args: argparse.Namespace) -> int:
    from grokterm import live, views

    lab = lab_from(args)
    runs = live.live_views(lab)
    if args.json:
        dump_json([view.to_json() for view in runs])
    elif not runs:
        print(f"no runs in {lab.root}")
    else:
        console().print(views.runs_table(runs))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from grokterm import live, views

    lab = lab_from(args)
    run_id = lab.resolve(args.run)
    view = live.marked_views(lab, [lab.get_run(run_id)])[0]  # a running run's t2 as in ls
    events, notes = lab.events(run_id), lab.notes(run_id)
    if args.json:
        shown = {"events": [event.to_json() for event in events], "notes": notes}
        dump_json({**view.to_json(), **shown, "dir": str(lab.run_dir(run_id))})
    else:
        views.print_run(console(), view, events, notes, lab.run_dir(run_id))
    return 0


def note_text(arg: str) -> str:
    """The note's text: the argument itself, or standard input for '-'."""
    if arg != "-":
        return arg
    data = sys.stdin.buffer.read(4 * NOTE_MAX_CHARS + 1)
    if len(data) > 4 * NOTE_MAX_CHARS:
        raise UsageError(f"note: standard input is longer than {NOTE_MAX_CHARS:,} characters")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"note: standard input is not UTF-8 text (byte {exc.start})") from None


def cmd_note(args: argparse.Namespace) -> int:
    lab = lab_from(args)
    run_id = lab.resolve(args.run)
    note = lab.add_note(note_text(args.text), run_id=run_id, step=args.step)
    print(
        f"note {note['id']} added to {run_id}"
        + (f" at step {args.step}" if args.step is not None else "")
    )
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    from grokterm import launcher

    lab = lab_from(args)
    run_id = lab.resolve(args.run)
    launcher.stop(lab, run_id)
    print(f"asked {run_id} to stop; it checkpoints and ends as 'stopped'")
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    from grokterm import launcher

    lab = lab_from(args)
    run_id = lab.resolve(args.run)
    if launcher.resume(lab, run_id):
        print(f"restarting {run_id} from step 0 in the background (it has no checkpoint)")
    else:
        print(f"resuming {run_id} from its last checkpoint in the background")
    return 0


def cmd_repair(args: argparse.Namespace) -> int:
    from grokterm import live, repair

    lab = lab_from(args)
    if not lab.exists and not repair.unlisted_run_dirs(lab):
        raise UsageError(f"repair: no lab at {lab.root} (neither a lab log nor run folders)")
    result = lab.repair()
    if result["repaired"]:
        print(
            f"restored {lab.lablog_path} from {result['from']}: {result['runs']} runs, "
            f"{result['notes']} notes, {result['events']} events"
        )
        print("the corrupt version is kept in " + ", ".join(result["backups"]))
    else:
        print(f"lab log: nothing to repair ({result['why']})")
    for run_id in repair.unlisted_run_dirs(lab):
        try:
            record = repair.reregister(lab, run_id)
        except GrokError as exc:
            print(f"{run_id}: not put back: {exc}")
            continue
        print(
            f"put back {run_id} from its folder: {record.status} at step {record.step}"
            " (events re-derived from its metrics)"
        )
    recovered = lab.recover_notes()
    if recovered:
        print(f"put back {recovered} note(s) from {lab.notes_journal}")
    settled = live.record_ended_runs(lab)
    if settled:
        print("recorded the end of " + ", ".join(settled) + " from status.json")
    return 0


def cmd_tui(args: argparse.Namespace) -> int:
    from grokterm.tui.app import run_tui

    run_tui(lab_from(args))
    return 0


def cmd_analyze(args: argparse.Namespace) -> int:
    if args.weightwatcher:
        return analyze_weightwatcher(args)
    if args.step is not None:
        raise UsageError("analyze: --step goes with --weightwatcher")
    from grokterm import views
    from grokterm.lab.records import ENDED_CLEANLY, Event
    from grokterm.lab.stream import read_records
    from grokterm.phases import replay
    from grokterm.presets import apply_overrides, build_detector

    lab = lab_from(args)
    run_id = lab.resolve(args.run)
    record = lab.get_run(run_id)
    overrides = [a if a.startswith("detector.") else f"detector.{a}" for a in args.set or []]
    data = apply_overrides({"detector": dict(record.config.get("detector") or {})}, overrides)
    thresholds = build_detector(data["detector"])
    records = read_records(lab.run_dir(run_id) / "metrics.jsonl")
    ended = record.status in ENDED_CLEANLY
    _, events = replay(records, thresholds, final_step=record.step if ended else None)
    replayed = [Event.model_validate(event) for event in events]
    analysis = views.analysis(run_id, lab.events(run_id), replayed, thresholds.model_dump())
    if args.json:
        dump_json(analysis)
    else:
        views.print_analysis(console(), analysis)
    return 0


def analyze_weightwatcher(args: argparse.Namespace) -> int:
    from grokterm.weightwatch import analyse_checkpoint, print_weightwatcher

    if args.set:
        raise UsageError("analyze: --set changes detector thresholds, not --weightwatcher")
    lab = lab_from(args)
    run_id = lab.resolve(args.run)
    analysis = analyse_checkpoint(lab, run_id, args.step)
    if args.json:
        dump_json(analysis)
    else:
        print_weightwatcher(console(), analysis)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from grokterm import live
    from grokterm.lab.export import export_runs

    lab = lab_from(args)
    run_ids = [lab.resolve(ref) for ref in args.runs]
    default = f"{run_ids[0]}.md" if len(run_ids) == 1 else "grokterm-export.md"
    target = Path(args.output or default)
    written = export_runs(lab, live.settled_views(lab, run_ids), target)
    for path in written:
        print(path)
    return 0


SWEEP_ACTIONS = ("ls", "show", "stop", "resume", "export")


def cmd_sweep(args: argparse.Namespace) -> int:
    """`sweep SOURCE --grid ...` starts one; `sweep ls|show|stop|resume|export [SWEEP]` the
    rest."""
    if args.target in SWEEP_ACTIONS:
        if args.grid or args.set or args.seeds is not None or args.steps is not None:
            raise UsageError(f"sweep {args.target}: --grid/--set/--seeds/--steps start a sweep")
        if args.output and args.target != "export":
            raise UsageError(f"sweep {args.target}: -o/--output goes with export")
        return sweep_action(args)
    if args.sweep or args.output:
        extra = args.sweep or f"-o {args.output}"
        raise UsageError(f"sweep {args.target}: unexpected argument {extra!r}")
    return start_sweep(args)


def start_sweep(args: argparse.Namespace) -> int:
    from grokterm.sweep import control, spec
    from grokterm.sweep.report import axes_text

    path = spec.resolve_sweep_path(args.target)
    if path is not None:
        if args.grid or args.seeds is not None:
            raise UsageError(f"{path.name} defines its grid; --grid/--seeds go with a preset")
        overrides = list(args.set or [])
        if args.steps is not None:
            overrides.append(f"schedule.steps={args.steps}")
        sweep_spec, cells = spec.from_file(path, overrides, args.parallel)
    else:
        sweep_spec, cells = spec.from_command_line(
            args.target,
            args.grid or [],
            args.set,
            args.seeds,
            args.steps,
            args.parallel or 1,
            args.name,
        )
    if args.name:
        sweep_spec = sweep_spec.model_copy(update={"name": args.name})
    grid = " × ".join(
        f"{'seeds' if a.replicate else a.field} ({len(a.values)})" for a in sweep_spec.axes
    )
    if args.dry_run:
        print(f"{sweep_spec.name}: {len(cells)} cells ({grid}), {sweep_spec.parallel} at a time")
        for cell in cells:
            print("  " + ", ".join(f"{field}={value}" for field, value in cell.coords.items()))
        return 0
    lab = lab_from(args)
    record = control.launch(lab, sweep_spec, cells)
    view = control.view(lab, record)
    print(
        f"{record.id}: {len(record.cells)} cells ({axes_text(view)}), {record.parallel} at a "
        f"time, in the background.\nFollow it with `grokterm sweep show {record.id}` or in "
        "the TUI; stop it with `grokterm sweep stop`."
    )
    return 0


def sweep_action(args: argparse.Namespace) -> int:
    from grokterm.sweep import control, report

    lab = lab_from(args)
    if args.target == "ls":
        sweeps = control.views(lab)
        if args.json:
            dump_json([report.sweep_json(sweep) for sweep in sweeps])
        elif not sweeps:
            print(f"no sweeps in {lab.root}")
        else:
            console().print(report.sweeps_table(sweeps))
        return 0
    if not args.sweep:
        raise UsageError(f"sweep {args.target}: which sweep? (see `grokterm sweep ls`)")
    sweep_id = lab.resolve_sweep(args.sweep)
    if args.target == "show":
        from grokterm.sweep.analysis import analyse

        view = control.view(lab, lab.get_sweep(sweep_id))
        told = analyse(lab, view)
        if args.json:
            dump_json(report.sweep_json(view, told))
        else:
            out = console()
            out.print(report.cells_table(view))
            for line in told.lines():
                out.print(line, markup=False)
    elif args.target == "export":
        from grokterm.sweep.export import export_sweep_files

        target = Path(args.output or f"{sweep_id}.md")
        for path in export_sweep_files(lab, sweep_id, target):
            print(path)
    elif args.target == "stop":
        stopped = control.stop(lab, sweep_id)
        print(f"{sweep_id}: stopped; {len(stopped)} training cell(s) asked to stop")
    else:
        requeued = control.resume(lab, sweep_id)["requeued"]
        print(f"{sweep_id}: scheduling again; {len(requeued)} stopped or crashed cell(s) requeued")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from grokterm import live, views
    from grokterm.lab.comparison import compare

    lab = lab_from(args)
    run_ids = list(dict.fromkeys(lab.resolve(ref) for ref in args.runs))
    if len(run_ids) < 2:
        raise UsageError("compare: give at least two different runs")
    runs = live.marked_views(lab, [lab.get_run(run_id) for run_id in run_ids])
    comparison = compare(runs)
    if args.json:
        dump_json(comparison)
    else:
        views.print_comparison(console(), comparison)
    return 0


def check_utf8(argv: list[str]) -> None:
    # Undecodable bytes in argv arrive as lone surrogates, which no file can store.
    for position, arg in enumerate(argv, 1):
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            raise UsageError(f"argument {position} is not valid UTF-8 text") from None


def positive(text: str) -> int:
    value = non_negative(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative")
    return value


# --- parser -----------------------------------------------------------------------------


def build_parser() -> Parser:
    lab_help = "lab directory (default: $GROKTERM_LAB, else ./grokterm-lab)"
    parser = Parser(prog="grokterm", description="A terminal lab notebook for grokking research.")
    parser.add_argument("--lab", metavar="PATH", help=lab_help)
    # Subcommands accept --lab too; SUPPRESS keeps a top-level --lab from being reset to None.
    common = Parser(add_help=False)
    common.add_argument("--lab", metavar="PATH", default=argparse.SUPPRESS, help=lab_help)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    def add(name: str, func, help_text: str) -> Parser:
        command = sub.add_parser(name, help=help_text, description=help_text, parents=[common])
        command.set_defaults(func=func)
        return command

    p = add("presets", cmd_presets, "list the experiment presets")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = add("run", cmd_run, "run an experiment (a preset name or a TOML file)")
    p.add_argument("experiment", metavar="PRESET|FILE")
    p.add_argument(
        "--set", action="append", metavar="FIELD=VALUE", help="override a field, e.g. optim.lr=3e-4"
    )
    p.add_argument("--detach", action="store_true", help="start in the background, print the id")
    p.add_argument("--data-root", metavar="PATH", help="where MNIST lives (task.data_root)")
    p.add_argument("--name", help="run name (default: the experiment's name)")

    p = add("ls", cmd_ls, "list runs")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = add("show", cmd_show, "show one run: config, summary, events, notes")
    p.add_argument("run", metavar="RUN", help="run id, its number, or a unique prefix")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = add("note", cmd_note, "add a note to a run")
    p.add_argument("run", metavar="RUN")
    p.add_argument("text", metavar="TEXT", help="the note; '-' reads it from standard input")
    p.add_argument("--step", type=non_negative, help="attach the note to this step")

    p = add("stop", cmd_stop, "stop a running run (it checkpoints first)")
    p.add_argument("run", metavar="RUN")

    p = add("resume", cmd_resume, "continue a stopped or crashed run from its last checkpoint")
    p.add_argument("run", metavar="RUN")

    add("tui", cmd_tui, "open the terminal UI (the default with no command)")

    add(
        "repair",
        cmd_repair,
        "restore a corrupt lab log from its version before the last write, and put back "
        "runs whose folders the log lacks",
    )

    p = add(
        "analyze",
        cmd_analyze,
        "re-run the phase detector on a stored run, or WeightWatcher on one of its checkpoints",
    )
    p.add_argument("run", metavar="RUN")
    p.add_argument(
        "--weightwatcher",
        action="store_true",
        help="run WeightWatcher on a checkpoint and show its per-layer numbers beside the "
        "live ones (kept in the run folder for export)",
    )
    p.add_argument(
        "--step",
        type=non_negative,
        help="with --weightwatcher: the checkpoint at or nearest before this step "
        "(default: the last)",
    )
    p.add_argument(
        "--set",
        action="append",
        metavar="THRESHOLD=VALUE",
        help="change a detector threshold, e.g. grokking_gap=5000 or generalized=0.9",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = add("export", cmd_export, "export runs to Markdown with PNG charts")
    p.add_argument("runs", metavar="RUN", nargs="+")
    p.add_argument("-o", "--output", metavar="FILE.md", help="Markdown file to write")

    p = add(
        "sweep",
        cmd_sweep,
        "a grid of runs: `sweep PRESET|FILE --grid FIELD=VALUES...` starts one in the "
        "background; `sweep ls`, `sweep show|stop|resume SWEEP`, `sweep export SWEEP "
        "[-o FILE.md]` (phase diagram PNGs, analysis, cells, notes)",
    )
    p.add_argument("target", metavar="PRESET|FILE|ls|show|stop|resume|export")
    p.add_argument("sweep", metavar="SWEEP", nargs="?", help="with show/stop/resume/export")
    p.add_argument(
        "--grid",
        action="append",
        metavar="FIELD=VALUES",
        help="an axis: optim.lr=1e-4,1e-3 or optim.lr=logspace(-5,-2,7), linspace(a,b,n), "
        "range(a,b,step)",
    )
    p.add_argument(
        "--set", action="append", metavar="FIELD=VALUE", help="override a field in every cell"
    )
    p.add_argument("--seeds", type=positive, help="replicates: N seeds per cell")
    p.add_argument("--steps", type=positive, help="the budget per cell (schedule.steps)")
    p.add_argument("--parallel", type=positive, help="cells training at once (default 1)")
    p.add_argument("--name", help="the sweep's name (its cells' run names)")
    p.add_argument("--dry-run", action="store_true", help="list the cells, start nothing")
    p.add_argument("--json", action="store_true", help="with ls/show: machine-readable output")
    p.add_argument(
        "-o", "--output", metavar="FILE.md", help="with export: the Markdown file (SWEEP.md)"
    )

    p = add("compare", cmd_compare, "compare runs: config diff and phase timings")
    p.add_argument("runs", metavar="RUN", nargs="+")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else argv
    try:
        check_utf8(argv)
        args = parser.parse_args(argv)
        if args.command is None:
            return cmd_tui(args)
        return args.func(args)
    except GrokError as exc:
        print(f"grokterm: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
