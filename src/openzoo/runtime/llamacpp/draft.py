"""Guesses of a sequence's next tokens from its own context (prompt lookup), for a step's spare rows.

A step often has rows to spare. When it would send a lone row, the engine must add a second one (see
"Batch invariance" in ``engine.py``); and ggml's CPU matrix kernels work on tiles of 4 rows, so a step of
5, 6 or 7 rows costs more than one of 8. Measured on 2 cores with the engine's settings by
``bench/step_rows.py`` (median of 30 interleaved steps, every row with logits): 1 row 12.4 ms; 2, 3, 4
rows 23.4, 28.2, 31.0 ms; 5, 6, 7 rows 47.1, 51.2, 55.8 ms; 8 rows 44.4 ms; 9-11 rows 60-70 ms; 12 rows
57.3 ms; 16 rows 69.7 ms. Steps of a multiple of 4 rows cost about 18 ms plus 3.2 ms per row: the fixed
part is the weights' trip through memory, the rest mostly the output matrix (262,144 x 640 for the
default model).

Instead of throw-away tokens, those rows can carry guesses of the tokens one sequence is about to sample,
at the following positions: where the sampled token equals the first guess, the guess's row already
holds the logits for the token after it, and so on down the chain, so a step can yield several tokens
for one sequence; the KV cells of the guesses that turned out wrong are removed. Either way the tokens
are those of plain decoding, bit for bit: no row's result depends on the others. Only one sequence
guesses per step, its guesses after every other row of the step: the cells of wrong guesses are then the
last ones the step filled, so the next tokens of every sequence still land in cells after its earlier
ones (flash attention reduces in cell order, see ``engine.py``).

How many guesses a step carries (:func:`spare_rows` for steps of several rows):

* a lone row (the spare row is otherwise a throw-away row without logits, 14.5 ms for both): up to
  :data:`GUESSES` guesses while at least :data:`CONFIDENT` of the sequence's first guesses were right;
* a step of only generating rows (no prompt chunk: a guess would delay that prompt's first token): the
  rows up to the next multiple of 4 are free, so they carry guesses, or throw-away rows with logits
  (without logits, the output matrix would still run on a ragged number of rows). No rows are added
  beyond that: more rows make the step longer for every sequence in it, to speed up one. Tried with
  8 clients (4 or 8 more rows of guesses where their expected yield paid for their cost, 80 % right):
  120 tok/s instead of 129, as the sequences that do not repeat themselves waited longer per token.

Every generating step's first guess is scored against the token that comes next, whether it was decoded
or not (a new sequence starts confident; one that misses often stops guessing until its text turns
repetitive). The guess is what followed the most recent earlier occurrence of the context's last two
tokens (else of its last token), as in llama.cpp's lookup decoding and "prompt lookup" speculative
decoding. It is often right where text repeats itself or its prompt (code, edits, extraction, lists, a
small model's loops), and costs O(1) per token: the tables are built the first time a guess is asked
for, then kept up to date.

Where a sequence's own context has no follower for its last two tokens, the guess comes from an
:class:`NgramPool` shared by every request of the model (as llama.cpp's n-gram cache): what followed the
last three tokens in earlier requests' prompts and answers. A chat's turns, an agent's repeated tool
output, templated answers: text that repeats across requests rather than within one. Pool guesses go
through the same success rate, so on text that repeats nowhere they stop being decoded.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["CONFIDENT", "GUESSES", "ROW_TILE", "Drafter", "NgramPool", "spare_rows"]

#: Running success rate of first guesses from which a lone row's guesses are decoded (break-even about 0.6).
CONFIDENT = 0.65
#: Guesses beside a lone row at most, each one position after the previous (see above).
GUESSES = 3
#: Rows per tile of ggml's CPU matrix kernels: steps of a multiple of this many rows waste nothing.
ROW_TILE = 4
#: Weight of the past in the running success rate (per guess).
_MEMORY = 0.8
#: Three-token contexts the shared pool remembers, at most (oldest out); about 100 bytes each.
POOL_ENTRIES = 1 << 18


class NgramPool:
    """What followed each three-token context in the model's earlier requests (decode thread only)."""

    __slots__ = ("_after3", "limit")

    def __init__(self, limit: int = POOL_ENTRIES) -> None:
        self._after3: dict[tuple[int, int, int], int] = {}
        self.limit = limit

    def feed(self, tokens: Sequence[int]) -> None:
        """Learn a finished request's prompt and answer (the newest follower of a context wins)."""
        table = self._after3
        for i in range(3, len(tokens)):
            key = (tokens[i - 3], tokens[i - 2], tokens[i - 1])
            table.pop(key, None)  # re-inserted last: the most recent uses are evicted last
            table[key] = tokens[i]
        while len(table) > self.limit:
            del table[next(iter(table))]

    def get(self, a: int, b: int, c: int) -> int | None:
        return self._after3.get((a, b, c))

    def __len__(self) -> int:
        return len(self._after3)


class Drafter:
    """Follower tables of one sequence's context, fed token by token, and how well its guesses do."""

    __slots__ = ("_after1", "_after2", "_last", "_pending", "_pool", "_prev", "_prev2", "score")

    def __init__(self, context: Sequence[int], pool: NgramPool | None = None) -> None:
        self._after1: dict[int, int] = {}
        self._after2: dict[tuple[int, int], int] = {}
        self._pool = pool
        self._prev2 = -1
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
        self._prev2, self._prev, self._last = self._prev, self._last, token

    def propose(self, limit: int = GUESSES) -> list[int]:
        """Guesses of the next ``limit`` tokens at most, each following the previous (none for a token
        never seen before).

        The first guess is scored when the next token is added, whether it was decoded or not.
        """
        prev2, prev, last = self._prev2, self._prev, self._last
        pool = self._pool
        guesses: list[int] = []
        while len(guesses) < limit:
            follower = self._after2.get((prev, last))
            if follower is None and pool is not None:
                follower = pool.get(prev2, prev, last)
            if follower is None:
                follower = self._after1.get(last)
            if follower is None:
                break
            guesses.append(follower)
            prev2, prev, last = prev, last, follower
        if guesses:
            self._pending = guesses[0]
        return guesses


def spare_rows(generating: int, chain: int, max_rows: int) -> tuple[int, int]:
    """Rows of a step of ``generating`` generating rows and nothing else, and how many of them carry
    guesses, given the best chain of ``chain`` guesses on offer.

    The step is filled up to a whole number of :data:`ROW_TILE` rows (at most ``max_rows``, itself a
    multiple of the tile), which costs nothing; the spare rows carry guesses as far as the chain goes,
    throw-away tokens after that. No tile is added for guesses: it would slow every other sequence of the
    step to speed one (see above).
    """
    if generating > max_rows:
        return generating, 0
    rows = -(-generating // ROW_TILE) * ROW_TILE
    return rows, min(rows - generating, chain)
