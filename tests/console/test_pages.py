"""Each console page with data: decisions, people, outbox, keys, overview; bad input is a page."""

from __future__ import annotations

import re

from markupsafe import escape

from guard.http import keys
from guard.services import services

from .conftest import SCRIPT, csrf_of, post


def text(response) -> str:
    return response.get_data(as_text=True)


def walk(client, path: str) -> list[tuple[str, list[str]]]:
    """Follow a decision list's next-page links; return each page's HTML and decision ids."""
    pages = []
    while path:
        assert len(pages) < 100, f"the list does not end: {path}"
        html = text(client.get(path))
        pages.append((html, re.findall(r'href="/console/decisions/(dec_[0-9a-f]+)"', html)))
        found = re.search(r'rel="next" href="([^"]+)"', html)
        path = found.group(1).replace("&amp;", "&") if found else None
    return pages


def test_decisions_list_newest_first_with_filters(admin, world):
    html = text(admin.get("/console/decisions"))
    ids = re.findall(r'href="/console/decisions/(dec_[0-9a-f]+)"', html)
    assert set(ids) == {d.decision_id for d in world["decisions"]}
    blocked = [d for d in world["decisions"] if d.verdict == "block"]
    html = text(admin.get("/console/decisions?verdict=block"))
    assert set(re.findall(r'href="/console/decisions/(dec_[0-9a-f]+)"', html)) == {
        d.decision_id for d in blocked}
    rule = blocked[0].rules[0]
    html = text(admin.get(f"/console/decisions?rule={rule}"))
    assert blocked[0].decision_id in html
    html = text(admin.get("/console/decisions?person=anna@example.com&channel=email"
                          "&purpose=price_offer&sender=oem&since=2026-11-01&until=2026-11-30"))
    assert re.findall(r'href="/console/decisions/(dec_[0-9a-f]+)"', html) == [
        world["decisions"][0].decision_id]


def test_decisions_page_fifty_at_a_time_without_repeats(admin, store, world):
    for n in range(120):
        store.check({"channel": "sms", "to": f"+4917012{n:05d}", "purpose": "newsletter",
                     "sender": "oem", "at": f"2026-11-{1 + n % 20:02d}T10:00:00Z",
                     "commit": False})
    pages = walk(admin, "/console/decisions?channel=sms")
    seen = [i for _, ids in pages for i in ids]
    assert all(len(ids) <= 50 for _, ids in pages)
    assert len(seen) == len(set(seen)) == 120


def test_a_rules_decisions_page_newest_first_through_its_own_index(admin, store, world):
    made = []
    for n in range(120):
        made.append(store.check({"channel": "sms", "to": f"+4917012{n:05d}",
                                 "purpose": "newsletter", "sender": "oem",
                                 "at": f"2026-11-{1 + n % 20:02d}T10:{n % 60:02d}:00Z"},
                                commit=n % 2 == 0))
    rule = made[0].reasons[0].rule
    mine = [d for d in made if rule in {f.rule for f in d.reasons}]
    pages = walk(admin, f"/console/decisions?rule={rule}&channel=sms")
    seen = [i for _, ids in pages for i in ids]
    assert all(len(ids) <= 50 for _, ids in pages)
    at = {d.decision_id: (a["at"], d.decision_id) for d, a in
          ((d, store.decision(d.decision_id)["attempt"]) for d in mine)}
    assert len(mine) > 50 and sorted(seen) == sorted(at)
    assert seen == sorted(seen, key=lambda i: at[i], reverse=True)


def test_a_rare_combination_looks_through_a_stretch_at_a_time_and_finds_them_all(
        admin, store, world, monkeypatch):
    from guard.console import decisions

    monkeypatch.setattr(decisions, "SCAN", 40)
    rare = []
    for n in range(150):
        purpose = "survey" if n % 37 == 0 else "newsletter"
        decided = store.check({"channel": "sms", "to": f"+4917012{n:05d}", "purpose": purpose,
                               "sender": "oem", "at": f"2026-11-{1 + n % 20:02d}T10:00:00Z"},
                              commit=False)
        if purpose == "survey":
            rare.append(decided.decision_id)
    pages = walk(admin, "/console/decisions?channel=sms&purpose=survey")
    seen = [i for _, ids in pages for i in ids]
    stretches = sum("Looked through 40 decisions, back to" in html for html, _ in pages)
    assert sorted(seen) == sorted(rare) and len(seen) == len(set(seen))
    assert stretches >= 3  # 150 and more decisions, 40 a stretch

    # A rule's decisions of one person: the person is tested on the rule's rows.
    blocked = next(d for d in world["decisions"] if d.verdict == "block")
    html = text(admin.get(f"/console/decisions?rule={blocked.rules[0]}&person={blocked.person}"))
    listed = re.findall(r'href="/console/decisions/(dec_[0-9a-f]+)"', html)
    assert blocked.decision_id in listed and sorted(listed) == sorted(
        d.decision_id for d in world["decisions"]
        if d.person == blocked.person and blocked.rules[0] in d.rules)


def test_a_persons_filtered_decisions_come_stretch_by_stretch_dry_runs_among_them(
        admin, store, world, monkeypatch):
    from guard.console import decisions

    monkeypatch.setattr(decisions, "SCAN", 7)
    made = []
    for n in range(40):
        # Some share a time, as a screen's do; every third is a dry run.
        made.append(store.check({"channel": "email", "to": "anna@example.com",
                                 "purpose": ["newsletter", "survey"][n % 4 == 0],
                                 "sender": "oem", "at": f"2026-11-{1 + n // 3:02d}T10:00:00Z"},
                                commit=n % 3 != 0))
    pages = walk(admin, "/console/decisions?person=anna@example.com&purpose=survey")
    seen = [i for _, ids in pages for i in ids]
    stretches = sum("Looked through 7 decisions" in html for html, _ in pages)
    surveys = [d.decision_id for n, d in enumerate(made) if n % 4 == 0]
    assert sorted(seen) == sorted(surveys) and len(seen) == len(set(seen))
    assert stretches >= 3


def test_more_of_a_persons_decisions_at_one_time_than_a_stretch_still_end(
        admin, store, world, monkeypatch):
    from guard.console import decisions

    monkeypatch.setattr(decisions, "SCAN", 5)
    made = [store.check({"channel": "email", "to": "anna@example.com",
                         "purpose": ["newsletter", "survey"][n % 3 == 0], "sender": "oem",
                         "at": "2026-11-02T10:00:00Z"}, commit=False) for n in range(12)]
    pages = walk(admin, "/console/decisions?person=anna@example.com&purpose=survey")
    seen = [i for _, ids in pages for i in ids]
    assert sorted(seen) == sorted(d.decision_id for n, d in enumerate(made) if n % 3 == 0)


BAD_FILTERS = [
    ("verdict=maybe", "verdict: &#39;maybe&#39; is not a verdict"),
    ("channel=pigeon", "channel: &#39;pigeon&#39; is not a channel"),
    ("purpose=nope", "purpose: the policy knows no purpose"),
    ("since=yesterday", "since: not a date or time"),
    ("until=2026-13-45", "until: not a date or time"),
    ("person=nobody@example.com", "person: no person matches"),
    ("person=not%20an%20address", "person:"),
    ("after=%%%garbage", "after: not a page cursor"),
    ("sender=" + "x" * 300, "sender: at most 255 characters"),
]


def test_a_bad_filter_is_a_message_on_the_page(admin, world):
    for query, message in BAD_FILTERS:
        response = admin.get(f"/console/decisions?{query}")
        assert response.status_code == 400, query
        assert message in text(response), query
        assert 'name="verdict"' in text(response), query  # the filter form is still there


def test_a_decision_shows_attempt_reasons_evidence_links_and_version(app, admin, world):
    decision = world["decisions"][0]
    html = text(admin.get(f"/console/decisions/{decision.decision_id}"))
    for reason in decision.reasons:
        assert reason.rule in html and str(escape(reason.message)) in html
    assert decision.policy_version in html
    assert "price_offer" in html and "anna@example.com" in html
    assert "dms purchase P1" in html


def test_evidence_links_into_the_crm_when_it_is_known(app, admin, world):
    complaint = world["decisions"][1]
    path = f"/console/decisions/{complaint.decision_id}"
    assert "app.hubspot.com" not in text(admin.get(path))
    app.config["HUBSPOT_PORTAL_ID"] = 4711
    assert 'href="https://app.hubspot.com/contacts/4711/record/0-5/77"' in text(admin.get(path))
    app.config["SALESFORCE_INSTANCE_URL"] = "https://acme.my.salesforce.com"
    html = text(admin.get(f"/console/people/{world['anna']}"))
    assert 'href="https://acme.my.salesforce.com/lightning/r/Contact/003A/view"' in html


def test_an_unknown_decision_or_person_is_a_404_page(admin):
    for path in ("/console/decisions/dec_nope", "/console/people/per_nope"):
        response = admin.get(path)
        assert response.status_code == 404
        assert "text/html" in response.content_type and "check the id" in text(response)


def test_people_found_by_email_phone_name_and_crm_id(admin, world):
    for q in ("anna@example.com", "+49 170 1234567", "weber", "salesforce:003A", "003A",
              world["anna"]):
        html = text(admin.get("/console/people", query_string={"q": q}))
        assert world["anna"] in html, q
    assert "Nobody matches" in text(admin.get("/console/people?q=zzz-nobody"))


def test_a_person_page_shows_profile_flags_and_one_timeline(admin, world):
    html = text(admin.get(f"/console/people/{world['anna']}"))
    assert "Anna Weber" in html
    assert "Bought audi-a4" in html and "dms" in html
    assert world["decisions"][0].decision_id in html
    assert "Flags, as reps see them" in html


def test_erasure_needs_the_typed_id_and_goes_through_the_erase_event(app, admin, world):
    anna = world["anna"]
    response = post(admin, f"/console/people/{anna}/erase", {"confirm": "yes"},
                    page=f"/console/people/{anna}")
    assert response.status_code == 400 and "nothing was erased" in text(response)
    assert "Anna Weber" in text(admin.get(f"/console/people/{anna}"))
    response = post(admin, f"/console/people/{anna}/erase", {"confirm": anna},
                    page=f"/console/people/{anna}")
    assert response.status_code == 302
    html = text(admin.get(f"/console/people/{anna}"))
    assert "Anna Weber" not in html and "anna@example.com" not in html and "Erased" in html
    assert services(app).guard.resolve("anna@example.com") is None


def test_outbox_shows_held_rows_with_their_time_and_settles_unknown_ones(app, admin, world):
    html = text(admin.get("/console/outbox"))
    assert world["unknown"] in html and "no answer from the provider" in html
    response = post(admin, f"/console/outbox/{world['unknown']}/retry", page="/console/outbox")
    assert response.status_code == 302
    row = services(app).outbox.get(world["unknown"])
    assert row["status"] == "held"
    html = text(admin.get(response.headers["Location"]))
    assert f"{world['unknown']}: held for the next worker cycle" in html
    response = post(admin, f"/console/outbox/{world['unknown']}/mark-sent",
                    page="/console/outbox")
    assert response.status_code == 409 and "nothing changed" in text(response)
    assert admin.get("/console/outbox?status=bogus").status_code == 400


def test_keys_list_create_once_and_revoke(app, admin, store):
    response = post(admin, "/console/keys", {"name": "Dealer tool", "scopes": ["check"]},
                    page="/console/keys")
    html = text(response)
    token = re.search(r'<code id="new-key">([^<]+)</code>', html).group(1)
    assert keys.authenticate(store.engine, token).name == "Dealer tool"
    assert token not in text(admin.get("/console/keys"))  # shown once
    key_id = next(k["id"] for k in keys.list_keys(store.engine) if k["name"] == "Dealer tool")
    admin.get("/v1/keys")  # no effect: a console session is not an API key
    client = app.test_client()
    assert client.post("/v1/check", json={"channel": "email", "to": "x@example.com",
                                          "purpose": "newsletter", "sender": "oem"},
                       headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert "never" not in re.search(rf"<code>{key_id}</code>.*?</tr>", text(
        admin.get("/console/keys")), re.S).group(0)
    response = post(admin, f"/console/keys/{key_id}/revoke", page="/console/keys")
    assert "Revoked Dealer tool" in text(response)
    assert keys.authenticate(store.engine, token) is None
    response = post(admin, "/console/keys", {"name": "", "scopes": ["check"]},
                    page="/console/keys")
    assert response.status_code == 400 and "name: give the key a name" in text(response)
    response = post(admin, "/console/keys", {"name": "x", "scopes": ["root"]},
                    page="/console/keys")
    assert response.status_code == 400 and "unknown scope" in text(response)


def test_overview_draws_the_verdict_bars_and_names_the_stopping_rules(admin, world):
    html = text(admin.get("/console/"))
    assert "<svg" in html and "2026-11-23: 2 block" in html and "2026-11-23: 1 allow" in html
    blocked = next(d for d in world["decisions"] if d.verdict == "block")
    assert blocked.rules[0] in html
    assert "unknown</a></dt><dd>1" in html


def test_names_subjects_and_campaigns_render_as_text(admin, world):
    pages = ["/console/people?q=bob@example.com", f"/console/people/{world['bob']}",
             f"/console/decisions/{world['decisions'][0].decision_id}",
             f"/console/decisions?sender={SCRIPT}"]
    for path in pages:
        html = text(admin.get(path))
        assert "<script>window.pwned" not in html, path
        assert "&lt;script&gt;window.pwned" in html, path


def test_pages_fit_a_phone(admin):
    html = text(admin.get("/console/"))
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html


def test_forms_label_every_field(admin, world):
    for path in ("/console/decisions", "/console/people", "/console/keys",
                 "/console/policy", f"/console/people/{world['anna']}"):
        html = text(admin.get(path))
        for field in re.findall(r'<(?:input|select|textarea)\b[^>]*\bid="([^"]+)"', html):
            assert f'for="{field}"' in html, (path, field)
        assert csrf_of(html) if "method=\"post\"" in html else True


def test_ended_days_are_counted_once_and_kept_for_every_replica(app, admin, store, world):
    import sqlalchemy as sa

    from guard import create_app
    from guard.store.tables import console_days

    store.check({"channel": "email", "to": "anna@example.com", "purpose": "newsletter",
                 "sender": "oem", "at": "2026-11-20T10:00:00Z"})
    assert "2026-11-20: 1 allow" in text(admin.get("/console/"))
    with store.engine.connect() as conn:
        kept = {(r.day, r.verdict): r.n for r in conn.execute(sa.select(console_days))}
    assert kept[("2026-11-20", "allow")] == 1 and kept[("2026-11-19", "block")] == 0
    assert ("2026-11-23", "allow") not in kept  # today is counted live
    with store.engine.begin() as conn:
        conn.execute(sa.update(console_days).where(console_days.c.day == "2026-11-20",
                                                   console_days.c.verdict == "allow")
                     .values(n=7))
    replica = create_app({"GUARD": store, "TESTING": True})
    client = replica.test_client()
    client.set_cookie("guard_console", admin.get_cookie("guard_console", path="/console").value,
                      path="/console")
    assert "2026-11-20: 7 allow" in text(client.get("/console/"))


def test_quotes_and_sql_in_filters_and_search_match_nothing(admin, world):
    # A name search reads words, not punctuation: '"><u>' is the word "u", which no name has.
    for path in ("/console/decisions?rule=x%27%20OR%20%271%27%3D%271",
                 "/console/decisions?sender=%27%3B%20DROP%20TABLE%20ledger%3B--",
                 "/console/people?q=%25%27%20OR%201%3D1--", "/console/people?q=%22%3E%3Cu%3E"):
        response = admin.get(path)
        assert response.status_code == 200, path
        html = text(response)
        assert "No decisions match" in html or "Nobody matches" in html, path
    assert world["decisions"][0].decision_id in text(admin.get("/console/decisions"))


def test_a_sender_pattern_matches_like_a_policy_pattern(admin, store, world):
    for sender in ("dealer:munich", "dealer:berlin"):
        store.check({"channel": "email", "to": "anna@example.com", "purpose": "newsletter",
                     "sender": sender, "commit": False})
    html = text(admin.get("/console/decisions?sender=dealer:*"))
    assert html.count("<td>dealer:") == 2 and "<td>oem</td>" not in html
    assert text(admin.get("/console/decisions?sender=dealer:m*")).count("<td>dealer:") == 1
    assert "No decisions match" in text(admin.get("/console/decisions?sender=deal_r:*"))
