"""Reading a configuration file: YAML or JSON text into plain values, duplicate keys refused.

PyYAML and ``json`` both keep the last of two equal keys in one mapping, so a repeated
``margin:`` would silently decide which value trains. Here a repeated key is an error naming its
dotted path and, for YAML, both lines. Nothing here imports TensorFlow or TFX.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

import yaml

from pipeline.config_checks import ConfigError, dotted_key


def read_values(path: pathlib.Path) -> Any:
    """The values of a ``.json`` (JSON) or any other (YAML) configuration file.

    Raises:
      ConfigError: the file is not UTF-8, has a syntax error (named by line and column) or
        repeats a key within one mapping (named by its dotted path and lines).

    """
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".json":
            return _unique_json(json.loads(text, object_pairs_hook=_JsonPairs), str(path), "")
        return _yaml_values(text, str(path))
    except UnicodeDecodeError as err:
        message = f"not UTF-8 text ({err.reason} at byte {err.start})"
        raise ConfigError(str(path), "", message) from err
    except json.JSONDecodeError as err:
        where = f"{path}:{err.lineno}:{err.colno}"
        raise ConfigError(where, "", f"invalid JSON: {err.msg}") from err
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(err, "problem", None) or err
        raise ConfigError(where, "", f"invalid YAML: {problem}") from err


def _yaml_values(text: str, source: str) -> Any:
    """``yaml.safe_load`` of ``text``, with every mapping checked for repeated keys first."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _refuse_repeated_yaml_keys(node, source, "", set())
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _refuse_repeated_yaml_keys(node: yaml.Node, source: str, path: str, seen: set[int]) -> None:
    """Raises ConfigError at the second occurrence of a key in any mapping under ``node``.

    Keys are compared as written with their resolved tag (``1`` and ``'1'`` differ). Keys that a
    merge (``<<: *anchor``) brings in may be overridden, as YAML intends: only keys written in
    the same mapping are compared. ``seen`` stops at a node reached again through an alias.
    """
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _refuse_repeated_yaml_keys(item, source, f"{path}[{index}]", seen)
        return
    if not isinstance(node, yaml.MappingNode):
        return
    first_line: dict[tuple[str, str], int] = {}
    for key_node, value_node in node.value:
        name = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "?"
        key = dotted_key(path, name)
        line = key_node.start_mark.line + 1
        if isinstance(key_node, yaml.ScalarNode):
            identity = (key_node.tag, key_node.value)
            if identity in first_line:
                raise ConfigError(f"{source}:{line}", key, f"duplicate key (first at line "
                                  f"{first_line[identity]}); a key may appear once per mapping")
            first_line[identity] = line
        _refuse_repeated_yaml_keys(value_node, source, key, seen)


class _JsonPairs(list):
    """One JSON object's ``(key, value)`` pairs in file order, before repeated keys are checked."""


def _unique_json(value: Any, source: str, path: str) -> Any:
    """``value`` with every JSON object made a dict; raises ConfigError on a repeated key."""
    if isinstance(value, _JsonPairs):
        mapping = {}
        for name, item in value:
            key = dotted_key(path, name)
            if name in mapping:
                raise ConfigError(source, key, "duplicate key; a key may appear once per object")
            mapping[name] = _unique_json(item, source, key)
        return mapping
    if isinstance(value, list):
        return [_unique_json(item, source, f"{path}[{i}]") for i, item in enumerate(value)]
    return value
