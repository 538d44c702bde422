"""Stop-string holdback and UTF-8 assembly: the text rules between sampled tokens and TextChunks."""

from __future__ import annotations

import pytest

from openzoo.runtime.llamacpp.stops import StopMatcher, Utf8Assembler


def feed_all(matcher: StopMatcher, pieces: list[str]) -> tuple[str, str | None]:
    """Feed pieces until a stop string matches; return the shown text and the stop (if any)."""
    shown = []
    for piece in pieces:
        res = matcher.feed(piece)
        shown.append(res.text)
        if res.stop is not None:
            return "".join(shown), res.stop
    shown.append(matcher.flush())
    return "".join(shown), None


class TestStopMatcher:
    def test_no_stops_passes_text_through(self) -> None:
        m = StopMatcher(())
        assert m.feed("hello").text == "hello"
        assert m.flush() == ""

    def test_stop_inside_one_piece_cuts_it_and_everything_after(self) -> None:
        m = StopMatcher(("###",))
        res = m.feed("abc###def")
        assert (res.text, res.stop) == ("abc", "###")

    def test_stop_split_over_pieces_is_never_shown(self) -> None:
        text, stop = feed_all(StopMatcher(("</end>",)), ["Hello <", "/e", "nd> trailing"])
        assert (text, stop) == ("Hello ", "</end>")

    def test_possible_prefix_is_held_back(self) -> None:
        m = StopMatcher(("STOP",))
        assert m.feed("go ST").text == "go "
        assert m.held == "ST"

    def test_false_alarm_is_released(self) -> None:
        m = StopMatcher(("STOP",))
        assert m.feed("ST").text == ""
        assert m.feed("ART").text == "START"

    def test_flush_returns_held_tail_when_generation_ends(self) -> None:
        m = StopMatcher(("STOP",))
        assert m.feed("the end ST").text == "the end "
        assert m.flush() == "ST"
        assert m.flush() == ""

    def test_earliest_stop_wins(self) -> None:
        m = StopMatcher(("world", "lo"))
        res = m.feed("hello world")
        assert (res.text, res.stop) == ("hel", "lo")

    def test_overlapping_prefix_keeps_longest_candidate(self) -> None:
        # "aab" could still become "aab" + "c": hold all of it, then release when it cannot.
        m = StopMatcher(("aabc",))
        assert m.feed("xaab").text == "x"
        res = m.feed("aabc")
        assert (res.text, res.stop) == ("aab", "aabc")

    def test_stop_at_start(self) -> None:
        res = StopMatcher(("\n",)).feed("\nrest")
        assert (res.text, res.stop) == ("", "\n")

    def test_empty_stop_strings_are_ignored(self) -> None:
        m = StopMatcher(("",))
        assert m.feed("abc").text == "abc"

    def test_feeding_after_stop_is_an_error(self) -> None:
        m = StopMatcher(("x",))
        m.feed("x")
        with pytest.raises(RuntimeError):
            m.feed("y")

    @pytest.mark.parametrize("split", range(1, 12))
    def test_any_split_gives_same_result(self, split: int) -> None:
        full = "abc <|im_end|> zzz"
        text, stop = feed_all(StopMatcher(("<|im_end|>",)), [full[:split], full[split:]])
        assert (text, stop) == ("abc ", "<|im_end|>")

    def test_char_by_char_without_stop_reassembles_text(self) -> None:
        full = "a <b <c> d"
        text, stop = feed_all(StopMatcher(("<end>",)), list(full))
        assert (text, stop) == (full, None)


class TestUtf8Assembler:
    def test_ascii_passes_through(self) -> None:
        assert Utf8Assembler().feed(b"abc") == "abc"

    def test_character_split_over_tokens_waits_for_all_bytes(self) -> None:
        data = "é€😀".encode()
        a = Utf8Assembler()
        out = [a.feed(data[i : i + 1]) for i in range(len(data))]
        assert "".join(out) == "é€😀"
        # nothing partial is ever returned: each output is empty or whole characters
        assert out[0] == "" and out[1] == "é"
        assert out[-1] == "😀" and all(o == "" for o in out[-4:-1])

    def test_pending_reports_partial_character(self) -> None:
        a = Utf8Assembler()
        a.feed("€".encode()[:2])
        assert a.pending
        assert a.feed("€".encode()[2:]) == "€"
        assert not a.pending

    def test_invalid_bytes_become_replacement_character(self) -> None:
        assert Utf8Assembler().feed(b"a\xffb") == "a\ufffdb"

    def test_flush_replaces_dangling_partial_character(self) -> None:
        a = Utf8Assembler()
        assert a.feed(b"ok\xe2\x82") == "ok"
        assert a.flush() == "\ufffd"

    def test_combined_with_stop_matcher(self) -> None:
        # A stop string made of multi-byte characters arriving a byte at a time.
        stop = "→END"
        data = f"x {stop} y".encode()
        a, m = Utf8Assembler(), StopMatcher((stop,))
        shown, hit = "", None
        for i in range(len(data)):
            res = m.feed(a.feed(data[i : i + 1]))
            shown += res.text
            if res.stop:
                hit = res.stop
                break
        assert (shown, hit) == ("x ", stop)
