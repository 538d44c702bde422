"""Policy YAML, TUF-style rotation, approvals and quorum."""

from __future__ import annotations

import pytest

from openzoo.certify.keys import SigningKey
from openzoo.certify.policy import (
    ApprovalTally,
    Policy,
    count_approvals,
    create_policy,
    rotate_policy,
    sign_approval,
    sign_policy,
    verify_policy_chain,
)
from openzoo.errors import Conflict, InvalidRequest, VerificationFailed

REQ = {"model": "gemma3:270m", "manifest_digest": "sha256:" + "1" * 64, "request_id": "req-1"}


@pytest.fixture()
def policy(reviewer_keys: dict[str, SigningKey]) -> Policy:
    return create_policy([reviewer_keys[n].public for n in ("alice", "bob", "carol")], threshold=2)


def test_yaml_roundtrip_and_digest(policy: Policy, reviewer_keys: dict[str, SigningKey]) -> None:
    again = Policy.from_yaml(policy.to_yaml())
    assert again == policy
    assert again.digest() == policy.digest() and policy.digest().startswith("sha256:")
    ids_only = "version: 1\nthreshold: 2\nreviewers:\n" + "".join(
        f"  - name: {r.name}\n    key_id: {r.key_id}\n" for r in policy.reviewers
    )
    keys = {k.key_id: k.public for k in reviewer_keys.values()}
    resolved = Policy.from_yaml(ids_only, resolve=keys.__getitem__)
    assert resolved.digest() == policy.digest()
    assert len(resolved.public_keys()) == 3
    assert Policy.from_yaml(ids_only).public_keys() == []


@pytest.mark.parametrize(
    "text",
    [
        "version: 1\nthreshold: 4\nreviewers: [{name: a, key_id: " + "a" * 64 + "}]",
        "version: 0\nthreshold: 1\nreviewers: [{name: a, key_id: " + "a" * 64 + "}]",
        "version: 1\nthreshold: 1\nreviewers: []",
        "version: 1\nthreshold: 1\nreviewers: [{name: ../a, key_id: " + "a" * 64 + "}]",
        "version: 1\nthreshold: 1\nreviewers: [{name: a, key_id: short}]",
        "version: 1\nthreshold: 1\nreviewers: [{name: a, key_id: "
        + "a" * 64
        + "}, {name: b, key_id: "
        + "a" * 64
        + "}]",
        "[unclosed",
    ],
)
def test_invalid_policies(text: str) -> None:
    with pytest.raises(InvalidRequest):
        Policy.from_yaml(text)


def test_approvals_and_quorum(policy: Policy, reviewer_keys: dict[str, SigningKey]) -> None:
    tally = ApprovalTally(policy, REQ["model"], REQ["manifest_digest"], REQ["request_id"])
    assert tally.add(sign_approval(reviewer_keys["alice"], **REQ)).name == "alice"
    assert not tally.result().met
    assert tally.result().summary() == "1 of 2 approvals (alice)"
    with pytest.raises(Conflict, match="already approved by alice"):
        tally.add(sign_approval(reviewer_keys["alice"], **REQ))
    with pytest.raises(VerificationFailed, match="not a reviewer"):
        tally.add(sign_approval(reviewer_keys["mallory"], **REQ))
    with pytest.raises(VerificationFailed, match="different"):
        tally.add(sign_approval(reviewer_keys["bob"], **{**REQ, "request_id": "req-2"}))
    tally.add(sign_approval(reviewer_keys["bob"], **REQ))
    assert tally.result().met and tally.result().reviewers == ("alice", "bob")


def test_count_ignores_duplicates_and_forgeries(policy: Policy, reviewer_keys: dict[str, SigningKey]) -> None:
    a = sign_approval(reviewer_keys["alice"], **REQ)
    forged_bob = sign_approval(reviewer_keys["mallory"], **REQ)
    forged_bob = type(forged_bob)(**{**forged_bob.__dict__, "reviewer_key_id": reviewer_keys["bob"].key_id})
    result = count_approvals([a, a, forged_bob], policy, **REQ)
    assert result.reviewers == ("alice",) and not result.met
    assert any("does not verify" in p for p in result.problems)


def test_rotation(policy: Policy, reviewer_keys: dict[str, SigningKey]) -> None:
    k = reviewer_keys
    new = create_policy([k["alice"].public, k["mallory"].public], threshold=1, version=2)
    one = sign_policy(new, [k["alice"]])
    with pytest.raises(VerificationFailed, match="1 of the 2"):
        rotate_policy(policy, one)
    outsider = sign_policy(new, [k["alice"], k["mallory"]])
    with pytest.raises(VerificationFailed, match="1 of the 2"):
        rotate_policy(policy, outsider)
    two = sign_policy(new, [k["alice"], k["carol"]])
    assert rotate_policy(policy, two) == new
    skip = create_policy([k["alice"].public], threshold=1, version=3)
    with pytest.raises(VerificationFailed, match="does not follow"):
        rotate_policy(policy, sign_policy(skip, [k["alice"], k["bob"]]))
    third = create_policy([k["bob"].public], threshold=1, version=3)
    chain = [two, sign_policy(third, [k["mallory"]])]
    assert verify_policy_chain(policy, chain, pinned_digest=policy.digest()) == third
    with pytest.raises(VerificationFailed, match="pinned"):
        verify_policy_chain(policy, chain, pinned_digest="sha256:" + "0" * 64)
