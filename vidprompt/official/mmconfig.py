"""Read the settings out of an mmcv config's text without executing it.

An mmcv checkpoint stores its training config as Python source (``meta['config']``). Running that source
would run whatever it says, so it is parsed with :mod:`ast` and only literals are evaluated: numbers,
strings, lists, tuples, dicts, ``dict(key=value, ...)`` calls and names bound earlier in the same text.
Anything else (a function call, an attribute, arithmetic on names) evaluates to ``None``.
"""

from __future__ import annotations

import ast

_UNKNOWN = None


def read_config(text: str) -> dict:
    """Top-level assignments of an mmcv config text, as plain Python values (``{}`` if it does not parse)."""
    names: dict = {}
    try:
        tree = ast.parse(text)
        for node in tree.body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                names[node.targets[0].id] = _literal(node.value, names)
    except (SyntaxError, ValueError, TypeError, RecursionError, MemoryError):
        return {}  # not a config this reader understands (or one built to exhaust it): nothing from it
    return names


def _literal(node: ast.AST, names: dict):
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, (ast.List, ast.Tuple)):
        values = [_literal(e, names) for e in node.elts]
        return values if isinstance(node, ast.List) else tuple(values)
    if isinstance(node, ast.Dict):
        pairs = [(_literal(k, names), _literal(v, names)) for k, v in zip(node.keys, node.values) if k is not None]
        return {k: v for k, v in pairs if isinstance(k, (str, int, float, bool, type(None)))}
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict" and not node.args:
        return {kw.arg: _literal(kw.value, names) for kw in node.keywords if kw.arg is not None}
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        value = _literal(node.operand, names)
        return -value if isinstance(value, (int, float)) and not isinstance(value, bool) else _UNKNOWN
    if isinstance(node, ast.Name):
        return names.get(node.id, _UNKNOWN)
    return _UNKNOWN


def find_step(pipeline: object, step_type: str) -> dict | None:
    """The first step of an mmaction data pipeline (a list of dicts) with ``type == step_type``."""
    if isinstance(pipeline, list):
        for step in pipeline:
            if isinstance(step, dict) and step.get("type") == step_type:
                return step
    return None
