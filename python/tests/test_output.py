"""The bounded output buffer keeps the tail."""

from __future__ import annotations

from pgautomator.output import TailBuffer, to_text


def test_short_output_is_kept_whole() -> None:
    buf = TailBuffer(100)
    buf.write(b"hello\n")
    buf.write(b"world\n")
    assert buf.text() == "hello\nworld\n"
    assert buf.dropped == 0


def test_long_output_keeps_the_tail_and_says_what_was_dropped() -> None:
    buf = TailBuffer(1024)
    for i in range(1000):
        buf.write(f"line {i:04d}\n".encode())
    text = buf.text()
    assert text.startswith("[... ")
    assert "bytes of output dropped ...]\n" in text
    assert text.endswith("line 0999\n")
    body = text.split("]\n", 1)[1]
    assert len(body.encode()) <= 1024
    # Cut at a line start: no partial line after the note.
    assert body.startswith("line ")
    dropped = int(text.split()[1])
    assert dropped + len(body.encode()) == 1000 * len(b"line 0000\n")


def test_pending_is_what_came_since_the_last_take() -> None:
    buf = TailBuffer(100)
    assert buf.take_pending() == ""
    buf.write(b"a\n")
    assert buf.take_pending() == "a\n"
    buf.write(b"b\n")
    assert buf.take_pending() == "b\n"
    assert buf.text() == "a\nb\n"


def test_text_is_safe_for_postgres() -> None:
    assert to_text(b"a\x00b\xffc") == "a\ufffdb\ufffdc"
