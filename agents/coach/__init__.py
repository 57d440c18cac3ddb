"""The deal coach (issue 16): a grounded one-page brief and the next best action for any deal.

packet (facts.py) -> brief (template.py, or claude.py rewording it) -> validator.py -> render.py,
served through service.py (who may see it, audit). Plain Python: no Dagster, no outbound channel.
"""
