"""A race's two sides decode at once on a CPU with a core for each (decode.both_sides): same records as in turn."""
from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest
import torch

from cllm import decode
from cllm.shipped import RECENT_GREEDY, Recent, RecentRaces
from cllm.ui import explore_tab


def fake(device: str = "cpu") -> SimpleNamespace:
    """A LoadedModel as parallel_sides reads it: a module with a device."""
    return SimpleNamespace(model=SimpleNamespace(device=torch.device(device)))


@pytest.fixture
def two_cores(monkeypatch):
    monkeypatch.setattr(decode, "usable_cores", lambda: 2)
    monkeypatch.setattr(decode.torch, "get_num_threads", lambda: 1)


def test_sides_decode_at_once_only_as_two_models_with_a_core_each(two_cores, monkeypatch):
    base, cllm = fake(), fake()
    assert decode.parallel_sides([base, cllm])
    assert not decode.parallel_sides([base, base])  # one module from two threads: no
    assert not decode.parallel_sides([base, fake("cuda")])
    monkeypatch.setattr(decode.torch, "get_num_threads", lambda: 2)  # 2 threads a side on 2 cores: in turn
    assert not decode.parallel_sides([base, cllm])


def test_both_sides_runs_each_call_in_its_own_thread_and_keeps_the_order(two_cores):
    started, both_in = [], threading.Barrier(2, timeout=10)  # each call waits for the other: they overlap

    def side(i):
        started.append(threading.get_ident())
        both_in.wait()
        return i

    assert decode.both_sides([fake(), fake()], [lambda: side("left"), lambda: side("right")]) == ["left", "right"]
    assert len(set(started)) == 2


def test_an_error_on_one_side_reaches_the_caller(two_cores):
    def broken():
        raise ValueError("the right side failed")

    with pytest.raises(ValueError, match="right side"):
        decode.both_sides([fake(), fake()], [lambda: 1, broken])


def test_a_race_with_its_sides_at_once_equals_one_decoded_in_turn(tiny_pair, monkeypatch):
    """The same live race twice, sides at once and in turn, nothing reused: the same states and greedy outputs."""
    def race(at_once: bool):
        monkeypatch.setattr(decode, "parallel_sides", lambda models: at_once)
        monkeypatch.setattr(explore_tab, "RECENT", RecentRaces())  # decoded again, not served from memory
        monkeypatch.setattr(explore_tab, "GREEDY", Recent(RECENT_GREEDY))
        runs = list(explore_tab.run_race("def f(x):", *tiny_pair, 4, 12, 3, "prompt", progress=no_progress))
        return runs[-1][-1]

    together, in_turn = race(True), race(False)
    for a, b in ((together.base, in_turn.base), (together.cllm, in_turn.cllm)):
        assert [blk.states for blk in a.blocks] == [blk.states for blk in b.blocks]
        assert a.ar_tokens == b.ar_tokens and a.matches_ar
    assert together.base.tokens != together.cllm.tokens  # two models, so the sides really differ


def no_progress(*args, **kwargs):
    pass
