"""What every study script shares: its command line (config, output folder, the study engine's flags, --quiet)
and loading its config. The studies themselves live in the package (dgnn.study)."""
from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path


def study_args(doc: str, config: str, out: str, argv=None, workers: bool = False) -> argparse.Namespace:
    """--config, --out (created) and --quiet; with workers, the study engine's --workers (alias --jobs), --storage,
    --study, --overwrite (and --resume, kept for old command lines: running again always continues)."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--config", default=config, help=f"base config (default {config})")
    ap.add_argument("--out", default=out, help=f"results folder (default {out})")
    ap.add_argument("--quiet", action="store_true", help="no progress or table on stdout")
    if workers:
        ap.add_argument("--workers", "--jobs", dest="workers", type=int, default=1,
                        help="fits in parallel, one core each (default 1; keep 1 for time budgets, which parallel "
                             "runs would share)")
        ap.add_argument("--storage", help="Optuna storage URL shared by workers on several machines "
                                          "(default: the embedded journal file in --out)")
        ap.add_argument("--study", help="study name in the storage (default: from the folder name)")
        ap.add_argument("--overwrite", action="store_true", help="start over: discard the study in --out")
        ap.add_argument("--resume", action="store_true", help="continue the study in --out (the default anyway)")
    args = ap.parse_args(argv)
    if workers and args.workers < 1:
        ap.error(f"--workers: expected >= 1, found {args.workers}")
    args.out = Path(args.out)
    args.out.mkdir(parents=True, exist_ok=True)
    args.stop = _stop_flag()
    args.guard = _guard
    args.exit_code = lambda status: {"complete": 0, "interrupted": 130}.get(status, 1)
    return args


def _stop_flag():
    """SIGINT / SIGTERM end the current unit of work; a second signal stops at once."""
    state = {"raised": False}

    def handler(signum, frame):
        if state["raised"]:
            raise KeyboardInterrupt
        state["raised"] = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, handler)
    return lambda: state["raised"]


def _guard(call):
    """call(); a ConfigError is printed as one line (in the CLI's words) and gives None (the script exits 2)."""
    from dgnn.cli import as_flags
    from dgnn.errors import ConfigError

    try:
        return call()
    except ConfigError as exc:
        print(f"error: {as_flags(str(exc))}", file=sys.stderr)
        return None


def load_study(path, model, check=None):
    """The study config of type `model`, validated (check(study) may raise ConfigError too); a ConfigError is
    printed as one line and gives None (the script then exits 2). Pins torch to one thread, flushes denormals."""
    import torch
    from dgnn.config import load_config

    study = _guard(lambda: _load(load_config(path, model=model), check))
    if study is not None:
        torch.set_num_threads(1)
        torch.set_flush_denormal(True)
    return study


def _load(study, check):
    if check is not None:
        check(study)
    return study
