"""The brief's grounding validator: every line says only what the rows and queries it cites say.

Per line (``Line.text`` with ``Line.cites``):

* ``uncited_id``: every cited id is a citation of the packet;
* ``ungrounded_number``: every number (amounts, counts, percentages, day counts) is a correct rounding
  of a value in the cited rows or queries (or a share computed from them, recorded in ``derived``), or a
  day distance between two dates of those rows and the as-of date; 0-3 are free counts; the fixed
  windows the brief names (14 and 90 days) are allowed;
* ``ungrounded_date``: every ISO date is a date of the cited rows, the as-of date, or (in the timing
  line) a business day within 14 days after as-of;
* ``ungrounded_name``: every run of two or more capitalised words (a person, a title, an account) is
  in the cited rows, or in the playbook and stage vocabulary; a person's name that belongs to the
  packet but not to the line's cites is refused too (a claim about someone must cite them);
* ``number_without_cite``: a line that states a number other than a free count cites something;
* the coaching drafts' adversarial checks (no URL, e-mail, phone number; no payment or credential
  request) apply to every line.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable

from agents.coach.models import Brief, BriefPacket, Citation
from agents.drafting.validator import (
    _DURATION,
    _ISO_DATE,
    _NUMBER,
    _SAFE_TOKENS,
    FREE_COUNT_MAX,
    Finding,
    _grounded,
)

FIXED_WINDOWS = (14.0, 90.0)
DUE_WINDOW_DAYS = 14
_CAPS = re.compile(r"\b([A-Z][\w'.&-]*(?:\s+(?:of|and|&|de|van|von|la|le|da)?\s*[A-Z][\w'.&-]*)+)")
_URL = re.compile(r"(https?://|www\.)\S+|\b[\w.-]+\.(com|net|org|io|co|example)\b", re.I)
_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+\.[\w.-]+\b")
_PHONE = re.compile(r"\+?\d[\d\s().-]{8,}\d")
_SENSITIVE = re.compile(r"\b(password|credential|bank details|wire transfer|iban|payment details|credit card)\b", re.I)


def _floats(v: object) -> list[float]:
    if isinstance(v, bool) or v is None:
        return []
    if isinstance(v, (int, float)):
        return [float(v)]
    if isinstance(v, str):
        out = []
        for m in _NUMBER.finditer(_ISO_DATE.sub(" ", v)):
            try:
                out.append(float(m.group(2).replace(",", "") + (f".{m.group(3)}" if m.group(3) else "")))
            except ValueError:
                pass
        return out
    return []


_ANY_DATE = re.compile(r"(?<!\d)(\d{4})-(\d{2})-(\d{2})(?!\d)")


def _dates(v: object) -> list[dt.date]:
    """Dates in a cell, timestamps included (2026-09-28T14:32:00 gives 2026-09-28)."""
    out = []
    for m in _ANY_DATE.finditer(str(v) if v is not None else ""):
        try:
            out.append(dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3))))
        except ValueError:
            pass
    return out


def _cells(c: Citation) -> Iterable[object]:
    yield from c.row.values()
    for r in c.rows:
        yield from r.values()


def citation_values(c: Citation) -> tuple[list[float], set[dt.date], str]:
    vals: list[float] = list(c.derived)
    dates: set[dt.date] = set()
    texts: list[str] = []
    for v in _cells(c):
        vals += _floats(v)
        dates.update(_dates(v))
        if isinstance(v, str):
            texts.append(v)
    return vals, dates, " | ".join(texts)


def _people(packet: BriefPacket) -> dict[str, str]:
    """person name (lower) -> the citation id that names them."""
    out = {}
    for c in packet.contacts:
        if c.name:
            out[c.name.lower()] = c.contact_id
    d = packet.deal
    for n in (d.rep_name, d.manager_name):
        if n:
            out[n.lower()] = d.opportunity_id
    return out


def validate_brief(brief: Brief, packet: BriefPacket, *, vocabulary: Iterable[str] = ()) -> list[Finding]:
    """Every reason this brief may not be shown (empty list: it may)."""
    findings: list[Finding] = []
    vocab = " | ".join(vocabulary).lower()
    people = _people(packet)
    as_of = packet.as_of
    for section, line in brief.lines():
        where = f"{section}: {line.text[:60]!r}"
        cited: list[Citation] = []
        for cid in line.cites:
            c = packet.citations.get(cid)
            if c is None:
                findings.append(Finding("uncited_id", f"{where}: {cid!r} is not in the brief's packet"))
            else:
                cited.append(c)
        vals: list[float] = list(FIXED_WINDOWS)
        dates: set[dt.date] = {as_of}
        texts = []
        for c in cited:
            v, ds, t = citation_values(c)
            vals += v
            dates |= ds
            texts.append(t)
        # a count of the rows the line cites ("4 contacts engaged", "moved 3 times")
        vals += [float(i) for i in range(len(set(line.cites)) + 1)]
        day_list = sorted(dates)
        vals += [float(abs((a - b).days)) for a in day_list for b in day_list]
        cited_text = " | ".join(texts).lower()
        text = line.text
        # adversarial content
        for pat, what in ((_URL, "a link"), (_EMAIL, "an e-mail address"), (_SENSITIVE, "a sensitive request")):
            if pat.search(text) and not pat.search(cited_text):
                findings.append(Finding("adversarial_content", f"{where}: contains {what}"))
        # dates
        allowed_due = {as_of + dt.timedelta(days=i) for i in range(1, DUE_WINDOW_DAYS + 1)} if section == "next_action.timing" else set()
        work = text
        for m in list(_ISO_DATE.finditer(text)):
            try:
                d = dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
            except ValueError:
                findings.append(Finding("ungrounded_date", f"{where}: {m.group(0)!r} is not a valid date"))
                continue
            if d not in dates and d not in allowed_due:
                findings.append(Finding("ungrounded_date", f"{where}: {m.group(0)!r} is not a date in the rows it cites"))
        work = _ISO_DATE.sub(" ", work)
        work = _SAFE_TOKENS.sub(" ", work)
        work = _DURATION.sub(lambda m: m.group(0) if int(m.group(1)) > 120 else " ", work)
        stated = False

        def num(m: re.Match) -> str:
            nonlocal stated
            currency, whole, frac, suffix = m.group(1), m.group(2), m.group(3), (m.group(4) or "").lower()
            display = float(whole.replace(",", "") + (f".{frac}" if frac else ""))
            if not currency and not suffix and not frac and "," not in whole and display <= FREE_COUNT_MAX:
                return " "
            if not currency and not suffix and not frac and display in FIXED_WINDOWS:
                return " "  # the brief's fixed windows (14 and 90 days) are wording, not evidence
            stated = True
            unit = {"k": 1e3, "m": 1e6}.get(suffix, 1.0)
            if not _grounded(display, len(frac) if frac else 0, unit, suffix == "%", vals):
                findings.append(Finding("ungrounded_number", f"{where}: {m.group(0)!r} is not in the rows or queries it cites"))
            return " "

        _NUMBER.sub(num, work)
        if stated and not line.cites:
            findings.append(Finding("number_without_cite", f"{where}: states a number and cites nothing"))
        # names
        for m in _CAPS.finditer(text):
            phrase = m.group(1).strip(" .'")
            words = phrase.split()
            # a sentence's first word joins the name after it ("Only Ana Ruiz"): drop leading words while 2+ remain
            candidates = [" ".join(words[i:]) for i in range(0, max(len(words) - 1, 1))]
            if any(c.lower() in cited_text or c.lower() in vocab for c in candidates):
                continue
            low = next((c.lower() for c in candidates if c.lower() in people), phrase.lower())
            owner = people.get(low)
            if owner is not None:
                findings.append(Finding("ungrounded_name", f"{where}: names {phrase!r} without citing {owner}"))
            else:
                findings.append(Finding("ungrounded_name", f"{where}: {phrase!r} is not a name in the rows it cites"))
    return findings


def brief_vocabulary(playbook: object, packet: BriefPacket) -> list[str]:
    """Words a brief may use without a citation: the playbook's own text and the stage names."""
    words: list[str] = ["This week", "Next week", "No risk", "Multi-threaded", "Single-threaded", "Champion silence",
                        "Last activities", "Close date", "Too few", "No loss", "No team", "No contact", "No one",
                        "No champion", "No stage", "No activity", "No next", "No amount", "No close", "No creation",
                        "Agree the", "All of"]
    for day in ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday"):
        words.append(day)
    for s in packet.stints:
        words.append(str(s.get("stage")))
    words.append(packet.deal.stage)
    pb = playbook
    for a in getattr(pb, "actions", {}).values():
        words += [a.text, a.success]
    for st in getattr(pb, "stages", {}).values():
        for c in st.exit_criteria:
            words += [c.label, c.question]
    return words
