"""The console over HTTP (Starlette's TestClient): sign-in, CSRF on every form, roles and team scope with
audited refusals, decisions and snoozes through the ledger, review time, kill switch, the Dagster controls."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from starlette.testclient import TestClient

from agents.ledger.models import APPROVER_CHANNELS
from sales_supervisor.console.app import create_app
from tests.test_review_fixtures import AS_OF
from tests.console_support import PASSWORD, FakeDagster, make_console_home


@pytest.fixture()
def env(tmp_path):
    c = make_console_home(tmp_path)
    c.dagster = FakeDagster()
    c.app = create_app(c.settings, c.console, ledger=c.ledger, dagster=c.dagster)
    yield c
    c.ledger.close()


def _token(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, "no CSRF token in the page"
    return m.group(1)


def signed_in(env, login: str) -> TestClient:
    client = TestClient(env.app, base_url="http://127.0.0.1")
    page = client.get("/login")
    r = client.post("/login", data={"login": login, "password": PASSWORD, "csrf_token": _token(page.text), "next": "/"},
                    follow_redirects=False)
    assert r.status_code == 303, r.text
    return client


def _refusals(env) -> list:
    return [r for r in env.ledger.audit_rows() if r.action.endswith("refused")]


def _item(env, manager: str):
    return env.ledger.pending_items(manager)[0]


def test_pages_need_a_sign_in_and_a_wrong_password_is_refused_and_audited(env):
    client = TestClient(env.app, base_url="http://127.0.0.1")
    r = client.get("/digest", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    page = client.get("/login")
    r = client.post("/login", data={"login": "maria", "password": "wrong password!", "csrf_token": _token(page.text)})
    assert r.status_code == 401 and "Wrong login or password" in r.text
    assert any(a.action == "console.signin_refused" for a in env.ledger.audit_rows())
    assert "maria" in env.ledger.audit_rows()[-1].payload


def test_secure_headers_and_session_cookie(env):
    client = TestClient(env.app, base_url="http://127.0.0.1")
    r = client.get("/login")
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert r.headers["x-frame-options"] == "DENY" and r.headers["x-content-type-options"] == "nosniff"
    assert "samesite=lax" in r.headers["set-cookie"].lower() and "httponly" in r.headers["set-cookie"].lower()


def test_every_form_needs_the_csrf_token(env):
    client = signed_in(env, "maria")
    item = _item(env, "mgr-1")
    for path, data in [
        (f"/items/{item.item_id}/decide", {"action": "approve"}),
        (f"/items/{item.item_id}/snooze", {"days": "14"}),
        ("/logout", {}),
    ]:
        r = client.post(path, data=data, follow_redirects=False)
        assert r.status_code == 403, path
        r = client.post(path, data={**data, "csrf_token": "forged"}, follow_redirects=False)
        assert r.status_code == 403, path
    assert env.ledger.get_decision(item.item_id) is None
    assert sum(1 for a in _refusals(env) if '"csrf"' in a.subject_id or a.subject_id == "csrf") >= 6
    admin = signed_in(env, "olga")
    assert admin.post("/ops/sending", data={"do": "pause"}, follow_redirects=False).status_code == 403
    assert not env.ledger.kill_switch_engaged()


def test_manager_approves_dismisses_edits_and_snoozes_in_place(env):
    client = signed_in(env, "maria")
    page = client.get("/digest")
    assert page.status_code == 200 and "Pipeline review for Maria Manager" in page.text
    assert "Deal OPP-B" in page.text and "Decide these first" in page.text and "Held Deal One" in page.text
    assert "Deal OPP-E" not in page.text  # Omar's team
    token = _token(page.text)
    items = {it.opportunity_id: it for it in env.ledger.pending_items("mgr-1")}
    r = client.post(f"/items/{items['opp-b'].item_id}/decide", data={"action": "approve", "csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/digest?manager=mgr-1#item-")
    d = env.ledger.get_decision(items["opp-b"].item_id)
    assert (d.action, d.approver_id, d.approver_channel) == ("approve", "mgr-1", "console")
    # dismiss needs a reason
    client.post(f"/items/{items['opp-a'].item_id}/decide", data={"action": "dismiss", "csrf_token": token})
    assert env.ledger.get_decision(items["opp-a"].item_id) is None
    client.post(f"/items/{items['opp-a'].item_id}/decide", data={"action": "dismiss", "reason": "renewal signed offline", "csrf_token": token})
    assert env.ledger.get_decision(items["opp-a"].item_id).reason == "renewal signed offline"
    client.post(f"/items/{items['opp-c'].item_id}/decide", data={"action": "edit", "text": "Call the CFO today.", "csrf_token": token})
    assert env.ledger.get_decision(items["opp-c"].item_id).edited_text == "Call the CFO today."
    r = client.post(f"/items/{items['opp-d'].item_id}/snooze", data={"days": "7", "reason": "on holiday", "csrf_token": token})
    assert "Snoozed Deal OPP-D" in r.text
    assert env.ledger.is_snoozed("opp-d", items["opp-d"].rule_id, AS_OF + dt.timedelta(days=7))
    assert not env.ledger.is_snoozed("opp-d", items["opp-d"].rule_id, AS_OF + dt.timedelta(days=8))
    page = client.get("/digest")
    assert "renewal signed offline" in page.text and "Approved</b> by mgr-1" in page.text
    # a second, different decision is refused by the ledger and shown
    r = client.post(f"/items/{items['opp-b'].item_id}/decide", data={"action": "dismiss", "reason": "x", "csrf_token": token})
    assert "Already decided" in r.text


def test_review_time_from_first_view_to_last_decision(env):
    client = signed_in(env, "maria")
    page = client.get("/digest")
    digest_id = env.ledger.pending_items("mgr-1")[0].digest_id
    assert env.ledger.review_time(digest_id).first_view is not None
    assert env.ledger.review_time(digest_id).minutes is None  # nothing decided yet
    token = _token(page.text)
    for it in env.ledger.pending_items("mgr-1"):
        client.post(f"/items/{it.item_id}/decide", data={"action": "approve", "csrf_token": token})
    rt = env.ledger.review_time(digest_id)
    assert rt.complete and rt.minutes is not None and 0 <= rt.minutes < 1
    kpi = env.ledger.review_time_kpi()
    assert kpi.digests == 1 and kpi.within_target == 1 and kpi.met
    from agents.learning.outcomes import loop_kpis  # the learning loop's seed KPIs read the same figure

    seed = loop_kpis(env.ledger.uow, [])["manager_review_time"]
    assert seed["digests"] == 1 and seed["within_target"] == 1 and seed["target_minutes"] == 15
    assert "All 4 items decided" in client.get("/digest").text
    # a second view is not a new first view
    views = [a for a in env.ledger.audit_rows(subject_type="digest", subject_id=digest_id) if a.action == "digest.viewed"]
    assert len(views) == 1


def test_another_team_is_refused_and_audited(env):
    client = signed_in(env, "maria")
    omar_item = _item(env, "mgr-2")
    before = len(_refusals(env))
    assert client.get("/digest?manager=mgr-2").status_code == 403
    assert client.get(f"/items/{omar_item.item_id}").status_code == 403
    token = _token(client.get("/digest").text)
    r = client.post(f"/items/{omar_item.item_id}/decide", data={"action": "approve", "csrf_token": token})
    assert r.status_code == 403
    assert env.ledger.get_decision(omar_item.item_id) is None
    refusals = _refusals(env)[before:]
    assert len(refusals) == 3 and all(r.actor == "mgr-1" for r in refusals)
    assert {r.subject_type for r in refusals} == {"manager", "item"}


def test_delegate_sees_and_decides_for_the_manager_who_allowed_them(env):
    client = signed_in(env, "dana")
    page = client.get("/digest")
    assert "Pipeline review for Maria Manager" in page.text
    item = _item(env, "mgr-1")
    client.post(f"/items/{item.item_id}/decide", data={"action": "approve", "csrf_token": _token(page.text)})
    d = env.ledger.get_decision(item.item_id)
    assert d.approver_id == "dlg-1"
    assert client.get("/digest?manager=mgr-2").status_code == 403


def test_ops_pages_are_for_ops_admins_only(env):
    maria = signed_in(env, "maria")
    assert maria.get("/ops").status_code == 403
    r = maria.post("/ops/sending", data={"do": "pause", "csrf_token": _token(maria.get("/digest").text)})
    assert r.status_code == 403 and not env.ledger.kill_switch_engaged()
    assert any(a.action == "console.refused" and "/ops" in a.payload for a in env.ledger.audit_rows())
    olga = signed_in(env, "olga")
    page = olga.get("/ops")
    assert page.status_code == 200
    for title in ("Last run", "Next scheduled run", "Failed checks", "Mode", "Sending", "Approval sensor"):
        assert f'data-card="{title}"' in page.text
    assert "Exception queue" in page.text and "Activity" in page.text
    svg = olga.get("/ops/charts/dismissals.svg")
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg") and b"<svg" in svg.content
    # an ops admin reads every team's digest but cannot decide
    page = olga.get("/digest?manager=mgr-2")
    assert page.status_code == 200 and "read-only" in page.text and 'value="approve"' not in page.text


def test_kill_switch_pause_and_resume_are_audited_and_stop_sends(env):
    olga = signed_in(env, "olga")
    token = _token(olga.get("/ops").text)
    olga.post("/ops/sending", data={"do": "pause", "reason": "bad drafts", "csrf_token": token})
    assert env.ledger.kill_switch_engaged()
    allowed, why = env.ledger.sends_allowed()
    assert not allowed
    row = [a for a in env.ledger.audit_rows() if a.action == "kill_switch.engaged"][-1]
    assert row.actor == "console:olga" and "bad drafts" in row.payload
    assert 'id="sending-paused"' in olga.get("/ops").text
    olga.post("/ops/sending", data={"do": "resume", "csrf_token": token})
    assert not env.ledger.kill_switch_engaged()


def test_schedule_sensor_run_now_and_snapshot(env):
    olga = signed_in(env, "olga")
    token = _token(olga.get("/ops").text)
    olga.post("/ops/schedule/toggle", data={"do": "pause", "csrf_token": token})
    olga.post("/ops/sensor/toggle", data={"do": "resume", "csrf_token": token})
    r = olga.post("/ops/run", data={"csrf_token": token})
    assert env.dagster.calls == [("schedule", False), ("sensor", True), ("run", None)]
    assert "Run 01234567 of daily_supervisor_job submitted" in r.text
    actions = [a.action for a in env.ledger.audit_rows()]
    assert {"console.schedule_paused", "console.sensor_resumed", "console.run_requested"} <= set(actions)
    r = olga.post("/ops/snapshot", data={"note": "before tuning", "csrf_token": token})
    assert "Snapshot" in r.text
    snaps = list((env.home / "snapshots").glob("*.json"))
    assert len(snaps) == 1 and "ledger_anchor" in snaps[0].read_text()
    assert "console.snapshot" in [a.action for a in env.ledger.audit_rows()]
    page = olga.get("/ops").text
    assert 'class="now"' in page and "before tuning" in page and "2026.10.1" in page


def test_item_and_query_pages_show_evidence_sql_and_rows(env):
    client = signed_in(env, "maria")
    item = _item(env, "mgr-1")
    page = client.get(f"/items/{item.item_id}")
    assert page.status_code == 200 and "/queries/2026-10-01/sq_stage_duration" in page.text
    q = client.get("/queries/2026-10-01/sq_stage_duration")
    assert q.status_code == 200 and "SELECT segment, stage, p75" in q.text and "<td>Proposal</td>" in q.text
    assert client.get("/queries/2026-10-01/nope").status_code == 403  # no item of hers cites it
    assert signed_in(env, "olga").get("/queries/2026-10-01/nope").status_code == 404


def test_the_console_is_a_decision_channel_of_the_ledger():
    assert "console" in APPROVER_CHANNELS


def test_a_console_approval_is_published_in_shadow_mode_to_the_outbox(env):
    from agents.review.channels import LocalCrmNotesChannel
    from agents.review.publisher import publish_approved

    client = signed_in(env, "maria")
    item = _item(env, "mgr-1")
    client.post(f"/items/{item.item_id}/decide", data={"action": "approve", "csrf_token": _token(client.get("/digest").text)})
    report = publish_approved(env.ledger, {"crm_note": LocalCrmNotesChannel.at_home(env.ledger, env.home)}, outbox_dir=env.outbox)
    assert report.mode == "shadow" and report.would_send == [(item.item_id, "crm_note")]
    assert list((env.outbox / "messages" / "shadow" / "crm_note").glob(f"{item.item_id}.json"))


def test_outbox_digests_link_each_item_to_the_console(tmp_path):
    from agents.review.digests import build_digests
    from agents.review.outbox import digest_markdown, write_digest
    from tests.test_review_fixtures import MANAGERS, REPS, pairs

    digest = build_digests(pairs(), REPS, MANAGERS, AS_OF, 5)[0]
    for n, e in enumerate(digest.entries):
        e.item_id = f"{n:032x}"
    _, html_path = write_digest(digest, tmp_path)
    assert "/digest?manager=" not in html_path.read_text()  # no console configured: no link
    digest.console_url = "https://console.example.test/"
    _, html_path = write_digest(digest, tmp_path)
    page = html_path.read_text()
    assert 'href="https://console.example.test/digest?manager=mgr-1"' in page
    short = digest.entries[0].short_id
    assert f'href="https://console.example.test/digest?manager=mgr-1#item-{short}"' in page
    assert "Decide in the console: https://console.example.test/digest?manager=mgr-1" in digest_markdown(digest)


def test_policy_panel_shows_each_rule_with_its_thresholds(env):
    olga = signed_in(env, "olga")
    page = olga.get("/ops/config")
    assert page.status_code == 200
    assert 'data-rule="stalled_in_stage"' in page.text and 'data-param="multiplier">2.0<' in page.text
    assert "enterprise / Negotiation: multiplier 2.5" in page.text
    assert signed_in(env, "maria").get("/ops/config").status_code == 403


def test_policy_edit_is_a_new_version_with_a_diff_and_rolls_back(env):
    pytest.importorskip("agents.risk.versions", reason="the policy version store is not merged yet")
    from agents.risk.policy import DEFAULT_POLICY_PATH
    from agents.risk.versions import PolicyVersionStore

    olga = signed_in(env, "olga")
    token = _token(olga.get("/ops/config").text)
    edited = DEFAULT_POLICY_PATH.read_text().replace("multiplier: 2.0", "multiplier: 2.4", 1).replace('version: "2026.10.1"', 'version: "2026.10.2"')
    r = olga.post("/ops/config/propose", data={"yaml_text": "rules: [", "reason": "broken", "csrf_token": token})
    assert "Not proposed" in r.text and "rules: [" in r.text  # the edit is kept
    r = olga.post("/ops/config/propose", data={"yaml_text": edited, "reason": "long negotiations", "csrf_token": token})
    assert "stalled_in_stage: params.multiplier 2.0 -&gt; 2.4" in r.text and "+      multiplier: 2.4" in r.text
    store = PolicyVersionStore(env.ledger)
    proposed = store.list()[0]
    assert proposed.status == "proposed" and store.current() is None
    olga.post("/ops/config/apply", data={"version_id": str(proposed.version_id), "csrf_token": token})
    assert store.current().version_id == proposed.version_id
    assert 'data-param="multiplier">2.4<' in olga.get("/ops/config").text
    olga.post("/ops/config/rollback", data={"version_id": "", "csrf_token": token})
    assert store.current() is None
    assert 'data-param="multiplier">2.0<' in olga.get("/ops/config").text
    assert {"policy.proposed", "policy.applied", "policy.rolled_back"} <= {a.action for a in env.ledger.audit_rows()}


def test_sso_header_is_believed_only_from_a_trusted_proxy(env):
    from sales_supervisor.console.settings import ConsoleSettings

    def app_with(proxies):
        cs = ConsoleSettings(secret="s", trusted_header="X-Forwarded-User", trusted_proxies=proxies)
        return TestClient(create_app(env.settings, cs, ledger=env.ledger, dagster=env.dagster), base_url="http://127.0.0.1")

    trusted = app_with(["testclient"])  # Starlette's TestClient connects from the host "testclient"
    page = trusted.get("/digest", headers={"X-Forwarded-User": "maria"})
    assert page.status_code == 200 and "Pipeline review for Maria Manager" in page.text
    assert trusted.get("/digest", headers={"X-Forwarded-User": "mallory"}, follow_redirects=False).status_code == 303
    untrusted = app_with(["10.0.0.1"])
    assert untrusted.get("/digest", headers={"X-Forwarded-User": "maria"}, follow_redirects=False).status_code == 303
    assert ConsoleSettings().trusted_header is None  # off by default


def test_a_query_page_opens_only_for_a_team_whose_items_cite_it(env):
    assert signed_in(env, "maria").get("/queries/2026-10-01/sq_stage_duration").status_code == 200
    client = signed_in(env, "omar")
    assert client.get("/queries/2026-10-01/sq_stage_duration").status_code == 200  # omar's item cites it too
    assert client.get("/queries/2026-10-01/sq_other_team_only").status_code == 403
    assert signed_in(env, "olga").get("/queries/2026-10-01/sq_stage_duration").status_code == 200


def test_exception_queue_lists_quarantined_rows_and_unresolved_deliveries(env):
    import duckdb

    with duckdb.connect(str(env.settings.warehouse_path)) as con:
        con.execute("create schema raw")
        con.execute("create table raw.rejected_rows (object varchar, reason varchar)")
        con.execute("insert into raw.rejected_rows values ('opportunities', 'stage: unknown stage ''Closed Won'''), "
                    "('opportunities', 'stage: unknown stage ''Closed Won''')")
    item = _item(env, "mgr-1")
    env.ledger.set_mode("live", actor="test", reason="test", gates={"eval": True, "shadow_agreement": True})
    env.ledger.record_decision(item.item_id, "approve", "mgr-1", "cli")
    key = env.ledger.delivery_key(item.item_id, "crm_note")
    env.ledger.claim_delivery(item.item_id, "crm_note", key)
    env.ledger.mark_unknown(key, "timeout after send")
    page = signed_in(env, "olga").get("/ops").text
    assert "Quarantined rows (2)" in page and "unknown stage &#39;Closed Won&#39;" in page
    assert "Deliveries needing a person (1)" in page and "timeout after send" in page


def test_ask_page_answers_through_the_semantic_layer_scoped_to_the_team(env):
    pytest.importorskip("agents.ask", reason="agents/ask is not merged yet")
    import contextlib

    from agents.ask import Catalog
    from sales_supervisor.dbt import prepare_dbt_project
    from sales_supervisor.settings import DBT_PROJECT_DIR
    from tests.test_ask import RecordingLayer

    prepare_dbt_project()
    layer = RecordingLayer(Catalog.from_manifest_file(DBT_PROJECT_DIR / "target" / "semantic_manifest.json"))
    env.app.state.console.layer_factory = lambda settings: contextlib.nullcontext(layer)
    client = signed_in(env, "maria")
    page = client.get("/ask")
    r = client.post("/ask", data={"question": "How did my team do last quarter?", "csrf_token": _token(page.text)})
    assert r.status_code == 200 and "SELECT 1 -- MetricFlow SQL" in r.text and "mfq_" in r.text
    assert any("mgr-1" in w for call in layer.calls for w in call.where)  # limited to her team
    r = client.post("/ask", data={"question": "What will our win rate be next quarter?", "csrf_token": _token(page.text)})
    assert "Cannot answer" in r.text
    assert {"ask.answered", "ask.refused"} <= {a.action for a in env.ledger.audit_rows() if a.actor == "mgr-1"}
    assert client.post("/ask", data={"question": "win rate"}).status_code == 403  # CSRF


def test_resuming_a_pause_set_by_the_configuration_says_it_will_come_back(env):
    from agents.review.modes import KILL_SWITCH_ACTOR

    env.ledger.engage_kill_switch(actor=KILL_SWITCH_ACTOR, reason="AGENT_SEND_ENABLED is false")
    olga = signed_in(env, "olga")
    r = olga.post("/ops/sending", data={"do": "resume", "csrf_token": _token(olga.get("/ops").text)})
    assert not env.ledger.kill_switch_engaged() and "set AGENT_SEND_ENABLED=true" in r.text


def test_add_user_command_stores_an_argon2_hash_never_the_password(tmp_path):
    from typer.testing import CliRunner

    from agents.ledger.accounts import AccountsFile
    from sales_supervisor.cli import app

    runner = CliRunner()
    home = tmp_path / "home"
    r = runner.invoke(app, ["console", "add-user", "maria", "--role", "manager", "--approver-id", "mgr-1", "--name", "Maria",
                            "--password-stdin", "--home", str(home)], input="a long enough password\n")
    assert r.exit_code == 0, r.output
    text = (home / "console_users.yaml").read_text()
    assert "$argon2id$" in text and "a long enough password" not in text
    assert (home / "console_users.yaml").stat().st_mode & 0o077 == 0
    assert AccountsFile(home / "console_users.yaml").authenticate("maria", "a long enough password").approver_id == "mgr-1"
    r = runner.invoke(app, ["console", "add-user", "x", "--role", "manager", "--password-stdin", "--home", str(home)], input="long password 1\n")
    assert r.exit_code == 2 and "needs --approver-id" in r.output
    r = runner.invoke(app, ["console", "users", "--home", str(home)])
    assert "maria" in r.output and "argon2" not in r.output


def test_reports_page_shows_the_learning_loops_charts_to_ops_admins_only(env):
    import datetime as dt

    from agents.learning.charts import backtest_charts
    from agents.risk.quality import BacktestReport, RuleBacktest

    olga = signed_in(env, "olga")
    empty = olga.get("/ops/reports")
    assert empty.status_code == 200 and "No chart yet: run <code>sales-supervisor backtest</code>" in empty.text

    d = dt.date(2026, 9, 1)
    rules = [RuleBacktest("stalled_in_stage", 120, 60, 400, 80, 40, 21.0)]
    backtest_charts(BacktestReport(d, d, 7, [d], d, 30, 500, rules), env.settings.home_dir / "backtest", floor=1.1)
    page = olga.get("/ops/reports")
    assert 'src="/ops/reports/backtest/lift_per_rule.png"' in page.text
    png = olga.get("/ops/reports/backtest/lift_per_rule.png")
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG") and png.headers["content-type"] == "image/png"
    # only charts the commands wrote, from the report folders: nothing else under the home is reachable
    (env.settings.home_dir / "secret.png").write_bytes(b"\x89PNG not a report")
    for path in ("/ops/reports/backtest/secret.png", "/ops/reports/..%2Fsecret.png/x.png", "/ops/reports/ledger/x.png",
                 "/ops/reports/backtest/latest.json"):
        assert olga.get(path).status_code == 404, path
    maria = signed_in(env, "maria")
    assert maria.get("/ops/reports").status_code == 403
    assert maria.get("/ops/reports/backtest/lift_per_rule.png").status_code == 403
