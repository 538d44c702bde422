"""Prompt-lookup guesses for the engine's spare rows (runtime/llamacpp/draft.py)."""

from __future__ import annotations

from openzoo.runtime.llamacpp.draft import CONFIDENT, GUESSES, Drafter


def test_guess_is_what_followed_the_last_two_tokens_most_recently() -> None:
    d = Drafter([1, 2, 3, 9, 1, 2, 4, 7, 1, 2])
    assert d.propose(1) == [4]  # (1, 2) was last followed by 4, not 3


def test_one_token_match_when_the_pair_is_new() -> None:
    d = Drafter([5, 6, 8, 5])
    assert d.propose(1) == [6]  # (8, 5) never occurred; 5 was followed by 6


def test_guesses_follow_each_other_down_the_context() -> None:
    d = Drafter([7, 1, 2, 3, 4, 5, 9, 1, 2])
    assert d.propose(3) == [3, 4, 5]
    assert d.propose() == [3, 4, 5][:GUESSES]
    assert Drafter([1, 2, 1]).propose(3) == [2, 1, 2]  # a loop goes round


def test_no_guess_for_a_token_never_seen_before() -> None:
    assert Drafter([1, 2, 3]).propose() == []
    assert Drafter([]).propose() == []
    assert Drafter([1, 2, 1]).propose(0) == []


def test_tables_follow_added_tokens() -> None:
    d = Drafter([1, 2])
    assert d.propose() == []
    for t in (3, 1, 2):
        d.add(t)
    assert d.propose(1) == [3]


def test_guesses_are_decoded_only_while_most_first_guesses_are_right() -> None:
    d = Drafter([1, 2, 1])
    misses = 0
    while d.propose(1):  # after 1 comes a new token every time: each first guess is wrong
        misses += 1
        d.add(100 + misses)
        d.add(1)
    assert 1 <= misses <= 4 and d.score < CONFIDENT
    hits = 0
    for token in [100 + misses, 1] * 4:  # now the text repeats: guesses are still made and scored
        if d.propose(1):
            break
        d.add(token)
        hits += 1
    assert 1 <= hits <= 3 and d.score >= CONFIDENT
