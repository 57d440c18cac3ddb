"""The learning loop (issue 17): action outcomes, learning from dismissals, the rule lab, charts.

Plain Python over the ledger and the warehouse marts; no Dagster.

- ``stats.py``      lift with a bootstrap confidence interval, Wilson intervals, verdicts
- ``rule_lab.py``   a rule or threshold on a labelled outcome table (CSV or warehouse table)
- ``outcomes.py``   the point-in-time check of each reviewed item, and action effectiveness
- ``dismissals.py`` dismissal reasons grouped by a keyword taxonomy; candidate policy versions
- ``charts.py``     PNG/HTML charts beside the tables
"""
