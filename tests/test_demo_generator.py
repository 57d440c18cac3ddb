"""The demo CRM generator: determinism, shape, integrity, and honest planted-risk labels."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import re
import shutil
import statistics
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from connectors.demo import OPPORTUNITY_RISKS, OUTPUT_FILES, generate_demo_crm, verify_ground_truth
from connectors.demo.words import ADVERSARIAL_NEXT_STEPS
from connectors.schema import AMOUNT, BOOL, DATE, ID, INT, RAW_OBJECTS, TIMESTAMP
from sales_supervisor.settings import DEMO_AS_OF

SEGMENTS = {"smb", "mid_market", "enterprise"}
OPEN_STAGES = ["Prospecting", "Qualification", "Discovery", "Proposal", "Negotiation"]
BUYING_ROLES = {"decision_maker", "champion", "influencer", "technical_evaluator", "user"}


def read(folder: Path, name: str) -> list[dict[str, str]]:
    with open(folder / f"{name}.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "crm"
    calls: list[tuple[str, int]] = []
    manifest = generate_demo_crm(out, seed=7, scale=1, progress=lambda phase, n: calls.append((phase, n)))
    return out, manifest, calls


@pytest.fixture(scope="module")
def tables(demo):
    out = demo[0]
    return {name: read(out, name) for name in [*RAW_OBJECTS, "ground_truth"]}


def test_files_headers_and_manifest(demo):
    out, manifest, calls = demo
    assert sorted(p.name for p in out.iterdir()) == sorted([*OUTPUT_FILES, "manifest.json"])
    for name, obj in RAW_OBJECTS.items():
        with open(out / f"{name}.csv", newline="", encoding="utf-8") as f:
            assert next(csv.reader(f)) == obj.field_names, name
    assert json.loads((out / "manifest.json").read_text()) == manifest
    assert (manifest["seed"], manifest["scale"], manifest["as_of"]) == (7, 1, DEMO_AS_OF.isoformat())
    for fname, n in manifest["files"].items():
        with open(out / fname, encoding="utf-8") as f:
            assert sum(1 for _ in csv.reader(f)) - 1 == n, fname
    params = manifest["risk_parameters"]
    assert set(OPPORTUNITY_RISKS) | {"rep_overload"} <= set(params)
    assert params["stalled_in_stage"]["baselines"]["enterprise"]["Proposal"]["p75"] > 0
    assert ("reps", 24) in calls and calls[-1][0] == "rows"
    assert [p.name for p in out.parent.iterdir()] == [out.name], "temporary folders left behind"


def test_same_seed_is_byte_identical_and_another_seed_differs(demo, tmp_path):
    out = demo[0]
    again = tmp_path / "again"
    generate_demo_crm(again, seed=7, scale=1)
    assert digests(again) == digests(out)
    other = tmp_path / "other"
    generate_demo_crm(other, seed=8, scale=1)
    differing = {k for k, v in digests(other).items() if digests(out)[k] != v}
    assert {"opportunities.csv", "activities.csv", "ground_truth.csv"} <= differing


def test_world_shape(tables):
    managers, reps, opps = tables["managers"], tables["reps"], tables["opportunities"]
    assert len(managers) == 3
    assert len(reps) == 24
    assert Counter(r["segment"] for r in reps) == {"smb": 8, "mid_market": 8, "enterprise": 8}
    for m in managers:  # one manager per segment
        assert len({r["segment"] for r in reps if r["manager_id"] == m["manager_id"]}) == 1
    inactive = {r["rep_id"] for r in reps if r["is_active"] == "false"}
    assert len(inactive) == 2
    closed = [o for o in opps if o["is_closed"] == "true"]
    open_ = [o for o in opps if o["is_closed"] == "false"]
    assert 2700 <= len(closed) <= 3300
    assert 540 <= len(open_) <= 660
    assert not inactive & {o["owner_rep_id"] for o in open_}
    assert inactive <= {o["owner_rep_id"] for o in closed}
    per_rep = sorted(Counter(o["owner_rep_id"] for o in open_).values(), reverse=True)
    assert per_rep[0] >= 55 and per_rep[1] <= 40
    quarters = defaultdict(set)
    for q in tables["quotas"]:
        quarters[q["rep_id"]].add(q["quarter_start"])
    expected = {"2024-10-01", "2025-01-01", "2025-04-01", "2025-07-01", "2025-10-01",
                "2026-01-01", "2026-04-01", "2026-07-01", "2026-10-01"}
    for r in reps:
        if r["is_active"] == "true":
            assert quarters[r["rep_id"]] == expected
        else:
            assert quarters[r["rep_id"]] and quarters[r["rep_id"]] < expected


def test_segment_shapes(tables):
    seg = {r["rep_id"]: r["segment"] for r in tables["reps"]}
    ranges = {"smb": (5_000, 30_000), "mid_market": (30_000, 150_000), "enterprise": (150_000, 1_200_000)}
    cycles = {"smb": (30, 50), "mid_market": (60, 90), "enterprise": (120, 200)}
    win_rates = {"smb": (0.25, 0.35), "mid_market": (0.20, 0.30), "enterprise": (0.15, 0.25)}
    won_cycle, outcomes = defaultdict(list), defaultdict(list)
    for o in tables["opportunities"]:
        s = seg[o["owner_rep_id"]]
        lo, hi = ranges[s]
        assert lo <= float(o["amount"]) <= hi, o
        if o["is_closed"] == "true":
            outcomes[s].append(o["is_won"] == "true")
            if o["is_won"] == "true":
                days = dt.datetime.fromisoformat(o["closed_at"]) - dt.datetime.fromisoformat(o["created_at"])
                won_cycle[s].append(days.days)
    for s in SEGMENTS:
        assert cycles[s][0] <= statistics.median(won_cycle[s]) <= cycles[s][1], s
        assert win_rates[s][0] <= sum(outcomes[s]) / len(outcomes[s]) <= win_rates[s][1], s
    accounts = tables["accounts"]
    assert {a["segment"] for a in accounts} == SEGMENTS
    strategic = [a for a in accounts if "Strategic" in a["tags"].split(";")]
    assert strategic and all(a["segment"] == "enterprise" for a in strategic)
    n_ent = sum(a["segment"] == "enterprise" for a in accounts)
    assert 0.04 <= len(strategic) / n_ent <= 0.18


PATTERNS = {
    DATE: re.compile(r"\d{4}-\d{2}-\d{2}"),
    TIMESTAMP: re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}"),
    BOOL: re.compile(r"true|false"),
    AMOUNT: re.compile(r"\d+(\.\d{1,2})?"),
    INT: re.compile(r"-?\d+"),
    ID: re.compile(r"\S+"),
}


def test_value_formats(tables):
    for name, obj in RAW_OBJECTS.items():
        for f in obj.fields:
            pattern = PATTERNS.get(f.type)
            for row in tables[name]:
                v = row[f.name]
                if v == "":
                    assert not f.required, (name, f.name, row)
                elif pattern is not None:
                    assert pattern.fullmatch(v), (name, f.name, v)
    for row in tables["field_history"]:
        pattern = PATTERNS[DATE] if row["field_name"] == "close_date" else PATTERNS[AMOUNT]
        assert pattern.fullmatch(row["old_value"]) and pattern.fullmatch(row["new_value"]), row
    id_prefix = {"managers": ("manager_id", "mgr-"), "reps": ("rep_id", "rep-"), "accounts": ("account_id", "acc-"),
                 "contacts": ("contact_id", "con-"), "opportunities": ("opportunity_id", "opp-"),
                 "stage_history": ("stage_history_id", "sh-"), "field_history": ("field_history_id", "fh-"),
                 "activities": ("activity_id", "act-")}
    for name, (col, prefix) in id_prefix.items():
        ids = [r[col] for r in tables[name]]
        assert all(i.startswith(prefix) for i in ids), name
        assert len(set(ids)) == len(ids), f"duplicate ids in {name}"


def test_referential_integrity(tables):
    ids = {
        "manager": {r["manager_id"] for r in tables["managers"]},
        "rep": {r["rep_id"] for r in tables["reps"]},
        "account": {r["account_id"] for r in tables["accounts"]},
        "contact": {r["contact_id"] for r in tables["contacts"]},
        "opp": {r["opportunity_id"] for r in tables["opportunities"]},
        "activity": {r["activity_id"] for r in tables["activities"]},
        "stage": {r["stage"] for r in tables["stages"]},
    }
    assert {r["manager_id"] for r in tables["reps"]} <= ids["manager"]
    assert {r["rep_id"] for r in tables["quotas"]} <= ids["rep"]
    assert {r["account_id"] for r in tables["contacts"]} <= ids["account"]
    assert {r["account_id"] for r in tables["opportunities"]} <= ids["account"]
    assert {r["owner_rep_id"] for r in tables["opportunities"]} <= ids["rep"]
    assert {r["stage"] for r in tables["opportunities"]} <= ids["stage"]
    assert {r["stage"] for r in tables["stage_history"]} <= ids["stage"]
    assert {r["opportunity_id"] for r in tables["stage_history"]} == ids["opp"]
    assert {r["opportunity_id"] for r in tables["field_history"]} <= ids["opp"]
    assert {r["opportunity_id"] for r in tables["activities"]} <= ids["opp"]
    assert {r["account_id"] for r in tables["activities"]} <= ids["account"]
    assert {r["rep_id"] for r in tables["activities"]} <= ids["rep"]
    assert {r["activity_id"] for r in tables["activity_contacts"]} == ids["activity"]
    assert {r["contact_id"] for r in tables["activity_contacts"]} <= ids["contact"]
    # Deeper consistency: an activity's account and rep are its deal's; its contacts belong to that account.
    opp = {o["opportunity_id"]: o for o in tables["opportunities"]}
    contact_account = {c["contact_id"]: c["account_id"] for c in tables["contacts"]}
    act_account = {}
    for a in tables["activities"]:
        o = opp[a["opportunity_id"]]
        assert (a["account_id"], a["rep_id"]) == (o["account_id"], o["owner_rep_id"])
        act_account[a["activity_id"]] = a["account_id"]
    for link in tables["activity_contacts"]:
        assert contact_account[link["contact_id"]] == act_account[link["activity_id"]]
    links_per_activity = Counter(link["activity_id"] for link in tables["activity_contacts"])
    assert set(links_per_activity.values()) <= {1, 2}
    # Accounts belong to one rep and carry that rep's segment.
    rep_segment = {r["rep_id"]: r["segment"] for r in tables["reps"]}
    account_segment = {a["account_id"]: a["segment"] for a in tables["accounts"]}
    owners = defaultdict(set)
    for o in tables["opportunities"]:
        owners[o["account_id"]].add(o["owner_rep_id"])
        assert account_segment[o["account_id"]] == rep_segment[o["owner_rep_id"]]
    assert all(len(v) == 1 for v in owners.values())


def test_contacts_and_roles(tables):
    per_account = defaultdict(list)
    for c in tables["contacts"]:
        assert c["buying_role"] in BUYING_ROLES and c["title"]
        per_account[c["account_id"]].append(c["buying_role"])
    assert len(per_account) == len(tables["accounts"])
    for roles in per_account.values():
        assert 2 <= len(roles) <= 6
        assert "decision_maker" in roles


def test_stage_history_consistent_with_deals(tables):
    flags = {s["stage"]: (s["is_closed"], s["is_won"], int(s["stage_order"])) for s in tables["stages"]}
    assert [s["stage"] for s in sorted(tables["stages"], key=lambda s: int(s["stage_order"]))] == [
        *OPEN_STAGES, "Closed Won", "Closed Lost"]
    entries = defaultdict(list)
    for r in tables["stage_history"]:
        entries[r["opportunity_id"]].append((r["entered_at"], r["stage"]))
    as_of = DEMO_AS_OF.isoformat()
    last_activity = defaultdict(str)
    first_activity = {}
    for a in tables["activities"]:
        last_activity[a["opportunity_id"]] = max(last_activity[a["opportunity_id"]], a["occurred_at"])
        first_activity[a["opportunity_id"]] = min(first_activity.get(a["opportunity_id"], "9"), a["occurred_at"])
    for o in tables["opportunities"]:
        es = sorted(entries[o["opportunity_id"]])
        stages = [s for _, s in es]
        assert (o["is_closed"], o["is_won"]) == flags[o["stage"]][:2], o
        assert stages[-1] == o["stage"]
        assert es[0][0] == o["created_at"]
        assert len({t for t, _ in es}) == len(es), "stage entries at the same instant"
        open_part = stages[:-1] if o["is_closed"] == "true" else stages
        assert open_part == OPEN_STAGES[: len(open_part)], stages  # in order, none skipped
        assert es[-1][0] < as_of
        if o["is_closed"] == "true":
            assert es[-1][0] == o["closed_at"]
            assert o["close_date"] == o["closed_at"][:10]
            if o["is_won"] == "true":
                assert open_part == OPEN_STAGES
            assert o["opportunity_id"] not in last_activity or last_activity[o["opportunity_id"]] < o["closed_at"]
        else:
            assert o["closed_at"] == ""
            assert last_activity[o["opportunity_id"]] < as_of
        if o["opportunity_id"] in first_activity:
            assert first_activity[o["opportunity_id"]] >= o["created_at"]
    for fh in tables["field_history"]:
        assert fh["changed_at"] < as_of


def test_ground_truth_verifies(demo):
    assert verify_ground_truth(demo[0]) == []


def test_verify_detects_wrong_labels(demo, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(demo[0], copy)
    rows = read(copy, "ground_truth")
    dropped = next(r for r in rows if r["risk"] == "past_due")
    healthy_open = next(
        o["opportunity_id"] for o in read(copy, "opportunities")
        if o["is_closed"] == "false" and o["opportunity_id"] not in {r["entity_id"] for r in rows}
    )
    rows = [r for r in rows if r is not dropped]
    rows.append({"entity_type": "opportunity", "entity_id": healthy_open, "risk": "stalled_in_stage",
                 "planted": "true", "detail": "fake"})
    with open(copy / "ground_truth.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    problems = verify_ground_truth(copy)
    assert any(dropped["entity_id"] in p and "past_due" in p for p in problems), problems
    assert any(healthy_open in p and "stalled_in_stage" in p for p in problems), problems


def test_every_risk_is_planted_often_enough(tables, demo):
    gt = tables["ground_truth"]
    planted = Counter(r["risk"] for r in gt if r["planted"] == "true")
    for risk in OPPORTUNITY_RISKS:
        assert planted[risk] >= 20, (risk, planted)
    assert planted["rep_overload"] == 1
    per_opp = Counter(r["entity_id"] for r in gt if r["entity_type"] == "opportunity" and r["planted"] == "true")
    assert set(per_opp.values()) == {1}
    labelled = {r["entity_id"] for r in gt if r["entity_type"] == "opportunity"}
    assert labelled == set(per_opp), "a labelled deal without a primary planted risk"
    n_open = sum(o["is_closed"] == "false" for o in tables["opportunities"])
    assert 0.25 <= len(per_opp) / n_open <= 0.45  # ~5% per risk, the rest healthy
    assert demo[1]["planted_counts"] == dict(planted)


def test_history_carries_signal(tables):
    """Closed-lost deals show the risk patterns more often than won ones, so signals have lift."""
    dms = {c["contact_id"] for c in tables["contacts"] if c["buying_role"] == "decision_maker"}
    act_opp = {a["activity_id"]: a["opportunity_id"] for a in tables["activities"]}
    engaged = {act_opp[link["activity_id"]] for link in tables["activity_contacts"] if link["contact_id"] in dms}
    pushes = Counter(
        f["opportunity_id"] for f in tables["field_history"]
        if f["field_name"] == "close_date" and f["new_value"] > f["old_value"]
    )
    last_act = defaultdict(str)
    for a in tables["activities"]:
        last_act[a["opportunity_id"]] = max(last_act[a["opportunity_id"]], a["occurred_at"])

    def rates(won: bool) -> tuple[float, float, float]:
        deals = [o for o in tables["opportunities"] if o["is_closed"] == "true" and (o["is_won"] == "true") == won]
        ids = [o["opportunity_id"] for o in deals]
        gap = sum(
            not last_act[o["opportunity_id"]]
            or (dt.datetime.fromisoformat(o["closed_at"]) - dt.datetime.fromisoformat(last_act[o["opportunity_id"]])).days >= 21
            for o in deals
        )
        return (sum(i not in engaged for i in ids) / len(ids), sum(pushes[i] >= 2 for i in ids) / len(ids), gap / len(ids))

    won, lost = rates(True), rates(False)
    for w, lo in zip(won, lost):
        assert lo >= w + 0.15, (won, lost)


def test_adversarial_next_steps_are_unlabelled(tables, demo):
    hostile = [o for o in tables["opportunities"] if o["next_step"] in ADVERSARIAL_NEXT_STEPS]
    assert 3 <= len(hostile) <= 8
    assert all(o["is_closed"] == "false" for o in hostile)
    labelled = {r["entity_id"] for r in tables["ground_truth"]}
    assert not labelled & {o["opportunity_id"] for o in hostile}
    assert sorted(o["opportunity_id"] for o in hostile) == sorted(demo[1]["adversarial_next_step_opportunities"])


def test_scale_two_doubles_the_org(tmp_path, demo):
    m = generate_demo_crm(tmp_path / "s2", seed=7, scale=2)
    reps = read(tmp_path / "s2", "reps")
    assert len(reps) == 48 and len({r["rep_id"] for r in reps}) == 48
    assert m["files"]["managers.csv"] == 6
    assert sum(r["is_active"] == "false" for r in reps) == 4
    assert m["planted_counts"]["rep_overload"] == 2
    ratio = m["files"]["opportunities.csv"] / demo[1]["files"]["opportunities.csv"]
    assert 1.8 <= ratio <= 2.2
    opp_ids = [o["opportunity_id"] for o in read(tmp_path / "s2", "opportunities")]
    assert len(set(opp_ids)) == len(opp_ids)


def test_crash_leaves_no_half_written_folder(tmp_path):
    class Boom(Exception):
        pass

    def explode(phase: str, n: int) -> None:
        if phase == "reps" and n == 3:
            raise Boom

    fresh = tmp_path / "fresh"
    with pytest.raises(Boom):
        generate_demo_crm(fresh, progress=explode)
    assert list(tmp_path.iterdir()) == []

    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "sentinel.txt").write_text("previous run")
    with pytest.raises(Boom):
        generate_demo_crm(existing, progress=explode)
    assert [p.name for p in tmp_path.iterdir()] == ["existing"]
    assert (existing / "sentinel.txt").read_text() == "previous run"


def test_a_demo_from_an_older_generator_is_regenerated_and_a_current_one_reused(tmp_path, monkeypatch):
    import json

    import connectors.demo.generator as generator
    from connectors.demo.params import GENERATOR_VERSION
    from connectors.registry import ensure_demo_crm
    from sales_supervisor.settings import Settings

    calls = []

    def fake_generate(folder, *, seed, scale, progress=None):
        calls.append(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "manifest.json").write_text(json.dumps({"generator_version": GENERATOR_VERSION}))

    monkeypatch.setattr(generator, "generate_demo_crm", fake_generate)
    settings = Settings(home=tmp_path)
    old = settings.demo_dir
    old.mkdir(parents=True)
    (old / "manifest.json").write_text(json.dumps({"generator_version": GENERATOR_VERSION - 1}))
    (old / "stale.csv").write_text("left over\n")

    assert ensure_demo_crm(settings) == old and len(calls) == 1
    assert not (old / "stale.csv").exists()  # regenerated from scratch, nothing stale kept
    ensure_demo_crm(settings)
    assert len(calls) == 1  # the current version is reused
