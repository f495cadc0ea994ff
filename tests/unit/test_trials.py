"""Trial lists: parsing errors with line numbers, and the generator's format rules."""

from collections import Counter
from pathlib import Path

import pytest

from speakerid.data import enhancement_lists
from speakerid.data.trials import make_trials, read_iden_split, read_trials, write_trials
from speakerid.errors import ListFileError


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "trials.txt"
    write_trials(path, [(1, "a/x/1.wav", "a/y/2.wav"), (0, "a/x/1.wav", "b/z/3.wav")])
    assert [(t.label, t.enroll, t.test, t.line) for t in read_trials(path)] == [
        (1, "a/x/1.wav", "a/y/2.wav", 1),
        (0, "a/x/1.wav", "b/z/3.wav", 2),
    ]


@pytest.mark.parametrize(
    "bad_line", ["2 a.wav b.wav", "1 a.wav", "1 a.wav b.wav c.wav", "yes a.wav b.wav"]
)
def test_malformed_line_is_named_with_its_number(tmp_path: Path, bad_line: str) -> None:
    path = tmp_path / "trials.txt"
    path.write_text(f"1 a.wav b.wav\n\n{bad_line}\n")
    with pytest.raises(ListFileError, match=r"trials.txt:3: expected '1\|0 path path'"):
        read_trials(path)


@pytest.mark.parametrize(
    "path", ["../outside/a.wav", "id1/../../etc/passwd", "/etc/passwd", "id1\\..\\x.wav"]
)
def test_paths_that_leave_the_corpus_root_are_refused(tmp_path: Path, path: str) -> None:
    trials = tmp_path / "trials.txt"
    trials.write_text(f"1 a/x/1.wav a/y/2.wav\n0 a/x/1.wav {path}\n")
    with pytest.raises(ListFileError, match=r"trials\.txt:2: .* is not a path inside the corpus"):
        read_trials(trials)
    split = tmp_path / "iden_split.txt"
    split.write_text(f"1 {path}\n")
    with pytest.raises(ListFileError, match=r"iden_split\.txt:1: .* not a path inside"):
        read_iden_split(split)
    normal = tmp_path / "normal.txt"
    normal.write_text(f"id1 {path}\n")
    with pytest.raises(ListFileError, match=r"normal\.txt:1: .* not a path inside"):
        enhancement_lists.read(normal, "normal")


def test_missing_and_empty_lists(tmp_path: Path) -> None:
    with pytest.raises(ListFileError, match="not found"):
        read_trials(tmp_path / "nope.txt")
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(ListFileError, match="empty"):
        read_trials(tmp_path / "empty.txt")


def _utterances() -> tuple[list[str], list[str], list[str]]:
    speakers, sessions, groups = [], [], []
    for spk in range(8):
        for utt in range(6):
            speakers.append(f"s{spk}")
            sessions.append(str(utt % 3))
            groups.append(f"g{spk % 2}")
    return speakers, sessions, groups


def test_generated_trials_follow_the_rules() -> None:
    speakers, sessions, groups = _utterances()
    trials = make_trials(speakers, sessions, groups, per_utterance=3, seed=0)
    labels = Counter(label for label, _, _ in trials)
    assert labels[0] == labels[1] > 0
    assert len({(a, b) for _, a, b in trials}) == len(trials)  # unique pairs
    for label, a, b in trials:
        assert a != b
        assert (speakers[a] == speakers[b]) == (label == 1)
        if label == 1:
            assert sessions[a] != sessions[b]  # targets cross sessions
    nontarget = [(a, b) for label, a, b in trials if label == 0]
    assert sum(groups[a] == groups[b] for a, b in nontarget) >= len(nontarget) / 2
    assert make_trials(speakers, sessions, groups, 3, seed=0) == trials
    assert make_trials(speakers, sessions, groups, 3, seed=1) != trials


@pytest.mark.parametrize("lines", [["1 a/1.wav b/2.wav"], ["0 a/1.wav b/2.wav"] * 3])
def test_a_list_of_one_class_has_no_metric_and_is_refused(tmp_path: Path, lines) -> None:
    path = tmp_path / "trials.txt"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ListFileError, match=r"trials\.txt: all \d trial\(s\) are .*both classes"):
        read_trials(path)


def test_self_trials_and_repeated_pairs_are_counted_in_a_warning(tmp_path: Path, caplog) -> None:
    path = tmp_path / "trials.txt"
    path.write_text(
        "1 a/1.wav a/2.wav\n0 a/1.wav b/1.wav\n1 a/1.wav a/1.wav\n"
        "1 a/2.wav a/1.wav\n0 b/1.wav a/1.wav\n1 b/1.wav a/1.wav\n"
    )
    with caplog.at_level("WARNING"):
        assert len(read_trials(path)) == 6  # kept: a list may mean them
    text = caplog.text
    assert "1 self-trial(s)" in text and "line 3" in text
    assert "3 trial(s) repeat an earlier pair (e.g. line 4), 1 with the opposite label" in text


def test_a_byte_order_mark_is_not_a_malformed_line(tmp_path: Path) -> None:
    path = tmp_path / "trials.txt"
    path.write_text("\ufeff1 a/1.wav a/2.wav\n0 a/1.wav b/1.wav\n", encoding="utf-8")
    assert read_trials(path)[0].enroll == "a/1.wav"
    split = tmp_path / "iden_split.txt"
    split.write_text("\ufeff1 a/1.wav\n", encoding="utf-8")
    assert read_iden_split(split) == {"a/1.wav": 1}
