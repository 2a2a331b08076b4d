"""The command line's start: TensorFlow's start-up messages kept out of its output.

`kerasnets/__init__.py` calls `quiet_tensorflow_startup` first thing when the
process is the command line (``kerasnets ...`` or ``python -m kerasnets ...``),
before anything imports TensorFlow; a library user's ``import kerasnets`` is
left alone.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile

__all__ = ["quiet_tensorflow_startup", "started_as_cli"]

# What TensorFlow prints while it starts, which tells a user nothing: the lines
# that match are dropped, every other line of the start-up is printed.
_STARTUP_NOISE = re.compile(
    r"cuInit|cudart_stub|Could not find cuda drivers|Unable to register cu(DNN|FFT|BLAS) factory"
    r"|TF-TRT Warning|cpu_feature_guard|This TensorFlow binary is optimized|To enable the following "
    r"instructions|rebuild TensorFlow with the appropriate compiler flags|oneDNN custom operations"
    r"|All log messages before absl::InitializeLog|computation_placer|cuda_executor|cuda_diagnostics"
    r"|kernel driver does not appear to be running|successful NUMA node read"
)


def quiet_tensorflow_startup():
    """Imports TensorFlow and lists its devices with the start-up messages filtered out.

    TensorFlow's C++ logging writes to file descriptor 2 directly, so during the
    import and the device discovery (where the ``cuInit`` line comes from)
    descriptor 2 goes to a temporary file; afterwards every line that is not
    known start-up noise is written back to stderr. ``TF_CPP_MIN_LOG_LEVEL``
    is set to 1 (no INFO lines) unless the user set it.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no stderr to filter
        return
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            lines = captured.read().decode("utf-8", "replace").splitlines(keepends=True)
            kept = "".join(line for line in lines if not _STARTUP_NOISE.search(line))
            if kept:
                sys.stderr.write(kept)
                sys.stderr.flush()


def started_as_cli() -> bool:
    """Whether this process is ``kerasnets ...`` or ``python -m kerasnets ...``.

    While ``python -m`` imports the package it runs, ``sys.argv[0]`` is ``"-m"``.
    """
    first = sys.argv[0] if sys.argv else ""
    return first == "-m" or os.path.basename(first) in ("kerasnets", "kerasnets.exe")
