"""Questions in plain language, answered only through the governed semantic layer.

``answer(question, layer=..., settings=...)`` is the one entry point (CLI, Slack
slash command, console); see agents/ask/answer.py. Offline, a deterministic
grammar (agents/ask/grammar.py) reads the question; with an Anthropic key,
Claude gets tools that can only list governed metrics and run MetricFlow
queries (agents/ask/claude.py). No path runs SQL of its own.
"""

from agents.ask.answer import Answer, AnswerQuery, AskScope, answer, answer_as, make_asker, scope_for
from agents.ask.catalog import Catalog

__all__ = ["Answer", "AnswerQuery", "AskScope", "Catalog", "answer", "answer_as", "make_asker", "scope_for"]
