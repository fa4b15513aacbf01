"""--decoder on bench, stats and record: one row / report / record per decoder, each exact."""
import json

import pandas as pd

from cllm.decoders import decoder_list
from cllm.race import list_gallery, load_race
from test_cli import run


def _prompts(tmp_path):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"prompt": "def f(x):"}\n{"prompt": "for i in"}\n')
    return prompts


def test_bench_has_a_row_per_decoder_beside_jacobi(tiny_model_dir, tmp_path, capsys):
    code, out, err = run(capsys, "bench", "--base", str(tiny_model_dir), "--prompts", str(_prompts(tmp_path)),
                         "--n", "4", "--max-new-tokens", "8", "--decoder", "recycle,lookup", "--pool-size", "2", "--json")
    assert code == 0, err
    rows = json.loads(out)["rows"]
    assert [r["decoder"] for r in rows] == ["ar", "jacobi", "recycle", "lookup", "hf_greedy", "hf_prompt_lookup"]
    assert all(r["matches_ar"] == 1.0 and r["tokens"] == rows[0]["tokens"] for r in rows)
    assert all(0 <= r["overhead"] < 1 for r in rows[1:4])  # every decoder's time outside the forward pass


def test_bench_all_and_bad_decoder_lists(tiny_model_dir, tmp_path, capsys):
    assert decoder_list("all") == ["jacobi", "recycle", "multiblock", "lookup"]
    assert decoder_list("lookup, recycle,lookup") == ["lookup", "recycle"]
    code, _, err = run(capsys, "bench", "--base", str(tiny_model_dir), "--decoder", "jacobi,beam")
    assert code == 2 and "unknown decoder 'beam'" in err
    code, _, err = run(capsys, "bench", "--base", str(tiny_model_dir), "--prompts", str(_prompts(tmp_path)),
                       "--decoder", "lookup", "--pool-size", "2")
    assert code == 2 and "--pool-size is not an option of lookup" in err


def test_stats_reports_each_decoder(tiny_model_dir, tmp_path, capsys):
    csv = tmp_path / "out.csv"
    code, out, err = run(capsys, "stats", "--base", str(tiny_model_dir), "--cllm", str(tiny_model_dir),
                         "--prompts", str(_prompts(tmp_path)), "--n", "4", "--max-new-tokens", "8",
                         "--decoder", "jacobi,multiblock", "--ratio", "0.5", "--csv", str(csv))
    assert code == 0, err
    assert "=== decoder: jacobi ===" in out and "=== decoder: multiblock ===" in out
    assert "\nmultiblock " in out  # the bench table's row is named by the decoder
    frame = pd.read_csv(csv)
    assert list(frame.groupby("decoder").size().items()) == [("jacobi", 4), ("multiblock", 4)]
    assert frame["matches_ar"].all()


def test_record_saves_the_decoder_in_each_run(tiny_pair, tmp_path, capsys):
    out = tmp_path / "gallery"
    code, stdout, err = run(capsys, "record", "--base", tiny_pair[0], "--cllm", tiny_pair[1], "--prompts",
                            str(_prompts(tmp_path)), "--limit", "1", "--out", str(out), "--n", "4",
                            "--max-new-tokens", "8", "--decoder", "recycle", "--ngram", "3")
    assert code == 0, err
    assert "recycle, passes" in stdout and "equals greedy AR: True" in stdout
    race = load_race(out / "p-01.json")
    assert list_gallery(out)[0].decoders == ("recycle", "recycle")  # the Gallery lists the decoder
    for run_ in (race.base, race.cllm):
        assert run_.meta.decoder == "recycle" and run_.meta.options["ngram"] == 3
        assert all(b.drafts is not None for b in run_.blocks)


def test_decoding_commands_and_forms_start_at_the_decoders_own_defaults():
    """n, max_new_tokens, seed and init have one home (JacobiConfig): every decoding command and the app's
    forms read them from there instead of typing 16 / 64 again."""
    from dataclasses import asdict

    from cllm.cli import build_parser
    from cllm.jacobi import JacobiConfig
    from cllm.ui.common import DECODING
    default = asdict(JacobiConfig())
    assert asdict(DECODING) == default
    for command in (["decode", "--prompt", "x"], ["bench"], ["stats"], ["record"]):
        args = vars(build_parser().parse_args(command))
        assert {k: args[k] for k in default} == default, command
