"""The template drafter: a brief from the packet alone, offline, with every line citing what it rests on.

It decides everything a brief says (checks, gaps, ranking, timing) in plain Python over the packet;
the Claude drafter (agents/coach/claude.py) may only reword these lines, and the validator holds
both to the same rule: no number, date or name outside the rows and queries a line cites.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from agents.coach.facts import EXIT_METRICS, LOSS_REASON, LOSS_STAGE
from agents.coach.models import Brief, BriefPacket, Citation, Contact, Criterion, Line, NextAction
from agents.coach.playbook import METRICS, ROLE_METRICS, Playbook

DRAFTER_NAME = "template"
MIN_LOSS_SAMPLE = 5
ROLE_LABELS = {
    "decision_maker": "decision maker", "champion": "champion", "technical_evaluator": "technical evaluator",
    "influencer": "influencer", "user": "end user",
}


def _money(v: float | None) -> str:
    return "no amount" if v is None else f"${v:,.0f}"


def _seg(s: str | None) -> str:
    return (s or "team").replace("_", "-")


def _pct(k: float, n: float) -> float:
    return round(100.0 * k / n, 1) if n else 0.0


def _role(c: Contact) -> str:
    return ROLE_LABELS.get(c.role or "", (c.role or "no role").replace("_", " "))


def _who(c: Contact) -> str:
    name = c.name or c.contact_id
    return f"{name} ({c.title})" if c.title else name


def due_date(as_of: dt.date, this_week: bool) -> dt.date:
    """A business day: this week's Friday (the next business day when as-of is Friday or later), else next week's."""
    d = as_of + dt.timedelta(days=1)
    while d.weekday() >= 5:
        d += dt.timedelta(days=1)
    friday = d + dt.timedelta(days=4 - d.weekday())
    return friday if this_week else friday + dt.timedelta(days=7)


@dataclass
class Checks:
    """The deal's state against every playbook check: met?, and the line that proves it."""

    packet: BriefPacket
    playbook: Playbook

    def engaged(self, role: str | None = None) -> list[Contact]:
        return [c for c in self.packet.contacts if c.engaged and (role is None or c.role == role)]

    def result(self, check: str) -> tuple[bool, Line]:
        p, d = self.packet, self.packet.deal
        role_checks = {"decision_maker_engaged": "decision_maker", "champion_engaged": "champion",
                       "technical_evaluator_engaged": "technical_evaluator", "influencer_engaged": "influencer"}
        if check in role_checks:
            role = role_checks[check]
            found = self.engaged(role)
            if found:
                c = found[0]
                return True, Line(text=f"{_who(c)}, {ROLE_LABELS[role]}, last touch {c.last_touch}.", cites=[c.contact_id])
            return False, Line(text=f"No {ROLE_LABELS[role]} is on a logged activity of this deal.", cites=[d.opportunity_id])
        if check == "multithreaded":
            eng = self.engaged()
            if len(eng) >= 2:
                names = ", ".join(c.name or c.contact_id for c in eng[:4])
                return True, Line(text=f"{len(eng)} contacts engaged: {names}.", cites=[c.contact_id for c in eng[:12]])
            if eng:
                return False, Line(text=f"Only {_who(eng[0])} is engaged.", cites=[eng[0].contact_id])
            return False, Line(text="No contact is on a logged activity of this deal.", cites=[d.opportunity_id])
        if check in ("meeting_in_stage", "dm_meeting_in_stage"):
            if d.stage_entered is None:
                return False, Line(text=f"Unknown: no stage history says when the deal entered {d.stage}.", cites=[d.opportunity_id])
            dms = {c.contact_id for c in p.contacts if c.role == "decision_maker"}
            for m in p.stage_meetings:
                ids = [x for x in (m.get("contact_ids") or "").split(",") if x]
                if check == "meeting_in_stage" or dms.intersection(ids):
                    who = [c for c in p.contacts if c.contact_id in ids and (check == "meeting_in_stage" or c.contact_id in dms)]
                    with_ = f" with {_who(who[0])}" if who else ""
                    return True, Line(text=f"Meeting on {str(m['occurred_at'])[:10]}{with_}, in {d.stage} since {d.stage_entered}.",
                                      cites=[m["activity_id"], d.opportunity_id, *[c.contact_id for c in who[:1]]])
            what = "meeting with a decision maker" if check == "dm_meeting_in_stage" else "meeting"
            return False, Line(text=f"No {what} since the deal entered {d.stage} on {d.stage_entered}.", cites=[d.opportunity_id])
        if check == "champion_touch_14d":
            champs = self.engaged("champion")
            recent = [c for c in champs if c.last_touch and (p.as_of - c.last_touch).days <= 14]
            if recent:
                c = recent[0]
                return True, Line(text=f"Champion {_who(c)} last touched {c.last_touch}.", cites=[c.contact_id])
            if champs:
                c = champs[0]
                return False, Line(text=f"Champion {_who(c)} last touched {c.last_touch}, more than 14 days before {p.as_of}.",
                                   cites=[c.contact_id, d.opportunity_id])
            return False, Line(text="No champion is on a logged activity of this deal.", cites=[d.opportunity_id])
        if check == "next_step_recorded":
            if d.has_next_step:
                return True, Line(text="A next step is recorded in the CRM.", cites=[d.opportunity_id])
            return False, Line(text="No next step is recorded in the CRM.", cites=[d.opportunity_id])
        if check == "close_date_ahead":
            if d.close_date is None:
                return False, Line(text="No close date is recorded.", cites=[d.opportunity_id])
            days = (d.close_date - p.as_of).days
            if days >= 0:
                return True, Line(text=f"Close date {d.close_date}, {days} days after {p.as_of}.", cites=[d.opportunity_id])
            return False, Line(text=f"Close date {d.close_date} passed {-days} days before {p.as_of}.", cites=[d.opportunity_id])
        if check == "amount_set":
            if d.amount:
                return True, Line(text=f"Amount {_money(d.amount)}.", cites=[d.opportunity_id])
            return False, Line(text="No amount is recorded.", cites=[d.opportunity_id])
        raise KeyError(check)


def _exit_share(p: BriefPacket, metric: str) -> tuple[float, float] | None:
    row = p.exits_row
    if row is None:
        return None
    n, k = row.get("coach_won_exits"), row.get(metric)
    if not n or k is None:
        return None
    return float(k), float(n)


def draft_brief(packet: BriefPacket, playbook: Playbook) -> Brief:
    p, d = packet, packet.deal
    seg, stage = _seg(d.segment), d.stage
    checks = Checks(p, playbook)
    notes: list[str] = []
    oid = d.opportunity_id

    # the query citations carry the rows used and the shares computed from them
    exits_ok = p.exits_row is not None and (p.exits_row.get("coach_won_exits") or 0) >= playbook.min_sample
    if p.exits_query_id:
        derived = []
        if p.exits_row:
            n = float(p.exits_row.get("coach_won_exits") or 0)
            derived = [_pct(float(p.exits_row.get(m) or 0), n) for m in EXIT_METRICS[1:]] if n else []
        old = p.citations.get(p.exits_query_id)
        p.citations[p.exits_query_id] = Citation(
            id=p.exits_query_id, kind="query", table="coach_stage_exits", query=old.query if old else {},
            rows=[p.exits_row] if p.exits_row else [], derived=derived)

    # headline
    head = f"{d.name or oid} ({d.account_name or 'no account'}): {stage}"
    head += f" since {d.stage_entered}" if d.stage_entered else ""
    head += f", {_money(d.amount)}, closing {d.close_date}" if d.close_date else f", {_money(d.amount)}"
    head += f"; owner {d.rep_name}." if d.rep_name else "."
    headline = Line(text=head, cites=[oid])

    # stakeholder map
    engaged = checks.engaged()
    stakeholders = [
        Line(text=f"{_who(c)}, {_role(c)}: last touch {c.last_touch}, {c.meetings_90d} meeting{'s' if c.meetings_90d != 1 else ''} "
                  f"in the last 90 days.", cites=[c.contact_id])
        for c in engaged[:6]
    ]
    if not engaged:
        stakeholders.append(Line(text=f"No contact of {d.account_name or 'the account'} is on a logged activity of this deal.", cites=[oid]))
    missing: list[Line] = []
    engaged_roles = {c.role for c in engaged}
    if p.exits_query_id is None:
        missing.append(Line(text="No team history to compare buying roles with (the semantic layer was not queried).", cites=[]))
        notes.append("no team figures: buying roles and the action ranking are not compared with won deals")
    elif not exits_ok:
        n = int((p.exits_row or {}).get("coach_won_exits") or 0)
        missing.append(Line(text=f"Too few won {seg} deals left {stage} ({n}) to compare buying roles.", cites=[p.exits_query_id]))
    else:
        for role, metric in ROLE_METRICS.items():
            share = _exit_share(p, metric)
            if role in engaged_roles or share is None or share[0] / share[1] < playbook.role_share_threshold:
                continue
            k, n = share
            text = (f"No {ROLE_LABELS[role]} engaged: won {seg} deals that left {stage} had one in {_pct(k, n):.0f}% of cases "
                    f"({int(k)} of {int(n)}).")
            cites = [p.exits_query_id, oid]
            known = [c for c in p.contacts if c.role == role and not c.engaged]
            if known:
                text = text[:-1] + f"; {_who(known[0])} is one at {d.account_name or 'the account'}, not yet engaged."
                cites.append(known[0].contact_id)
            missing.append(Line(text=text, cites=cites))
        if not missing:
            missing.append(Line(text=f"Every buying role most won {seg} deals had engaged by leaving {stage} is engaged here.",
                                cites=[p.exits_query_id]))
    threading: list[Line] = []
    if len(engaged) == 1:
        threading.append(Line(text=f"Single-threaded: only {_who(engaged[0])} is engaged.", cites=[engaged[0].contact_id]))
    elif not engaged:
        threading.append(Line(text="No one is engaged yet.", cites=[oid]))
    else:
        threading.append(Line(text=f"Multi-threaded: {len(engaged)} contacts engaged.", cites=[c.contact_id for c in engaged[:12]]))
    champs = checks.engaged("champion")
    if not champs and not any("No champion" in x.text for x in missing):
        threading.append(Line(text="No champion engaged.", cites=[oid]))
    for c in champs[:2]:
        if c.last_touch and (p.as_of - c.last_touch).days >= playbook.champion_silence_days:
            threading.append(Line(text=f"Champion silence: {_who(c)} last touched {c.last_touch}, "
                                       f"{(p.as_of - c.last_touch).days} days before {p.as_of}.", cites=[c.contact_id]))

    # next best action
    sp = playbook.for_stage(stage)
    candidates = []
    for i, name in enumerate(sp.actions):
        a = playbook.actions[name]
        met, _ = checks.result(a.check)
        if met:
            continue
        share = _exit_share(p, a.metric) if exits_ok else None
        candidates.append((-(share[0] / share[1]) if share else 0.0, i, name, a, share))
    candidates.sort(key=lambda t: (t[0], t[1]))
    next_action = None
    this_week = False
    if candidates:
        _, _, name, a, share = candidates[0]
        this_week = bool(share and share[0] / share[1] >= 0.75) or bool(d.close_date and (d.close_date - p.as_of).days <= 21)
        due = due_date(p.as_of, this_week)
        target = _target(a.check, p)
        act = a.text + (f": {_who(target)}" if target else "") + "."
        act_cites = [oid] + ([target.contact_id] if target else [])
        if share:
            reason = Line(text=f"{int(share[0])} of {int(share[1])} won {seg} deals that left {stage} "
                               f"{METRICS[a.metric]} ({_pct(*share):.0f}%); this deal has not.", cites=[p.exits_query_id, oid])
        else:
            reason = Line(text=f"The {stage} playbook calls for it and this deal has not done it; "
                               "the team's won deals are too few here to rank it.", cites=[oid])
        rep = d.rep_name or d.owner_rep_id or "the owner"
        who = (Line(text=f"{d.manager_name or 'The manager'} (the manager), with {rep}.", cites=[oid])
               if a.who == "manager" else Line(text=f"{rep} (the rep).", cites=[oid]))
        alt = None
        if len(candidates) > 1:
            _, _, name2, a2, share2 = candidates[1]
            t2 = _target(a2.check, p)
            txt = a2.text + (f": {_who(t2)}" if t2 else "")
            txt += f" ({int(share2[0])} of {int(share2[1])} won deals had, {_pct(*share2):.0f}%)." if share2 else "."
            alt = Line(text=txt, cites=[c for c in (p.exits_query_id if share2 else None, t2.contact_id if t2 else None, oid) if c])
        next_action = NextAction(
            action=Line(text=act, cites=act_cites), reason=reason,
            timing=Line(text=f"{'This week' if this_week else 'Next week'}: by {due.strftime('%A')} {due}.", cites=[oid]),
            who=who, success=Line(text=a.success, cites=[]), alternative=alt,
        )
    elif d.close_date is not None and d.close_date < p.as_of:
        due = due_date(p.as_of, True)
        next_action = NextAction(
            action=Line(text=f"Agree a new close date with the buyer: {d.close_date} has passed.", cites=[oid]),
            reason=Line(text=f"The close date {d.close_date} is {(p.as_of - d.close_date).days} days before {p.as_of}, "
                             f"and every {stage} playbook action is done.", cites=[oid]),
            timing=Line(text=f"This week: by {due.strftime('%A')} {due}.", cites=[oid]),
            who=Line(text=f"{d.rep_name or 'The rep'} (the rep).", cites=[oid]),
            success=Line(text="A close date the buyer agreed to is in the CRM, with the steps to reach it.", cites=[]),
        )
    else:
        next_action = NextAction(
            action=Line(text=f"Agree the move out of {stage} with the buyer: every {stage} playbook action is done.", cites=[oid]),
            reason=Line(text=f"All of the {stage} playbook's checks are met for this deal.", cites=[oid]),
            timing=Line(text=f"Next week: by {due_date(p.as_of, False).strftime('%A')} {due_date(p.as_of, False)}.", cites=[oid]),
            who=Line(text=f"{d.rep_name or 'The rep'} (the rep).", cites=[oid]),
            success=Line(text="The deal enters the next stage with a dated next step.", cites=[]),
        )

    # process adherence
    adherence = []
    questions = []
    for crit in sp.exit_criteria:
        met, ev = checks.result(crit.check)
        label = f"{crit.label} ({crit.meddpicc})" if crit.meddpicc else crit.label
        adherence.append(Criterion(criterion=label, met=met, evidence=ev))
        if not met and len(questions) < 4:
            questions.append(Line(text=crit.question, cites=[]))
    if not questions:
        questions.append(Line(text="What would stop this deal from moving to the next stage?", cites=[]))

    # pre-call prep: history in five lines
    history = []
    if p.stints:
        path = " -> ".join(f"{s['stage']} {str(s['entered_at'])[:10]}" for s in p.stints[-6:])
        tail = ""
        if d.stage_entered:
            tail = f" (in {stage} for {(p.as_of - d.stage_entered).days} days)"
        history.append(Line(text=f"Path: {path}{tail}.", cites=[s["stage_history_id"] for s in p.stints[-6:]] + [oid]))
    else:
        history.append(Line(text="No stage history is recorded for this deal.", cites=[oid]))
    amounts = [c for c in p.changes if c["field_name"] == "amount"][-10:]  # a line cites at most 12 rows
    created = f"Created {d.created}; " if d.created else "No creation date; "
    if amounts:
        first, last = amounts[0], amounts[-1]
        history.append(Line(
            text=f"{created}amount {_money(d.amount)}, changed {len(amounts)} time{'s' if len(amounts) > 1 else ''} "
                 f"(from {_money(_num(first['old_value']))} to {_money(_num(last['new_value']))}, last on {str(last['changed_at'])[:10]}).",
            cites=[oid, *[c["field_history_id"] for c in amounts[-10:]]]))
    else:
        history.append(Line(text=f"{created}amount {_money(d.amount)}, unchanged.", cites=[oid]))
    closes = [c for c in p.changes if c["field_name"] == "close_date"][-10:]
    if closes:
        pushes = sum(1 for c in closes if (c["new_value"] or "") > (c["old_value"] or ""))
        history.append(Line(text=f"Close date {d.close_date}: moved {len(closes)} time{'s' if len(closes) > 1 else ''} "
                                 f"({pushes} later), first set to {str(closes[0]['old_value'])[:10]}.",
                            cites=[oid, *[c["field_history_id"] for c in closes[-10:]]]))
    else:
        history.append(Line(text=f"Close date {d.close_date or 'not set'}, never moved.", cites=[oid]))
    if p.activities:
        parts, cites = [], []
        by_id = {c.contact_id: c for c in p.contacts}
        for a in p.activities:
            ids = [x for x in (a.get("contact_ids") or "").split(",") if x in by_id]
            with_ = f" with {by_id[ids[0]].name}" if ids and by_id[ids[0]].name else ""
            parts.append(f"{a['activity_type']} {str(a['occurred_at'])[:10]}{with_}")
            cites += [a["activity_id"], *ids[:1]]
        history.append(Line(text="Last activities: " + "; ".join(parts) + ".", cites=cites))
    else:
        history.append(Line(text="No activity is logged on this deal.", cites=[oid]))

    # open risks
    risks = []
    if p.risk_run is None:
        risks.append(Line(text=f"No risk run is recorded up to {p.as_of}.", cites=[]))
        notes.append("no risk run in the warehouse")
    elif not p.flags:
        risks.append(Line(text=f"No open risk flags in the latest risk run (as of {str(p.risk_run['as_of'])[:10]}).", cites=[]))
        p.citations.setdefault(f"risk-run:{p.risk_run['run_id']}", Citation(
            id=f"risk-run:{p.risk_run['run_id']}", kind="risk", table="risk.risk_flags", row=p.risk_run))
        risks[-1].cites.append(f"risk-run:{p.risk_run['run_id']}")
    for f in p.flags[:6]:
        risks.append(Line(text=f"{f['rule_id'].replace('_', ' ')} ({f['severity']}): {f['message']}", cites=[f["flag_id"]]))

    # likely objections
    objections = _objections(p, seg, stage, notes)

    return Brief(
        opportunity_id=oid, as_of=p.as_of, drafter=DRAFTER_NAME, playbook_version=playbook.version,
        headline=headline, stakeholders=stakeholders, missing_roles=missing, threading=threading,
        next_action=next_action, adherence=adherence, history=history[:5], risks=risks, questions=questions,
        objections=objections, citations=dict(p.citations), notes=notes,
    )


def _num(v: object) -> float | None:
    try:
        return float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _target(check: str, p: BriefPacket) -> Contact | None:
    """The person an action is about, when the account has one (an unengaged contact with the role)."""
    role = {"decision_maker_engaged": "decision_maker", "dm_meeting_in_stage": "decision_maker",
            "champion_engaged": "champion", "champion_touch_14d": "champion",
            "technical_evaluator_engaged": "technical_evaluator", "influencer_engaged": "influencer"}.get(check)
    if role is None:
        return None
    people = [c for c in p.contacts if c.role == role]
    people.sort(key=lambda c: (not c.engaged, c.last_touch is None, -(c.last_touch.toordinal() if c.last_touch else 0)))
    return people[0] if people else None


def _objections(p: BriefPacket, seg: str, stage: str, notes: list[str]) -> list[Line]:
    if p.losses_query_id is None:
        return [Line(text="No loss reasons in the data: the team's lost deals were not queried.", cites=[])]
    old = p.citations.get(p.losses_query_id)
    qcite = lambda rows, derived: Citation(  # noqa: E731
        id=p.losses_query_id, kind="query", table="lost_deals", query=old.query if old else {}, rows=rows, derived=derived)
    any_reason = [r for r in p.loss_rows if r.get(LOSS_REASON)]
    if not any_reason:
        p.citations[p.losses_query_id] = qcite(p.loss_rows, [])
        notes.append("no loss reasons recorded: objections left out")
        return [Line(text=f"No loss reasons in the data: none of the team's lost {seg} deals records a reason, "
                          "so no objections are listed.", cites=[p.losses_query_id])]
    at_stage = [r for r in any_reason if r.get(LOSS_STAGE) == stage]
    n_stage = sum(int(r.get("coach_lost_deals") or 0) for r in at_stage)
    lines: list[Line] = []
    if n_stage >= MIN_LOSS_SAMPLE:
        rows, n, where = at_stage, n_stage, f"at {stage}"
    else:
        rows = any_reason
        n = sum(int(r.get("coach_lost_deals") or 0) for r in rows)
        where = "at any stage"
        lines.append(Line(text=f"Too few lost {seg} deals at {stage} record a reason ({n_stage}); counting every stage.",
                          cites=[p.losses_query_id]))
    totals: dict[str, int] = {}
    for r in rows:
        totals[r[LOSS_REASON]] = totals.get(r[LOSS_REASON], 0) + int(r.get("coach_lost_deals") or 0)
    top = sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
    p.citations[p.losses_query_id] = qcite(rows, [float(n), *[_pct(k, n) for _, k in top], *[float(k) for _, k in top]])
    for reason, k in top:
        lines.append(Line(text=f"{reason}: {k} of {n} lost {seg} deals {where} with a recorded reason ({_pct(k, n):.0f}%).",
                          cites=[p.losses_query_id]))
    return lines
