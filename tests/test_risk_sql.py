"""Risk rule conditions as SQL (agents/risk/setbased.py): the expression compiler agrees with
Python's evaluation, the set-based engine raises exactly the row-by-row engine's flags on a
generated warehouse with overrides, playbooks, exclusions and custom rules, and the generated SQL
runs on PostgreSQL with the same answer (when SALES_SUPERVISOR_TEST_POSTGRES_URL is set)."""

from __future__ import annotations

import datetime as dt
import itertools
import os
import random
import re

import duckdb
import pytest

from agents.risk import setbased
from agents.risk.engine import activity_windows, evaluate_in_warehouse
from agents.risk.expressions import compile_expression
from agents.risk.features import FEATURE_NAMES, SourceCoverage
from agents.risk.policy import DEFAULT_POLICY_PATH, RiskPolicy
from tests.test_risk_features import SCHEMA
from tests.test_risk_fixtures import make_baselines

import yaml

EXPRESSIONS = [
    "amount > 500000 and days_since_activity > 7",
    "stage in ('Proposal', 'Negotiation') and not has_decision_maker",
    "not has_decision_maker",
    "stage not in ('Prospecting',)",
    "days_to_close < 0 or close_date_pushes >= 2",
    "amount * 2 - 1000 >= 300000 or -days_to_close > 10",
    "1 < stage_order <= 3",
    "is_strategic or has_next_step and rep_tenure_days < 90",
    "segment == 'smb' and amount_change_30d > 0.15",
    "days_since_activity != 3",
]


def _feature_rows() -> list[dict]:
    rnd = random.Random(3)
    rows = []
    for _ in range(200):
        def maybe(v):
            return None if rnd.random() < 0.2 else v
        rows.append({
            "amount": maybe(rnd.choice([0.0, 1000.0, 150000.0, 400000.0, 600000.0])),
            "segment": maybe(rnd.choice(["smb", "enterprise"])),
            "stage": maybe(rnd.choice(["Prospecting", "Proposal", "Negotiation"])),
            "stage_order": maybe(rnd.randint(1, 5)),
            "days_since_activity": maybe(rnd.randint(0, 20)),
            "has_decision_maker": maybe(rnd.random() < 0.5),
            "days_to_close": maybe(rnd.randint(-30, 30)),
            "close_date_pushes": maybe(rnd.randint(0, 3)),
            "is_strategic": rnd.random() < 0.3,
            "has_next_step": rnd.random() < 0.5,
            "rep_tenure_days": maybe(rnd.randint(0, 400)),
            "amount_change_30d": maybe(rnd.choice([0.0, 0.1, 0.2, 0.5])),
        })
    return rows


@pytest.mark.parametrize("source", EXPRESSIONS)
def test_expressions_compile_to_sql_that_agrees_with_python(source):
    expr = compile_expression(source, FEATURE_NAMES)
    rows = _feature_rows()
    con = duckdb.connect()
    cols = list(rows[0])
    con.execute("create table f (" + ", ".join(
        f"{c} {'boolean' if c in ('has_decision_maker', 'is_strategic', 'has_next_step') else 'varchar' if c in ('segment', 'stage') else 'double'}"
        for c in cols) + ", i integer)")
    con.executemany(f"insert into f values ({', '.join('?' for _ in cols)}, ?)", [[r[c] for c in cols] + [i] for i, r in enumerate(rows)])
    sql = setbased.compile_expression_sql(expr)
    got = dict(con.execute(f"select i, {sql} from f order by i").fetchall())
    want = {i: expr.test(r) for i, r in enumerate(rows)}
    assert got == want
    assert None not in got.values()  # never null: unknown values make a comparison false, as in Python
    assert any(want.values()) and not all(want.values())


def test_expressions_sql_cannot_express_are_refused():
    for source in ("amount / 2 > 10", "amount % 7 == 1", "amount"):
        with pytest.raises(setbased.Unsupported):
            setbased.compile_expression_sql(compile_expression(source, FEATURE_NAMES))


# ---------------------------------------------------------------------------- a generated warehouse

STAGES = [("Prospecting", 1), ("Qualification", 2), ("Discovery", 3), ("Proposal", 4), ("Negotiation", 5)]
SEGMENTS = ["smb", "mid_market", "enterprise"]


def generated_warehouse(con, n_deals: int = 400, seed: int = 11) -> None:
    """Deals, stints, field changes, activities and buying roles at random (but reproducible), with
    the cases the rules care about: stalls, silence, cadence drops, pushes, swings, empty fields."""
    rnd = random.Random(seed)
    con.execute(SCHEMA)
    start = dt.datetime(2026, 1, 1, 9)
    con.execute("insert into marts.dim_accounts values ('acc-s', 'Renewal; STRATEGIC'), ('acc-n', 'Non-Strategic'), ('acc-0', null)")
    reps = [(f"rep-{i}", f"Rep {i}", f"mgr-{i % 2}", SEGMENTS[i % 3], dt.date(2026, 1 + i, 1), True) for i in range(6)]
    con.executemany("insert into marts.dim_reps values (?, ?, ?, ?, ?, ?)", reps)
    opps, stints, changes, acts, roles = [], [], [], [], []
    for i in range(n_deals):
        opp = f"opp-{i:04d}"
        rep = reps[i % len(reps)]
        created = start + dt.timedelta(days=rnd.randint(0, 250), hours=rnd.randint(0, 8))
        n_st = rnd.randint(1, len(STAGES))
        t = created
        for k in range(n_st):
            stints.append((f"sh-{i}-{k}", opp, STAGES[k][0], STAGES[k][1] if rnd.random() > 0.05 else None, t))
            t += dt.timedelta(days=rnd.randint(3, 60))
        closed = rnd.random() < 0.25
        closed_at = t if closed else None
        stage, order = STAGES[n_st - 1]
        close_date = (created + dt.timedelta(days=rnd.randint(30, 300))).date()
        amount = rnd.choice([5000, 20000, 90000, 260000, 700000]) * (1 + rnd.random())
        next_step = rnd.choice([None, "", "  ", "call back"])
        opps.append((opp, rnd.choice(["acc-s", "acc-n", "acc-0"]), rep[0], rep[2], rnd.choice([f"Deal {i}", None]),
                     rep[3], "Closed Won" if closed else stage, 6 if closed else order, amount, created, close_date,
                     closed, closed, closed_at, next_step, f"https://crm/{opp}"))
        cd = close_date
        for k in range(rnd.randint(0, 3)):
            new = cd + dt.timedelta(days=rnd.randint(-10, 40))
            changes.append((f"fh-{i}-c{k}", opp, "close_date", cd.isoformat(), new.isoformat(),
                            created + dt.timedelta(days=rnd.randint(1, 300))))
            cd = new
        for k in range(rnd.randint(0, 2)):
            old, new = amount, amount * rnd.choice([0.5, 0.85, 1.1, 1.3])
            changes.append((f"fh-{i}-a{k}", opp, "amount", f"{old:.2f}", f"{new:.2f}",
                            created + dt.timedelta(days=rnd.randint(1, 300))))
        if rnd.random() < 0.2:
            changes.append((f"fh-{i}-n", opp, "next_step", "old step", "new step", created + dt.timedelta(days=200)))
        n_act = rnd.choice([0, 2, 8, 25])
        for k in range(n_act):
            act = f"act-{i}-{k}"
            acts.append((act, opp, rnd.choice(["meeting", "Meeting", "call", "email"]),
                         created + dt.timedelta(days=rnd.randint(0, 320), hours=rnd.randint(0, 23))))
            if rnd.random() < 0.15:
                roles.append((act, f"con-{i}", "decision_maker"))
            elif rnd.random() < 0.3:
                roles.append((act, f"con-{i}-x", "champion"))
    con.executemany("insert into marts.fct_opportunities values (" + ", ".join("?" * 16) + ")", opps)
    con.executemany("insert into marts.fct_stage_history values (?, ?, ?, ?, ?)", stints)
    con.executemany("insert into marts.fct_field_history values (?, ?, ?, ?, ?, ?)", changes)
    con.executemany("insert into marts.fct_activities values (?, ?, ?, ?)", acts)
    con.executemany("insert into marts.bridge_activity_contacts values (?, ?, ?)", roles)


def rich_policy() -> RiskPolicy:
    """The shipped policy plus overrides by segment, stage and both, a playbook keyed on a feature,
    a disabled rule for one segment and custom rules (one the SQL compiler cannot express)."""
    data = yaml.safe_load(DEFAULT_POLICY_PATH.read_text())
    rules = data["rules"]
    rules["no_recent_activity"]["overrides"] += [
        {"stage": "Negotiation", "params": {"days": 5}}, {"segment": "smb", "stage": "Negotiation", "params": {"days": "21"}}]
    rules["stalled_in_stage"]["overrides"].append({"segment": "smb", "enabled": False})
    rules["stale_cycle"]["params"]["require_no_decision_maker"] = False
    rules["meeting_cadence_drop"]["overrides"] = [{"segment": "enterprise", "params": {"recent_days": 21, "prior_weeks": 6}}]
    rules["missing_required_fields"]["overrides"] = [
        {"segment": "enterprise", "params": {"required_fields": {"Discovery": ["next_step", "opportunity_name"]}}}]
    rules["no_decision_maker"]["overrides"].append({"segment": "mid_market", "params": {"by_stage": "Discovery"}})
    data["playbooks"]["busy_pipeline"] = {
        "condition": "rep_open_deals >= 30 and activity_count < 10",
        "overrides": {"close_date_slipped": {"params": {"min_pushes": 1, "past_due_grace_days": 7}},
                      "amount_swing": {"params": {"lookback_days": 90}}}}
    data["custom_rules"]["quiet_after_push"] = {
        "expression": "close_date_pushes >= 1 and meetings_last_28d == 0 and meetings_prior_8w >= 1",
        "severity": "low"}
    data["custom_rules"]["halved"] = {"expression": "amount / 2 > 200000 and days_in_stage > 30", "severity": "low"}
    return RiskPolicy.from_dict(data)


AS_OF_DATES = [dt.date(2026, 5, 15), dt.date(2026, 7, 1), dt.date(2026, 9, 18)]


@pytest.fixture(scope="module")
def generated():
    con = duckdb.connect()
    generated_warehouse(con)
    yield con
    con.close()


@pytest.mark.parametrize("as_of", AS_OF_DATES)
@pytest.mark.parametrize("policy_name", ["default", "rich"])
def test_set_based_flags_are_identical_to_the_row_by_row_engine(generated, as_of, policy_name):
    policy = rich_policy() if policy_name == "rich" else RiskPolicy.from_dict(yaml.safe_load(DEFAULT_POLICY_PATH.read_text()))
    baselines = make_baselines()
    row_by_row = evaluate_in_warehouse(generated, baselines, policy, as_of, set_based=False)
    sql = evaluate_in_warehouse(generated, baselines, policy, as_of)
    gate = setbased.run_gate(generated, policy, as_of, baselines)
    assert row_by_row.flags and row_by_row.suppressed
    assert [(f.flag_id, f.rule_id, f.severity, [(r.object, r.record_id) for r in f.crm_records]) for f in sql.flags] == [
        (f.flag_id, f.rule_id, f.severity, [(r.object, r.record_id) for r in f.crm_records]) for f in row_by_row.flags]
    assert sql == row_by_row
    # The gate lets through every deal a rule fires on or cannot judge, and few others.
    needed = {f.opportunity_id for f in row_by_row.flags if f.subject == "opportunity"}
    needed |= {s.flag.opportunity_id for s in row_by_row.suppressed if s.flag.subject == "opportunity"}
    needed |= {i for n in row_by_row.not_applicable for i in n.subject_ids}
    assert needed <= set(gate.candidates)
    if policy_name == "default":  # the rich policy has a custom rule SQL cannot express: every deal goes through
        assert len(gate.candidates) - len(needed) <= 0.05 * len(gate.open_deals), (len(gate.candidates), len(needed))
    assert len(gate.open_deals) == sql.deals_evaluated == row_by_row.deals_evaluated


def _evidence(run) -> list:
    """Every cited row of a run, flag by flag, with its note (fired and suppressed flags)."""
    return [(f.flag_id, [(r.object, r.record_id, r.source_url, r.note) for r in f.crm_records])
            for f in [*run.flags, *(s.flag for s in run.suppressed)]]


@pytest.mark.parametrize("as_of", AS_OF_DATES)
@pytest.mark.parametrize("policy_name", ["default", "rich"])
def test_the_gate_aggregates_the_candidates_evidence_rows_in_sql(generated, as_of, policy_name):
    """One query returns each candidate's columns and evidence rows (activities, field changes),
    aggregated in SQL; the features built from them equal a separate load's, so every flag and
    suppressed flag cites the same rows with the same notes as the row-by-row engine's."""
    from agents.risk.engine import activity_windows
    from agents.risk.features import load_deal_features, load_source_coverage

    policy = rich_policy() if policy_name == "rich" else RiskPolicy.from_dict(yaml.safe_load(DEFAULT_POLICY_PATH.read_text()))
    baselines, windows = make_baselines(), activity_windows(policy)
    gate = setbased.run_gate(generated, policy, as_of, baselines, activity_windows=windows,
                             coverage=load_source_coverage(generated))
    assert "list_transform(_rows, x -> x[2]) as ev_activity_id" in gate.sql  # one sort per deal, split per field
    loaded = load_deal_features(generated, as_of, activity_windows=windows, only=gate.candidates)
    assert [d.opportunity_id for d in gate.deals] == gate.candidates
    assert gate.deals == loaded
    assert any(d.activities for d in gate.deals) and any(d.close_date_changes for d in gate.deals)
    row_by_row = evaluate_in_warehouse(generated, baselines, policy, as_of, set_based=False)
    set_based = evaluate_in_warehouse(generated, baselines, policy, as_of)
    assert _evidence(set_based) == _evidence(row_by_row)
    assert sum(len(refs) for _, refs in _evidence(row_by_row)) > len(row_by_row.flags)  # more than the deal rows


@pytest.mark.parametrize("as_of", AS_OF_DATES)
@pytest.mark.parametrize("policy_name", ["default", "rich"])
def test_the_gate_says_which_rules_may_fire_on_each_candidate(generated, as_of, policy_name):
    """Python runs on a candidate only the rules whose SQL condition holds for it: every (deal, rule)
    the row-by-row engine flags, suppresses or cannot judge is among them, and most rules are skipped."""
    from agents.risk.engine import activity_windows
    from agents.risk.features import load_source_coverage

    policy = rich_policy() if policy_name == "rich" else RiskPolicy.from_dict(yaml.safe_load(DEFAULT_POLICY_PATH.read_text()))
    baselines = make_baselines()
    gate = setbased.run_gate(generated, policy, as_of, baselines, activity_windows=activity_windows(policy),
                             coverage=load_source_coverage(generated))
    assert gate.may_fire is not None and set(gate.may_fire) == set(gate.candidates)
    row_by_row = evaluate_in_warehouse(generated, baselines, policy, as_of, set_based=False)
    needed = {(f.opportunity_id, f.rule_id) for f in row_by_row.flags if f.subject == "opportunity"}
    needed |= {(f.opportunity_id, s.rule_id) for f in row_by_row.flags if f.subject == "opportunity" for s in f.supporting}
    needed |= {(s.flag.opportunity_id, s.flag.rule_id) for s in row_by_row.suppressed if s.flag.subject == "opportunity"}
    needed |= {(i, n.rule_id) for n in row_by_row.not_applicable for i in n.subject_ids if i in gate.open_deals}
    assert needed and all(rule in gate.may_fire[opp] for opp, rule in needed)
    deal_rules = [r for r in policy.rule_ids if r != "rep_overload"]
    assert sum(len(r) for r in gate.may_fire.values()) < 0.5 * len(gate.candidates) * len(deal_rules)
    # and the run that skips the others is the row-by-row engine's
    assert evaluate_in_warehouse(generated, baselines, policy, as_of) == row_by_row


def test_a_source_without_an_activity_log_keeps_the_row_by_row_path():
    policy = rich_policy()
    assert setbased.gate_supported(policy, SourceCoverage()) is None
    assert "activity log" in setbased.gate_supported(policy, SourceCoverage(has_activities=False))
    data = yaml.safe_load(DEFAULT_POLICY_PATH.read_text())
    data["playbooks"]["odd"] = {"condition": "amount / 3 > 1000", "overrides": {}}
    assert "cannot run as SQL" in setbased.gate_supported(RiskPolicy.from_dict(data), SourceCoverage())


# ---------------------------------------------------------------------------- PostgreSQL

PG_URL = os.environ.get("SALES_SUPERVISOR_TEST_POSTGRES_URL")
if PG_URL:  # psycopg takes a libpq URL: no SQLAlchemy driver suffix (.ci/run gives postgresql+psycopg://)
    PG_URL = re.sub(r"^postgresql\+\w+://", "postgresql://", PG_URL)


@pytest.mark.skipif(not PG_URL, reason="SALES_SUPERVISOR_TEST_POSTGRES_URL is not set")
@pytest.mark.parametrize("as_of", AS_OF_DATES)
def test_the_gate_sql_gives_the_same_answer_on_postgres(generated, as_of):
    import psycopg

    tables = ["fct_opportunities", "fct_stage_history", "fct_field_history", "fct_activities",
              "bridge_activity_contacts", "dim_accounts", "dim_reps"]
    schema = f"risk_sql_test_{os.getpid()}"
    policy, baselines = rich_policy(), make_baselines()
    with psycopg.connect(PG_URL, autocommit=True) as pg:
        pg.execute(f"create schema {schema}")
        try:
            for t in tables:
                cols = generated.execute(
                    "select column_name, data_type from duckdb_columns() where schema_name = 'marts' and table_name = ?",
                    [t]).fetchall()
                types = {"VARCHAR": "text", "DOUBLE": "double precision", "BIGINT": "bigint", "BOOLEAN": "boolean",
                         "TIMESTAMP": "timestamp", "DATE": "date", "INTEGER": "integer"}
                pg.execute(f"create table {schema}.{t} (" + ", ".join(f"{c} {types[ty]}" for c, ty in cols) + ")")
                rows = generated.execute(f"select * from marts.{t}").fetchall()
                with pg.cursor() as cur:
                    cur.executemany(f"insert into {schema}.{t} values ({', '.join(['%s'] * len(cols))})", rows)
            with pg.cursor() as cur:
                cur.execute(f"set search_path to {schema}, public")
                segments, stages = setbased.distinct_values(_Renamed(cur, schema))
                sql = setbased.gate_sql(policy, as_of, baselines, segments=segments, stages=stages, dialect_name="postgres")
                cur.execute(sql.replace("marts.", f"{schema}."))
                pg_rows = cur.fetchall()
                # with evidence: the same rules per candidate and the same evidence rows, in the same order
                windows = activity_windows(policy)
                ev_sql = setbased.gate_sql(policy, as_of, baselines, segments=segments, stages=stages,
                                           dialect_name="postgres", evidence_windows=windows)
                cur.execute(ev_sql.replace("marts.", f"{schema}."))
                names = [d[0] for d in cur.description]
                pg_ev = [dict(zip(names, r)) for r in cur.fetchall()]
        finally:
            pg.execute(f"drop schema {schema} cascade")
    duck = setbased.run_gate(generated, policy, as_of, baselines)
    assert [r[0] for r in pg_rows if r[5]] == duck.candidates
    assert {r[0]: (r[3], round(r[4], 6)) for r in pg_rows} == {k: (rep, round(a, 6)) for k, (rep, a) in duck.open_deals.items()}
    assert {r[1]: r[2] for r in pg_rows if r[1] is not None and r[2] is not None}.keys() == duck.stage_orders.keys()
    duck_ev = setbased.run_gate(generated, policy, as_of, baselines, activity_windows=windows)
    assert {r["opportunity_id"]: frozenset((r["may_fire"] or "").split("\x1f")) - {""} for r in pg_ev if r["candidate"]} \
        == duck_ev.may_fire
    fields = ["ev_n_activities", "ev_activity_id", "ev_dm_contacts", "ev_field_history_id", "ev_old_value"]
    duck_rows = dict(zip(*_named(generated, duck_ev.sql)))
    assert [[r["opportunity_id"], *[r[f] or None for f in fields]] for r in pg_ev if r["candidate"]] == [
        [r["opportunity_id"], *[(list(r[f]) if isinstance(r[f], (list, tuple)) else r[f]) or None for f in fields]]
        for r in duck_rows.values() if r["candidate"]]


def _named(con, sql: str) -> tuple[list[str], list[dict]]:
    """(opportunity ids, rows as dicts) of a DuckDB query's result."""
    cur = con.execute(sql)
    names = [d[0] for d in cur.description]
    rows = [dict(zip(names, r)) for r in cur.fetchall()]
    return [r["opportunity_id"] for r in rows], rows


@pytest.mark.skipif(not PG_URL, reason="SALES_SUPERVISOR_TEST_POSTGRES_URL is not set")
def test_the_gate_runs_through_the_warehouse_connection_on_postgres(generated):
    """The marts copied into a throwaway PostgreSQL database; run_gate on agents.warehouse's
    connection picks the PostgreSQL dialect by itself and finds the DuckDB candidates."""
    import psycopg

    from agents.warehouse import Warehouse

    from agents.risk.engine import activity_windows

    as_of, policy, baselines = AS_OF_DATES[1], rich_policy(), make_baselines()
    windows = activity_windows(policy)
    db = f"risk_sql_wh_{os.getpid()}"
    with psycopg.connect(PG_URL, autocommit=True) as admin:
        admin.execute(f"create database {db}")
    url = PG_URL.rsplit("/", 1)[0] + "/" + db
    try:
        with psycopg.connect(url, autocommit=True) as pg:
            pg.execute("create schema marts")
            _copy_marts(generated, pg, "marts")
        with Warehouse("postgres", url=url).connect(read_only=True) as con:
            gate = setbased.run_gate(con, policy, as_of, baselines)
            with_evidence = setbased.run_gate(con, policy, as_of, baselines, activity_windows=windows)
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as admin:
            admin.execute(f"drop database {db}")
    duck = setbased.run_gate(generated, policy, as_of, baselines)
    assert gate.candidates == duck.candidates and gate.stage_orders == duck.stage_orders
    assert "~" in gate.sql and "try_cast" not in gate.sql
    # The evidence rows aggregated on PostgreSQL (array_agg, string_agg) build the same features as on DuckDB.
    duck_evidence = setbased.run_gate(generated, policy, as_of, baselines, activity_windows=windows)
    assert "array_agg(activity_id order by" in with_evidence.sql and "list(" not in with_evidence.sql
    assert with_evidence.candidates == duck_evidence.candidates
    assert any(d.activities for d in duck_evidence.deals) and any(d.amount_changes for d in duck_evidence.deals)
    assert with_evidence.deals == duck_evidence.deals


def _copy_marts(duck, pg, schema: str) -> None:
    types = {"VARCHAR": "text", "DOUBLE": "double precision", "BIGINT": "bigint", "BOOLEAN": "boolean",
             "TIMESTAMP": "timestamp", "DATE": "date", "INTEGER": "integer"}
    for t in ["fct_opportunities", "fct_stage_history", "fct_field_history", "fct_activities",
              "bridge_activity_contacts", "dim_accounts", "dim_reps"]:
        cols = duck.execute(
            "select column_name, data_type from duckdb_columns() where schema_name = 'marts' and table_name = ?",
            [t]).fetchall()
        pg.execute(f"create table {schema}.{t} (" + ", ".join(f"{c} {types[ty]}" for c, ty in cols) + ")")
        with pg.cursor() as cur:
            cur.executemany(f"insert into {schema}.{t} values ({', '.join(['%s'] * len(cols))})",
                            duck.execute(f"select * from marts.{t}").fetchall())


class _Renamed:
    """A cursor whose queries read the test schema instead of marts."""

    def __init__(self, cur, schema: str) -> None:
        self.cur, self.schema = cur, schema

    def execute(self, sql: str):
        self.cur.execute(sql.replace("marts.", f"{self.schema}."))
        return self.cur


def test_generated_sql_names_no_duckdb_only_function_in_the_postgres_dialect():
    policy, baselines = rich_policy(), make_baselines()
    for windows in (None, (120, 30)):
        sql = setbased.gate_sql(policy, dt.date(2026, 9, 18), baselines, segments=SEGMENTS + [None],
                                stages=[s for s, _ in STAGES] + [None], dialect_name="postgres", evidence_windows=windows)
        for duckdb_only in ("try_cast", "regexp_matches", "list(", "date_diff", "struct_pack"):
            assert duckdb_only not in sql
    assert not re.search(r"\$[a-z]", sql)  # no DuckDB-style named parameter
    assert list(itertools.islice(setbased.DIALECTS, 2)) == ["duckdb", "postgres"]
