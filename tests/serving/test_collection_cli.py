"""``python -m pipeline index`` and ``search --index``: bad input is one line, exit 2, nothing
published; the commands of docs/collection.md run as written through the real entry point."""

from __future__ import annotations

import os
import pathlib
import shlex
import subprocess
import sys

import pytest

from pipeline import cli
from tests.serving.collection_fixtures import push, write_bad_photos, write_photos

REPO = pathlib.Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "collection.md"


@pytest.fixture()
def serving(tmp_path, bytes_model_dir) -> pathlib.Path:
    push(tmp_path / "serving", bytes_model_dir, 1)
    return tmp_path / "serving"


def _refused(argv: list[str], capsys, expected: str) -> None:
    """Runs ``python -m pipeline <argv>`` in process; asserts exit 2 and one error line."""
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and expected in err[0], err


def _published(serving: pathlib.Path) -> list[str]:
    base = serving / "collections"
    return sorted(str(p.relative_to(base)) for p in base.glob("*/*")) if base.exists() else []


def test_bad_index_requests_are_one_line_exit_2_and_publish_nothing(serving, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    only_bad = tmp_path / "bad"
    only_bad.mkdir()
    write_bad_photos(only_bad)
    photos = tmp_path / "photos"
    write_photos(photos, range(2))
    base = ["index", "--serving-dir", str(serving)]
    _refused(base + ["--collection", str(empty)], capsys, "holds no file")
    _refused(base + ["--collection", str(tmp_path / "missing")], capsys, "does not exist")
    _refused(base + ["--collection", str(tmp_path / "nothing-*.jpg")], capsys, "holds no file")
    _refused(base + ["--collection", str(photos / "p0.jpg")], capsys, "is a file")
    _refused(base + ["--collection", str(only_bad)], capsys,
             "none of its 8 file(s) could be indexed; first: corrupt.jpg (corrupt")
    for name in ("../up", "a/b", "", "-x", "x" * 65, "photos\n", ".."):
        _refused(base + ["--collection", str(photos), f"--name={name}"], capsys,
                 "is not a plain name")
    _refused(base + ["--collection", str(photos), "--model-name", "other"], capsys,
             "model 'other' has no version")
    _refused(["index", "--serving-dir", str(tmp_path / "none"), "--collection", str(photos)],
             capsys, "run the pipeline so that the Pusher pushes one")
    _refused(base + ["--collection", str(photos), "--captions", str(tmp_path / "no.txt")],
             capsys, "no.txt")
    assert _published(serving) == []


def test_an_unreadable_photo_is_skipped_and_named(serving, tmp_path, capsys):
    photos = tmp_path / "photos"
    write_photos(photos, range(2))
    os.symlink(tmp_path / "gone.jpg", photos / "dangling.jpg")
    assert cli.main(["index", "--serving-dir", str(serving), "--collection", str(photos)]) == 0
    captured = capsys.readouterr()
    assert "2 photos of 3 listed" in captured.out
    assert captured.err.startswith("skipped: dangling.jpg (unreadable): ")


def documented_commands() -> list[list[str]]:
    """The commands of docs/collection.md's "Index a folder of photos", as argument lists."""
    section = DOC.read_text().split("## Index a folder of photos", 1)[1]
    block = section.split("```bash", 1)[1].split("```", 1)[0]
    return [shlex.split(line) for line in block.splitlines() if line.startswith("python -m")]


def _run(command: list[str], replace: dict[str, str], serving: pathlib.Path):
    """Runs a documented command with this interpreter, test paths and ``--serving-dir``."""
    argv = [sys.executable if word == "python" else replace.get(word, word) for word in command]
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run([*argv, "--serving-dir", str(serving)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600, check=False)


def test_documented_commands_index_then_search_by_text_photo_and_caption(serving, tmp_path):
    commands = documented_commands()
    assert [c[3:5] for c in commands] == [["index", "--collection"], ["search", "a dog runs on "
                                          "the beach"], ["search", "--image"], ["search", "a dog "
                                          "runs on the beach"]]
    photos = tmp_path / "photos"
    write_photos(photos, range(4))
    captions = tmp_path / "captions.txt"
    captions.write_text("p0.jpg#0\ta dog runs on the beach\np1.jpg#0\ta black dog\n")
    replace = {"~/Pictures": str(photos),
               "captions.txt": str(captions), "query.jpg": str(photos / "p1.jpg")}
    built, text, image, text2text = (_run(c, replace, serving) for c in commands)
    assert built.returncode == 0, built.stderr
    assert "index 'photos' version" in built.stdout and "4 photos of 4 listed" in built.stdout
    assert text.returncode == 0 and " 1. " in text.stdout and str(photos) in text.stdout
    assert image.returncode == 0, image.stderr
    first = next(line for line in image.stdout.splitlines() if line.startswith(" 1. "))
    assert first.endswith(f"{photos / 'p1.jpg'}  a black dog")
    best = next(line for line in text2text.stdout.splitlines() if line.startswith(" 1. "))
    assert best.endswith(f"{photos / 'p0.jpg'}  a dog runs on the beach")
    push(serving, serving / "xmodal" / "1", 2)
    stale = _run(commands[1], replace, serving)
    assert stale.returncode == 2
    assert "rebuild it with: python -m pipeline index --collection" in stale.stderr
