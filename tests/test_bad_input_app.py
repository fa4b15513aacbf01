"""Bad-input sweep of the app through gradio_client against the live server (tests/conftest.py app_server):
every hostile value of every named endpoint is a Gradio error with a clear message, nothing saved is changed,
and the server keeps serving. The README's reliability table lists these cases."""
from __future__ import annotations

import copy
import json
import shutil

import httpx
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from cllm import models
from cllm.race import Race, list_gallery, race_to_dict
from cllm.trajectory import Block, RunMeta, Trajectory
from cllm.ui.stats_tab import UPLOAD



def small_race() -> dict:
    meta = RunMeta(model="m", n=4, max_new_tokens=8, vocab_size=50, eos_token_id=3)
    blocks = [Block([[1, 2, 3, 4], [5, 6, 7, 8], [5, 6, 7, 8]], [0.1, 0.1]), Block([[1, 1], [9, 9]], [0.2])]
    traj = Trajectory(meta=meta, prompt_ids=[1, 2], blocks=blocks, prompt="p", token_text={1: "a", 9: "b"})
    return json.loads(json.dumps(race_to_dict(Race(traj, copy.deepcopy(traj), "t"))))


def broken(change) -> bytes:
    race = small_race()
    change(race)
    return json.dumps(race).encode()


RACE_FILES = {  # name -> (bytes, part of the message)
    "empty.json": (b"", "empty.json is not valid JSON"),
    "nonutf8.json": (b"\xff\xfe" + json.dumps(small_race()).encode(), "is not UTF-8 text"),
    "notjson.json": (b"{not json", "is not valid JSON (line 1, column 2"),
    "deep.json": (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    "list.json": (b"[]", "a race file must hold a JSON object"),
    "trajectory.json": (json.dumps(small_race()["base"]).encode(), "not a race file (schema should be 'cllm-race'"),
    "negative-id.json": (broken(lambda r: r["base"].update(prompt_ids=[-1])), "token id -1, outside the vocabulary"),
    "huge-id.json": (broken(lambda r: r["base"].update(prompt_ids=[10**30])), "outside the vocabulary [0, 50)"),
    "many-blocks.json": (broken(lambda r: r["base"].update(blocks=r["base"]["blocks"][:1] * 5000)), "1 to 4096 blocks"),
    "giant-list.json": (broken(lambda r: r["cllm"].update(prompt_ids=[1] * 300_000)), "more than 200000 entries"),
    "wrong-type.json": (broken(lambda r: r["base"]["meta"].update(vocab_size="50")), "meta.vocab_size must be an integer"),
    "bool-id.json": (broken(lambda r: r["base"].update(prompt_ids=[True])), "prompt_ids must hold integers only"),
    "title-list.json": (broken(lambda r: r.update(title=["x"])), "title must be a string"),
    "other-prompts.json": (broken(lambda r: r["cllm"].update(prompt="q")), "different prompts"),
    "nan.json": (json.dumps(small_race()).replace('"prefill_seconds": 0.0', '"prefill_seconds": NaN').encode(),
                 "prefill_seconds must be a non-negative number"),
    "bigint.json": (json.dumps(small_race()).replace('"version": 1', '"version": ' + "9" * 5000, 1).encode(),
                    "holds a number too long to be read"),
    "over-16MiB.json": (b" " * (17 * 2**20) + b"{}", "the limit is 16 MiB"),
}
PROMPT_FILES = {
    "nonutf8.jsonl": (b'\xff\xfe{"prompt": "x"}\n', "is not UTF-8 text"),
    "empty.jsonl": (b"", "holds no prompts"),
    "deep.jsonl": (b"[" * 100_000 + b"]" * 100_000 + b"\n", "line 1 is not JSON"),
    "notjson.jsonl": (b"def f(x):\n", "line 1 is not JSON"),
    "noprompt.jsonl": (b'{"text": "x"}\n', 'needs a non-empty string field "prompt"'),
    "huge.jsonl": ((json.dumps({"prompt": "x" * 1000}) + "\n").encode() * 6000, "larger than 5 MiB"),
    "surrogate.jsonl": (b'{"prompt": "a\\ud800b"}\n', "line 1's prompt is not valid text"),
    "toolong.jsonl": (b'{"prompt": "x"}\n' + (json.dumps({"prompt": "def f(x):\n" * 60}) + "\n").encode(),
                      "prompt 2 of 2: prompt (420 tokens) + max_new_tokens (4) exceeds the model's context"),
    "nonutf8.txt": (b"\xff\xfedef\n", "is not UTF-8 text"),
}


@pytest.fixture(scope="module")
def hostile(tmp_path_factory, tiny_model_dir, app_server):
    """Hostile uploads and model folders; two unreadable files in the gallery (removed afterwards)."""
    root = tmp_path_factory.mktemp("hostile-app")
    for name, (data, _) in {**RACE_FILES, **PROMPT_FILES}.items():
        (root / name).write_bytes(data)
    (root / "ok.jsonl").write_text('{"prompt": "def f(x):"}\n{"prompt": "class A:"}\n')
    (root / "race.txt").write_text(json.dumps(small_race()))
    (root / "notok").mkdir()
    shutil.copy(tiny_model_dir / "config.json", root / "notok")
    (root / "noconfig").mkdir()
    shutil.copy(tiny_model_dir / "tokenizer.json", root / "noconfig")
    gallery = app_server[1]
    planted = {"broken-file": b'{"broken', "bigint-file": RACE_FILES["bigint.json"][0]}
    for name, data in planted.items():
        (gallery / f"{name}.json").write_bytes(data)
    yield root
    for name in planted:
        (gallery / f"{name}.json").unlink()


@pytest.fixture(scope="module")
def client(app_server):
    return Client(app_server[0], verbose=False)


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setattr(models, "hub_reachable", lambda timeout=2.0: False)  # the server runs in this process


def run_args(pair, **change):
    args = {"prompt": "def f(x):", "base": pair[0], "cllm": pair[1], "n": 4, "max_new": 8, "seed": 0, "init": "prompt"}
    return list((args | change).values())


RUN_CASES = [  # changes to a good /run call -> part of the message
    ({"prompt": None}, "the prompt is empty"), ({"prompt": ""}, "the prompt is empty"),
    ({"prompt": " \n\t"}, "the prompt is empty"), ({"prompt": "x" * 20_001}, "the limit is 20000"),
    ({"prompt": "def f(x):\n" * 60}, "exceeds the model's context of 128 tokens"),
    ({"base": None}, "no base model given"), ({"cllm": "  "}, "no CLLM model given"),
    ({"base": "nobody/no-such-model"}, "hub is unreachable (offline)"),
    ({"base": "/no/such/folder"}, "no model folder at '/no/such/folder'"),
    ({"base": "{hostile}/notok"}, "holds no tokenizer"), ({"cllm": "{hostile}/noconfig"}, "holds no config.json"),
    ({"base": "x" * 501}, "longer than 500 characters"),
    ({"n": None}, "block size n is empty"), ({"n": ""}, "block size n is empty"),
    ({"n": "abc"}, "block size n must be a whole number, got 'abc'"), ({"n": [4]}, "block size n must be a whole number"),
    ({"n": 0}, "from 1 to 64, got 0"), ({"n": 65}, "from 1 to 64, got 65"), ({"n": 1.5}, "from 1 to 64, got 1.5"),
    ({"n": 1e300}, "block size n must be a whole number from 1 to 64, got 1e+300"),
    ({"max_new": 0}, "max new tokens must be a whole number from 1 to 512"), ({"max_new": 513}, "from 1 to 512"),
    ({"max_new": "12abc"}, "max new tokens must be a whole number, got '12abc'"),
    ({"seed": -1}, "seed must be a whole number from 0 to 4294967295"), ({"seed": 2**32}, "from 0 to 4294967295"),
    ({"seed": "abc"}, "seed must be a whole number, got 'abc'"),
    ({"init": "bogus"}, "not in the list of choices"),
]


@pytest.mark.parametrize("change, message", RUN_CASES, ids=[str(c)[:40] for c, _ in RUN_CASES])
def test_run_rejects(client, tiny_pair, hostile, change, message):
    change = {k: v.replace("{hostile}", str(hostile)) if isinstance(v, str) else v for k, v in change.items()}
    with pytest.raises(AppError, match=_escaped(message)):
        client.predict(*run_args(tiny_pair, **change), api_name="/run")


def test_save_and_load_reject_bad_names_and_keep_what_is_saved(app_server, tiny_pair, hostile):
    gallery = app_server[1]
    client = Client(app_server[0], verbose=False)  # a fresh session: nothing run yet
    with pytest.raises(AppError, match="nothing to save yet"):
        client.predict("x1", api_name="/save")
    with pytest.raises(AppError, match="nothing to save yet"):
        client.predict("x2", api_name="/save_upload")
    client.predict(*run_args(tiny_pair), api_name="/run")
    assert "Saved as **keep-me**" in client.predict("keep-me", api_name="/save")
    kept = (gallery / "keep-me.json").read_bytes()
    before = sorted(p.name for p in gallery.iterdir())
    for name in [None, "", "   ", "../x", "/tmp/x", "a/b", "a\\b", ".hidden", "..", "a" * 65, "héllo", "a\x00", "a\nb"]:
        with pytest.raises(AppError, match="not a valid name"):
            client.predict(name, api_name="/save")
    with pytest.raises(AppError, match="a saved run named 'keep-me' already exists"):
        client.predict("keep-me", api_name="/save")
    assert (gallery / "keep-me.json").read_bytes() == kept and sorted(p.name for p in gallery.iterdir()) == before
    for name, message in [(None, "not a valid name"), ("../../etc/passwd", "not a valid name"),
                          ("/etc/passwd", "not a valid name"), ("nope", "no saved run named 'nope'"),
                          ("broken-file", "broken-file.json is not valid JSON"),
                          ("bigint-file", "holds a number too long to be read")]:
        with pytest.raises(AppError, match=_escaped(message)):
            client.predict(name, api_name="/load")
    listed = {e.name: e.error for e in list_gallery(gallery)}  # the listing survives unreadable files
    assert listed["keep-me"] == "" and "not valid JSON" in listed["broken-file"] and "too long" in listed["bigint-file"]


@pytest.mark.parametrize("name", sorted(RACE_FILES))
def test_upload_rejects_hostile_race_files(client, hostile, app_server, name):
    before = sorted(p.name for p in app_server[1].iterdir())
    with pytest.raises(AppError, match=_escaped(RACE_FILES[name][1])):
        client.predict(handle_file(str(hostile / name)), api_name="/upload")
    assert sorted(p.name for p in app_server[1].iterdir()) == before


def test_upload_other_hostile_values(client, hostile, app_server):
    with pytest.raises(AppError, match="no file received"):
        client.predict(None, api_name="/upload")
    with pytest.raises(AppError, match="Invalid file type"):
        client.predict(handle_file(str(hostile / "race.txt")), api_name="/upload")
    # A server path instead of an upload: Gradio serves only its own upload folder, and nothing is read.
    api = f"{app_server[0]}gradio_api/call/upload"
    gallery_file = next(app_server[1].glob("*.json"))
    for path in ("/etc/passwd", str(gallery_file)):
        event = httpx.post(api, json={"data": [{"path": path, "meta": {"_type": "gradio.FileData"}}]}, timeout=60)
        answer = httpx.get(f"{api}/{event.json()['event_id']}", timeout=60).text
        assert answer.startswith("event: error") and "cr-panel" not in answer and "root:" not in answer
    # Bigger than the upload limit (20 MB): refused by the server before it is stored.
    big = httpx.post(f"{app_server[0]}gradio_api/upload", files={"files": ("big.json", b" " * (21 * 10**6))}, timeout=120)
    assert big.status_code == 413


@pytest.mark.parametrize("name", sorted(PROMPT_FILES))
def test_stats_dataset_rejects_hostile_prompt_files(client, tiny_pair, hostile, name):
    with pytest.raises(AppError, match=_escaped(PROMPT_FILES[name][1])):
        client.predict(*tiny_pair, UPLOAD, handle_file(str(hostile / name)), 2, 4, 4, api_name="/stats_dataset")


@pytest.mark.parametrize("args, message", [
    ((UPLOAD, None, 2, 4, 4), "choose a prompt file to upload"),
    (("bogus", None, 2, 4, 4), "not in the list of choices"),
    ((UPLOAD, "ok", 0, 4, 4), "number of prompts must be a whole number from 1 to 200"),
    ((UPLOAD, "ok", 201, 4, 4), "number of prompts must be a whole number from 1 to 200"),
    ((UPLOAD, "ok", "abc", 4, 4), "number of prompts must be a whole number, got 'abc'"),
    ((UPLOAD, "ok", 2, 0, 4), "block size n must be a whole number from 1 to 64"),
    ((UPLOAD, "ok", 2, 4, 10**6), "max new tokens must be a whole number from 1 to 512"),
])
def test_stats_dataset_rejects_bad_settings(client, tiny_pair, hostile, args, message):
    source, upload, *rest = args
    upload = handle_file(str(hostile / "ok.jsonl")) if upload == "ok" else upload
    with pytest.raises(AppError, match=_escaped(message)):
        client.predict(*tiny_pair, source, upload, *rest, api_name="/stats_dataset")
    with pytest.raises(AppError, match="no base model given"):
        client.predict("", tiny_pair[1], UPLOAD, handle_file(str(hostile / "ok.jsonl")), 2, 4, 4, api_name="/stats_dataset")


def test_stats_run_and_sweep_reject_bad_input(app_server, tiny_pair, hostile):
    client = Client(app_server[0], verbose=False)
    with pytest.raises(AppError, match="no run yet"):
        client.predict(api_name="/stats_run")
    ok = handle_file(str(hostile / "ok.jsonl"))
    with pytest.raises(AppError, match="pick at least one block size n"):
        client.predict(*tiny_pair, UPLOAD, ok, 1, [], 4, api_name="/stats_sweep")
    with pytest.raises(AppError, match="not in the list of choices"):
        client.predict(*tiny_pair, UPLOAD, ok, 1, ["100000"], 4, api_name="/stats_sweep")
    with pytest.raises(AppError, match="max new tokens must be a whole number"):
        client.predict(*tiny_pair, UPLOAD, ok, 1, ["4"], 0, api_name="/stats_sweep")


def test_still_serving_after_the_sweep(client, tiny_pair):
    html, status, path = client.predict(*run_args(tiny_pair), api_name="/run")
    assert html.count('class="cr-panel"') == 2 and "same text as greedy" in status and path


def _escaped(message: str) -> str:
    import re
    return re.escape(message)
