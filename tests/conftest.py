"""Shared test set-up: quiet TensorFlow logs, a thread per worker, fixed seeds, data-format isolation,
the order and grouping of the tests under pytest-xdist."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# With as many pytest-xdist workers as cores (CI: -n 2 on 2 cores), each worker and the
# TensorFlow processes it starts compute on one thread: two threads each would put twice as
# many busy threads as cores and every test would wait on the others.
if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) >= (os.cpu_count() or 1) > 1:
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
    # The same for PyTorch (the torch children of tests/test_backends.py), OpenMP and NumPy's
    # BLAS: under torch's default of a thread per core, the torch backend checks took 31 s
    # beside one busy core and 20 s with one thread.
    os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402

# Keras (and so TensorFlow) is imported in the fixtures, not here: under pytest-xdist the
# controller process reads this file too but runs no test, and importing TensorFlow there
# cost about 6 CPU-seconds while the workers started.


@pytest.fixture(autouse=True)
def _isolate_keras_state():
    """Every test starts with channels_last, float32 and a fixed seed."""
    import keras

    keras.config.set_image_data_format("channels_last")
    keras.config.set_dtype_policy("float32")
    keras.utils.set_random_seed(0)
    yield
    keras.config.set_image_data_format("channels_last")
    keras.config.set_dtype_policy("float32")


@pytest.fixture
def channels_first():
    import keras

    keras.config.set_image_data_format("channels_first")
    yield
    keras.config.set_image_data_format("channels_last")


@pytest.fixture
def no_random_init(monkeypatch):
    """Counting parameters needs the variables, not random values: 143M of them take
    seconds to draw on 2 cores. Every default kernel initializer (glorot_uniform,
    he_normal, ...) is a VarianceScaling; make it return zeros for the test."""
    import keras

    monkeypatch.setattr(
        keras.initializers.VarianceScaling,
        "__call__",
        lambda self, shape, dtype=None: keras.ops.zeros(shape, dtype=dtype),
    )


def pytest_addoption(parser):
    parser.addoption(
        "--main-job", action="store_true",
        help="also run the tests marked main_job, which CI leaves out: the README main job's first "
             "three epochs (about 8 CPU-minutes in float32 on 2 cores) and the whole run (about 24)")


def _minutes(item):
    """The test's ``slow(minutes=N)``; 0 for a fast or a skipped one (it takes no time)."""
    marker = item.get_closest_marker("slow")
    if not marker or item.get_closest_marker("skip"):
        return 0
    return marker.kwargs.get("minutes", 1)


@pytest.hookimpl(tryfirst=True)  # before xdist's worker reads the xdist_group marks added here
def pytest_collection_modifyitems(config, items):
    """The long tests (marked ``slow``, longest first) start first, each beside short ones.

    With ``pytest -n 2`` the workers take tests in collection order, so a
    several-minute test collected near the end would run alone after every other
    test and lengthen the run by its whole duration. The longest goes first with a
    short one after it, so that the next slow tests go to the other worker rather
    than wait behind it (see `pytest_configure`). The order is deterministic, so
    every worker collects the same list.
    """
    if not config.getoption("--main-job"):
        skip = pytest.mark.skip(reason="the whole main job: run with --main-job (or "
                                       "benchmarks/main_job_seeds.py)")
        for item in items:
            if item.get_closest_marker("main_job"):
                item.add_marker(skip)
    slow = sorted((i for i in items if _minutes(i)), key=_minutes, reverse=True)
    rest = [i for i in items if not _minutes(i)]
    items[:] = slow[:1] + rest[:1] + slow[1:] + rest[1:]
    for item in items:
        for group in _module_fixture_groups(item):
            item.add_marker(pytest.mark.xdist_group(group))


def _module_fixture_groups(item):
    """The test's group when it uses a module-scoped fixture (one group per test module).

    A module-scoped fixture (a search, a batch of exports) is set up once per
    worker: the tests that share one run on the same worker (`pytest_configure`
    selects xdist's ``loadgroup``), so it is set up once per run, not once on each.
    """
    info = getattr(item, "_fixtureinfo", None)
    for name in getattr(info, "names_closure", ()):
        definitions = info.name2fixturedefs.get(name) or ()
        if definitions and definitions[-1].scope == "module":
            return [f"{item.module.__name__}::module-fixtures"]  # all of a module's: one group
    return []


def pytest_configure(config):
    """Under pytest-xdist, hand tests to the workers one at a time, grouped by shared fixtures.

    xdist's ``load`` scheduler otherwise gives each worker a first chunk of a
    quarter of its share (about 80 tests here): every slow test collected first
    would land on one worker and run one after the other.
    """
    if getattr(config.option, "maxschedchunk", "absent") is None:
        config.option.maxschedchunk = 1
    # Tests that share a module-scoped fixture go to one worker (`_module_fixture_groups`);
    # the others still one at a time, in collection order (not reordered by group size).
    if getattr(config.option, "dist", "no") == "load":
        # xdist's loadgroup tags a grouped test by rewriting its ``_nodeid``, which pytest 9.2
        # no longer reads: every shared fixture would be set up on each worker, silently.
        if "_nodeid" not in pytest.Item.nodeid.fget.__code__.co_names:
            raise pytest.UsageError(
                f"pytest {pytest.__version__} breaks pytest-xdist's loadgroup, which these tests "
                "use to set up each shared fixture once: install the test extra's pytest "
                "(pip install -e \".[test]\", pytest<9.2)")
        config.option.dist = "loadgroup"
        config.option.loadscopereorder = False
    if getattr(config, "workerinput", {}).get("dist") == "loadgroup":
        config.option.loadgroup = True  # a worker re-reads the command line: -n alone says "load"


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    """(pytest-xdist) Tells each worker the scheduler chosen in `pytest_configure`."""
    node.workerinput["dist"] = node.config.option.dist
