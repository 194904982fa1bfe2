"""What ``run`` and ``retrain`` check on disk before anything runs (exit code 2 on a problem).

The configuration check (``pipeline.config``) judges values; these checks look at the folders a
run writes: the pipeline root (lock, logs, artifacts, ML Metadata) and the serving directory
(the Pusher's versions and ``models.config``). A problem there would otherwise be a traceback
when the run's log is opened, or would be found only by the Pusher, after training. Nothing here
creates or changes a file, and nothing imports TensorFlow.
"""

from __future__ import annotations

import os
import tempfile

from pipeline.config import ConfigError, PipelineConfig
from serving.layout import INDEX_SUBDIR, SEARCH_MODEL_SUFFIX
from serving.publish import list_versions


def check_run(config: PipelineConfig) -> None:
    """Checks the folders that a local run of ``config`` writes.

    Raises:
      ConfigError: naming the folder and its field: a folder that is (or is under) something
        other than a folder, one this process cannot write in, or a search-model folder of
        ``model_name`` that holds another model.

    """
    _check_writable_folder(config.pipeline_root, "pipeline_root")
    _check_writable_folder(config.serving_dir, "serving_dir")
    _check_search_model_folder(config.serving_dir, config.model_name)


def _check_writable_folder(path: str, key: str) -> None:
    """``path`` is a folder (or can be made one) that this process can write in.

    A folder that does not exist yet is judged by its nearest existing parent, which the run
    would create it in. Remote paths (``gs://...``) are left to the runner.
    """
    if "://" in path:
        return
    wanted = os.path.abspath(path)
    existing = wanted
    while not os.path.lexists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        kind = "a regular file" if os.path.isfile(existing) else "not a folder"
        where = "" if existing == wanted else f"{existing} "
        raise ConfigError(path, key, f"{where}is {kind}; a folder is needed here")
    try:
        # An unnamed file (O_TMPFILE where the filesystem has it): nothing appears in the folder.
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as err:
        raise ConfigError(path, key, f"cannot write in {existing}: {err.strerror}") from err


def _check_search_model_folder(serving_dir: str, model_name: str) -> None:
    """Every version in ``<serving_dir>/<model_name>_search`` is a search model (has its index).

    The Pusher publishes ``model_name``'s search model there; a folder of another model by that
    name (pushed by hand or by another tool) would get search versions on top of its own.
    """
    if "://" in serving_dir:
        return
    folder = os.path.join(serving_dir, model_name + SEARCH_MODEL_SUFFIX)
    for version in list_versions(folder):
        if not os.path.isdir(os.path.join(folder, str(version), INDEX_SUBDIR)):
            raise ConfigError(serving_dir, "model_name", f"{folder}/{version} is not a search "
                              f"model (no {INDEX_SUBDIR}): {model_name!r}'s search model would "
                              f"be published over another model; choose another model name")
