"""The model card names paths as the repository does, never the trainer's machine."""
from cllm.models import REPO_ROOT
from cllm.training.cards import _in_repo


def test_a_prompts_file_inside_the_repo_is_named_from_its_root():
    assert _in_repo(str(REPO_ROOT / "assets" / "prompts" / "code-train.jsonl")) == "assets/prompts/code-train.jsonl"


def test_a_prompts_file_elsewhere_keeps_its_path(tmp_path):
    outside = str(tmp_path / "mine.jsonl")
    assert _in_repo(outside) == outside
