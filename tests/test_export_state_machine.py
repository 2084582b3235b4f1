"""The export state machine: a generated matrix over every action and state, and random
action sequences on the real service that never reach an inconsistent state."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from safezone import audit, datasets, memberships, projects
from safezone.errors import SafezoneError
from safezone.exports import checking, release, review, service
from safezone.exports.states import TRANSITIONS, next_state
from safezone.models import AuditEvent, ExportStatus
from safezone.permissions import ADMIN_SCOPE, REVIEW_SCOPE, Identity, Subject, relations

from .support import attested_dataset, unique

ALICE = Identity("alice", "user", frozenset())
REVIEWERS = [Identity(f"rev{i}", "user", frozenset({REVIEW_SCOPE})) for i in (1, 2, 3)]
ADMIN = Identity("admin", "user", frozenset({ADMIN_SCOPE}))


@pytest.mark.parametrize(("action", "status"), list(itertools.product(
    sorted(TRANSITIONS), list(ExportStatus))))
def test_transition_matrix(action, status):
    rule = TRANSITIONS[action]
    if status in rule.sources:
        assert next_state(action, status) is rule.target
    else:
        with pytest.raises(SafezoneError):
            next_state(action, status)


def test_every_state_is_reachable_and_terminal_states_have_no_exit():
    reachable = {ExportStatus.DRAFT}
    changed = True
    while changed:
        changed = False
        for rule in TRANSITIONS.values():
            if rule.sources & reachable and rule.target not in reachable:
                reachable.add(rule.target)
                changed = True
    assert reachable == set(ExportStatus)
    for terminal in (ExportStatus.REJECTED, ExportStatus.WITHDRAWN, ExportStatus.REVOKED):
        assert not any(terminal in rule.sources for rule in TRANSITIONS.values())


@pytest.fixture
def export_zone(zone):
    project, dataset = unique("p"), unique("deid-sm")
    projects.create_project(zone, ADMIN, project)
    attested_dataset(zone, dataset)
    datasets.change_status(zone, ADMIN, dataset, "publish")
    memberships.approve_membership(zone, ADMIN, project, "alice",
                                   zone.now() + timedelta(days=30))
    for name, body in (("a.csv", b"g,count\nx,120\ny,130\n"), ("b.csv", b"g,count\nx,3\n")):
        zone.broker.write_object("outbox", f"{project}/alice/{name}", body)
    return zone, project


ACTIONS = st.lists(st.tuples(
    st.sampled_from(["submit", "withdraw", "approve", "changes", "reject", "release",
                     "revoke", "vote_as_requester"]),
    st.integers(0, 2)), min_size=1, max_size=8)


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=ACTIONS, files=st.sampled_from([["a.csv"], ["a.csv", "b.csv"]]))
def test_random_sequences_stay_consistent(export_zone, steps, files):
    zone, project = export_zone
    request = service.create_request(zone, ALICE, project, "t", [{"path": f} for f in files])
    rid = request["id"]
    for action, who in steps:
        reviewer = REVIEWERS[who]
        view = service.get_request(zone, ADMIN, rid)
        try:
            if action == "submit":
                service.submit(zone, ALICE, rid)
                checking.check_pending(zone)
            elif action == "withdraw":
                service.withdraw(zone, ALICE, rid)
            elif action in {"approve", "changes", "reject"}:
                decision = {"approve": "approve", "changes": "request_changes",
                            "reject": "reject"}[action]
                for f in view["files"]:
                    review.vote(zone, reviewer, rid, f["id"], decision, comment="c",
                                override_reason="ok")
            elif action == "release":
                release.release(zone, ADMIN, rid)
            elif action == "revoke":
                release.revoke(zone, reviewer, rid, "because")
            elif action == "vote_as_requester":
                review.vote(zone, ALICE, rid, view["files"][0]["id"], "approve")
        except SafezoneError:
            pass  # refused actions are fine; what matters is the state after them
        assert_consistent(zone, rid)


def assert_consistent(zone, rid: str) -> None:
    view = service.get_request(zone, ADMIN, rid)
    status = ExportStatus(view["status"])
    real_files = [f for f in view["files"] if not f["evidence"]]
    if status is ExportStatus.RELEASED:
        assert all(f["released"] for f in real_files)
        keys = {o.object_name for o in zone.broker.s3.list_objects(
            "released", prefix=f"{rid}/", recursive=True)}
        assert keys == {f"{rid}/{f['id']}/{f['path']}" for f in real_files} | \
            {f"{rid}/{release.CHECK_RECORD}"}  # the check record travels with the files
    if status in {ExportStatus.SUBMITTED, ExportStatus.CHECKING}:
        raise AssertionError(f"request left in transient state {status}")
    if status is not ExportStatus.DRAFT:
        assert all(f["sha256"] for f in view["files"]) or status is ExportStatus.WITHDRAWN
    if status is ExportStatus.IN_REVIEW:
        assert 1 <= view["required_approvals"] <= 4
    assert not any(v["reviewer"] == "alice" for v in view["votes"])
    with zone.sessions() as db:
        assert audit.verify(db) == []
        moves = [(e.data["before"], e.data["after"]) for e in db.scalars(
            select(AuditEvent).where(AuditEvent.subject == f"export:{rid}")
            .order_by(AuditEvent.seq)) if "before" in e.data]
    allowed = {(s.value, rule.target.value) for rule in TRANSITIONS.values()
               for s in rule.sources}
    assert set(moves) <= allowed
    for (_, after), (before, _) in itertools.pairwise(moves):
        assert after == before  # the audit trail is one unbroken path through the table


@pytest.mark.parametrize(("actor", "subject", "expected"), [
    (ALICE, Subject(requester="alice", member=True), {"user", "requester", "member",
                                                      "involved"}),
    # the requester stays the requester whatever roles they hold
    (Identity("alice", "user", frozenset({REVIEW_SCOPE, ADMIN_SCOPE})),
     Subject(requester="alice", member=True),
     {"user", "reviewer", "admin", "requester", "member", "involved"}),
    (REVIEWERS[0], Subject(requester="alice"), {"user", "reviewer"}),
    (REVIEWERS[0], Subject(requester="alice", involved=True), {"user", "reviewer", "involved"}),
    (ADMIN, Subject(user="admin"), {"user", "admin", "self"}),
    (Identity("bob", "user", frozenset()), Subject(requester="alice"), {"user"}),
    # roles belong to people: a service holding a review scope is no reviewer
    (Identity("alice", "service", frozenset({REVIEW_SCOPE})), Subject(requester="alice"),
     set()),
    (Identity("x", "user", frozenset(), browser=True, notebook=False), Subject(),
     {"user", "browser"}),
    (Identity("x", "user", frozenset(), operator=True), Subject(), {"user", "operator"}),
])
def test_relations_of_an_identity(actor, subject, expected):
    assert relations(actor, subject) == expected


def test_released_names_say_what_the_bytes_are():
    """Images leave as their PNG re-encoding, so a JPEG's release is named .png."""
    from safezone.exports.release import released_path

    assert released_path("figs/photo.jpg", "jpeg") == "figs/photo.png"
    assert released_path("plot.png", "png") == "plot.png"
    assert released_path("v1.2/table.csv", "csv") == "v1.2/table.csv"
    assert released_path("figs.d/chart", "jpeg") == "figs.d/chart.png"
