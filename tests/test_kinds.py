"""The kinds of table: every table has one, and a kind's reference values are what a rerun must reproduce."""

from __future__ import annotations

from dataclasses import replace

import pytest

from benchmark.kinds import KINDS, kind_of
from benchmark.kinds.cost import TrainingCost
from benchmark.tables import SPECS


def test_every_table_has_a_registered_kind_and_an_unknown_one_is_named():
    assert {spec.kind for spec in SPECS.values()} == set(KINDS)
    with pytest.raises(ValueError, match=r"table-2: unknown kind 'ranked'; known: conversion, dataset-stats, leakage"):
        kind_of(replace(SPECS["table-2"], kind="ranked"))


def test_training_cost_reads_a_models_own_record_and_reproduces_size_and_epochs_only():
    info = {"parameters": 1200, "training": {"seconds": 90.0, "epochs_run": 6, "best_epoch": 3}}
    cost = TrainingCost.of(info)
    assert cost == TrainingCost(1200, 15.0, 3, 6, 90.0)
    stored = cost.as_stored()
    assert list(stored) == list(SPECS["table-6"].columns)  # stored under the table's own column names
    assert TrainingCost.stored(stored) == cost
    kind = kind_of(SPECS["table-6"])
    assert kind.reference_values({"row": stored}) == {"parameters": 1200, "epochs to best": 3, "epochs run": 6}


def test_metric_kinds_name_values_by_evaluation_only_when_there_are_several():
    one = {"evaluations": {"target-behavior": {"metrics": {"N@10": 0.5}, "queries": 7}}}
    assert kind_of(SPECS["table-2"]).reference_values(one) == {"N@10": 0.5, "queries": 7}
    two = {
        "evaluations": {"a": {"metrics": {"N@10": 0.5}, "queries": 7}, "b": {"metrics": {"N@10": 0.25}, "queries": 6}}
    }
    assert kind_of(SPECS["table-7"]).reference_values(two) == {
        "a: N@10": 0.5,
        "a: queries": 7,
        "b: N@10": 0.25,
        "b: queries": 6,
    }
    counted = {
        "evaluations": {"conversion": {"metrics": {"AUROC": 0.7}, "queries": 3, "candidates": 9, "conversions": 2}}
    }
    assert kind_of(SPECS["table-10"]).reference_values(counted) == {
        "AUROC": 0.7,
        "queries": 3,
        "candidates": 9,
        "conversions": 2,
    }
