"""The Evaluator's baseline: the model that the Pusher pushed last and that is still served.

``LatestPushedModelStrategy`` replaces TFX's ``LatestBlessedModelStrategy`` for the local
runner. A blessed model is not necessarily served: when the Pusher fails or is killed after the
Evaluator blessed a model, the latest blessed model is that unserved model, and a re-run, whose
Trainer comes from cache, would compare the candidate with itself and push nothing. The model
last pushed is what the serving folder serves, so the re-run compares the candidate with that,
blesses it as the failed run did, and pushes it.

A push counts when its ``PushedModel`` artifact records a version (``pushed_version``: a new
push, or a model identical to the version already there) and that version's folder still exists
under ``<serving_dir>/<model_name>/``, so a version removed by hand is no longer the baseline.
The model behind a push is read from ML Metadata's lineage (the Pusher execution's ``model``
input), which also covers pushes recorded before this strategy existed.

Usage::

    tfx.dsl.Resolver(
        strategy_class=LatestPushedModelStrategy,
        config={"serving_dir": "/abs/serving", "model_name": "xmodal"},
        model=tfx.dsl.Channel(type=standard_artifacts.Model),
        pushed_model=tfx.dsl.Channel(type=standard_artifacts.PushedModel),
    )
"""

from __future__ import annotations

import os

import ml_metadata as mlmd
from ml_metadata.proto import metadata_store_pb2
from tfx import types
from tfx.dsl.components.common import resolver
from tfx.types import standard_component_specs

from components.tf_serving_pusher.executor import PUSHED_VERSION_PROPERTY

MODEL_KEY = standard_component_specs.MODEL_KEY
PUSHED_MODEL_KEY = standard_component_specs.PUSHED_MODEL_KEY


class LatestPushedModelStrategy(resolver.ResolverStrategy):
    """Resolves the ``Model`` of the newest push whose version folder is still served."""

    def __init__(self, serving_dir: str, model_name: str):
        """Where the Pusher pushes (its ``serving_dir`` and ``model_name``)."""
        self._base = os.path.join(serving_dir, model_name)

    def resolve_artifacts(
        self, store: mlmd.MetadataStore, input_dict: dict[str, list[types.Artifact]]
    ) -> dict[str, list[types.Artifact]]:
        """``{model: [the served Model], pushed_model: [its push]}``, or empty lists.

        Args:
          store: the pipeline's ML Metadata store (read for the lineage of each push).
          input_dict: the live ``model`` and ``pushed_model`` artifacts of the pipeline.

        """
        models = {model.id: model for model in input_dict.get(MODEL_KEY, [])}
        pushes = sorted(input_dict.get(PUSHED_MODEL_KEY, []), key=lambda a: a.id, reverse=True)
        for push in pushes:
            if not self.still_served(push):
                continue
            model_id = pushed_model_source(store, push.id)
            if model_id in models:
                return {MODEL_KEY: [models[model_id]], PUSHED_MODEL_KEY: [push]}
        return {MODEL_KEY: [], PUSHED_MODEL_KEY: []}

    def still_served(self, push: types.Artifact) -> bool:
        """Whether ``push`` recorded a version whose folder is still in the serving folder."""
        version = push.get_string_custom_property(PUSHED_VERSION_PROPERTY)
        return bool(version) and os.path.isdir(os.path.join(self._base, version))


def pushed_model_source(store: mlmd.MetadataStore, pushed_model_id: int) -> int | None:
    """The id of the ``model`` input of the execution that output ``pushed_model_id``."""
    producers = [event.execution_id for event in store.get_events_by_artifact_ids([pushed_model_id])
                 if event.type == metadata_store_pb2.Event.OUTPUT]
    if not producers:
        return None
    for event in store.get_events_by_execution_ids(producers[:1]):
        if (event.type == metadata_store_pb2.Event.INPUT and event.path.steps
                and event.path.steps[0].key == MODEL_KEY):
            return event.artifact_id
    return None
