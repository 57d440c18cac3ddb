"""Recipients' preferences: channel, quiet hours in their time zone, tone (rep -> team -> default)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from zoneinfo import ZoneInfo

from agents.autonomy.config import PREFERRED_CHANNEL, Preferences, QuietHours


@dataclasses.dataclass(frozen=True)
class Resolved:
    channel: str | None  # "slack" | "email" | "teams" | None (every configured channel, as before)
    timezone: str
    quiet_hours: QuietHours | None  # None: sends at any hour
    tone: str

    @property
    def delivery_channel(self) -> str | None:
        return PREFERRED_CHANNEL.get(self.channel) if self.channel else None

    def next_allowed(self, now: dt.datetime) -> dt.datetime | None:
        """None when ``now`` is outside quiet hours; else the first allowed moment after it (aware UTC)."""
        return next_allowed(now, self.quiet_hours, self.timezone)


def resolve(prefs: Preferences, rep_id: str | None, manager_id: str | None, *, rep_timezone: str | None = None) -> Resolved:
    """The rep's own settings, then their team's (manager id), then the default; a time zone from the CRM
    (``rep_timezone``) counts as the rep's own when the policy names none for them."""
    layers = [prefs.reps.get(rep_id or ""), prefs.teams.get(manager_id or ""), prefs.default]
    layers = [p for p in layers if p is not None]

    def pick(field: str, default):
        return next((getattr(p, field) for p in layers if getattr(p, field) is not None), default)

    own = prefs.reps.get(rep_id or "")
    zone = (own.timezone if own is not None and own.timezone else None) or rep_timezone or pick("timezone", "UTC")
    off = pick("quiet_hours_off", False)
    return Resolved(
        channel=pick("channel", None),
        timezone=zone,
        quiet_hours=None if off else pick("quiet_hours", QuietHours()),
        tone=pick("tone", "formal"),
    )


def _quiet_at(local: dt.datetime, qh: QuietHours) -> bool:
    if qh.weekends and local.weekday() >= 5:
        return True
    t, start, end = local.time(), qh.start_time, qh.end_time
    if start == end:
        return False
    if start < end:  # e.g. 12:00-13:00
        return start <= t < end
    return t >= start or t < end  # overnight, e.g. 18:00-08:00


def next_allowed(now: dt.datetime, qh: QuietHours | None, timezone: str) -> dt.datetime | None:
    """None if a send is allowed at ``now``; otherwise the next allowed moment (UTC), scanning minute-exact
    boundaries: the end of the night, then past a weekend."""
    if qh is None:
        return None
    zone = ZoneInfo(timezone)
    local = now.astimezone(zone)
    if not _quiet_at(local, qh):
        return None
    candidate = local
    for _ in range(14):  # at most a week of days, twice over
        day_end = dt.datetime.combine(candidate.date(), qh.end_time, tzinfo=zone)
        if day_end <= candidate:
            day_end = dt.datetime.combine(candidate.date() + dt.timedelta(days=1), qh.end_time, tzinfo=zone)
        if qh.start_time < qh.end_time and candidate.time() < qh.start_time:
            day_end = candidate  # daytime window not yet begun: only the weekend can hold it
        candidate = day_end
        if not _quiet_at(candidate, qh):
            return candidate.astimezone(dt.timezone.utc)
        if qh.weekends and candidate.weekday() >= 5:
            monday = candidate.date() + dt.timedelta(days=7 - candidate.weekday())
            candidate = dt.datetime.combine(monday, dt.time.min, tzinfo=zone)
            if not _quiet_at(candidate, qh):
                return candidate.astimezone(dt.timezone.utc)
    raise ValueError(f"quiet hours {qh.start}-{qh.end} (weekends={qh.weekends}) leave no time to send")


def with_tone(packets, prefs: Preferences):
    """The packets with each recipient's preferred tone (rep -> team -> default) set for the drafters."""
    return [
        p.model_copy(update={"tone": resolve(prefs, p.deal.owner_rep_id, p.deal.manager_id).tone}) for p in packets
    ]
