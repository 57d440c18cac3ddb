"""Rep accountability (issue 14): quotas, rep-level triggers and weekly scorecards.

Plain domain code (no Dagster). The numbers come from the semantic layer
(semantic_models/accountability.yml) and every trigger or scorecard cites the rep's
CRM rows and the query ids, like every risk flag.
"""
