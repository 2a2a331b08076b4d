"""``kerasnets ARGV`` run in the test's own process, as the console script runs it."""

import subprocess

from kerasnets.cli import main


def run_cli(argv, capsys):
    """A CompletedProcess-like result of ``kerasnets ARGV``: its exit status (argparse's own
    exits, ``--help`` and usage errors, included) and what it printed since the last read of
    ``capsys``. Arguments may be paths."""
    argv = [str(arg) for arg in argv]
    try:
        code = main(argv)
    except SystemExit as done:
        code = done.code
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(["kerasnets", *argv], code, out, err)
