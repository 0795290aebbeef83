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

    c = sub.add_parser("compare", help="train models x datasets x lambda x seeds into one results table with ANOVA")
    c.add_argument("config", nargs="?", help="YAML compare config (omit with --resume)")
    c.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE")
    c.add_argument("--out", help="results folder (default outputs/<name>-<timestamp>)")
    c.add_argument("--overwrite", action="store_true", help="discard the runs already in --out")
    c.add_argument("--resume", metavar="DIR", help="continue an interrupted comparison; finished runs are skipped")
    c.add_argument("--quiet", "-q", action="store_true")

    v = sub.add_parser("validate", help="check a config without running it")
    v.add_argument("config")
    v.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE")
    v.add_argument("--print", action="store_true", help="print the resolved config")

    a = sub.add_parser("analyze", help="numbers (and figures) from a trace")
    a.add_argument("trace", help="trace.h5 or its run folder")
    a.add_argument("--json", action="store_true", help="print JSON")
    a.add_argument("--plots", metavar="DIR", help="write PNG figures into DIR")
    a.add_argument("--q-max", type=int, default=8, help="largest denominator for Farey ratios (default 8)")

    i = sub.add_parser("info", help="status, shapes and config of a trace")
    i.add_argument("trace")
    i.add_argument("--config", action="store_true", help="also print the stored config")
    return p


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
    from . import simulation
    from .config import load_config

    stop = _StopFlag()
    _check_source(args, "run")
    if args.resume:
        stop.install()
        res = simulation.resume(args.resume, progress=not args.quiet, should_stop=stop, device=args.device)
    else:
        cfg = load_config(args.config, args.overrides)
        stop.install()
        res = simulation.run(cfg, args.out, overwrite=args.overwrite, progress=not args.quiet, should_stop=stop,
                             device=args.device)
    run_dir = res.path.parent
    if res.status == "failed":
        print(f"dgnn: run failed: {res.message}; {res.records} records kept in {res.path}", file=sys.stderr)
        return EXIT_FAILED
    if res.status == "interrupted":
        print(f"dgnn: interrupted after {res.records} records; trace {res.path}; continue with: dgnn run --resume {run_dir}",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    figs = []
    if not args.no_plots:
        from .plots import write_figures

        figs = write_figures(res.path, run_dir / "figures")
    if not args.quiet:
        from .analysis import summarize

        s = summarize(res.path)
        print(f"trace:   {res.path} ({res.records} records, status {res.status})")
        print(f"config:  {run_dir / 'config.yaml'}")
        if figs:
            print(f"figures: {run_dir / 'figures'}/ ({', '.join(p.name for p in figs)})")
        _print_summary(s)
    return EXIT_OK


def _cmd_sweep(args) -> int:
    from .config import load_config
    from .sweep import parse_grid, resume_sweep, sweep

    stop = _StopFlag()
    _check_source(args, "sweep", "grid", "sweep")
    if args.resume:
        stop.install()
        res = resume_sweep(args.resume, progress=not args.quiet, should_stop=stop)
    else:
        cfg = load_config(args.config, args.overrides)
        grid = parse_grid(args.grid)
        stop.install()
        res = sweep(cfg, grid, args.out, overwrite=args.overwrite, progress=not args.quiet, should_stop=stop)
    if res.status == "interrupted":
        print(f"dgnn: sweep interrupted; continue with: dgnn sweep --resume {res.out}", file=sys.stderr)
        return EXIT_INTERRUPTED
    if res.status == "failed":
        bad = [r["point"] for r in res.rows if r["status"] == "failed"]
        print(f"dgnn: sweep stopped: points {bad} failed; see {res.out}/summary.csv", file=sys.stderr)
        return EXIT_FAILED
    if not args.quiet:
        print(f"sweep:   {res.out} ({res.points} points, {res.ran} simulated now)")
        print(f"summary: {res.out / 'summary.csv'} and summary.json")
    return EXIT_OK


def _cmd_compare(args) -> int:
    from .learn.compare import compare, load_compare_config

    stop = _StopFlag()
    _check_source(args, "compare")
    if args.resume:
        from pathlib import Path

        stop.install()
        res = compare(None, Path(args.resume), resume=True, progress=not args.quiet, should_stop=stop)
    else:
        cfg = load_compare_config(args.config, args.overrides)
        if args.out is None:
            from .simulation import default_run_dir

            args.out = default_run_dir(cfg)
        stop.install()
        res = compare(cfg, args.out, overwrite=args.overwrite, progress=not args.quiet, should_stop=stop)
    if res.status == "interrupted":
        print(f"dgnn: comparison interrupted; continue with: dgnn compare --resume {res.out}", file=sys.stderr)
        return EXIT_INTERRUPTED
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

    cfg = load_config(args.config, args.overrides)
    from .simulation import resolve_device
    from .topology import build_graph

    resolve_device(cfg.device)
    if cfg.topology.kind in ("edgelist", "graphml"):  # the file must parse too
        build_graph(cfg.topology, cfg.neurons.count, cfg.seed)
    print(config_to_yaml(cfg) if args.print else f"{args.config}: valid ({cfg.neurons.count} neurons, "
          f"{cfg.glia_count} glia, {cfg.replicas} replicas, {cfg.n_records + 1} records)")
    return EXIT_OK


def _cmd_analyze(args) -> int:
    from .analysis import summarize
    from .traces import read_trace

    trace = read_trace(args.trace)
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


def _progress_line(path: str) -> str:
    """Whether a trace that says running is being written now (its folder's RunLock owner is alive)."""
    from pathlib import Path

    from .locks import read_owner

    folder = Path(path).parent
    owner = read_owner(folder)
    if owner is None:  # folders written without a lock: sweep points, older versions
        return "no folder lock: the run may be in progress, or it stopped without its final status"
    if owner.alive() is not False:
        return f"in progress: written by {owner}; these are the records of its last flush"
    return (f"not in progress: no process owns this run (it stopped without its final status); "
            f"continue it with: dgnn run --resume {folder}")


def _cmd_info(args) -> int:
    from .traces import describe

    d = describe(args.trace)
    a = d["attrs"]
    print(f"{d['path']}")
    print(f"  status: {a.get('status')}   dgnn {a.get('dgnn_version')}   created {a.get('created')}"
          + (f"   finished {a['finished']}" if "finished" in a else ""))
    if "message" in a:
        print(f"  message: {a['message']}")
    if a.get("status") == "running":
        print(f"  {_progress_line(d['path'])}")
    span = d["time_span"]
    print(f"  records: {d['records']}" + (f"   time {span[0]:g}..{span[1]:g}" if span else ""))
    print(f"  device: {a.get('device')}   coupling backend: {a.get('backend')}")
    for name, shape in sorted(d["datasets"].items()):
        if not name.startswith("checkpoint"):
            print(f"  /{name}: {shape}")
    if args.config:
        print(a.get("config", ""))
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
        if args.version:
            from .version import __version__

            print(f"dgnn {__version__}")
            return EXIT_OK
        if args.command is None:
            _parser().print_help()
            return EXIT_USAGE
        return {"run": _cmd_run, "sweep": _cmd_sweep, "compare": _cmd_compare, "validate": _cmd_validate, "analyze": _cmd_analyze, "info": _cmd_info}[args.command](args)
    except ConfigError as exc:
        print(f"dgnn: error: {exc}", file=sys.stderr)
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
        from .storage import disk_full, is_disk_full

        if not is_disk_full(exc):
            raise
        print(f"dgnn: error: {disk_full(exc.filename or '.', exc)}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
