"""Escaping CRM free text for each outbound format, so it always arrives as inert text.

A deal name, an activity subject or a quoted CRM note can hold anything a CRM user (or an
integration) typed: ``<!channel>``, ``<https://evil.example|Reset your password>``,
``[Reset your password](https://evil.example)``, ``<a href=...>``. Everything that goes to a rep
or into a CRM note is escaped for its format here, in one place:

* ``slack_mrkdwn``: Slack's three control characters (``&``, ``<``, ``>``) as entities, so no
  ``<!channel>``/``<!here>`` broadcast, ``<@U...>`` mention or ``<url|label>`` disguised link can be
  formed (Slack's own rule for untrusted text); the post also sets ``parse=none`` and
  ``link_names=false``;
* ``html_text``: HTML-escaped (quotes too), line breaks as ``<br>``;
* ``plain_text``: unchanged characters (plain text has no markup).

All three also *defang* URLs (``https://evil.example/x`` -> ``hxxps://evil[.]example/x``) so a
mail client, Slack or a CRM does not turn them into clickable links: a Markdown link keeps its
label and its (visible, unclickable) address. Limit: bare domains without a scheme
(``acme.com``) are left as they are (deal names often are domains); the grounding validator
rejects drafts with domains not in the evidence.
"""

from __future__ import annotations

import html
import re

_URL = re.compile(r"\b(?P<scheme>https?|ftp)://(?P<host>[^\s/?#<>|\"'()\[\]]+)", re.IGNORECASE)
_SCHEMES = {"http": "hxxp", "https": "hxxps", "ftp": "fxp"}


def defang_urls(text: str) -> str:
    """``https://evil.example/reset`` -> ``hxxps://evil[.]example/reset``: readable, never a link."""

    def repl(m: re.Match[str]) -> str:
        scheme = m.group("scheme")
        fanged = _SCHEMES.get(scheme.lower(), scheme)
        return f"{fanged}://{m.group('host').replace('.', '[.]')}"

    return _URL.sub(repl, text or "")


def slack_mrkdwn(text: str) -> str:
    """Untrusted text for a Slack ``text``/mrkdwn field."""
    return defang_urls(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def html_text(text: str) -> str:
    """Untrusted text for an HTML body (email, HubSpot and Pipedrive notes); newlines become ``<br>``."""
    return "<br>".join(html.escape(line, quote=True) for line in defang_urls(text).splitlines())


def plain_text(text: str) -> str:
    """Untrusted text for a plain-text body (email text part, Salesforce Task description)."""
    return defang_urls(text)


_SAFE_SCHEMES = ("https", "http")


def safe_link_url(url: str | None) -> str | None:
    """A URL fit to be a live link (``href``, Markdown, Slack ``<url|label>``), else None.

    Only absolute http(s) URLs with a host, no whitespace, quotes or angle brackets; a
    ``javascript:``, ``data:`` or ``vbscript:`` URL (or anything else a CRM field could hold)
    is refused, so a renderer shows the label as plain text instead. For renderers that build
    links from CRM data, such as the manager digests.
    """
    from urllib.parse import urlsplit

    if not url:
        return None
    url = url.strip()
    if any(c.isspace() or c in "<>\"'`|" for c in url) or any(ord(c) < 32 for c in url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in _SAFE_SCHEMES or not parts.netloc:
        return None
    return url
