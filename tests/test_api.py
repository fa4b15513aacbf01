"""The app's named endpoints through gradio_client, as a script would use them, against a live server."""
import threading

import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from cllm.race import load_race


@pytest.fixture(scope="module")
def client(app_server):
    return Client(app_server[0], verbose=False)


def run(client, pair, prompt="def f(x):", n=4, max_new=16):
    return client.predict(prompt, *pair, n, max_new, 0, "prompt", api_name="/run")


def test_run_save_load(client, tiny_pair, app_server):
    html, status, path = run(client, tiny_pair)
    assert html.count('class="cr-panel"') == 2 and "✓ identical to greedy" in html and "**CLLM**" in status
    race = load_race(path)
    assert race.base.meta.model == tiny_pair[0] and race.cllm.matches_ar
    assert "Saved as **api-run**" in client.predict("api-run", api_name="/save")  # the session's last run
    assert (app_server[1] / "api-run.json").is_file()
    with pytest.raises(AppError, match="already exists"):
        client.predict("api-run", api_name="/save")
    html, status, = client.predict("api-run", api_name="/load")[:2]
    assert 'data-ticks="' in html and "tokens/pass" in status
    html = client.predict(handle_file(path), api_name="/upload")[0]
    assert html.count('class="cr-panel"') == 2


@pytest.mark.parametrize("args, message", [
    (("", 4, 16), "the prompt is empty"),
    (("x", 0, 16), "block size n must be"),
    (("x", 4, 10**9), "max new tokens must be"),
])
def test_bad_input_then_still_serving(client, tiny_pair, args, message):
    prompt, n, max_new = args
    with pytest.raises(AppError, match=message):
        run(client, tiny_pair, prompt, n, max_new)
    with pytest.raises(AppError, match="no model folder"):
        run(client, ("/no/such/model", tiny_pair[1]))
    with pytest.raises(AppError, match="not a valid name"):
        client.predict("../../x", api_name="/load")
    assert "cr-panel" in run(client, tiny_pair, max_new=4)[0]


def test_bad_upload(client, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(AppError, match="not valid JSON"):
        client.predict(handle_file(str(bad)), api_name="/upload")


def test_two_visitors_at_once(app_server, tiny_pair):
    """Two sessions submit together: model work is queued one at a time, and both get their own result."""
    results, errors = {}, []

    def visit(prompt):
        try:
            results[prompt] = run(Client(app_server[0], verbose=False), tiny_pair, prompt=prompt, max_new=24)
        except Exception as e:  # surfaced below; a thread cannot fail the test itself
            errors.append(e)

    threads = [threading.Thread(target=visit, args=(p,)) for p in ("class A:", "import os")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors and set(results) == {"class A:", "import os"}
    for prompt, (html, _, path) in results.items():
        assert load_race(path).prompt == prompt and f"<pre>{prompt}</pre>" in html
