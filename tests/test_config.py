"""Configs: typed, strict, with dotted key paths (and lines) in one-line errors; overrides; resolved config."""
from pathlib import Path

import pytest
import yaml

from dgnn.config import apply_overrides, config_from_dict, config_from_yaml_text, config_to_yaml, load_config
from dgnn.errors import ConfigError


def _write(tmp_path, text, name="c.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return p


@pytest.mark.parametrize("data, match", [
    ({"neurons": {"cuont": 3}}, r"neurons\.cuont: unknown key"),
    ({"neurons": {"count": 0}}, r"neurons\.count: .*greater than or equal to 1"),
    ({"neurons": {"count": "ten"}}, r"neurons\.count: .*valid integer"),
    ({"neurons": {"count": 2.5}}, r"neurons\.count"),
    ({"coupling": {"strength": float("nan")}}, r"coupling\.strength: .*finite"),
    ({"noise": {"neurons": -0.1}}, r"noise\.neurons"),
    ({"dtype": "float16"}, r"dtype"),
    ({"topology": {"kind": "ring"}}, r"topology\.kind"),
    ({"topology": {"kind": "erdos_renyi"}}, r"topology: .*needs p"),
    ({"solver": {"method": "rk45"}}, r"solver\.method: unknown method 'rk45'; valid: .*dopri5"),
    ({"noise": {"neurons": 0.1}}, r"solver\.method: 'rk4' cannot integrate noise; with noise use one of: euler_maruyama, heun"),
    ({"record": {"every": 0.015}}, r"record\.every: must be a whole multiple of solver\.dt"),
    ({"neurons": {"count": 3, "frequency": {"distribution": "values", "values": [1.0]}}}, r"neurons\.frequency\.values: expected 3 values"),
    ({"neurons": {"frequency": {"distribution": "normal", "center": 1.0}}}, r"needs width > 0"),
    ({"drive": {"kind": "sinusoid", "targets": [500]}}, r"drive\.targets: neuron index out of range"),
])
def test_invalid_configs_name_the_key(data, match):
    with pytest.raises(ConfigError, match=match) as info:
        config_from_dict(data)
    assert "\n" not in str(info.value)


def test_error_names_file_and_line(tmp_path):
    p = _write(tmp_path, "name: x\nneurons:\n  count: 5\n  frquency: 1\n")
    with pytest.raises(ConfigError, match=r"c\.yaml:4: neurons\.frquency: unknown key"):
        load_config(p)


def test_yaml_syntax_error_names_line(tmp_path):
    p = _write(tmp_path, "name: x\nneurons: {count: 5\nseed: 1\n")
    with pytest.raises(ConfigError, match=r"c\.yaml:\d+: YAML error"):
        load_config(p)


def test_yaml_tags_never_construct_objects(tmp_path):
    p = _write(tmp_path, "name: !!python/object/apply:os.system ['touch pwned']\n")
    with pytest.raises(ConfigError, match="YAML tags are not allowed"):
        load_config(p)
    assert not (tmp_path / "pwned").exists()


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_overrides_parse_yaml_scalars(tmp_path):
    p = _write(tmp_path, "neurons: {count: 5}\n")
    cfg = load_config(p, ["coupling.strength=2.5", "neurons.count=7", "record.phases=false", "name=abc",
                          "neurons.frequency.values=[1, 2, 3, 4, 5, 6, 7]", "neurons.frequency.distribution=values"])
    assert cfg.coupling.strength == 2.5 and cfg.neurons.count == 7 and cfg.record.phases is False and cfg.name == "abc"
    assert cfg.neurons.frequency.values == [1, 2, 3, 4, 5, 6, 7]


@pytest.mark.parametrize("override, match", [
    ("coupling.strenght=1", r"coupling\.strenght: unknown key"),
    ("neurons.count=abc", r"neurons\.count"),
    ("coupling", r"expected key\.path=value"),
    ("neurons.count.x=1", r"neurons\.count is a value"),
])
def test_bad_overrides(tmp_path, override, match):
    p = _write(tmp_path, "neurons: {count: 5}\n")
    with pytest.raises(ConfigError, match=match):
        load_config(p, [override])


def test_resolved_config_round_trips_with_every_default():
    cfg = config_from_dict({"neurons": {"count": 9}, "glia": {"ratio": 1.0}})
    text = config_to_yaml(cfg)
    data = yaml.safe_load(text)
    assert data["solver"]["method"] == "rk4" and data["glia"]["coupling"] == 0.0
    assert config_from_yaml_text(text) == cfg


def test_models_are_frozen():
    cfg = config_from_dict({})
    with pytest.raises(Exception):
        cfg.neurons.count = 5


def test_relative_topology_paths_resolve_against_the_config(tmp_path):
    (tmp_path / "g.txt").write_text("0 1\n")
    p = _write(tmp_path, "neurons: {count: 2}\ntopology: {kind: edgelist, path: g.txt}\n")
    assert load_config(p).topology.path == str((tmp_path / "g.txt").resolve())


def test_apply_overrides_does_not_mutate():
    base = {"a": {"b": 1}}
    out = apply_overrides(base, ["a.b=2", "c.d=3"])
    assert base == {"a": {"b": 1}} and out == {"a": {"b": 2}, "c": {"d": 3}}


def test_exponent_floats_are_numbers(tmp_path):
    # YAML 1.1 (PyYAML's default) would read 1e-3 as a string
    p = _write(tmp_path, "solver: {dt: 1e-3, duration: 2e0}\nrecord: {every: 1e-2}\n")
    cfg = load_config(p, ["coupling.strength=5e-1"])
    assert cfg.solver.dt == 1e-3 and cfg.coupling.strength == 0.5 and cfg.record.every == 0.01


@pytest.mark.parametrize("path", sorted(Path(__file__).resolve().parents[1].joinpath("configs").glob("*.yaml")),
                         ids=lambda p: p.name)
def test_shipped_configs_validate(path):
    data = yaml.safe_load(path.read_text())
    if "toy" in data:  # the NORTH* growth study (simulations/north_growth.py)
        from dgnn.study.config import GrowthStudy

        assert load_config(path, model=GrowthStudy).build()
        return
    if "targets" in data:  # the DYNO transfer study (simulations/dyno_transfer.py)
        from dgnn.study.config import TransferStudy
        from dgnn.search import make_strategy

        assert make_strategy("dyno", **load_config(path, model=TransferStudy).dyno)
        return
    if "strategies" in data:  # a strategy study (simulations/search_digits.py)
        from dgnn.study.config import StudyConfig

        assert load_config(path, model=StudyConfig).build()
        return
    if "tasks" in data and "search" in data:  # energy first against information first (simulations/energy_first.py)
        from dgnn.study.nas.versus import VersusStudy

        study = load_config(path, model=VersusStudy)
        study.check()
        assert study.tasks
        return
    if "space" in data:  # a `dgnn search` config: its space is checked against the candidate config too
        from dgnn.study.nas.config import SearchConfig

        assert load_config(path, model=SearchConfig).search_space().order
        return
    if "models" in yaml.safe_load(path.read_text()):  # a `dgnn compare` config
        from dgnn.study.compare import load_compare_config

        assert load_compare_config(path).models
        return
    cfg = load_config(path)
    assert cfg.n_records >= 1
