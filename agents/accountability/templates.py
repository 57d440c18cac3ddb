"""Offline drafts for rep-level triggers and weekly scorecards (the template drafter's entries for
these rules). The numbers come from the flag's own message, so the grounding validator finds every
one of them in the evidence packet; the actor is always the manager."""

from __future__ import annotations

import re

_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def _first(text: str) -> str:
    return _SENTENCE.split(text.strip(), maxsplit=1)[0].rstrip(".")


def _low_coverage(p):
    return ("manager",
            f"Review the open pipeline of {p.rep_label} in your next 1:1 and agree where the missing "
            "pipeline will come from (prospecting targets per week)",
            f"{_first(p.flag_message)}.")


def _win_rate_drop(p):
    return ("manager",
            f"Review the recent lost deals of {p.rep_label} in your next 1:1 and agree what to change in "
            "qualification and late-stage selling",
            f"{_first(p.flag_message)}.")


def _attainment(p):
    return ("manager",
            f"Agree with {p.rep_label} in your next 1:1 which open deals can still close this quarter and what "
            "help each needs",
            f"{_first(p.flag_message)}.")


def _single_threaded(p):
    return ("manager",
            f"Ask {p.rep_label} to name a second contact (ideally a decision maker) on each single-threaded deal "
            "and book a meeting with them",
            f"{_first(p.flag_message)}.")


def _activity(p):
    return ("manager",
            f"Review the drop in activity with {p.rep_label} in your next 1:1 and agree a weekly activity plan",
            f"{_first(p.flag_message)}.")


_SCORECARD_ACTIONS = {
    "EXCEEDS": "Share this week's scorecard with {rep} and recognise the result (every floor met, several well above) in your next 1:1",
    "MEETS": "Share this week's scorecard with {rep} and agree one number to push further next week",
    "BELOW_FLOOR": "Share this week's scorecard with {rep} and agree a plan to bring the missed floors back above the line",
    "BELOW_FLOOR_PIP": "Decide yourself whether to start a performance plan with {rep}; this scorecard is never sent to the rep",
    "CRITICAL": "Review {rep}'s scorecard with HR before any conversation; this scorecard is never sent to the rep",
}


def _scorecard(p):
    verdict = str(p.observed or "")
    action = _SCORECARD_ACTIONS.get(verdict, _SCORECARD_ACTIONS["BELOW_FLOOR_PIP"]).format(rep=p.rep_label)
    return ("manager", action, f"{_first(p.flag_message)}.")


TEMPLATES = {
    "low_coverage": _low_coverage,
    "win_rate_drop": _win_rate_drop,
    "attainment_below_midpoint": _attainment,
    "single_threaded_deals": _single_threaded,
    "activity_below_floor": _activity,
    "weekly_scorecard": _scorecard,
}
