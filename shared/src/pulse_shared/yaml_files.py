"""Configuration files in YAML, validated into a model with errors that name the file, the line and the field."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from pulse_shared.settings import ConfigError

M = TypeVar("M", bound=BaseModel)
Loc = list[int | str]


def parse_yaml(text: str, model: type[M], *, source: str, what: str,
               prepare: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
               user_loc: Callable[[Sequence[int | str]], Loc] = list) -> M:
    """``text`` validated as ``model``, or :class:`ConfigError` listing each problem as ``source:line: field:
    message`` (at most ten). ``prepare`` transforms the mapping first (variable expansion); ``user_loc`` turns
    pydantic's location into the one the file's author wrote (dropping union tags)."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        raise ConfigError(f"{where}: not valid YAML: {getattr(exc, 'problem', None) or exc}") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}:1: the file must be a mapping")
    try:
        return model.model_validate(prepare(data) if prepare else data)
    except ValidationError as exc:
        lines = []
        for error in exc.errors()[:10]:
            loc = user_loc(error["loc"])
            lines.append(f"{source}:{line_of(node, loc)}: {dotted(loc) or '(top level)'}: {error['msg']}")
        raise ConfigError(f"invalid {what}:\n  " + "\n  ".join(lines)) from exc


def dotted(loc: Loc) -> str:
    """``rules[0].keywords`` for ``['rules', 0, 'keywords']``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def line_of(node: Any, loc: Loc) -> int:
    """The 1-based line of the deepest YAML node on ``loc`` that exists."""
    line = (node.start_mark.line + 1) if node is not None else 1
    for part in loc:
        child = None
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            child = next((v for k, v in node.value if getattr(k, "value", None) == part), None)
            if child is None:
                break
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            child = node.value[part]
        else:
            break
        node = child
        line = node.start_mark.line + 1
    return line
