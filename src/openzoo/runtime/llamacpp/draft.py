"""Guesses of a sequence's next token from its own context (prompt lookup), for the engine's spare row.

When a step would send a lone row, the engine must add a second one (see "Batch invariance" in
``engine.py``). Instead of a throw-away token, it can add rows that carry guesses of the tokens the lone
sequence is about to sample, at the following positions: where the sampled token equals the first guess,
the guess's row already holds the logits for the token after it, and so on down the chain, so a step can
yield up to :data:`GUESSES` + 1 tokens; the KV cells of the guesses that turned out wrong are removed.
Either way the tokens are those of plain decoding, bit for bit: no row's result depends on the others.

Guesses are not free, though: the throw-away row needs no logits, a guess does, and the output matrix
(262,144 x 640 for the default model) is most of a step's work. Measured on 2 cores (p20 of 100 steps):
one row plus a throw-away row 16.8 ms; plus 1, 2, 3 guesses 27.4, 32.5, 35.9 ms; plus 4 guesses 55.5 ms
(llamafile's kernels tile 5 rows badly). Three guesses beat the throw-away row from about 60 % right
first guesses, and are the best choice from there on. So every lone step's first guess is scored against
the token that comes next, whether it was decoded or not, and a sequence's guesses are decoded only
while their running success rate is at least :data:`CONFIDENT` (a new sequence starts confident; one
that misses often stops guessing until its text turns repetitive).

The guess is what followed the most recent earlier occurrence of the context's last two tokens (else of
its last token), as in llama.cpp's lookup decoding and "prompt lookup" speculative decoding. It is often
right where text repeats itself or its prompt (code, edits, extraction, lists, a small model's loops),
and costs O(1) per token: the tables are built the first time a guess is asked for, then kept up to date.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["CONFIDENT", "GUESSES", "Drafter"]

#: Running success rate of first guesses from which guesses are decoded (break-even is about 0.6).
CONFIDENT = 0.65
#: Guesses decoded per step at most, each one position after the previous (see above).
GUESSES = 3
#: Weight of the past in the running success rate (per guess).
_MEMORY = 0.8


class Drafter:
    """Follower tables of one sequence's context, fed token by token, and how well its guesses do."""

    __slots__ = ("_after1", "_after2", "_last", "_pending", "_prev", "score")

    def __init__(self, context: Sequence[int]) -> None:
        self._after1: dict[int, int] = {}
        self._after2: dict[tuple[int, int], int] = {}
        self._prev = -1
        self._last = -1
        self._pending = -1  # the last guess, until the token it guessed arrives
        self.score = 1.0
        for token in context:
            self.add(token)

    def add(self, token: int) -> None:
        """Append ``token`` to the context (scoring the guess made for it, if any)."""
        if self._pending >= 0:
            self.score = _MEMORY * self.score + (1 - _MEMORY) * (token == self._pending)
            self._pending = -1
        if self._last >= 0:
            self._after1[self._last] = token
            if self._prev >= 0:
                self._after2[(self._prev, self._last)] = token
        self._prev, self._last = self._last, token

    def propose(self, limit: int = GUESSES) -> list[int]:
        """Guesses of the next ``limit`` tokens at most, each following the previous, or none when they
        are not worth decoding.

        A first guess is scored when the next token is added, also one not worth decoding now.
        """
        prev, last = self._prev, self._last
        guesses: list[int] = []
        while len(guesses) < limit:
            follower = self._after2.get((prev, last))
            if follower is None:
                follower = self._after1.get(last)
            if follower is None:
                break
            guesses.append(follower)
            prev, last = last, follower
        if not guesses:
            return []
        self._pending = guesses[0]
        return guesses if self.score >= CONFIDENT else []
