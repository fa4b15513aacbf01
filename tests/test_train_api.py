"""The Train tab's endpoints through gradio_client: /collect, /train, /stop, /save_model, /train_status.
Two clients are two visitors: the second is told who is busy (not an error), decoding goes on during
training, Stop ends it cleanly, and bad inputs come back as clear errors."""
from __future__ import annotations

import time

import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from cllm.training.trained import list_trained

PROMPTS = ["def add(a, b):", "for i in range(", "class Point:", "def f(x):", "print(", "import os", "while True:",
           "if x > 0:", "def sub(a, b):", "for j in range("]


def visitor(app_server) -> Client:
    return Client(app_server[0], verbose=False)


def collect(client, base, prompts_file, who="Ada"):
    return client.predict(who, base, "uploaded file", handle_file(str(prompts_file)), 8, 4, 8, api_name="/collect")


def train(client, budget="steps", amount=4, every=2):
    return client.predict("global", 1.0, 3e-3, budget, amount, every, 8, api_name="/train")


@pytest.fixture()
def prompts_file(tmp_path):
    path = tmp_path / "prompts.txt"
    path.write_text("\n".join(PROMPTS) + "\n")
    return path


def test_collect_train_save_and_busy(app_server, train_slot, tiny_pair, prompts_file):
    ada, bob = visitor(app_server), visitor(app_server)
    done = collect(ada, tiny_pair[0], prompts_file)
    assert "Collected" in done and "8 / 8 prompts" in done and "Now press <b>Train</b>" in done
    busy = collect(bob, tiny_pair[0], prompts_file, who="Bob")
    assert "Busy: Ada is holding collected data" in busy  # a message, not an error
    assert "Busy: Ada" in train(bob)[0] and "Busy: Ada" in bob.predict(api_name="/train_status")
    with pytest.raises(AppError, match="nothing to save yet"):
        ada.predict("too-early", api_name="/save_model")

    status, loss_plot, tpf_plot, grid = train(ada)
    assert "Trained" in status and "4 steps" in status and "After step 4" in grid
    assert "Busy: Ada" in bob.predict("bob-cllm", api_name="/save_model")  # not Bob's to save
    assert "Saved **api-cllm**" in ada.predict("api-cllm", api_name="/save_model")
    [model] = [m for m in list_trained(app_server[2]) if m.name == "api-cllm"]  # other tests save there too
    assert (model.name, model.base_model, model.n) == ("api-cllm", tiny_pair[0], 4)
    assert "Collected" in collect(bob, tiny_pair[0], prompts_file, who="Bob")  # saved: the slot is free


def test_decoding_goes_on_while_training_and_stop_ends_it(app_server, train_slot, tiny_pair, prompts_file):
    ada, bob = visitor(app_server), visitor(app_server)
    collect(ada, tiny_pair[0], prompts_file)
    job = ada.submit("global", 1.0, 3e-3, "minutes", 10, 1, 8, api_name="/train")
    deadline = time.monotonic() + 300
    while not train_slot.view("").history:  # training has taken steps
        assert time.monotonic() < deadline and not job.done()
        time.sleep(0.2)
    html = bob.predict("def f(x):", *tiny_pair, 4, 8, 0, "prompt", api_name="/run")[0]
    assert "✓ identical to greedy" in html and train_slot.view("").phase == "training"
    assert bob.predict(api_name="/stop").startswith("Busy: Ada is training")  # only Ada can stop it
    assert ada.predict(api_name="/stop").startswith("Stopping")
    status = job.result(timeout=300)[0]
    assert "stopped by stop request" in status and "Trained" in status


@pytest.mark.parametrize("name, data, message", [
    ("empty.txt", b"", "holds no prompts"),
    ("latin1.txt", "caf\xe9\n".encode("latin-1"), "not UTF-8"),
])
def test_bad_prompt_files(app_server, train_slot, tiny_pair, tmp_path, name, data, message):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(AppError, match=message):
        collect(visitor(app_server), tiny_pair[0], path)


def test_bad_budget_and_save_name(app_server, train_slot):
    client = visitor(app_server)
    with pytest.raises(AppError, match="budget in minutes must be more than 0"):
        train(client, "minutes", 0)
    with pytest.raises(AppError, match="budget in steps must be more than 0"):
        train(client, "steps", 0)
    with pytest.raises(AppError, match="rounds must be"):
        client.predict("global", 1.0, 3e-3, "steps", 4, 2, 8, 0, api_name="/train")
    with pytest.raises(AppError, match="not a valid name"):
        client.predict("../escape", api_name="/save_model")
    with pytest.raises(AppError, match="collect training data first"):
        train(client)
    assert "The training slot is free: nobody is training." in client.predict(api_name="/train_status")


def test_a_visitor_who_leaves_does_not_hold_the_slot(app_server, train_slot, tiny_pair, prompts_file):
    """Ada starts training, then her page goes away (the event is cancelled): nobody polls any more, so the
    training stops itself and, once it is saved or its hold expires, Bob can start."""
    train_slot.orphan_seconds = 2.0
    ada, bob = visitor(app_server), visitor(app_server)
    collect(ada, tiny_pair[0], prompts_file)
    job = ada.submit("global", 1.0, 3e-3, "minutes", 10, 1, 8, api_name="/train")
    deadline = time.monotonic() + 300
    while not train_slot.view("").history:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    job.cancel()
    while train_slot.view("").phase == "training":
        assert time.monotonic() < deadline, "a training nobody follows must stop"
        time.sleep(0.5)
    view = train_slot.view("")
    assert view.phase == "trained" and view.result.stopped_by == "stop request"
    assert "Busy: Ada is holding an unsaved model" in bob.predict(api_name="/train_status")
    train_slot.hold_seconds = 0  # her unsaved model waits for her only so long
    assert "Collected" in collect(bob, tiny_pair[0], prompts_file, who="Bob")
