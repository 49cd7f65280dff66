"""A benchmark's variant arm runs the worker that applies its variant; other arms keep theirs."""

from __future__ import annotations

from load.variants import VARIANTS, WORKER_CLASS, VariantWorker, gunicorn_args


def test_a_variant_arm_runs_the_worker_that_applies_it() -> None:
    assert gunicorn_args("quiet") == ("--worker-class", WORKER_CLASS)
    assert gunicorn_args("budgets", "load.floor_worker.FloorWorker") == ("--worker-class", WORKER_CLASS)
    module, _, name = WORKER_CLASS.rpartition(".")
    assert (VariantWorker.__module__, VariantWorker.__name__) == (module, name)


def test_other_arms_keep_their_worker() -> None:
    assert gunicorn_args(None) == ()
    assert gunicorn_args("", "load.floor_worker.FloorWorker") == ("--worker-class", "load.floor_worker.FloorWorker")


def test_every_variant_the_benchmarks_document_exists() -> None:
    assert {"quiet", "metrics_off", "limits", "budgets", "delivered", "traced", "profile"} <= set(VARIANTS)
