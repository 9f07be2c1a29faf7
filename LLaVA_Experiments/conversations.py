"""LLaVA JSON conversations: records of ``id``, ``image`` and ``conversations`` (alternating
``human`` and ``gpt`` turns); making one, reading a file of them, checking them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from LLaVA_Experiments.prompts import IMAGE_TOKEN, user_text
from rfd_common.errors import UserError


def single_turn(
    record_id: str, image: str, question: str, answer: str, **fields: Any
) -> dict[str, Any]:
    """A record of one question about ``image`` (``<image>`` put first) and its answer;
    ``fields`` go between ``image`` and ``conversations``."""
    return {
        "id": record_id,
        "image": image,
        **fields,
        "conversations": [
            {"from": "human", "value": user_text(question)},
            {"from": "gpt", "value": answer},
        ],
    }


def read_conversations(path: Path) -> list[dict[str, Any]]:
    """Read a LLaVA JSON file (a list of records); unreadable JSON is a UserError."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: conversation file not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(data, list):
        raise UserError(f"{path}: expected a JSON list of conversations")
    return data


def conversation_turns(record: dict[str, Any]) -> list[tuple[str, str]]:
    """``(user, assistant)`` pairs of a LLaVA JSON record; malformed records raise UserError.

    The first user turn gets ``<image>`` in front when it has none.
    """
    rid = record.get("id", "?")
    turns = record.get("conversations")
    if not isinstance(turns, list) or not turns:
        raise UserError(f"conversation '{rid}': no 'conversations' list")
    pairs: list[tuple[str, str]] = []
    for index in range(0, len(turns), 2):
        user = turns[index]
        reply = turns[index + 1] if index + 1 < len(turns) else None
        if not isinstance(user, dict) or user.get("from") != "human":
            raise UserError(f"conversation '{rid}': turn {index} must come from 'human'")
        if not isinstance(reply, dict) or reply.get("from") != "gpt" or not reply.get("value"):
            raise UserError(
                f"conversation '{rid}': turn {index + 1} must be an assistant ('gpt') reply"
            )
        pairs.append((str(user.get("value", "")), str(reply["value"])))
    if IMAGE_TOKEN not in pairs[0][0]:
        pairs[0] = (user_text(pairs[0][0]), pairs[0][1])
    return pairs


def validate_record(record: dict[str, Any], root: Path) -> list[tuple[str, str]]:
    """Check one LLaVA JSON record (image exists, turns alternate, has a reply)."""
    if not isinstance(record, dict):
        raise UserError(f"conversation entry {record!r} is not an object")
    if not record.get("image"):
        raise UserError(f"conversation '{record.get('id', '?')}': no 'image'")
    if not (Path(root) / str(record["image"])).is_file():
        raise UserError(
            f"conversation '{record.get('id', '?')}': image '{record['image']}' "
            f"not found under {root}"
        )
    return conversation_turns(record)


def load_dataset(data: Path, root: Path) -> list[dict[str, Any]]:
    """Read and check every conversation of ``data`` before training starts."""
    records = read_conversations(data)
    if not records:
        raise UserError(f"{data}: no conversations")
    for record in records:
        validate_record(record, root)
    return records
