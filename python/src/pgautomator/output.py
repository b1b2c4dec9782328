"""Bounded capture of a step's output: the tail is kept when it is long."""

from __future__ import annotations

import threading


def to_text(data: bytes) -> str:
    """Bytes as text PostgreSQL accepts: invalid UTF-8 replaced, no NUL."""
    return data.decode("utf-8", errors="replace").replace("\x00", "\ufffd")


class TailBuffer:
    """Keeps the last `limit` bytes written and counts what was dropped.

    Also collects what arrived since the last `take_pending()` (itself
    bounded the same way) so that output can be streamed while it runs.
    Thread-safe: a reader thread writes, the executor reads.
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("limit must be positive")
        self.limit = limit
        self._data = bytearray()
        self._dropped = 0
        self._pending = bytearray()
        self._pending_dropped = 0
        self._lock = threading.Lock()

    def write(self, chunk: bytes) -> None:
        with self._lock:
            self._data += chunk
            if len(self._data) > self.limit:
                excess = len(self._data) - self.limit
                del self._data[:excess]
                self._dropped += excess
            self._pending += chunk
            if len(self._pending) > self.limit:
                excess = len(self._pending) - self.limit
                del self._pending[:excess]
                self._pending_dropped += excess

    @property
    def dropped(self) -> int:
        with self._lock:
            return self._dropped

    def text(self) -> str:
        """Everything kept, with a note of what was dropped from the start."""
        with self._lock:
            return _with_note(bytes(self._data), self._dropped)

    def take_pending(self) -> str:
        """What arrived since the last call ('' if nothing)."""
        with self._lock:
            data, dropped = bytes(self._pending), self._pending_dropped
            self._pending.clear()
            self._pending_dropped = 0
        if not data and not dropped:
            return ""
        return _with_note(data, dropped)


def _with_note(data: bytes, dropped: int) -> str:
    if not dropped:
        return to_text(data)
    # Cut at the next line start so that a partial line or character is not shown.
    newline = data.find(b"\n")
    if 0 <= newline < len(data) - 1 and newline < 4096:
        dropped += newline + 1
        data = data[newline + 1 :]
    return f"[... {dropped} bytes of output dropped ...]\n" + to_text(data)
