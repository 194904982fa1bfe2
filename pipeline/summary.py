"""The end-of-run summary: artifacts, eval metrics vs baseline, blessing, pushed version."""

from __future__ import annotations

import os

from pipeline.mlmd_summary import NodeRun, custom_property, lineage

# The project's own artifact types (components/artifacts.py), listed in the lineage section.
PROJECT_ARTIFACT_PREFIX = "xmodal."

# The model-selection metrics that the summary shows; every metric is in the evaluation report.
HEADLINE_METRICS = (
    "rsum",
    "i2t_r1",
    "i2t_r5",
    "i2t_r10",
    "t2i_r1",
    "t2i_r5",
    "t2i_r10",
)


def format_summary(nodes: dict[str, NodeRun], pipeline_root: str) -> str:
    """Renders the run summary that ``python -m pipeline run`` prints at the end."""
    lines = ["", "=== Pipeline run summary ===", f"artifacts under: {pipeline_root}"]
    for node in sorted(nodes.values(), key=lambda n: n.started):
        timing = f"{node.seconds:6.1f}s" if node.state == "ran" else "      -"
        lines.append(f"  {node.node_id:<26} {node.state:<7} {timing}")
    lines += ingest_skip_lines(nodes)
    lines += lineage_lines(nodes)
    lines += _evaluation_lines(nodes)
    lines += _push_lines(nodes)
    return "\n".join(lines)


def ingest_skip_lines(nodes: dict[str, NodeRun]) -> list[str]:
    """What the caption ExampleGen skipped by policy (count and one example each).

    Read from its Examples artifact's ``ingest_*`` properties, so that a skip (e.g. captions of
    images in no split list) shows in the terminal, not only in the ingest report.
    """
    from components.caption_example_gen import report  # lazy: imports Beam

    example_gen = _find(nodes, "CaptionExampleGen")
    artifacts = example_gen.outputs.get("examples", []) if example_gen else []
    if not artifacts:
        return []
    counts, examples = {}, {}
    for name in artifacts[0].custom_properties:
        value = custom_property(artifacts[0], name)
        if name.startswith(report.EXAMPLE_PROPERTY_PREFIX):
            examples[name[len(report.EXAMPLE_PROPERTY_PREFIX):]] = value
        elif name.startswith(report.COUNT_PROPERTY_PREFIX):
            counts[name[len(report.COUNT_PROPERTY_PREFIX):]] = value
    return report.skip_lines(counts, examples)


def lineage_lines(nodes: dict[str, NodeRun]) -> list[str]:
    """One line per project artifact handed between components, as ML Metadata recorded it."""
    handovers = lineage(nodes, PROJECT_ARTIFACT_PREFIX)
    if not handovers:
        return []
    lines = ["lineage (ML Metadata):"]
    for type_name, producer, consumer, uri in handovers:
        lines.append(f"  {type_name:<24} {producer} -> {consumer}: {uri}")
    return lines


def _evaluation_lines(nodes: dict[str, NodeRun]) -> list[str]:
    evaluator = _find(nodes, "Evaluator")
    if evaluator is None:
        return ["evaluation: not run"]
    lines = []
    evaluation = evaluator.outputs.get("evaluation", [])
    if evaluation:
        lines.append(f"evaluation: {evaluation[0].uri}")
        lines += metrics_table(evaluation[0].uri)
    blessing = evaluator.outputs.get("blessing", [])
    if blessing:
        blessed = custom_property(blessing[0], "blessed") == 1
        reason = custom_property(blessing[0], "not_blessed_reason")
        verdict = "BLESSED" if blessed else "NOT_BLESSED"
        lines.append(f"blessing: {verdict}" + (f" ({reason})" if reason else ""))
    report = _find(nodes, "EvalReport")
    for artifacts in report.outputs.values() if report else []:
        for artifact in artifacts:
            lines.append(f"evaluation report: {os.path.join(artifact.uri, 'index.html')}")
    return lines


def _push_lines(nodes: dict[str, NodeRun]) -> list[str]:
    pusher = _find(nodes, "Pusher")
    if pusher is None:
        return ["push: pusher did not run"]
    for artifacts in pusher.outputs.values():
        for artifact in artifacts:
            version = custom_property(artifact, "pushed_version")
            if custom_property(artifact, "pushed") == 1:
                where = custom_property(artifact, "pushed_destination")
                return [f"pushed: version {version} -> {where}"]
            if version:
                return [f"pushed: nothing (identical to the serving version {version})"]
    return ["pushed: nothing (model not blessed)"]


def unserved_model_error(nodes: dict[str, NodeRun], serving_dir: str,
                         model_name: str) -> str | None:
    """Why a run must fail although every component succeeded: its blessed model is not served.

    The run's model counts as blessed when this run's Evaluator blessed it, or refused to
    because it is the baseline model itself (blessed before). It is served when the latest
    version under ``<serving_dir>/<model_name>`` holds the same files as its serving export.

    Returns:
        The error, naming the model and what is served instead; None when there is none.

    """
    from tfx.utils import path_utils  # lazy: TFX

    from serving.publish import latest_matches, list_versions

    evaluator, trainer = _find(nodes, "Evaluator"), _find(nodes, "Trainer")
    blessings = evaluator.outputs.get("blessing", []) if evaluator else []
    models = trainer.outputs.get("model", []) if trainer else []
    if not blessings or not models:
        return None
    baselines = evaluator.inputs.get("baseline_model", [])
    is_baseline = bool(baselines) and baselines[0].id == models[0].id
    if custom_property(blessings[0], "blessed") != 1 and not is_baseline:
        return None
    base = os.path.join(serving_dir, model_name)
    if latest_matches(path_utils.serving_model_path(models[0].uri), base) is not None:
        return None
    versions = list_versions(base)
    served = f"its latest version {versions[-1]} is another model" if versions else "it is empty"
    return (f"model {models[0].uri} is blessed but {base} does not serve it ({served}) and this "
            "run pushed nothing; re-run the same command to push it (docs/serving.md, "
            "'Failed pushes')")


def metrics_table(evaluation_uri: str) -> list[str]:
    """Candidate vs baseline lines of the ``HEADLINE_METRICS``, read with TFMA.

    The other metrics (ranks, nDCG) are in the evaluation report; the terminal shows rsum and
    the recalls it sums, so that a run's output stays short.
    """
    import tensorflow_model_analysis as tfma

    rows: dict[str, dict[str, float]] = {}
    for result in tfma.load_metrics(evaluation_uri):
        for kind_metrics in result.metric_keys_and_values:
            key = kind_metrics.key
            value = kind_metrics.value.double_value.value
            name = key.name
            if key.is_diff:
                rows.setdefault(name, {})["diff"] = value
            elif key.model_name == "baseline":
                rows.setdefault(name, {})["baseline"] = value
            else:
                rows.setdefault(name, {})["candidate"] = value
    names = [m for m in HEADLINE_METRICS if m in rows]
    out = [f"  {'metric':<18} {'candidate':>10} {'baseline':>10} {'diff':>9}"]
    for name in names:
        row = rows[name]
        out.append(
            f"  {name:<18} {_fmt(row.get('candidate'))} {_fmt(row.get('baseline'))}"
            f" {_fmt(row.get('diff'), width=9)}"
        )
    return out


def _fmt(value: float | None, width: int = 10) -> str:
    return f"{value:>{width}.2f}" if value is not None else f"{'-':>{width}}"


def _find(nodes: dict[str, NodeRun], prefix: str) -> NodeRun | None:
    matches = [n for node_id, n in nodes.items() if node_id.startswith(prefix)]
    return matches[0] if matches else None
