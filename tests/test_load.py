"""Load: the app on loopback, N concurrent gradio_client visitors calling /run in a loop for a bounded time.
Prints requests served, errors (must be 0), median / p95 / max latency and the server's RSS before and after.

    OMP_NUM_THREADS=1 python tests/test_load.py --seconds 300                      # the bundled pair
    OMP_NUM_THREADS=1 python tests/test_load.py --base runs/x --cllm runs/y --seconds 60
    OMP_NUM_THREADS=1 python tests/test_load.py --base smollm2-135m --cllm smollm2-135m-cllm --shipped 6 --think 15

Latency is what a visitor waits: model work runs one request at a time (cllm.ui.model_worker), so with 8
visitors on live prompts most of it is the line. It is reported twice: until the whole race is checked against
greedy decoding, and until a race is on screen (the first block plays while the rest decodes). A live visitor
asks for a held-out prompt with a seed no request used before; the server reuses the greedy output of a prompt
it checked before (explore_tab.GREEDY), which `--new-prompts` rules out by making every live prompt new.
`--shipped K` makes K of the visitors press Run on the pair's shipped races with their recorded settings (as a
visitor clicking an example does): those are served from the gallery without waiting for the models, and their
latency is reported apart from the live ones'. `pytest -m slow tests/test_load.py` runs it briefly on the tiny
fixtures.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
MAX_SECONDS = 300  # the bound: at most 5 minutes of load
POLL_SECONDS = 0.1  # how often a visitor looks for a race on screen (an answer's first race panel)
RACE_PANEL = 'class="cr-panel"'  # one per side of a race in /run's player HTML
# Gradio's launch() probes its own URL with a 3 s timeout and refuses to start when that fails, which a
# busy CPU can cause; the probe only guards against unreachable localhost (notebooks), so the runner skips it.
SERVE = ("import sys, app; app.serve(warm_up=False, server_name='127.0.0.1', server_port=int(sys.argv[1]), "
         "_frontend=False)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mib(pid: int) -> float:
    """Resident memory of a process (Linux /proc; psutil elsewhere)."""
    status = Path(f"/proc/{pid}/status")
    if status.exists():
        line = next(l for l in status.read_text().splitlines() if l.startswith("VmRSS:"))
        return int(line.split()[1]) / 1024
    import psutil
    return psutil.Process(pid).memory_info().rss / 2**20


def start_server(port: int, gallery: str, timeout: float = 900) -> subprocess.Popen:
    env = os.environ | {"CLLM_GALLERY_DIR": gallery, "PYTHONUNBUFFERED": "1"}
    server = subprocess.Popen([sys.executable, "-c", SERVE, str(port)], cwd=REPO, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    import httpx
    deadline = time.time() + timeout
    while time.time() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited: {server.stderr.read()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/config", timeout=30).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(1)
    server.kill()
    raise RuntimeError(f"the server did not answer within {timeout:.0f} s")


def held_out_prompts(limit: int = 16) -> list[str]:
    from cllm.prompts import HELDOUT_PROMPTS, read_prompts
    try:
        return read_prompts(HELDOUT_PROMPTS, limit)
    except ValueError:
        return ["def fibonacci(n):\n", "class Stack:\n", "import os\n\n\ndef list_files(path):\n"]


def shipped_asks(base: str, cllm: str) -> list[tuple]:
    """/run's arguments for every shipped race of this pair (plain Jacobi both sides), as recorded."""
    from cllm.race import GALLERY_DIR
    from cllm.shipped import shipped_races
    asks = []
    for prompt, left, right in shipped_races(GALLERY_DIR):
        if (left.model, right.model) == (base, cllm) and left.decoder == right.decoder == "jacobi" and left.n == right.n:
            asks.append((prompt, base, cllm, left.n, left.max_new_tokens, left.seed, left.init, left.chat))
    return asks


def live_asks(args, prompts: list[str]) -> Callable[[int, int], tuple]:
    """/run's arguments of visitor k's i-th live request: a held-out prompt and a seed no other request uses
    (never recorded, never decoded before on this server), so each one is decoded; with --new-prompts the
    prompt ends in a comment naming the request, so no greedy output is reused either."""
    def ask(k: int, i: int) -> tuple:
        seed = 1000 + 1000 * k + i
        prompt = prompts[(k + i) % len(prompts)] + (f"# request {seed}\n" if args.new_prompts else "")
        return prompt, args.base, args.cllm, args.n, args.max_new_tokens, seed, "prompt", False
    return ask


def visitor(url: str, ask: Callable[[int], tuple], kind: str, deadline: float, results: list, errors: list,
            think: float = 0.0) -> None:
    """One visitor: its own session, /run in a loop until the deadline, `think` seconds between an answer and
    the next request (watching the race); each answer must be a whole race. Per request it records the whole
    wait (the race checked against greedy decoding) and the wait until a race was on screen (the first block's
    preview, or the whole race when it came at once)."""
    from gradio_client import Client
    client = Client(url, verbose=False, httpx_kwargs={"timeout": 900})
    i = 0
    while time.time() < deadline:
        t0 = time.perf_counter()
        try:
            job, on_screen = client.submit(*ask(i), api_name="/run"), None
            while not job.done():
                if on_screen is None and any(RACE_PANEL in str(out[0]) for out in job.outputs()):
                    on_screen = time.perf_counter() - t0
                time.sleep(POLL_SECONDS)
            html, status, path = job.result()
            whole = time.perf_counter() - t0
            if html.count(RACE_PANEL) != 2 or not path or not Path(path).is_file():
                raise AssertionError(f"incomplete answer: {status[:200]!r}")
            if (kind == "shipped") != ("shipped gallery" in status) or "Decoded earlier" in status:
                raise AssertionError(f"a {kind} request answered otherwise: {status[:200]!r}")
            results.append((kind, whole, whole if on_screen is None else on_screen))
        except Exception as e:  # counted and reported; the run goes on
            errors.append(f"{type(e).__name__}: {str(e)[:200]}")
        i += 1
        time.sleep(max(0.0, min(think, deadline - time.time())))


def run_load(args, prompts: list[str] | None = None) -> dict:
    """Start the server, warm it up (both models loaded), run the visitors, stop it; the figures as a dict."""
    from gradio_client import Client

    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    with tempfile.TemporaryDirectory(prefix="cllm-load-") as gallery:
        server = start_server(port, gallery)
        try:
            rss_start = rss_mib(server.pid)
            warm = Client(url, verbose=False, httpx_kwargs={"timeout": 900})  # loads both models, not measured
            warm.predict(*live_asks(args, ["def f(x):"])(-1, 0), api_name="/run")  # every argument given: the
            # form's defaults (chat on when the app opens on the real pair) must not decide what is asked
            rss_before = rss_mib(server.pid)
            results, errors = [], []
            t0 = time.time()
            deadline = t0 + min(args.seconds, MAX_SECONDS)
            threads = [threading.Thread(target=visitor, args=(url, ask, kind, deadline, results, errors, args.think))
                       for ask, kind in visitor_plans(args, prompts or held_out_prompts())]
            for t in threads:
                t.start()
            time.sleep(max(0.0, (deadline - time.time()) / 2))
            rss_half = rss_mib(server.pid)  # growth from here to the end would be a leak, not warm-up
            for t in threads:
                t.join()
            wall = time.time() - t0
            rss_after = rss_mib(server.pid)
            alive = server.poll() is None
        finally:
            server.terminate()
            server.wait(timeout=60)
    return {
        "base": args.base, "cllm": args.cllm, "visitors": args.visitors, "shipped_visitors": args.shipped,
        "think_s": args.think, "new_prompts": args.new_prompts, "n": args.n, "max_new_tokens": args.max_new_tokens,
        "seconds": round(wall, 1),
        "errors": len(errors), "error_samples": errors[:5], "server_alive": alive,
        **latency_figures("", [s for _, s, _ in results]),
        **latency_figures("shipped_", [s for kind, s, _ in results if kind == "shipped"]),
        **latency_figures("live_", [s for kind, s, _ in results if kind == "live"]),
        **latency_figures("on_screen_", [s for _, _, s in results]),
        **latency_figures("live_on_screen_", [s for kind, _, s in results if kind == "live"]),
        "rss_start_mib": round(rss_start, 1), "rss_before_mib": round(rss_before, 1), "rss_half_mib": round(rss_half, 1),
        "rss_after_mib": round(rss_after, 1),
    }


def visitor_plans(args, prompts: list[str]) -> list[tuple[Callable[[int], tuple], str]]:
    """(ask, kind) per visitor: the first --shipped visitors cycle through the pair's shipped races."""
    if not 0 <= args.shipped <= args.visitors:
        raise SystemExit(f"--shipped must be between 0 and --visitors ({args.visitors})")
    shipped = shipped_asks(args.base, args.cllm) if args.shipped else []
    if args.shipped and not shipped:
        raise SystemExit(f"no shipped race of {args.base} vs {args.cllm} in saved_trajectories/")
    plans = [((lambda i, k=k: shipped[(k + i) % len(shipped)]), "shipped") for k in range(args.shipped)]
    live = live_asks(args, prompts)
    return plans + [((lambda i, k=k: live(k, i)), "live") for k in range(args.visitors - args.shipped)]


def latency_figures(prefix: str, seconds: list[float]) -> dict:
    """Count, median, p95 (nearest rank) and max of some requests' latencies."""
    s = sorted(seconds)
    if not s:
        return {f"{prefix}requests": 0, f"{prefix}median_s": None, f"{prefix}p95_s": None, f"{prefix}max_s": None}
    return {f"{prefix}requests": len(s), f"{prefix}median_s": round(statistics.median(s), 3),
            f"{prefix}p95_s": round(s[math.ceil(0.95 * len(s)) - 1], 3), f"{prefix}max_s": round(s[-1], 3)}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", default="tiny-python")
    p.add_argument("--cllm", default="tiny-python-cllm")
    p.add_argument("--visitors", type=int, default=8)
    p.add_argument("--shipped", type=int, default=0, help="how many of the visitors run the pair's shipped races")
    p.add_argument("--think", type=float, default=0.0, help="seconds a visitor waits between an answer and the "
                   "next request (0: back at once, the worst case)")
    p.add_argument("--new-prompts", action="store_true", help="every live request a prompt never asked before "
                   "(no greedy output reused)")
    p.add_argument("--seconds", type=float, default=MAX_SECONDS, help=f"load duration (at most {MAX_SECONDS})")
    p.add_argument("--n", type=int, default=16)
    p.add_argument("--max-new-tokens", type=int, default=64)
    return p.parse_args(argv)


def summary_lines(r: dict) -> list[str]:
    return [f"{r['visitors']} visitors for {r['seconds']} s, {r['base']} vs {r['cllm']}, n = {r['n']}, "
            f"{r['max_new_tokens']} new tokens, {r['think_s']} s between a visitor's requests",
            f"requests served: {r['requests']}, errors: {r['errors']}, server alive: {r['server_alive']}",
            f"latency: median {r['median_s']} s, p95 {r['p95_s']} s, max {r['max_s']} s",
            f"until a race is on screen: median {r['on_screen_median_s']} s, p95 {r['on_screen_p95_s']} s; live: "
            f"median {r['live_on_screen_median_s']} s, p95 {r['live_on_screen_p95_s']} s",
            f"{r['shipped_visitors']} visitors on shipped races: {r['shipped_requests']} answered, median "
            f"{r['shipped_median_s']} s, p95 {r['shipped_p95_s']} s; live: {r['live_requests']} answered, median "
            f"{r['live_median_s']} s, p95 {r['live_p95_s']} s",
            f"server RSS: {r['rss_start_mib']} MiB at start, {r['rss_before_mib']} MiB with the models loaded, "
            f"{r['rss_half_mib']} MiB half-way, {r['rss_after_mib']} MiB after the load"]


@pytest.mark.slow
def test_eight_visitors_no_errors_flat_memory(tiny_pair):
    seconds = float(os.environ.get("CLLM_LOAD_SECONDS", "60"))
    args = parse_args(["--base", tiny_pair[0], "--cllm", tiny_pair[1], "--seconds", str(seconds), "--n", "4",
                       "--max-new-tokens", "16"])
    r = run_load(args, ["def f(x):", "class A:", "import os", "for i in range(10):"])  # fit the fixtures' context
    print("\n".join(summary_lines(r)))
    assert r["errors"] == 0 and r["server_alive"] and r["requests"] >= r["visitors"], r["error_samples"]
    assert r["on_screen_requests"] == r["requests"] and r["on_screen_median_s"] <= r["median_s"]
    assert r["rss_after_mib"] < r["rss_before_mib"] * 1.2 + 50  # flat: no growth with the number of requests


@pytest.mark.slow
def test_visitors_on_shipped_races_are_served_from_the_gallery_beside_live_ones():
    from cllm.models import DEFAULT_BASE, DEFAULT_CLLM
    args = parse_args(["--base", DEFAULT_BASE, "--cllm", DEFAULT_CLLM, "--visitors", "4", "--shipped", "2",
                       "--seconds", os.environ.get("CLLM_LOAD_SECONDS", "30")])
    r = run_load(args)
    print("\n".join(summary_lines(r)))
    # every shipped answer said "From the shipped gallery" and every live one did not (visitor() checks)
    assert r["errors"] == 0 and r["server_alive"], r["error_samples"]
    assert r["shipped_requests"] >= 2 and r["live_requests"] >= 2


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    result = run_load(parse_args())
    print("\n".join(summary_lines(result)))
    print(json.dumps(result))
    sys.exit(1 if result["errors"] or not result["server_alive"] else 0)
