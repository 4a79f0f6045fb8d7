"""--resume without a file: the newest complete checkpoint, whatever last_checkpoint says."""
import os

from mmtransfer.cli import _latest_checkpoint


def _touch(path, mtime):
    path.write_bytes(b'x')
    os.utime(path, (mtime, mtime))


def test_newest_checkpoint_wins_over_a_stale_or_empty_pointer(tmp_path):
    _touch(tmp_path / 'epoch_1.pth', 100)
    _touch(tmp_path / 'epoch_2.pth', 200)
    _touch(tmp_path / 'best_top1.pth', 300)          # not a resume point
    (tmp_path / 'last_checkpoint').write_text('')    # killed while mmengine rewrote it
    assert _latest_checkpoint(str(tmp_path)) == str(tmp_path / 'epoch_2.pth')
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'epoch_1.pth'))  # stale
    assert _latest_checkpoint(str(tmp_path)) == str(tmp_path / 'epoch_2.pth')


def test_pointer_is_used_when_the_work_dir_has_no_checkpoint(tmp_path):
    assert _latest_checkpoint(str(tmp_path)) is None
    (tmp_path / 'last_checkpoint').write_text('')
    assert _latest_checkpoint(str(tmp_path)) is None
    (tmp_path / 'last_checkpoint').write_text('/elsewhere/iter_8.pth\n')
    assert _latest_checkpoint(str(tmp_path)) == '/elsewhere/iter_8.pth'
