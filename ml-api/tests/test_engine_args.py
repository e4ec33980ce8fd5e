"""EngineArgs (the engine's frozen share of the settings) and the ranking the engine hands to every route."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from ml_api.args import EngineArgs
from ml_api.core.config import Settings
from ml_api.engine import Ranked, rank
from ml_api.errors import ModelError


def test_from_settings_takes_only_the_engine_share() -> None:
    settings = Settings(
        _env_file=None,
        embed_model="models/e",
        rerank_model="models/r",
        models_dir="/srv/models",
        max_batch_tokens=2048,
        max_client_batch_size=64,
        api_key="secret",
        port=9999,
    )
    args = EngineArgs.from_settings(settings)
    assert args.models_dir == Path("/srv/models")
    # EMBED_MODEL / RERANK_MODEL are the one-model case of EMBED_MODELS / RERANK_MODELS (name: the manifest's)
    assert (args.embed_models, args.rerank_models, args.max_batch_tokens) == (
        ((None, "models/e"),),
        ((None, "models/r"),),
        2048,
    )
    assert args.max_client_batch_size == 64 and args.max_concurrent_requests == settings.max_concurrent_requests
    assert not hasattr(args, "api_key") and not hasattr(args, "port")  # HTTP concerns stay at the edge
    with pytest.raises(dataclasses.FrozenInstanceError):
        args.max_batch_size = 1  # type: ignore[misc]


def test_several_models_are_name_path_pairs_in_order() -> None:
    settings = Settings(
        _env_file=None,
        embed_model="models/ignored",
        embed_model_name="ignored",
        embed_models=" exact = models/fp32 , fast=models/int8,",
        rerank_models="judge=models/r",
    )
    args = EngineArgs.from_settings(settings)
    assert args.embed_models == (("exact", "models/fp32"), ("fast", "models/int8"))  # the first is the default
    assert args.rerank_models == (("judge", "models/r"),)
    for bad, why in (("a=models/x,models/y", "not a name=path pair"), ("a=x,a=y", "given twice"), (",", "no model")):
        with pytest.raises(ModelError, match=why):
            EngineArgs.from_settings(Settings(_env_file=None, embed_models=bad))


def test_every_engine_arg_is_a_setting() -> None:
    """A new engine knob must be settable from the environment, under the same name."""
    assert {f.name for f in dataclasses.fields(EngineArgs)} <= set(Settings.model_fields)


def test_rank_is_stable_and_cut_by_top_n() -> None:
    scores = np.array([0.1, 0.9, 0.5, 0.9])
    assert rank(scores) == [Ranked(1, 0.9), Ranked(3, 0.9), Ranked(2, 0.5), Ranked(0, 0.1)]
    top = rank(scores, top_n=2)
    assert [r.index for r in top] == [1, 3]
    assert all(type(r.index) is int and type(r.score) is float for r in top)  # JSON-ready, not numpy scalars
