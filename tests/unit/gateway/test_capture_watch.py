"""The drop folder `alpr capture watch` reads: only complete frames, filed without loss."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.capture_watch import Backoff, DropFolder, WatchRefusedError


class TestDropFolder:
    def test_succeeds_for_a_frame_unchanged_between_two_looks(self, tmp_path: Path) -> None:
        frame = tmp_path / "a.jpg"
        frame.write_bytes(b"first half")
        folder = DropFolder(tmp_path)
        assert folder.settled() == []  # seen once: maybe still being written
        with frame.open("ab") as writing:
            writing.write(b" second half")
        assert folder.settled() == []  # it grew since
        assert folder.settled() == [frame]

    def test_takes_no_dot_name_no_empty_file_and_no_other_kind(self, tmp_path: Path) -> None:
        (tmp_path / ".b.jpg").write_bytes(b"being written, renamed once complete")
        (tmp_path / "c.jpg").write_bytes(b"")
        (tmp_path / "d.txt").write_bytes(b"notes")
        (tmp_path / "e.PNG").write_bytes(b"png")
        (tmp_path / "done").mkdir()
        folder = DropFolder(tmp_path)
        folder.settled()
        assert folder.settled() == [tmp_path / "e.PNG"]

    def test_moves_never_over_a_frame_already_filed(self, tmp_path: Path) -> None:
        folder = DropFolder(tmp_path)
        (tmp_path / "a.jpg").write_bytes(b"monday")
        assert folder.done(tmp_path / "a.jpg") == tmp_path / "done" / "a.jpg"
        (tmp_path / "a.jpg").write_bytes(b"tuesday")
        assert folder.done(tmp_path / "a.jpg") == tmp_path / "done" / "a-1.jpg"
        assert (tmp_path / "done" / "a.jpg").read_bytes() == b"monday"

    def test_files_a_refused_frame_with_why(self, tmp_path: Path) -> None:
        (tmp_path / "a.jpg").write_bytes(b"bad")
        moved = DropFolder(tmp_path).failed(tmp_path / "a.jpg", "frames[0].image: not an image")
        assert moved == tmp_path / "failed" / "a.jpg"
        assert (tmp_path / "failed" / "a.jpg.why").read_text() == "frames[0].image: not an image\n"

    def test_fails_for_a_folder_that_does_not_exist(self, tmp_path: Path) -> None:
        with pytest.raises(WatchRefusedError, match="not a directory"):
            DropFolder(tmp_path / "gone")


class TestBackoff:
    def test_doubles_to_the_most_then_is_spent(self) -> None:
        backoff = Backoff(1, 4)
        assert [backoff.next(), backoff.next()] == [1, 2]
        assert not backoff.spent()
        assert backoff.next() == 4
        assert backoff.spent()
        backoff.reset()
        assert (backoff.next(), backoff.spent()) == (1, False)

    def test_waits_at_least_the_nodes_hint_up_to_the_most(self) -> None:
        assert Backoff(1, 30).next(hint=2.5) == 2.5
        assert Backoff(1, 4).next(hint=60) == 4
