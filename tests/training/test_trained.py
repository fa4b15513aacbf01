"""The app's saved models: a folder is read only with a config and a sound training record."""
import json

import pytest

from cllm.training.cards import RECORD_SCHEMA, TRAINING_RECORD
from cllm.training.trained import MAX_RECORD_BYTES, read_trained


def _folder(tmp_path, record: bytes):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / TRAINING_RECORD).write_bytes(record)
    return tmp_path


def test_a_sound_record_is_read(tmp_path):
    record = {"schema": RECORD_SCHEMA, "base_model": "tiny-python", "n": 16, "after": {"tpf": 2.5}}
    model = read_trained(_folder(tmp_path, json.dumps(record).encode()))
    assert (model.base_model, model.n) == ("tiny-python", 16)


@pytest.mark.parametrize("record, message", [
    (b"x" * (MAX_RECORD_BYTES + 1), "larger than 64 KiB"),
    (b"\xff\xfe{}", "not UTF-8"),
    (b"{not json", "not valid JSON"),
    (json.dumps({"schema": RECORD_SCHEMA, "n": 16}).encode(), "not a training record"),
])
def test_a_bad_record_is_one_clear_error(tmp_path, record, message):
    with pytest.raises(ValueError, match=message):
        read_trained(_folder(tmp_path, record))
