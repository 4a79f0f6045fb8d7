"""Run under tools/dist_common.sh's dist_launch in test_bad_input_detection.py: two gloo ranks
where rank 1 stops on a user error (one line through mmtransfer.cli.run, exit 2) while rank 0
waits for it in a barrier, which then fails with gloo's "Connection closed by peer".

``MMT_RANK1_BUG=1`` makes rank 1's error a bug (a traceback) instead.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from mmtransfer.cli import ArgumentParser, run  # noqa: E402


def main(argv):
    parser = ArgumentParser(prog='dist_error_worker.py')
    parser.add_argument('--launcher')
    parser.add_argument('--check-only', action='store_true')
    args = parser.parse_args(argv)
    if args.check_only:
        return 0
    import torch.distributed as dist

    dist.init_process_group('gloo')
    if dist.get_rank() == 1:
        if os.environ.get('MMT_RANK1_BUG'):
            raise AssertionError('a bug on rank 1')
        raise ValueError('data/train/x/1.png: corrupt or truncated image (rank 1)')
    dist.barrier()
    return 0


if __name__ == '__main__':
    sys.exit(run(main))
