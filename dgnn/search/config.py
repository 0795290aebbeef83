"""Config of a strategy study: tasks (digits class subsets with a time budget) x registered strategies x seeds."""
from __future__ import annotations

from pydantic import Field

from ..config import _Model


class StudyTask(_Model):
    label: str
    classes: list[int] | None = None  # digits subset; None = all ten
    seconds: float = Field(gt=0.0)  # budget per fit


class StudyConfig(_Model):
    seeds: int = Field(1, ge=1)
    tasks: list[StudyTask]
    strategies: dict[str, dict]  # registered name -> its options (checked by make_strategy)
