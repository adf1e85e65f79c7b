"""What a store records for a dead letter (``persistence.base.dead_letter_values``): a
payload whose JSON encoding is over 64 KiB is kept as an excerpt with its size, and the
excerpt itself stays within the cap whatever the payload holds."""

from __future__ import annotations

from typing import Any

from ruvon_workers.persistence.base import DEAD_LETTER_PAYLOAD_MAX, dead_letter_values
from ruvon_workers.utils.serialization import dumps_bytes


def _payload_of_size(size: int) -> dict[str, Any]:
    return {"blob": "b" * (size - len(dumps_bytes({"blob": ""})))}


def test_a_dead_letter_payload_up_to_64_kib_is_kept_whole() -> None:
    payload = _payload_of_size(DEAD_LETTER_PAYLOAD_MAX)
    assert dead_letter_values("t", None, "r", payload)[3] == payload
    capped = dead_letter_values("t", None, "r", _payload_of_size(DEAD_LETTER_PAYLOAD_MAX + 1))[3]
    assert capped["truncated"] is True and capped["size"] == DEAD_LETTER_PAYLOAD_MAX + 1
    assert capped["excerpt"].startswith('{"blob":"bbb')
    assert DEAD_LETTER_PAYLOAD_MAX - 100 < len(dumps_bytes(capped)) <= DEAD_LETTER_PAYLOAD_MAX


def test_an_excerpt_of_escapes_and_multibyte_text_stays_within_the_cap() -> None:
    # Quotes, NUL escapes and 4-byte characters all grow when the excerpt is encoded; the
    # excerpt is cut to fit, no shorter than it must be.
    for blob in ('"' * 100_000, "\x00" * 100_000, "\U0001f600" * 50_000, "\\" * 90_000):
        capped = dead_letter_values(None, None, "r", {"blob": blob})[3]
        assert capped["size"] == len(dumps_bytes({"blob": blob}))
        assert DEAD_LETTER_PAYLOAD_MAX - 100 < len(dumps_bytes(capped)) <= DEAD_LETTER_PAYLOAD_MAX
        assert "\x00" not in capped["excerpt"] and capped["excerpt"].startswith('{"blob":"')
