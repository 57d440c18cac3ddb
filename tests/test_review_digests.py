"""Digests: every active rep listed, ranking, per-rep limits, links; Block Kit structure and limits; the outbox."""

from __future__ import annotations

import json

from agents.review import build_digests, digest_html, digest_markdown, digest_messages, write_digest
from agents.review.blocks import ACTION_APPROVE, ACTION_DISMISS, ACTION_EDIT, ACTION_SNOOZE, apply_decision, edit_modal, escape_mrkdwn
from agents.review.digests import route_items
from tests.test_review_fixtures import AS_OF, MANAGERS, REPS, make_draft, make_flag, pairs


def _digest(manager_id="mgr-1", **kw):
    digests = build_digests(pairs(), REPS, MANAGERS, AS_OF, kw.pop("max_items_per_rep", 2), **kw)
    return {d.manager_id: d for d in digests}[manager_id]


def _give_ids(digest):
    for e in digest.entries:
        e.item_id = f"item-{e.flag.opportunity_id}"
    return digest


def test_one_digest_per_manager_and_every_active_rep_listed():
    digests = build_digests(pairs(), REPS, MANAGERS, AS_OF, 5)
    assert [d.manager_id for d in digests] == ["mgr-1", "mgr-2"]
    d1 = digests[0]
    assert {r.rep_id for r in d1.reps} == {"rep-1", "rep-2", "rep-3"}  # inactive rep-4 with no flags is left out
    quiet = d1.rep("rep-3")
    assert quiet.entries == [] and quiet.flagged == 0
    assert (d1.reps_reviewed, d1.deals_flagged, d1.item_count) == (3, 4, 4)
    assert d1.run_id == AS_OF.isoformat()


def test_ranking_and_per_rep_limit():
    d = _digest(max_items_per_rep=2)
    rep1 = d.rep("rep-1")
    assert [e.flag.opportunity_id for e in rep1.entries] == ["opp-b", "opp-a"]  # severity x amount
    assert rep1.flagged == 3 and rep1.omitted == 1
    assert [e.flag.opportunity_id for e in d.entries] == ["opp-b", "opp-a", "opp-d"]
    assert [e.rank for e in d.entries] == [1, 2, 3]
    assert [r.rep_id for r in d.reps] == ["rep-1", "rep-2", "rep-3"]  # flagged reps first, quiet ones last


def test_links_to_crm_and_semantic_layer():
    flags = [(make_flag("opp-x", "rep-1", source_url="https://crm.example.test/deals/opp-x"), make_draft("opp-x")),
             (make_flag("opp-y", "rep-1"), make_draft("opp-y"))]
    d = build_digests(flags, REPS, MANAGERS, AS_OF, 5, crm_base_url="https://crm.example.test/r",
                      saved_query_names={"sq_stage_duration": "stage_duration_by_segment"})[0]
    by_opp = {e.flag.opportunity_id: e for e in d.entries}
    assert by_opp["opp-x"].crm_links[0].url == "https://crm.example.test/deals/opp-x"  # the record's own URL wins
    assert by_opp["opp-y"].crm_links[0].url == "https://crm.example.test/r/opp-y"
    q = by_opp["opp-y"].query_links[0]
    assert q.url == "semantic://sq_stage_duration" and "stage_duration_by_segment" in q.label
    templated = build_digests(flags[1:], REPS, MANAGERS, AS_OF, 5, crm_base_url="https://crm.test/{object}/{record_id}")[0]
    assert templated.entries[0].crm_links[0].url == "https://crm.test/opportunity/opp-y"


def test_remedy_query_is_a_what_worked_link_in_every_rendering():
    flags = [(make_flag("opp-x", "rep-1"), make_draft("opp-x"))]
    flag_id = flags[0][0].flag_id
    d = _give_ids(build_digests(flags, REPS, MANAGERS, AS_OF, 5, remedy_queries={flag_id: ["mfq_remedy1"]})[0])
    [entry] = d.entries
    assert entry.query_links[-1].label == "what worked (mfq_remedy1)"
    assert entry.query_links[-1].url == "semantic://mfq_remedy1"
    # Markdown escapes "_" in link text (CRM text goes through the same escaping); HTML and Slack show it as is.
    assert "[what worked (mfq\\_remedy1)](semantic://mfq_remedy1)" in digest_markdown(d)
    assert "what worked (mfq_remedy1)" in digest_html(d)
    assert "what worked (mfq_remedy1)" in json.dumps(digest_messages(d))


def test_unrouted_items_are_reported_not_lost():
    stray = (make_flag("opp-z", "rep-unknown"), make_draft("opp-z"))
    by_manager, unrouted = route_items([*pairs(), stray], REPS, MANAGERS)
    assert [f.opportunity_id for f, _ in unrouted] == ["opp-z"]
    assert sum(len(v) for v in by_manager.values()) == 5


def test_the_warning_about_unrouted_items_names_the_deals_not_flag_ids(caplog):
    stray = (make_flag("opp-z", "rep-unknown"), make_draft("opp-z"))
    with caplog.at_level("WARNING", logger="agents.review.digests"):
        build_digests([*pairs(), stray], REPS, MANAGERS, AS_OF, 5, deal_names={"opp-z": "Zephyr renewal"})
    [message] = [r.getMessage() for r in caplog.records if "no known manager" in r.getMessage()]
    assert "'Zephyr renewal'" in message and "rep rep-unknown" in message
    assert stray[0].flag_id not in message


def test_block_kit_structure():
    d = _give_ids(_digest(max_items_per_rep=5))
    [message] = digest_messages(d)
    blocks = message["blocks"]
    assert blocks[0]["type"] == "header" and "2026-10-01" in blocks[0]["text"]["text"]
    assert "3* reps reviewed" in blocks[1]["text"]["text"] and "*4* deals flagged" in blocks[1]["text"]["text"]
    actions = [b for b in blocks if b["type"] == "actions"]
    assert len(actions) == 4
    first = actions[0]
    assert first["block_id"] == "actions:item-opp-b"
    assert [(el["action_id"], el["value"]) for el in first["elements"]] == [
        (ACTION_APPROVE, "item-opp-b"), (ACTION_EDIT, "item-opp-b"), (ACTION_DISMISS, "item-opp-b"),
        (ACTION_SNOOZE, "item-opp-b")]
    text = json.dumps(blocks)
    assert "stage_duration_p75 = 30" in text and "semantic://sq_stage_duration" in text
    assert "Reviewed, nothing flagged: Cy Quiet" in text
    ids = [b["block_id"] for b in blocks if "block_id" in b]
    assert len(ids) == len(set(ids))  # block ids unique within a message
    assert message["text"].startswith("Pipeline review for 2026-10-01")


def test_long_digest_is_split_within_block_limits():
    many = [(make_flag(f"opp-{i:03d}", "rep-1", amount=1000.0 + i), make_draft(f"opp-{i:03d}")) for i in range(40)]
    d = build_digests(many, REPS, MANAGERS, AS_OF, 40)[0]
    for e in d.entries:
        e.item_id = f"i{e.flag.opportunity_id}"
    messages = digest_messages(d)
    assert len(messages) > 1
    assert all(len(m["blocks"]) <= 50 for m in messages)
    all_actions = [b["block_id"] for m in messages for b in m["blocks"] if b["type"] == "actions"]
    assert len(all_actions) == 40  # every item exactly once, none cut in half
    for m in messages:
        for b in m["blocks"]:
            if b["type"] == "section":
                assert len(b["text"]["text"]) <= 3000
    assert "Part 1 of" in json.dumps(messages[0]["blocks"])


def test_untrusted_text_is_escaped():
    d = build_digests(pairs(), REPS, MANAGERS, AS_OF, 5, deal_names={"opp-b": "<!channel> <https://evil.test|click> & co"})[0]
    _give_ids(d)
    text = json.dumps(digest_messages(d))
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text
    assert escape_mrkdwn("a<b>&") == "a&lt;b&gt;&amp;"
    assert "<script" not in digest_html(build_digests([(make_flag("o", "rep-1"), {**make_draft("o"), "action": "<script>x</script> do it"})], REPS, MANAGERS, AS_OF, 5)[0])


def test_apply_decision_replaces_only_that_items_buttons():
    d = _give_ids(_digest(max_items_per_rep=5))
    blocks = digest_messages(d)[0]["blocks"]
    updated = apply_decision(blocks, "item-opp-a", text="Approved by <@UMGR1>", edited_text="Call them today.")
    assert not any(b.get("block_id") == "actions:item-opp-a" for b in updated)
    assert any(b.get("block_id") == "actions:item-opp-b" for b in updated)
    decision = next(b for b in updated if b.get("block_id") == "decision:item-opp-a")
    assert decision["type"] == "context" and "Approved" in decision["elements"][0]["text"]
    draft = next(b for b in updated if b.get("block_id") == "draft:item-opp-a")
    assert "Call them today." in draft["text"]["text"]
    assert len(updated) == len(blocks)


def test_edit_modal():
    view = edit_modal("item-1", "x" * 5000, subject="opp-a", channel="D1", message_ts="1.2")
    assert view["type"] == "modal" and json.loads(view["private_metadata"]) == {"item_id": "item-1", "channel": "D1", "ts": "1.2"}
    element = view["blocks"][1]["element"]
    assert len(element["initial_value"]) <= 3000 and element["multiline"]


def test_outbox_files(tmp_path):
    d = _give_ids(_digest(max_items_per_rep=5))
    md, html = write_digest(d, tmp_path / "outbox")
    assert md == tmp_path / "outbox" / "digests" / "2026-10-01" / "mgr-1.md"
    assert html.suffix == ".html" and html.exists()
    text = md.read_text()
    for name in ("Ann Rep", "Bob Rep", "Cy Quiet"):
        assert name in text
    assert "Reviewed: nothing flagged." in text
    assert "semantic://sq\\_stage\\_duration" in text or "semantic://sq_stage_duration" in text
    assert "item-opp-b" in text
    assert text.index("opp-b") < text.index("opp-a")
    assert ">Pipeline review for Maria Manager" in html.read_text()
    assert digest_markdown(d) == text
