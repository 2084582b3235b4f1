"""IdP user names -> Safezone user names (safezone/idp_names.py) and the login policy
(policies/identity.yaml through safezone/idp_policy.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from safezone.idp_names import MAX_LENGTH, safezone_name
from safezone.idp_policy import load_identity_policy
from safezone.naming import check_user_name
from safezone.sandbox.users import unix_name

K8S_LABEL = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
names = st.text(min_size=1, max_size=120)
emails = st.emails().map(str)


def test_examples():
    assert safezone_name("alice") == "alice"
    assert safezone_name("alice@uni.ac.kr").startswith("alice-uni.ac.kr--")
    assert safezone_name("Alice@uni.ac.kr") != safezone_name("alice@uni.ac.kr")
    assert safezone_name("a--b") != "a--b"  # "--" is the hash separator
    with pytest.raises(ValueError):
        safezone_name("")


@settings(max_examples=400)
@given(st.one_of(names, emails))
def test_every_name_is_safe_everywhere_and_stable(idp_name):
    name = safezone_name(idp_name)
    assert name == safezone_name(idp_name)
    assert len(name) <= MAX_LENGTH
    check_user_name(name)                  # hub, grants, memberships, object prefixes
    assert K8S_LABEL.match(name)           # the pods' safezone.io/user label
    assert len(unix_name(name)) <= 32      # the sandbox's Unix user


@settings(max_examples=400)
@given(st.one_of(names, emails), st.one_of(names, emails))
def test_two_idp_names_never_share_a_safezone_name(a, b):
    if a != b:
        assert safezone_name(a) != safezone_name(b)


@given(st.from_regex(r"[a-z0-9]([a-z0-9._]|-(?!-)){0,40}[a-z0-9]", fullmatch=True))
def test_safe_names_are_kept(idp_name):
    if "--" not in idp_name:
        assert safezone_name(idp_name) == idp_name


def test_a_kept_name_cannot_imitate_a_rewritten_one():
    rewritten = safezone_name("alice@uni.ac.kr")
    assert safezone_name(rewritten) != rewritten  # it holds "--", so it is hashed again


def test_policy_maps_groups_to_roles_and_refuses_the_rest():
    policy = load_identity_policy()
    assert policy.roles(["research-reviewers"]) == {"reviewer"}
    assert policy.hub_groups(policy.roles(["researchers", "zone-admins"])) == [
        "safezone-admins"]
    assert policy.roles(["library-staff"]) is None
    assert policy.roles([]) is None


def test_second_factor_claims():
    policy = load_identity_policy()
    assert policy.second_factor({"amr": ["pwd", "otp"], "acr": "1"})
    assert policy.second_factor({"acr": "https://refeds.org/profile/mfa"})
    assert not policy.second_factor({"amr": ["pwd"], "acr": "1"})
    assert not policy.second_factor({})
    assert not policy.second_factor({"amr": "pwd"})
    assert policy.second_factor({"amr": ["mfa"]})
    # one method, however strong it sounds, is one factor (RFC 8176); repeats count once
    for one in (["otp"], ["sms"], ["swk"], ["otp", "otp"], ["pwd", "unknown-method"]):
        assert not policy.second_factor({"amr": one}), one
    assert policy.second_factor({"amr": ["pwd", "hwk"]})


def test_malformed_policy_is_refused(tmp_path: Path):
    bad = tmp_path / "identity.yaml"
    messages = "messages: {no_mfa: a, not_permitted: b, subject_taken: c}\n"
    bad.write_text("groups: {x: superuser}\n" + messages)
    with pytest.raises(ValueError, match="unknown Safezone role"):
        load_identity_policy(bad)
    bad.write_text("mfa: {required: true}\n" + messages)
    with pytest.raises(ValueError, match="acr or amr"):
        load_identity_policy(bad)
