"""The `dgnn` command: parses, validates and calls the public API. Exit codes: 0 ok, 1 failed run, 2 bad input,
130 interrupted."""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys

from .errors import ConfigError, SimulationFailed

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
# library messages name API arguments; the command line names its flags
FLAGS = {"overrides": "--set", "grid": "--grid", "out": "--out", "resume": "--resume", "storage": "--storage",
         "study": "--study", "workers": "--workers", "device": "--device", "overwrite": "--overwrite"}


def as_flags(message: str) -> str:
    """A library message in the CLI's words: a leading API argument name becomes its flag, `name=True` / `name=...`
    hints become `--name` / `--name ...`, and `name=VALUE` becomes `--name VALUE`."""
    import re

    head = re.match(r"(\w+)\b", message)
    if head and head.group(1) in FLAGS and message[head.end():head.end() + 1] in (" ", ":", "="):
        message = FLAGS[head.group(1)] + message[head.end():]
    message = re.sub(r"\b(\w+)=True\b", lambda m: FLAGS.get(m.group(1), m.group(0)), message)
    message = re.sub(r"\b(\w+)=\.\.\.", lambda m: f"{FLAGS[m.group(1)]} ..." if m.group(1) in FLAGS else m.group(0), message)
    return re.sub(r"(?<![\w.-])(?<!--set )(\w+)=(/\S+|\.\S*|\w\S*)", lambda m: f"{FLAGS[m.group(1)]} {m.group(2)}"
                  if m.group(1) in FLAGS else m.group(0), message)  # resume=DIR -> --resume DIR


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, like every other bad input
        raise ConfigError(f"{self.prog}: {message}")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="dgnn", description="Deep glial-neural networks: simulate and analyse glia-neuron phase oscillators.")
    p.add_argument("--version", action="store_true", help="print the version and exit")
    sub = p.add_subparsers(dest="command", parser_class=_Parser)

    r = sub.add_parser("run", help="simulate a YAML config into an HDF5 trace")
    r.add_argument("config", nargs="?", help="YAML config (omit with --resume)")
    r.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
                   help="override a config key (value parsed as YAML); repeatable")
    r.add_argument("--out", help="run folder (default outputs/<name>-<timestamp>)")
    r.add_argument("--overwrite", action="store_true", help="replace the run in a non-empty --out folder")
    r.add_argument("--resume", metavar="DIR", help="continue an interrupted run in DIR")
    r.add_argument("--device", choices=["auto", "cpu", "cuda"], help="override the config's device")
    r.add_argument("--no-plots", action="store_true", help="skip the figures written after a complete run")
    r.add_argument("--quiet", "-q", action="store_true", help="no progress bar or summary")

    s = sub.add_parser("sweep", help="run the product of a parameter grid (batched), one trace per point + a summary")
    s.add_argument("config", nargs="?", help="YAML config (its sweep.grid block adds to --grid)")
    s.add_argument("--grid", action="append", default=[], metavar="KEY.PATH=V1,V2,...",
                   help="values of one key (YAML scalars, or a YAML list in brackets); repeatable")
    s.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE")
    s.add_argument("--out", help="sweep folder (default outputs/<name>-<timestamp>-sweep)")
    s.add_argument("--overwrite", action="store_true")
    s.add_argument("--resume", metavar="DIR", help="continue an interrupted sweep; finished points are skipped")
    s.add_argument("--quiet", "-q", action="store_true")
    _study_flags(s)

    c = sub.add_parser("compare", help="train models x datasets x lambda x seeds into one results table with ANOVA")
    c.add_argument("config", nargs="?", help="YAML compare config (omit with --resume)")
    c.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE")
    c.add_argument("--out", help="results folder (default outputs/<name>-<timestamp>)")
    c.add_argument("--overwrite", action="store_true", help="discard the runs already in --out")
    c.add_argument("--resume", metavar="DIR", help="continue an interrupted comparison; finished runs are skipped")
    c.add_argument("--quiet", "-q", action="store_true")
    _study_flags(c)

    se = sub.add_parser("search", help="energy-first architecture search: (E min, I max) over glial-neural networks, "
                                       "beside baselines")
    se.add_argument("config", nargs="?", help="YAML search config (omit with --rerun)")
    se.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE")
    se.add_argument("--out", help="search folder (default outputs/<name>-<timestamp>-search)")
    se.add_argument("--overwrite", action="store_true", help="start over: discard the studies of --out / --study")
    se.add_argument("--trials", type=int, metavar="N", help="trials per strategy (overrides budget.trials)")
    se.add_argument("--rerun", metavar="TRIAL_DIR", help="train one trial again from its stored record "
                                                         "(a folder under OUT/trials) and print its E and I")
    se.add_argument("--quiet", "-q", action="store_true")
    _study_flags(se)

    st = sub.add_parser("study", help="the study engine's storages: list studies and their units")
    st_sub = st.add_subparsers(dest="study_command", parser_class=_Parser)
    ss = st_sub.add_parser("status", help="studies in a storage with counts of waiting / running / complete / failed units")
    ss.add_argument("storage", help="a storage URL (postgresql://..., sqlite:///..., journal:///...) or a run folder")

    v = sub.add_parser("validate", help="check a config without running it")
    v.add_argument("config")
    v.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE")
    v.add_argument("--print", action="store_true", help="print the resolved config")
    v.add_argument("--device", choices=["auto", "cpu", "cuda"], help="check for this device instead of the config's")

    a = sub.add_parser("analyze", help="numbers (and figures) from a trace")
    a.add_argument("trace", help="trace.h5 or its run folder")
    a.add_argument("--json", action="store_true", help="print JSON")
    a.add_argument("--plots", metavar="DIR", help="write PNG figures into DIR")
    a.add_argument("--q-max", type=int, default=8, metavar="Q", help="largest denominator for Farey ratios (default 8)")

    i = sub.add_parser("info", help="status, shapes and config of a trace")
    i.add_argument("trace")
    i.add_argument("--config", action="store_true", help="also print the stored config")
    return p


def _study_flags(p) -> None:
    p.add_argument("--storage", metavar="URL", help="Optuna storage URL shared by workers on many machines "
                   "(default: the embedded journal file in --out)")
    p.add_argument("--study", metavar="NAME", help="study name in the storage (default: the command and config name)")
    p.add_argument("--workers", type=int, default=1, metavar="N", help="local worker processes (default 1)")
    p.add_argument("--heartbeat", type=int, default=2, metavar="S", help="seconds between a running unit's heartbeats; "
                   "a unit silent for 5 of them is run again elsewhere (default 2)")


def _heartbeat(args):
    from .study.storage import Heartbeat

    return Heartbeat(interval=args.heartbeat, grace=5 * args.heartbeat)


class _StopFlag:
    """Set by SIGINT/SIGTERM: the run finishes its current record, flushes, and stops."""

    def __init__(self):
        self.raised = False

    def __call__(self) -> bool:
        return self.raised

    def install(self):
        def handler(signum, frame):
            if self.raised:  # a second signal: stop now
                raise KeyboardInterrupt
            self.raised = True

        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, handler)


def _check_source(args, cmd: str, extra: str = "", stored: str = "config") -> None:
    """--resume DIR excludes a config and its overrides (and `extra`, e.g. grid); without it a config is needed."""
    if args.resume:
        if args.config or args.overrides or (extra and getattr(args, extra)):
            given = f"config, --{extra} or --set" if extra else "config or --set"
            raise ConfigError(f"dgnn {cmd} --resume DIR takes no {given}: the stored {stored} is used")
    elif not args.config:
        raise ConfigError(f"dgnn {cmd}: give a config file (or --resume DIR)")


def _cmd_run(args) -> int:
    from .simulation import resume as resume_run, run as run_sim
    from .config import load_config

    stop = _StopFlag()
    _check_source(args, "run")
    if args.resume:
        stop.install()
        res = resume_run(args.resume, progress=not args.quiet, should_stop=stop, device=args.device)
    else:
        cfg = load_config(args.config, args.overrides)
        stop.install()
        res = run_sim(cfg, args.out, overwrite=args.overwrite, progress=not args.quiet, should_stop=stop,
                             device=args.device)
    run_dir = res.path.parent
    if res.status == "failed":
        print(f"dgnn: run failed: {res.message}; {res.records} records kept in {res.path}", file=sys.stderr)
        return EXIT_FAILED
    if res.status == "interrupted":
        print(f"dgnn: interrupted after {res.records} records; trace {res.path}; continue with: dgnn run --resume {run_dir}",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    if args.no_plots and args.quiet:
        return EXIT_OK
    from .analysis import load, summarize

    try:
        trace = load(res.path)  # read once, for the figures and the summary
    except ConfigError as exc:  # the run is complete; only reading it back does not fit
        print(f"dgnn: run complete ({res.path}); figures and summary skipped: {_message(exc, args)}", file=sys.stderr)
        return EXIT_OK
    figs = []
    if not args.no_plots:
        from .plots import write_figures

        figs = write_figures(trace, run_dir / "figures")
    if not args.quiet:
        s = summarize(trace)
        print(f"trace:   {res.path} ({res.records} records, status {res.status})")
        print(f"config:  {run_dir / 'config.yaml'}")
        if figs:
            print(f"figures: {run_dir / 'figures'}/ ({', '.join(p.name for p in figs)})")
        _print_summary(s)
    return EXIT_OK


def _cmd_sweep(args) -> int:
    from .config import load_config
    from .study.sweep import parse_grid, resume_sweep, sweep

    stop = _StopFlag()
    _check_source(args, "sweep", "grid", "sweep")
    if args.resume:
        stop.install()
        res = resume_sweep(args.resume, progress=not args.quiet, should_stop=stop, workers=args.workers,
                           heartbeat=_heartbeat(args))
    else:
        cfg = load_config(args.config, args.overrides)
        grid = parse_grid(args.grid)
        stop.install()
        res = sweep(cfg, grid, args.out, overwrite=args.overwrite, progress=not args.quiet, should_stop=stop,
                    storage=args.storage, study=args.study, workers=args.workers, heartbeat=_heartbeat(args))
    if res.status == "interrupted":
        print(f"dgnn: sweep interrupted; continue with: dgnn sweep --resume {res.out}", file=sys.stderr)
        return EXIT_INTERRUPTED
    if res.status == "failed":
        bad = [r["point"] for r in res.rows if r["status"] != "complete"]
        print(f"dgnn: sweep done, but points {bad} failed (the others completed); see {res.out}/summary.csv",
              file=sys.stderr)
        return EXIT_FAILED
    if not args.quiet:
        print(f"sweep:   {res.out} ({res.points} points, {res.ran} simulated now)")
        print(f"summary: {res.out / 'summary.csv'} and summary.json")
        print(f"study:   {res.study} in {res.storage}")
    return EXIT_OK


def _cmd_compare(args) -> int:
    from .study.compare import compare, load_compare_config

    stop = _StopFlag()
    _check_source(args, "compare")
    if args.resume:
        from pathlib import Path

        stop.install()
        res = compare(None, Path(args.resume), resume=True, progress=not args.quiet, should_stop=stop,
                      workers=args.workers, heartbeat=_heartbeat(args))
    else:
        cfg = load_compare_config(args.config, args.overrides)
        if args.out is None:
            from .simulation import default_run_dir

            args.out = default_run_dir(cfg)
        stop.install()
        res = compare(cfg, args.out, overwrite=args.overwrite, progress=not args.quiet, should_stop=stop,
                      storage=args.storage, study=args.study, workers=args.workers, heartbeat=_heartbeat(args))
    if res.status == "interrupted":
        print(f"dgnn: comparison interrupted; continue with: dgnn compare --resume {res.out}", file=sys.stderr)
        return EXIT_INTERRUPTED
    if res.status == "failed":
        print(f"dgnn: comparison finished with failed runs ({len(res.rows)} complete); see dgnn study status {res.out}",
              file=sys.stderr)
        return EXIT_FAILED
    if not args.quiet:
        print(f"{'dataset':<16} {'model':<20} {'lambda':>8} {'seeds':>5} {'accuracy':>15} {'I bits':>7} {'E_act':>8} "
              f"{'params':>8}")
        for s in res.summary:
            print(f"{s['dataset']:<16} {s['model']:<20} {s['lambda']:>8.3g} {s['seeds']:>5} "
                  f"{s['accuracy_mean']:>8.4f} +/- {s['accuracy_sd']:.3f} {s['information_bits_mean']:>7.3f} "
                  f"{s['activation_energy_mean']:>8.4f} {s['parameters_mean']:>8.0f}")
        for lam, table in res.anova.items():
            print(f"ANOVA of accuracy, lambda = {lam}:")
            for row in table[:-1]:
                print(f"  {row['source']:<14} F = {row['F']:9.3f}  p = {row['p']:.3g}  partial eta^2 = {row['partial_eta2']:.3f}")
        print(f"results: {res.out}/results.csv, summary.csv, results.json, results.h5 ({res.ran} runs now)")
    return EXIT_OK


def _cmd_search(args) -> int:
    from .config import load_config
    from .study.nas.config import SearchConfig
    from .study.nas.command import search
    from .study.nas.run import rerun

    if args.rerun:
        from pathlib import Path

        trial = Path(args.rerun)
        row = rerun(trial.parent.parent, trial.name)
        print(f"{trial.name}: E = {row['energy']!r} ({row['energy_measure']}), I = {row['information_bits']!r} bits, "
              f"accuracy {row['accuracy']:.4f} (validation), {row['accuracy_test']:.4f} (test)")
        return EXIT_OK
    if not args.config:
        raise ConfigError("dgnn search: give a config file (or --rerun TRIAL_DIR)")
    if args.trials is not None and args.trials < 1:
        raise ConfigError(f"trials: expected >= 1, found {args.trials}")
    cfg = load_config(args.config, args.overrides, model=SearchConfig)
    stop = _StopFlag()
    stop.install()
    res = search(cfg, args.out, storage=args.storage, study=args.study, workers=args.workers, trials=args.trials,
                 overwrite=args.overwrite, progress=not args.quiet, should_stop=stop, heartbeat=_heartbeat(args))
    if res.status == "interrupted":
        print("dgnn: search interrupted after the current trial; continue with the same command", file=sys.stderr)
        return EXIT_INTERRUPTED
    if not args.quiet:
        s = res.summary
        print(f"search:  {res.out} ({s['n_trials']} trials of {s['strategy']}, {s['n_failed']} failed; "
              f"objectives {s['objectives']}, E = {s['energy_measure']})")
        print(f"front:   {res.out / 'pareto.csv'} ({len(s['pareto'])} nets), hypervolume {s['hypervolume']:.4g} "
              f"(reference {s['reference_point'][0]:.3g}, {s['reference_point'][1]:g})")
        for plane in s["planes"].values():
            for name, p in plane["strategies"].items():
                print(f"         {plane['energy']:<22s} {name:<14s} {p['trials']:4d} trials  hypervolume {p['hypervolume']:.4g}")
        print(f"trials:  {res.out / 'trials.csv'}; summary {res.out / 'summary.json'}")
        print(f"figures: {res.out / 'figures'}/ ({', '.join(s['figures'])})")
        print(f"study:   {res.study} in {res.storage}")
    return EXIT_OK


def _cmd_study(args) -> int:
    from .study.status import status_table

    if args.study_command is None:
        raise ConfigError("dgnn study: give a subcommand (status STORAGE)")
    print(status_table(args.storage))
    return EXIT_OK


def _print_summary(s: dict) -> None:
    for pop in ("neurons", "glia"):
        if pop in s:
            d = s[pop]
            line = f"{pop:8s} r(final)={d['order_parameter_final']:.4f}  <r>={d['order_parameter_mean']:.4f}  " \
                   f"metastability={d['metastability']:.4f}"
            if "mean_frequency" in d:
                line += f"  mean frequency={d['mean_frequency']:.4f} rad/time"
            print(line)
    if "metabolism" in s:
        m = s["metabolism"]
        print(f"energy   supplied={m['total_supplied']:.4g}  consumed={m['total_consumed']:.4g}  unmet={m['total_unmet']:.4g}  "
              f"final reserve={m['reserve_final']:.4g}  ledger imbalance={m['ledger_max_imbalance']:.2g}")
    if "neuron_to_glia_frequency_ratio" in s:
        fr = s["neuron_to_glia_frequency_ratio"]
        print(f"neuron:glia frequency ratio {fr['ratio']:.4f} ~ {fr['farey']} (n:m locking index {fr['nm_locking_index']:.3f})")


def _cmd_validate(args) -> int:
    from .config import config_to_yaml, load_config
    from .simulation import Simulation

    if _is_search_config(args.config):
        from .study.nas.config import SearchConfig

        space = load_config(args.config, args.overrides, model=SearchConfig).search_space()  # probes each branch
        print(f"{args.config}: valid search ({len(space.order)} keys: {', '.join(space.order)})")
        return EXIT_OK
    cfg = load_config(args.config, args.overrides)
    Simulation(cfg, device=args.device)  # everything `run` builds before its first step: graph, memory, stability
    print(config_to_yaml(cfg) if args.print else f"{args.config}: valid ({cfg.neurons.count} neurons, "
          f"{cfg.glia_count} glia, {cfg.replicas} replicas, {cfg.n_records + 1} records)")
    return EXIT_OK


def _is_search_config(path) -> bool:
    """Whether a readable YAML mapping at `path` has a top-level `space` (a `dgnn search` config)."""
    from .textfiles import parse, read_text

    try:
        data, _ = parse(read_text(path), str(path))
    except ConfigError:
        return False  # load_config reports the problem in its own words
    return isinstance(data, dict) and "space" in data


def _cmd_analyze(args) -> int:
    from .analysis import load, summarize

    trace = load(args.trace)
    s = summarize(trace, q_max=args.q_max)
    if args.plots:
        from .plots import write_figures

        s["figures"] = [str(p) for p in write_figures(trace, args.plots)]
    if args.json:
        print(json.dumps(s, indent=2))
    else:
        print(f"{trace.path}: status {s['status']}, {s['records']} records, t = {s['time'][0]:g}..{s['time'][1]:g}")
        _print_summary(s)
        for p in s.get("figures", []):
            print(f"figure: {p}")
    return EXIT_OK


def _progress_line(folder) -> str:
    """Whether a trace in `folder` that says running is being written now (the folder's RunLock owner is alive)."""
    from .locks import read_owner

    owner = read_owner(folder)
    if owner is None:  # folders written without a lock: sweep points, older versions
        return "no folder lock: the run may be in progress, or it stopped without its final status"
    if owner.alive() is not False:
        return f"in progress: written by {owner}; these are the records of its last flush"
    return (f"not in progress: no process owns this run (it stopped without its final status); "
            f"continue it with: dgnn run --resume {folder}")


def _cmd_info(args) -> int:
    from .traces import describe

    from pathlib import Path

    given = Path(args.trace)
    # the owner first, then the trace: a writer publishes its final status before it lets go of the folder, so a
    # trace read after its owner was seen gone holds that final status
    progress = _progress_line(given if given.is_dir() else given.parent)
    d = describe(args.trace)
    a = d["attrs"]
    print(f"{d['path']}")
    print(f"  status: {a.get('status')}   dgnn {a.get('dgnn_version')}   created {a.get('created')}"
          + (f"   finished {a['finished']}" if "finished" in a else ""))
    if "message" in a:
        print(f"  message: {a['message']}")
    if a.get("status") == "running":
        print(f"  {progress}")
    span = d["time_span"]
    print(f"  records: {d['records']}" + (f"   time {span[0]:g}..{span[1]:g}" if span else ""))
    print(f"  device: {a.get('device')}   coupling backend: {a.get('backend')}")
    for name, shape in sorted(d["datasets"].items()):
        if not name.startswith("checkpoint"):
            print(f"  /{name}: {shape}")
    if args.config:
        print(a.get("config", ""))
    return EXIT_OK


# API argument names (and hints) in library messages -> this CLI's flags, per command
_FLAGS = {
    "run": {"out": "--out", "overwrite=True": "--overwrite", "resume": "--resume", "run_dir": "--resume"},
    "sweep": {"out": "--out", "overwrite=True": "--overwrite", "resume": "--resume"},
    "compare": {"out": "--out", "overwrite=True": "--overwrite", "resume": "--resume"},
    "analyze": {"q_max": "--q-max", "out_dir": "--plots"},
}


def _message(exc: ConfigError, args) -> str:
    """One line: library argument names become this command's flags, and an error raised after validation that
    names a config key gets where that key was set (file and line, or the --set)."""
    text = str(exc)
    if text.startswith("override "):
        text = "--set " + text[len("override "):]
    cmd = getattr(args, "command", None)
    key = getattr(exc, "key", None) or _leading_key(text, cmd)
    if key == "device" and getattr(args, "device", None):
        text = "--device" + text[len("device"):] if text.startswith("device") else text
    elif key and getattr(args, "config", None) and not getattr(args, "resume", None):
        from .config import config_location

        where = config_location(args.config, key, getattr(args, "overrides", None))
        text = f"{where.replace('override ', '--set ', 1)}: {text}"
    for name, flag in _FLAGS.get(cmd, {}).items():
        if name.endswith("=True"):
            text = text.replace(f"pass {name}", f"pass {flag}")
        elif text.startswith((name + " ", name + ":")):
            text = flag + text[len(name):]
    return as_flags(" ".join(text.splitlines()))


def _leading_key(text: str, cmd: str | None) -> str | None:
    """The dotted config key a message starts with ('coupling.backend: ...'), if it is one of the command's config."""
    head = text.split(":", 1)[0].split(" ", 1)[0]
    if cmd not in ("run", "sweep", "validate", "compare") or not head or head != text.split(":", 1)[0]:
        return None
    if cmd == "compare":
        from .study.config import CompareConfig as model
    else:
        from .config import Config as model
    return head if head.split(".")[0] in model.model_fields else None


def main(argv: list[str] | None = None) -> int:
    args = None
    try:
        try:
            args = _parser().parse_args(argv)
        except SystemExit as exc:  # --help printed the usage
            return exc.code if isinstance(exc.code, int) else EXIT_OK
        if args.version:
            from .version import __version__

            print(f"dgnn {__version__}")
            return EXIT_OK
        if args.command is None:
            _parser().print_help()
            print("dgnn: error: give a command: run, sweep, compare, search, study, validate, analyze or info",
                  file=sys.stderr)
            return EXIT_USAGE
        commands = {"run": _cmd_run, "sweep": _cmd_sweep, "compare": _cmd_compare, "search": _cmd_search,
                    "study": _cmd_study,
                    "validate": _cmd_validate, "analyze": _cmd_analyze, "info": _cmd_info}
        return commands[args.command](args)
    except ConfigError as exc:
        print(f"dgnn: error: {_message(exc, args)}", file=sys.stderr)
        return EXIT_USAGE
    except SimulationFailed as exc:
        print(f"dgnn: run failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("dgnn: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # the reader (head, less) closed the pipe: stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except OSError as exc:
        from .disk import disk_full, is_disk_full

        if not is_disk_full(exc):
            raise
        print(f"dgnn: error: {disk_full(exc.filename or '.', exc)}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
