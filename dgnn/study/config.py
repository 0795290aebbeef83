"""Typed, frozen configs of the multi-run commands: `dgnn compare` (datasets x models x lambda x seeds) and the
strategy studies of simulations/ (tasks x labelled strategies x seeds, NORTH* growth, DYNO transfer)."""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from ..config import FolderName, KeyedError, StrictModel, resolve_path
from ..errors import ConfigError
from ..energy import PENALTIES, EnergyTable
from ..learn.config import DatasetConfig, ModelConfig, TrainConfig


class StudyTask(StrictModel):
    label: str
    dataset: Literal["digits", "mnist1d"] = "digits"
    classes: list[int] | None = None  # subset of the labels; None = all ten
    samples: int = Field(0, ge=0)  # mnist1d: sequences to generate (0 = the generator's default, 5000)
    seconds: float = Field(0.0, ge=0.0)  # budget per fit (0 = none; set seconds or steps)
    steps: int = Field(0, ge=0)


class StudyStrategy(StrictModel):
    strategy: str | None = None  # registered name; None = the entry's label
    options: dict = {}  # the strategy's keys (checked by make_strategy)
    paper: dict[str, float] = {}  # task label -> the source paper's number, printed beside ours


class StudyConfig(StrictModel):
    seeds: int = Field(1, ge=1)
    tasks: list[StudyTask]
    strategies: dict[str, StudyStrategy]  # label -> entry

    def build(self) -> dict:
        """label -> strategy object (ConfigError on unknown names or keys)."""
        from ..search import make_strategy

        return {label: make_strategy(s.strategy or label, **s.options) for label, s in self.strategies.items()}


class GrowthTask(StrictModel):
    """Seed 001 section 6.3.2's toy task: n_f independent of 64 features, MLPs of 1 or 2 growing layers."""

    features: list[int] = [1, 2, 3, 4, 8, 16, 32]
    depths: list[int] = [1, 2]
    steps: int = Field(400, ge=1)


class StaticComparison(StrictModel):
    """A growing strategy on digits against static MLPs of its final widths and of the maximum widths, trained
    with the same optimiser for the same number of steps; optionally the same strategy under an energy budget."""

    strategy: str = "north_select"
    options: dict = {}
    steps: int = Field(1500, ge=1)
    seeds: int = Field(5, ge=1)  # splits / initialisations 0 .. seeds-1
    gate: dict | None = None  # dgnn.search.gate.GateConfig keys: run the strategy a second time under this budget


class GrowthStudy(StrictModel):
    seeds: int = Field(1, ge=1)
    toy: GrowthTask = GrowthTask()
    strategies: dict[str, StudyStrategy]  # label -> entry, run on the toy task
    digits: StaticComparison | None = None

    def build(self) -> dict:
        from ..search import make_strategy

        return {label: make_strategy(s.strategy or label, **s.options) for label, s in self.strategies.items()}


class TransferTarget(StrictModel):
    label: str
    dataset: str = "digits"  # digits (with classes) or mnist1d (zero-padded to the source's 64 inputs)
    classes: list[int] | None = None
    samples: int = Field(4000, ge=0)  # mnist1d


class TransferStudy(StrictModel):
    """DYNO transfer (seed 001 section 7 at reduced scale): pre-train a static MLP on the source classes, then
    fine-tune it with DYNO and, as the reference, statically, on each target."""

    seeds: int = Field(1, ge=1)
    source_classes: list[int] = [0, 1, 2, 3, 4]
    hidden: list[int] = [128, 64]
    pretrain_steps: int = Field(600, ge=1)
    steps: int = Field(1000, ge=1)
    targets: list[TransferTarget]
    dyno: dict = {}  # DYNO's keys


class CompareConfig(StrictModel):
    name: FolderName = "compare"  # the default results folder is outputs/<name>-<timestamp>
    seeds: int = Field(10, ge=1)  # seeds 0 .. seeds-1 (seed 002 uses 10)
    datasets: list[DatasetConfig] = [DatasetConfig(name="digits")]
    models: dict[FolderName, ModelConfig] = {"mlp": ModelConfig(kind="mlp")}  # names are in checkpoint file names
    lambdas: list[float] = [0.0]
    energy: Literal[PENALTIES] = "activation"  # which dgnn.energy measure the loss penalises
    train: TrainConfig = TrainConfig()
    energy_table: EnergyTable = EnergyTable()
    dtype: Literal["float32", "float64"] = "float32"
    threads: int = Field(1, ge=1)

    @model_validator(mode="after")
    def _check(self):
        if not self.models:
            raise ValueError("models: give at least one model")
        if not self.datasets:
            raise ValueError("datasets: give at least one dataset")
        if any(x < 0 for x in self.lambdas) or not self.lambdas:
            raise ValueError(f"lambdas must be a non-empty list of values >= 0, found {self.lambdas}")
        for name, m in self.models.items():
            if m.match_parameters is not None and m.match_parameters not in self.models:
                raise ValueError(f"models.{name}.match_parameters: no model named {m.match_parameters!r}")
            if m.match_parameters == name:
                raise ValueError(f"models.{name}.match_parameters: a model cannot match itself")
            if m.kind == "strategy":
                from ..search import Budget, make_strategy

                try:  # unknown names or keys fail here, with the valid ones
                    make_strategy(m.strategy, **m.options)
                    Budget(**m.budget)
                except ConfigError as exc:
                    raise KeyedError(f"models.{name}", str(exc)) from None
        return self

    @staticmethod
    def resolve_paths(data: dict, folder: Path) -> None:
        for ds in data.get("datasets") or []:
            if isinstance(ds, dict):
                for key in ("images", "labels"):
                    if key in ds:
                        ds[key] = resolve_path(ds[key], folder)
