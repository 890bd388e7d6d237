"""Kept for ``matcher.rules`` users: the rule-card reader is :mod:`matcher.s1ql.cards`, the rule
record :mod:`matcher.record`, the rule-file finder :mod:`matcher._files`."""

from ._files import RULE_SUFFIXES, rule_files
from .record import RuleInfo, RuleRecord
from .s1ql.cards import (
    CARD_SECTIONS,
    RULE_LINES_SUFFIXES,
    CardTest,
    builtin_rules,
    default_id,
    load_path,
    parse_rule_card,
    parse_rule_lines,
    parse_rule_text,
    read_rule_lines,
)

__all__ = ["RuleInfo", "RuleRecord", "CardTest", "parse_rule_card", "parse_rule_text", "load_path", "read_rule_lines",
           "parse_rule_lines", "builtin_rules", "default_id", "rule_files", "RULE_SUFFIXES", "RULE_LINES_SUFFIXES",
           "CARD_SECTIONS"]
