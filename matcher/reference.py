"""The reference evaluator: a tree walk over the IR that *defines* what a rule means.

It implements ``docs/semantics.md`` and nothing else, depends only on :mod:`matcher.ir` and
:mod:`matcher.ops`, and is kept small enough to be read in one sitting. Every engine is
tested against it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .ir import EVENT_OPS, And, Node, Not, Or, Pred
from .ops import EVENT_REFERENCE, REFERENCE, field_texts

__all__ = ["evaluate", "evaluate_ir", "predicate"]


def predicate(pred: Pred, event: Mapping) -> bool:
    """One predicate: False when the field is absent, else true for any of its texts.

    A whole-event predicate (``ir.EVENT_OPS``) is decided by its own function over the event.
    """
    if pred.op in EVENT_OPS:
        return EVENT_REFERENCE[pred.op](event, pred)
    texts = field_texts(event, pred.field)
    if texts is None:
        return False
    test = REFERENCE[pred.op]
    return any(test(text, pred.value) for text in texts)


def evaluate_ir(node: Node, event: Mapping) -> bool:
    """Two-valued logic over the predicates; NOT negates, absence is False."""
    if isinstance(node, Pred):
        return predicate(node, event)
    if isinstance(node, Not):
        return not evaluate_ir(node.item, event)
    if isinstance(node, And):
        return all(evaluate_ir(c, event) for c in node.items)
    if isinstance(node, Or):
        return any(evaluate_ir(c, event) for c in node.items)
    raise TypeError(f"not an IR node: {node!r}")


def evaluate(rule: Any, event: Mapping) -> bool:
    """The verdict of ``rule`` (a :class:`~matcher.Rule` or an IR node) on ``event``."""
    if not isinstance(event, Mapping):
        raise TypeError(f"an event must be a mapping, not {type(event).__name__}")
    node = getattr(rule, "ir", rule)
    return evaluate_ir(node, event)
