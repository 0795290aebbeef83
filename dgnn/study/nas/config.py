"""The config of `dgnn search`: a task, a base candidate, a search space over it, the objectives (energy-first
(E, I) or information-first I), the strategy, the budget per strategy, and the baselines run beside it."""
from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, model_validator

from ...config import Config, FolderName, KeyedError, StrictModel
from ...energy import PENALTIES, EnergyTable
from ...errors import ConfigError
from ...learn.config import DatasetConfig, ModelConfig, TrainConfig
from ...search.space import Dimension, SearchSpace

SAMPLERS = ("tpe", "nsga2", "gp", "random", "grid")
STRATEGIES = (*SAMPLERS, "developmental")


class Score(StrictModel):
    """The scalar ranking reported beside the front (dgnn.search.objectives.score)."""

    kind: Literal["bits_per_energy", "mnasnet"] = "bits_per_energy"
    target: float = Field(1.0, gt=0.0)  # mnasnet: E_target, in the energy measure's units
    w: float = -0.07  # mnasnet: the exponent of E / E_target (< 0 rewards lower energy)


class Objectives(StrictModel):
    """What a trial is scored on. `energy` is a dgnn.energy measure: metabolic (per inference, phase-based nets
    only) or mac_joules (every family: the cross-family comparison)."""

    use: Literal["energy_information", "information"] = "energy_information"  # (E min, I max), or I max alone
    energy: Literal["metabolic", "mac_joules", "ledger"] = "metabolic"  # ledger: free dynamics
    score: Score = Score()
    accuracy_min: float | None = Field(None, ge=0.0, le=1.0)  # trial constraint: validation accuracy >= this
    energy_max: float | None = Field(None, gt=0.0)  # trial constraint: E <= this


class Strategy(StrictModel):
    name: Literal[STRATEGIES] = "tpe"
    options: dict = {}  # the sampler's keyword arguments (seed is the search's), or the developmental keys


class Budget(StrictModel):
    """Per strategy: at most `trials` trials and `seconds` of training time summed over them (0 = no limit)."""

    trials: int = Field(20, ge=1)
    seconds: float = Field(0.0, ge=0.0)


class Baseline(StrictModel):
    """A baseline on the same plane: a registered dgnn.search strategy (fits repeated over seeds within the
    search's budget), or `mlp_lambda`: MLPs trained at each lambda of seed 002's sweep."""

    strategy: str  # a registered strategy name, or mlp_lambda
    options: dict = {}  # the strategy's keys; mlp_lambda: {hidden: [..], lambdas: [..]}
    budget: dict = {"steps": 200}  # one fit's dgnn.search Budget (steps / seconds / energy)


class SearchConfig(StrictModel):
    model_config = ConfigDict(**StrictModel.model_config, serialize_by_alias=True, validate_by_name=True)

    name: FolderName = "search"  # the default folder is outputs/<name>-<timestamp>-search
    seed: int = Field(0, ge=0)
    task: DatasetConfig | None = DatasetConfig(name="digits")  # a classification task (null with dynamics)
    dynamics: dict | None = None  # free dynamics instead: a `dgnn run` config the space varies (see docs)
    model: dict = {"kind": "glial", "hidden": [16]}  # the base candidate: dgnn.learn ModelConfig keys
    train: TrainConfig = TrainConfig(epochs=20, patience=5)
    penalty: Literal[PENALTIES] = "activation"  # the dgnn.energy measure that `lambda` penalises in the loss
    lam: float = Field(0.0, ge=0.0, alias="lambda")
    space: dict[str, Dimension] = {}
    strategy: Strategy = Strategy()
    objectives: Objectives = Objectives()
    budget: Budget = Budget()
    baselines: dict[str, Baseline] = {}
    energy_table: EnergyTable = EnergyTable()
    attractor_trials: int = Field(16, ge=2)  # dynamics: random initial conditions per candidate
    dtype: Literal["float32", "float64"] = "float32"
    threads: int = Field(1, ge=1)
    batch: int = Field(1, ge=1)  # trials asked at a time; those of one shape train as one batch (docs/batching.md)

    @model_validator(mode="after")
    def _check(self):
        if (self.task is None) == (self.dynamics is None):
            raise KeyedError("task", "give a classification task or a dynamics block (one of the two)")
        if not self.space:
            raise KeyedError("space", "give at least one key to search over")
        if (self.dynamics is not None) != (self.objectives.energy == "ledger"):
            raise KeyedError("objectives.energy", "free dynamics (a dynamics block) are scored by the ledger's energy, "
                                                  "and only they: use ledger with dynamics, metabolic or mac_joules with a task")
        if self.dynamics is not None and self.batch > 1:
            raise KeyedError("batch", "free-dynamics candidates are simulated one at a time (each run batches its "
                                      "own replicas): use batch 1")
        if self.strategy.name == "developmental":
            from . import developmental

            if self.dynamics is not None:
                raise KeyedError("strategy.name", "developmental grows classifiers: give a classification task")
            if self.batch > 1:
                raise KeyedError("batch", "developmental nets change shape as they grow, so they cannot share a "
                                          "stack: use batch 1")
            try:
                developmental.candidate(self.strategy.options, {}, self.dtype)
            except ConfigError as exc:
                raise KeyedError("strategy.options", str(exc)) from None
        for name, b in self.baselines.items():
            if self.dynamics is not None:
                raise KeyedError(f"baselines.{name}", "baselines are classifiers: give them a classification task")
            _check_baseline(name, b)
        return self

    def search_space(self) -> SearchSpace:
        """The space, with every key checked against the candidate config and every edge value validated."""
        keys = _run_keys if self.dynamics is not None else self._candidate_keys()
        space = SearchSpace(self.space, keys)
        for name, point in space.probes():
            try:
                self.candidate(point)
            except ConfigError as exc:
                raise ConfigError(f"space.{name}: {point[name]!r} is rejected by the candidate config ({exc})") from None
        return space

    def _candidate_keys(self):
        """The key check of a classification space: developmental.<option> keys exactly when the strategy is
        developmental (its net is grown, not given), else the candidate's model.* / train.* / lambda keys."""
        from . import developmental

        grown = self.strategy.name == "developmental"
        for name in self.space:
            if grown and not developmental.is_key(name):
                raise ConfigError(f"space.{name}: strategy developmental searches its own options, keys "
                                  f"developmental.<option> with option one of {', '.join(developmental.options())}")
            if not grown and name.startswith(developmental.PREFIX):
                raise ConfigError(f"space.{name}: developmental.<option> keys need strategy.name: developmental")
        return developmental.is_key if grown else _candidate_keys

    def candidate(self, point: dict) -> dict:
        """The resolved candidate of a sampled point: {model, train, lambda} (or {run} for dynamics, or the
        developmental strategy's {strategy, options, budget}), validated."""
        from ...config import config_from_dict

        if self.dynamics is not None:
            run = merge(self.dynamics, point)
            return {"run": config_from_dict(run, "candidate").model_dump(mode="json")}
        if self.strategy.name == "developmental":
            from . import developmental

            return developmental.candidate(self.strategy.options, point, self.dtype)
        model, train, lam = dict(self.model), self.train.model_dump(), self.lam
        for key, value in point.items():
            head, _, rest = key.partition(".")
            if key == "lambda":
                lam = float(value)
            elif head == "train":
                train[rest] = value
            else:
                model[rest] = value
        model = _widths(model)
        mcfg = config_from_dict(model, "candidate model", model=ModelConfig)
        tcfg = config_from_dict(train, "candidate train", model=TrainConfig)
        if mcfg.kind == "strategy":
            raise ConfigError("model.kind: strategy is a baseline, not a candidate (see baselines)")
        if mcfg.kind == "mlp" and self.objectives.energy == "metabolic" and self.objectives.use != "information":
            raise ConfigError("model.kind mlp has no metabolic energy; set objectives.energy: mac_joules to search "
                              "across families")
        return {"model": mcfg.model_dump(mode="json"), "train": tcfg.model_dump(mode="json"), "lambda": lam}


def _widths(model: dict) -> dict:
    """model.layers / model.width / model.hidden.<i> into model.hidden."""
    model = dict(model)
    hidden = list(model.get("hidden", [16]))
    layers = model.pop("layers", None)
    width = model.pop("width", None)
    if layers is not None or width is not None:
        n = int(layers) if layers is not None else len(hidden)
        w = int(width) if width is not None else hidden[0]
        hidden = [w] * n
    for k in [k for k in model if k.startswith("hidden.")]:
        i = int(k.split(".", 1)[1])
        if i < len(hidden):
            hidden[i] = int(model.pop(k))
        else:
            model.pop(k)  # a layer this candidate does not have
    model["hidden"] = hidden
    return model


def merge(data: dict, point: dict) -> dict:
    """A nested config dict with dotted-key values set (copying)."""
    import copy

    out = copy.deepcopy(data)
    for key, value in point.items():
        node = out
        *head, leaf = key.split(".")
        for part in head:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


def _candidate_keys(name: str) -> bool:
    head, _, rest = name.partition(".")
    if name == "lambda":
        return True
    if head == "train":
        return rest in TrainConfig.model_fields
    if head == "model":
        return rest in ModelConfig.model_fields or rest in ("layers", "width") or (
            rest.startswith("hidden.") and rest.split(".", 1)[1].isdigit())
    return False


def _run_keys(name: str) -> bool:
    node = Config
    for part in name.split("."):
        fields = getattr(node, "model_fields", None)
        if fields is None or part not in fields:
            return False
        node = fields[part].annotation
        node = next((a for a in getattr(node, "__args__", ()) if hasattr(a, "model_fields")), node)
    return True


def _check_baseline(name: str, b: Baseline) -> None:
    from ...search import Budget as FitBudget, make_strategy

    try:
        if b.strategy == "mlp_lambda":
            bad = set(b.options) - {"hidden", "lambdas", "activation"}
            if bad:
                raise ConfigError(f"unknown key(s) {', '.join(sorted(bad))}; valid keys are activation, hidden, lambdas")
        else:
            make_strategy(b.strategy, **b.options)
        FitBudget(**b.budget)
    except ConfigError as exc:
        raise KeyedError(f"baselines.{name}", str(exc)) from None
