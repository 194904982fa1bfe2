import os

import pytest

from serving import publish


def _model(path, payload: bytes):
    (path / "variables").mkdir(parents=True)
    (path / "saved_model.pb").write_bytes(payload)
    (path / "variables" / "variables.index").write_bytes(b"idx")
    return path


def test_next_version_is_time_or_one_more():
    assert publish.next_version([], now=1000.7) == 1000
    assert publish.next_version([5, 1200], now=1000.0) == 1201
    assert publish.next_version([5], now=1000.0) == 1000


def test_publish_copies_atomically_and_lists_versions(tmp_path):
    src = _model(tmp_path / "src", b"v1")
    base = tmp_path / "serving" / "m"
    out = publish.publish_directory(str(src), str(base), 7)
    assert out == str(base / "7")
    assert (base / "7" / "saved_model.pb").read_bytes() == b"v1"
    assert (base / "7" / "variables" / "variables.index").read_bytes() == b"idx"
    assert os.listdir(base) == ["7"]  # no staging folder left behind
    (base / ".tmp-9-x").mkdir()
    (base / "notes").mkdir()
    assert publish.list_versions(str(base)) == [7]
    assert publish.list_versions(str(tmp_path / "absent")) == []
    with pytest.raises(FileExistsError, match="already exists"):
        publish.publish_directory(str(src), str(base), 7)


def test_failed_copy_leaves_no_version(tmp_path, monkeypatch):
    src = _model(tmp_path / "src", b"v1")
    base = tmp_path / "m"

    def broken_fsync(directory):
        raise OSError("disk full")

    monkeypatch.setattr(publish, "_fsync_tree", broken_fsync)
    with pytest.raises(OSError, match="disk full"):
        publish.publish_directory(str(src), str(base), 3)
    assert os.listdir(base) == []


def test_content_hash_and_latest_matches(tmp_path):
    a = _model(tmp_path / "a", b"same")
    b = _model(tmp_path / "b", b"same")
    c = _model(tmp_path / "c", b"different")
    assert publish.content_hash(str(a)) == publish.content_hash(str(b))
    assert publish.content_hash(str(a)) != publish.content_hash(str(c))
    base = tmp_path / "m"
    assert publish.latest_matches(str(a), str(base)) is None
    publish.publish_directory(str(a), str(base), 10)
    assert publish.latest_matches(str(b), str(base)) == 10
    publish.publish_directory(str(c), str(base), 11)
    assert publish.latest_matches(str(b), str(base)) is None
