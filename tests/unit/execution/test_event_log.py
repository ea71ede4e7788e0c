"""The event log's hash: the SHA-256 of its lines, whatever the batches they were hashed in."""

from __future__ import annotations

import hashlib

from quantdesk.execution import EventLog


def test_the_hash_is_that_of_every_line_in_order_across_batch_boundaries() -> None:
    lines = [f"kind {i} {'x' * (i % 7)}" for i in range(1_000)]  # many batches and a partial one
    log = EventLog(keep=True)
    expected = hashlib.sha256()
    for n, line in enumerate(lines, start=1):
        log.record(line)
        expected.update(f"{line}\n".encode())
        if n in (1, 63, 64, 65, 999):  # reading the hash mid-way must not change what follows
            assert log.sha256 == expected.hexdigest()
    assert log.sha256 == expected.hexdigest()
    assert log.count == 1_000 and log.lines == [f"{line}\n" for line in lines]
