"""The supervisor console: a web app for managers (digest triage) and ops admins (status, exceptions, overrides)."""
