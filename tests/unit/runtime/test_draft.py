"""Prompt-lookup guesses for the engine's spare rows (runtime/llamacpp/draft.py)."""

from __future__ import annotations

from openzoo.runtime.llamacpp.draft import CONFIDENT, GUESSES, ROW_TILE, Drafter, NgramPool, spare_rows


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


def test_success_rate_follows_first_guesses_decoded_or_not() -> None:
    d = Drafter([1, 2, 1])
    misses = 0
    while d.score >= CONFIDENT:  # after 1 comes a new token every time: each first guess is wrong
        assert d.propose(1) == [2] if misses == 0 else d.propose(1)
        misses += 1
        d.add(100 + misses)
        d.add(1)
    assert 1 <= misses <= 4
    hits = 0
    while d.score < CONFIDENT:  # now the text repeats: its guesses are right again
        assert d.propose(1) == [100 + misses]
        d.add(100 + misses)
        d.add(1)
        hits += 1
    assert 1 <= hits <= 3


def test_a_token_without_a_guess_is_not_scored() -> None:
    d = Drafter([1, 2, 3])
    assert d.propose() == []
    d.add(4)
    assert d.score == 1.0


def test_spare_rows_fill_a_tile_with_guesses_then_throw_away_rows() -> None:
    assert spare_rows(5, 0, 60) == (8, 0)
    assert spare_rows(5, 2, 60) == (8, 2)
    assert spare_rows(6, 3, 60) == (8, 2)
    assert spare_rows(8, 3, 60) == (8, 0)  # a whole tile takes no rows for guesses
    assert spare_rows(58, 3, 60) == (60, 2)
    assert spare_rows(61, 3, 60) == (61, 0)  # past the limit (a micro-batch) nothing is added
    for generating in range(1, 61):
        rows, guesses = spare_rows(generating, 3, 60)
        assert rows % ROW_TILE == 0 and generating <= rows < generating + ROW_TILE and guesses <= 3


def test_the_shared_pool_guesses_what_followed_in_earlier_requests() -> None:
    pool = NgramPool()
    pool.feed([10, 11, 12, 13, 14, 15])  # an earlier request
    d = Drafter([99, 10, 11, 12], pool)  # this one has never seen what follows 11, 12
    assert d.propose(3) == [13, 14, 15]
    assert Drafter([99, 10, 11, 12]).propose(3) == []  # without the pool: nothing


def test_the_sequence_s_own_pair_wins_over_the_pool() -> None:
    pool = NgramPool()
    pool.feed([1, 2, 3, 4])
    d = Drafter([2, 3, 7, 1, 2, 3], pool)
    assert d.propose(1) == [7]  # (2, 3) was followed by 7 in this sequence


def test_the_pool_keeps_its_most_recent_contexts() -> None:
    pool = NgramPool(limit=2)
    pool.feed([1, 2, 3, 4, 5, 6])  # contexts (1,2,3) (2,3,4) (3,4,5)
    assert len(pool) == 2
    assert pool.get(1, 2, 3) is None and pool.get(3, 4, 5) == 6
