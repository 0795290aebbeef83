"""Energy first against information first (dgnn.study.nas.versus): the comparison of two arms' trials by hand on
one shared reference point, and the study end to end (both arms of a tiny search, resumed, its tables)."""
from __future__ import annotations

import csv
import json

import pytest

from dgnn.config import config_from_dict
from dgnn.errors import ConfigError
from dgnn.study.nas.versus import VersusStudy, compare, versus


def _row(e: float, bits: float, acc: float, ratio="") -> dict:
    return {"state": "complete", "metabolic_energy": e, "information_bits": bits, "accuracy": acc,
            "accuracy_test": acc, "score": bits / e, "params.model.glia_ratio": ratio, "params.model.kind": "glial"}


def test_the_comparison_by_hand():
    """Energy first (E, I, acc): (1, 1, .80), (2, 2.9, .95), (4, 3, .96); information first: (5, 3.1, .97),
    (10, 3.2, .99). Shared reference E = 1.1 x 10 = 11. HV(energy first) = 1 x 1 + 2 x 2.9 + 7 x 3 = 27.8;
    HV(information first) = 5 x 3.1 + 1 x 3.2 = 18.7. Its best net (acc .99, E 10); none of the energy-first nets is
    within 1 point (0.98), within 4 points (0.95) the cheapest is E 2: 20% of 10. Matched information: both reach
    min(3, 3.2) - 0.05 = 2.95 bits; energy first pays 4, information first 5 (ratio 0.8)."""
    e = [_row(1, 1.0, 0.80, 0.5), _row(2, 2.9, 0.95, 1.0), _row(4, 3.0, 0.96, 2.0)]
    i = [_row(5, 3.1, 0.97, 4.0), _row(10, 3.2, 0.99, 6.0)]
    row, plane = compare(e, i, "metabolic_energy", match=0.01)
    assert plane["reference_point"] == [pytest.approx(11.0), 0.0]
    assert row["hypervolume_energy_first"] == pytest.approx(27.8)
    assert row["hypervolume_information_first"] == pytest.approx(18.7)
    assert row["best_energy_information_first"] == 10 and row["near_energy_share"] == ""
    wide, _ = compare(e, i, "metabolic_energy", match=0.04)
    assert wide["near_energy_energy_first"] == 2 and wide["near_energy_share"] == pytest.approx(0.2)
    assert row["matched_bits"] == pytest.approx(2.95)
    assert row["matched_energy_energy_first"] == 4 and row["matched_energy_information_first"] == 5
    assert row["matched_energy_ratio"] == pytest.approx(0.8)
    assert row["front_glia_ratios"] == "0.50 1.00 2.00" and row["front_glia_ratio_median"] == 1.0
    assert row["best_score_glia_ratio"] == 1.0  # the most bits per unit energy: 2.9 / 2 = 1.45
    failed = [{"state": "fail", "metabolic_energy": "", "information_bits": ""}]
    assert "note" in compare(failed, i, "metabolic_energy")[0]


STUDY = {"name": "vs", "tasks": [{"name": "digits", "classes": [0, 1, 2]}],
         "search": {"model": {"kind": "glial", "hidden": [4], "settle_time": 1.0, "dt": 0.5},
                    "train": {"epochs": 2, "patience": 2}, "objectives": {"energy": "metabolic"},
                    "strategy": {"name": "random"},
                    "space": {"model.glia_ratio": {"float": [0.5, 3.0]}, "model.width": {"int": [3, 8]}},
                    "budget": {"trials": 2},
                    "baselines": {"mlp": {"strategy": "mlp_lambda", "options": {"hidden": [8], "lambdas": [0.0]}}}}}


def test_both_arms_run_resume_and_tabulate(tmp_path):
    """Each arm is its own search (the baselines in the energy-first arm only); running again adds nothing; the
    table's row agrees with the arms' own trials."""
    study = config_from_dict(STUDY, model=VersusStudy)
    study.check()
    res = versus(study, tmp_path / "v", progress=False)
    assert res.status == "complete" and len(res.rows) == 1
    arms = {a: list(csv.DictReader(open(tmp_path / "v" / "digits[0,1,2]" / a / "trials.csv")))
            for a in ("energy_first", "information_first")}
    assert {r["strategy"] for r in arms["energy_first"]} == {"random", "mlp"}
    assert {r["strategy"] for r in arms["information_first"]} == {"random"}
    best = max(float(r["accuracy"]) for r in arms["information_first"])
    assert res.rows[0]["best_accuracy_information_first"] == pytest.approx(best)
    row = res.rows[0]
    assert row["mac_hypervolume.random"] > 0 and row["mac_hypervolume.mlp"] > 0  # the baselines' plane
    summary = json.loads((tmp_path / "v" / "digits[0,1,2]" / "information_first" / "summary.json").read_text())
    assert summary["objectives"] == "information" and summary["n_trials"] == 2
    assert (tmp_path / "v" / "figures" / "versus-digits[0,1,2].png").stat().st_size > 0
    again = versus(study, tmp_path / "v", progress=False)
    assert again.rows == res.rows


def test_a_bad_arm_names_its_key():
    bad = {**STUDY, "search": {**STUDY["search"], "space": {"model.widht": {"int": [3, 8]}}}}
    with pytest.raises(ConfigError, match=r"space\.model\.widht: unknown key"):
        config_from_dict(bad, model=VersusStudy).check()
