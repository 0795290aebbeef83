"""Config of a strategy study: tasks (digits class subsets with a budget) x labelled strategies x seeds."""
from __future__ import annotations

from pydantic import Field

from ..config import _Model


class StudyTask(_Model):
    label: str
    classes: list[int] | None = None  # digits subset; None = all ten
    seconds: float = Field(0.0, ge=0.0)  # budget per fit (0 = none; set seconds or steps)
    steps: int = Field(0, ge=0)


class StudyStrategy(_Model):
    strategy: str | None = None  # registered name; None = the entry's label
    options: dict = {}  # the strategy's keys (checked by make_strategy)
    paper: dict[str, float] = {}  # task label -> the source paper's number, printed beside ours


class StudyConfig(_Model):
    seeds: int = Field(1, ge=1)
    tasks: list[StudyTask]
    strategies: dict[str, StudyStrategy]  # label -> entry

    def build(self) -> dict:
        """label -> strategy object (ConfigError on unknown names or keys)."""
        from .strategy import make_strategy

        return {label: make_strategy(s.strategy or label, **s.options) for label, s in self.strategies.items()}
