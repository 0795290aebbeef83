"""Property-based fuzz (Hypothesis) of the config loader and of the CLI's argument lists.

Whatever the input: the loader returns a Config or raises ConfigError with a one-line message; `dgnn.cli.main`
exits 0 or 2 (1 only for a run that really failed, 130 never: nothing interrupts it), prints at most one stderr line
on exit 2, and never lets an exception (a traceback) out. Generated inputs that are valid run as tiny runs.
"""
import os
import string
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from inprocess import run_cli
from pydantic import BaseModel

from dgnn.config import Config, load_config
from dgnn.errors import ConfigError
from dgnn.simulation import Simulation

TINY = {"name": "fz", "neurons": {"count": 6}, "solver": {"dt": 0.05, "duration": 0.2}, "record": {"every": 0.1}}
# DGNN_FUZZ_EXAMPLES=2000 fuzzes deeper on demand; CI keeps to seconds
FUZZ = settings(max_examples=int(os.environ.get("DGNN_FUZZ_EXAMPLES", "60")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def _key_paths(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Every dotted key path of a config model, sections and leaves (the real paths --set takes)."""
    out = []
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        out.append(path)
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out += _key_paths(ann, path + ".")
    return out


KEYS = _key_paths(Config)
ODD_NUMBERS = [-1, 0, 1, 2, 3, 7, 0.5, -0.5, 1e-320, 1e308, -1e308, 10**12, 2.5]
ODD_TEXT = ["x", "", "nan", ".inf", "-.inf", "[1, 2]", "{a: 1}", "~", "true", "'3'", "1e3", "!!python/none x",
            "{count: 1, count: 2}", "&a [*a]", "[", "\x00", "caf\u00e9", "../up", "a/b"]
# tests flush denormals (conftest), so no subnormal floats
small_values = st.one_of(st.sampled_from(ODD_NUMBERS), st.sampled_from(ODD_TEXT), st.booleans(), st.none(),
                         st.floats(-4, 4, allow_subnormal=False), st.integers(-3, 40), st.lists(st.floats(-2, 2, allow_subnormal=False), max_size=4))


LONG = ("solver.duration", "solver", "structure.window", "structure.interval")  # long runs are valid, just slow


def _override(key: str, value) -> str:
    if key in LONG and isinstance(value, (int, float)) and not isinstance(value, bool) and 4 < value < 1e300:
        value = 4.0  # a valid duration of 1e12 would run for years: the fuzz keeps valid runs tiny
    text = value if isinstance(value, str) else yaml.safe_dump(value, default_flow_style=True).strip()
    return f"{key}={text.removesuffix('...').strip()}"


overrides = st.lists(st.one_of(st.builds(_override, st.sampled_from(KEYS), small_values),
                               st.text(string.printable, max_size=12)), max_size=4)


def _tiny(cfg: Config) -> bool:
    """Small enough to build in a test: a few neurons, replicas and edges."""
    n, t = cfg.neurons.count, cfg.topology
    return n <= 64 and cfg.replicas <= 4 and (cfg.structure.capacity or 0) <= 128 and (t.kind != "modular" or t.modules <= n)


@st.composite
def documents(draw) -> str:
    """A YAML document near a real config: TINY with random keys set, then perhaps mangled as text."""
    data = yaml.safe_load(yaml.safe_dump(TINY))
    for key, value in draw(st.lists(st.tuples(st.sampled_from(KEYS + ["bogus", "neurons.cuont"]), small_values),
                                    max_size=5)):
        value = yaml.safe_load(_override(key, value).split("=", 1)[1] or "null") if key in LONG else value
        node, parts = data, key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {}) if isinstance(node.get(part, {}), dict) else {}
        node[parts[-1]] = value
    text = yaml.safe_dump(data, sort_keys=False)
    lines = text.splitlines(keepends=True)
    mangle = draw(st.sampled_from(["none", "duplicate", "truncate", "insert", "tab"]))
    i = draw(st.integers(0, max(0, len(lines) - 1)))
    if mangle == "duplicate":
        lines.insert(i, lines[i])
    elif mangle == "truncate":
        lines = lines[:i]
    elif mangle == "insert":
        lines.insert(i, draw(st.sampled_from(["\x00\n", "\t- x\n", "?\n", "*x\n", "a: &a [*a]\n", "\ud800\n", "{\n"])))
    elif mangle == "tab":
        lines[i] = "\t" + lines[i]
    return "".join(lines)


@FUZZ
@given(documents(), overrides)
def test_loader_accepts_or_names_the_problem_in_one_line(text, overs):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.yaml"
        path.write_bytes(text.encode("utf-8", "surrogatepass"))
        try:
            cfg = load_config(path, overs)
            if _tiny(cfg):
                Simulation(cfg)  # what validate and run build before the first step
        except ConfigError as exc:
            assert "\n" not in str(exc) and str(exc), repr(str(exc))


# -------------------------------------------------------------------------------------------------- the CLI
FILES = {}  # kind -> path, made by the `files` fixture for the CLI test


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    yield make_files(tmp_path_factory.mktemp("fuzz"))
    FILES.clear()


def make_files(root: Path) -> dict[str, Path]:
    """The files the generated argument lists point at: configs good and bad, a finished trace, odd files."""
    (root / "c.yaml").write_text(yaml.safe_dump(TINY))
    (root / "bad.yaml").write_text("neurons: {count: -1}\n")
    (root / "cmp.yaml").write_text(yaml.safe_dump({
        "name": "fzc", "seeds": 1, "models": {"m": {"kind": "mlp", "hidden": [4]}}, "train": {"epochs": 1}}))
    (root / "bin").write_bytes(b"\x00\x01binary")
    (root / "file").write_text("x")
    (root / "edges.txt").write_text("0 1\n1 2 0.5\n")
    assert run_cli("run", root / "c.yaml", "--out", root / "trace", "--quiet", "--no-plots").rc == 0
    FILES.update(root=root, config=root / "c.yaml", bad=root / "bad.yaml", compare=root / "cmp.yaml",
                 binary=root / "bin", file=root / "file", trace=root / "trace", edges=root / "edges.txt")
    return FILES


PATHS = ["config", "bad", "compare", "binary", "file", "trace", "edges", "missing", "/dev/null", "/dev/zero", "", "-"]
FLAGS = {
    "run": ["--out", "--overwrite", "--resume", "--device", "--no-plots", "--quiet", "--set"],
    "sweep": ["--grid", "--out", "--overwrite", "--resume", "--quiet", "--set"],
    "compare": ["--out", "--overwrite", "--resume", "--quiet", "--set"],
    "validate": ["--set", "--print", "--device"],
    "analyze": ["--json", "--plots", "--q-max"],
    "info": ["--config"],
}
TAKES = {"--out": "dir", "--resume": "path", "--plots": "dir", "--device": "device", "--q-max": "int", "--set": "set",
         "--grid": "grid"}


@st.composite
def argvs(draw) -> list[str]:
    files = FILES
    cmd = draw(st.sampled_from(list(FLAGS) + ["bogus", "--version", "--help"]))
    if cmd not in FLAGS:
        return [cmd]

    def path(good: str = "config") -> str:
        p = draw(st.sampled_from([good] * len(PATHS) + PATHS))  # the right file half of the time
        return str(files.get(p, p))

    good = {"compare": "compare", "analyze": "trace", "info": "trace"}.get(cmd, "config")
    argv = [cmd] + ([path(good)] if draw(st.integers(0, 4)) or cmd in ("analyze", "info", "validate") else [])
    for flag in draw(st.lists(st.sampled_from(FLAGS[cmd] + ["--bogus"]), max_size=4)):
        argv.append(flag)
        kind = TAKES.get(flag)
        if kind == "dir":
            fresh = str(Path(tempfile.mkdtemp(dir=files["root"])) / "new")
            argv.append(draw(st.sampled_from([fresh, str(files["file"]), str(files["file"] / "sub"), str(files["trace"]),
                                              "/proc/nope"])))
        elif kind == "path":
            argv.append(path())
        elif kind == "device":
            argv.append(draw(st.sampled_from(["cpu", "cuda", "auto", "tpu"])))
        elif kind == "int":
            argv.append(draw(st.sampled_from(["0", "-3", "1", "8", "x", "1e9"])))
        elif kind == "set":
            argv.append(_override(draw(st.sampled_from(KEYS)), draw(small_values)))
        elif kind == "grid":
            argv.append(draw(st.sampled_from(["coupling.strength=0.5,1", "coupling.strength=", "x", "seed=[0, 1]",
                                              "neurons.count=4,x", "coupling.strength=[]"])))
    if cmd in ("run", "sweep", "compare") and "--out" not in argv and "--resume" not in argv:
        argv += ["--out", str(Path(tempfile.mkdtemp(dir=files["root"])) / "o")]  # never outputs/ in the tree
    if cmd == "run" and draw(st.booleans()):
        argv.append("--no-plots")
    return argv


@FUZZ
@given(argv=argvs())
def test_cli_exits_0_or_2_with_one_line_and_no_traceback(files, argv):
    r = run_cli(*argv)
    assert r.rc is not None, f"{argv}: exception escaped main:\n{r.err}"
    assert "Traceback" not in r.err, (argv, r.err)
    assert r.rc in (0, 1, 2), (argv, r.rc, r.err)
    if r.rc == 2:
        assert len(r.lines) == 1 and r.lines[0].startswith("dgnn: "), (argv, r.err)
    if r.rc == 1:  # only a run that really failed (its state turned non-finite), with its records kept
        assert r.lines[-1].startswith(("dgnn: run failed:", "dgnn: sweep stopped:")), (argv, r.err)
