"""Several messages sent at once: SendMessageBatch's limits, and one answer per message."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from botocore.exceptions import BotoCoreError, ClientError

from sluice import aws
from sluice.errors import ServiceUnavailable

# SendMessageBatch takes at most 10 messages and 256 KiB in all.
SEND_BATCH = 10
SEND_BATCH_BYTES = 256 * 1024


def send_chunks(bodies: Sequence[str]) -> Iterator[list[int]]:
    """Consecutive indexes of ``bodies`` that fit one SendMessageBatch."""
    chunk: list[int] = []
    size = 0
    for i, body in enumerate(bodies):
        length = len(body.encode("utf-8"))
        if chunk and (len(chunk) == SEND_BATCH or size + length > SEND_BATCH_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(i)
        size += length
    if chunk:
        yield chunk


def send_all(
    queue_url: str, bodies: Sequence[str], groups: Sequence[str], queue: str
) -> list[Exception | None]:
    """Send ``bodies`` (``groups[i]``: the MessageGroupId of ``bodies[i]``) in SendMessageBatch
    calls; one answer per body: None when it was sent, else why not: a ServiceUnavailable naming
    ``queue`` (the queue refused it, or its call failed in a way a retry may mend, as
    ``aws.unavailable_as_503`` says), or the call's own error."""
    answers: list[Exception | None] = [None] * len(bodies)
    for chunk in send_chunks(bodies):
        entries = [{"Id": str(i), "MessageBody": bodies[i], "MessageGroupId": groups[i]} for i in chunk]
        try:
            with aws.unavailable_as_503(queue):
                response = aws.sqs().send_message_batch(QueueUrl=queue_url, Entries=entries)  # type: ignore[arg-type]
        except (ServiceUnavailable, BotoCoreError, ClientError) as exc:
            answers[chunk[0] : chunk[-1] + 1] = [exc] * len(chunk)
            continue
        for failed in response.get("Failed", []):
            reason = f"{failed.get('Code')}: {failed.get('Message', '')}"
            refused = ServiceUnavailable(f"The {queue} refused a message ({reason}); retry shortly")
            answers[int(failed["Id"])] = refused
    return answers
