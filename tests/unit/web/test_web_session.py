"""Login cookie and CSRF helpers."""

from __future__ import annotations

from openzoo.api import session


def test_cookie_reads_one_value() -> None:
    header = "a=1; openzoo_csrf=tok-en; openzoo_key=k=v"
    assert session.cookie(header, "openzoo_csrf") == "tok-en"
    assert session.cookie(header, "openzoo_key") == "k=v"
    assert session.cookie(header, "missing") == ""
    assert session.cookie("", "a") == ""


def test_tokens_are_random_and_compared_exactly() -> None:
    a, b = session.new_token(), session.new_token()
    assert a != b and len(a) >= 40
    assert session.token_ok(a, a)
    assert not session.token_ok(a, b)
    assert not session.token_ok("", "")
    assert not session.token_ok(a, "")


def test_same_origin() -> None:
    host = {"host": "127.0.0.1:11434"}
    assert session.same_origin(host)
    assert session.same_origin({**host, "origin": "http://127.0.0.1:11434"})
    assert not session.same_origin({**host, "origin": "http://evil.example"})
    assert not session.same_origin({**host, "origin": "null"})
    assert session.same_origin({**host, "referer": "http://127.0.0.1:11434/ui/login"})
    assert not session.same_origin({**host, "referer": "http://127.0.0.1:9999/ui/"})


def test_cookies_are_scoped_to_the_ui_and_strict() -> None:
    value = session.set_cookie_header("openzoo_key", "secret")
    assert value == "openzoo_key=secret; Path=/ui; SameSite=Strict; HttpOnly"
    assert session.set_cookie_header("x", "", max_age=0).endswith("HttpOnly; Max-Age=0")


def test_parse_form_and_safe_next() -> None:
    assert session.parse_form(b"key=a%2Bb&csrf_token=t&next=%2Fui%2Flog&empty=") == {
        "key": "a+b", "csrf_token": "t", "next": "/ui/log", "empty": ""}
    assert session.safe_next("/ui/log?verify=1") == "/ui/log?verify=1"
    for bad in ("https://evil.example/", "//evil.example/ui/", "/api/tags", "/ui\\..", ""):
        assert session.safe_next(bad) == "/ui/"
