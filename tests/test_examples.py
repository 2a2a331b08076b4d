"""The examples run, their notebooks match them, and the throughput benchmark works.

* every ``examples/*.ipynb`` is what ``scripts/make_notebooks.py`` generates from
  its script, cell for cell, and executes end to end with nbclient (kernel
  ``python3``) with ``KERASNETS_QUICK=1``, as a user runs it on Colab: so every
  script's code runs once;
* every ``examples/*.py`` answers ``--help`` (its command line), and one runs its
  ``--quick`` mode in full in a subprocess (the command line a user types);
* ``benchmarks/throughput.py`` runs a tiny comparison (its ``main``, in-process) and
  reports consistent numbers; so does ``benchmarks/first_step.py``;
  ``benchmarks/ci_at_cpu_limit.sh`` rejects a bad CPU limit before doing anything.

Nothing downloads: the quick modes use the built-in ``shapes`` dataset (generated
once per test session into a shared temporary ``TFDS_DATA_DIR``), generated image
folders and randomly initialised models. Each example writes under its own
temporary working directory; the files it must produce are checked.
"""

import fcntl
import importlib.util
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load(path, name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, path))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


make_notebooks = _load("scripts/make_notebooks.py", "make_notebooks")
throughput = _load("benchmarks/throughput.py", "throughput_benchmark")
first_step = _load("benchmarks/first_step.py", "first_step_benchmark")

SCRIPTS = {os.path.splitext(os.path.basename(p))[0]: p for p in make_notebooks.example_scripts()}
# What each example must leave in outputs/<name>/ (its default --output).
EXPECTED_FILES = {
    "inception_cost": ["inception_cost.png"],
    "resnet_degradation": ["degradation.png", "histories.json"],
    "googlenet_auxiliary_heads": ["head_losses.png", "saved_model/saved_model.pb", "saved_model/kerasnets_export.json"],
    "transfer_learning": ["transfer_learning.png", "model.keras", "images/circle/000.png"],
    "classify_image": ["image.png", "input.png", "googlenet_random.weights.h5"],
    "tune_widths": ["results.csv", "pareto.png", "best_model.keras", "best_args.json"],
    "distributed_training": ["run.json", "log.csv", "curves.png", "backup/state.json", "model.keras"],
}
# What each example must print (its quick run), besides not failing.
EXPECTED_TEXT = {
    "inception_cost": [
        "120.4M multiply-adds", "12.4M multiply-adds", "saves a factor of                    9.7",
        # inception (3a) on 28x28x192, naive: 28*28*192*(64 + 9*128 + 25*32) = 303.5M.
        "inception_3a        192       303.5M        128.0M    2.4x",
        "GoogLeNet in total: 1.58G multiply-adds",
    ],
    "resnet_degradation": ["plain-20", "plain-32", "ResNet-20", "ResNet-32", "deep minus shallow"],
    "googlenet_auxiliary_heads": ["outputs: ['aux1', 'aux2', 'main']", "largest difference of the main predictions",
                                  "top classes of the first image"],
    "transfer_learning": ["phase 1:", "phase 2:", "validation accuracy"],
    "classify_image": ["googlenet with weights", "preprocessing bvlc_googlenet", "top-5 ImageNet classes of image.png"],
    "tune_widths": ["width_multiplier", "best trial"],
    "distributed_training": ["mirrored strategy", "preempted after 2 epochs", "resuming after epoch 2",
                             "epochs in log.csv: [1, 2, 3]"],
}
TIMEOUT = 900


def test_every_example_is_listed():
    assert sorted(SCRIPTS) == sorted(EXPECTED_FILES) == sorted(EXPECTED_TEXT)


@pytest.fixture(scope="session")
def shapes_data_dir(tmp_path_factory):
    """A TFDS data dir holding the built-in ``shapes``, prepared once for all workers."""
    shared = tmp_path_factory.getbasetemp().parent  # common to the pytest-xdist workers
    data_dir = shared / "examples_tfds"
    data_dir.mkdir(exist_ok=True)
    with open(shared / "examples_tfds.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one worker generates, the others wait and reuse
        try:
            import kerasnets.data

            kerasnets.data.load("shapes", "train[:1]", batch_size=1, data_dir=str(data_dir))
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return str(data_dir)


@pytest.fixture
def quick_env(shapes_data_dir):
    env = dict(os.environ)
    env.update(
        KERASNETS_QUICK="1",
        TFDS_DATA_DIR=shapes_data_dir,
        PYTHONPATH=os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH")) if p),
        TF_CPP_MIN_LOG_LEVEL="2",
        MPLBACKEND="Agg",
    )
    return env


def _check_outputs(workdir, name):
    folder = os.path.join(workdir, "outputs", name)
    missing = [f for f in EXPECTED_FILES[name] if not os.path.exists(os.path.join(folder, f))]
    assert not missing, f"{name} did not write {missing} in {folder}"
    return folder


# ---------------------------------------------------------------------------
# Notebooks: generated from the scripts, and up to date
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_notebook_is_generated_from_its_script(name):
    import nbformat

    path = make_notebooks.notebook_path(SCRIPTS[name])
    assert os.path.exists(path), f"{path} is missing: run python scripts/make_notebooks.py"
    with open(path, encoding="utf-8") as f:
        current = f.read()
    assert current == make_notebooks.notebook_for(SCRIPTS[name]), (
        f"{os.path.basename(path)} is out of date with its script: run python scripts/make_notebooks.py"
    )
    notebook = nbformat.reads(current, as_version=4)
    nbformat.validate(notebook)
    first, install, gpu = notebook.cells[:3]
    assert "colab.research.google.com/assets/colab-badge.svg" in first.source
    assert f"examples/{name}.ipynb" in first.source
    assert "%pip install -q kerasnets" in install.source
    assert 'list_physical_devices("GPU")' in gpu.source
    # The rest is the script, cell for cell.
    with open(SCRIPTS[name], encoding="utf-8") as f:
        cells = make_notebooks.split_cells(f.read())
    assert [c.source for c in notebook.cells[3:]] == [text for _, text in cells[1:]]
    assert all(not c.get("outputs") for c in notebook.cells if c.cell_type == "code")


def test_split_cells_reads_the_percent_format():
    source = "# %% [markdown]\n# # Title\n#\n# Text.\n\n# %%\nx = 1\n\n\n# %%\ny = 2\n"
    assert make_notebooks.split_cells(source) == [
        ("markdown", "# Title\n\nText."), ("code", "x = 1"), ("code", "y = 2"),
    ]


@pytest.mark.parametrize("source, message", [
    ("import os\n# %% [markdown]\n# # Title\n", "inside a '# %%' cell"),
    ("# %% [markdown]\n# # Title\nx = 1\n", "comment lines only"),
    ("# %%\nx = 1\n", "first cell must be a Markdown title"),
])
def test_split_cells_rejects_malformed_scripts(source, message):
    with pytest.raises(ValueError, match=message):
        make_notebooks.split_cells(source, "bad.py")


def test_make_notebooks_check_mode_reports_a_stale_notebook(tmp_path, monkeypatch, capsys):
    script = tmp_path / "demo.py"
    script.write_text("# %% [markdown]\n# # Demo\n\n# %%\nprint(1)\n")
    monkeypatch.setattr(make_notebooks, "EXAMPLES", str(tmp_path))
    monkeypatch.setattr(make_notebooks, "example_scripts", lambda folder=str(tmp_path): [str(script)])
    assert make_notebooks.main(["--check"]) == 1  # no notebook yet
    assert make_notebooks.main([]) == 0
    assert (tmp_path / "demo.ipynb").exists()
    assert make_notebooks.main(["--check"]) == 0
    script.write_text("# %% [markdown]\n# # Demo\n\n# %%\nprint(2)\n")
    assert make_notebooks.main(["--check"]) == 1
    assert "demo.ipynb" in capsys.readouterr().err


# ---------------------------------------------------------------------------
# Running the examples
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_script_command_line(name, tmp_path, quick_env):
    # A script and its notebook are the same cells (test_notebook_is_generated_from_its_script),
    # and every notebook runs them all below (test_notebook_executes): what is the script's
    # own is its command line, read here, and the --quick flag, run in full below.
    run = subprocess.run(
        [sys.executable, SCRIPTS[name], "--help"], cwd=tmp_path, env=quick_env,
        capture_output=True, text=True, timeout=TIMEOUT,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert f"usage: {os.path.basename(SCRIPTS[name])}" in run.stdout
    assert "--quick" in run.stdout and "--output" in run.stdout
    assert not os.listdir(tmp_path)  # --help writes nothing


# One script runs in full from its command line (the others run as notebooks): the cheapest.
@pytest.mark.parametrize("name", ["inception_cost"])
def test_script_quick_mode_runs(name, tmp_path, quick_env):
    env = dict(quick_env)
    del env["KERASNETS_QUICK"]  # the flag alone must select the quick mode
    run = subprocess.run(
        [sys.executable, SCRIPTS[name], "--quick"], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=TIMEOUT,
    )
    assert run.returncode == 0, f"{name} --quick failed:\n{run.stdout[-3000:]}\n{run.stderr[-5000:]}"
    _check_outputs(tmp_path, name)
    missing = [text for text in EXPECTED_TEXT[name] if text not in run.stdout]
    assert not missing, f"{name} --quick did not print {missing}:\n{run.stdout[-5000:]}"


def test_script_rejects_an_unknown_option(quick_env, tmp_path):
    run = subprocess.run(
        [sys.executable, SCRIPTS["inception_cost"], "--quikc"], cwd=tmp_path, env=quick_env,
        capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 2 and "unrecognized arguments: --quikc" in run.stderr


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_notebook_executes(name, tmp_path, quick_env):
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(make_notebooks.notebook_path(SCRIPTS[name]), as_version=4)
    client = NotebookClient(
        notebook, timeout=TIMEOUT, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute(env=quick_env, cwd=str(tmp_path))  # raises CellExecutionError on any failing cell
    texts = "\n".join(
        output.get("text", "") for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs
    )
    # The install cell installed nothing (kerasnets is importable) and the GPU cell ran.
    assert "pip" not in "".join(o.get("text", "") for o in notebook.cells[1].outputs)
    assert "TensorFlow" in texts
    _check_outputs(tmp_path, name)
    missing = [text for text in EXPECTED_TEXT[name] if text not in texts]
    assert not missing, f"the {name} notebook did not print {missing}"


# ---------------------------------------------------------------------------
# benchmarks/throughput.py
# ---------------------------------------------------------------------------


def test_throughput_ratios_and_medians():
    r = throughput.Result("m", 32, macs={}, params={})
    r.train = {"kerasnets": [1.0, 2.0, 3.0], "keras.applications": [2.0, 2.0, 6.0]}  # seconds per step
    r.build = {"kerasnets": [1.0, 4.0, 2.0], "keras.applications": [2.0, 2.0, 2.0]}
    ratio, (low, high) = r.ratio("train")  # images/s: the inverse ratio of times
    assert ratio == pytest.approx(2.0 / 2.0) and (low, high) == (pytest.approx(1.0), pytest.approx(2.0))
    assert r.images_per_second("train", "kerasnets", 8) == pytest.approx(4.0)
    ratio, (low, high) = r.ratio("build")  # seconds: the plain ratio
    assert ratio == pytest.approx(1.0) and (low, high) == (pytest.approx(0.5), pytest.approx(2.0))


def test_throughput_arguments_are_checked(capsys):
    with pytest.raises(SystemExit) as error:
        throughput.parse_args(["--models", "resnet18"])  # not in keras.applications
    assert error.value.code == 2
    assert "unknown model(s) ['resnet18']" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        throughput.parse_args(["--image-size", "16"])
    quick = throughput.parse_args(["--quick"])
    assert (quick.batch_size, quick.image_size, quick.rounds) == (8, 64, 5)
    assert quick.models == ["vgg16", "resnet50", "inception_v3"]
    assert throughput.parse_args(["--quick", "--models", "all"]).models == list(throughput.ARCHITECTURES)
    assert throughput.parse_args([]).models == list(throughput.ARCHITECTURES)
    assert throughput.image_size_for("inception_v3", 64) == 75  # InceptionV3's minimum
    assert throughput.parse_args([]).image_size is None  # full mode: each model's own size


def test_throughput_benchmark_runs(tmp_path, capsys):
    # In-process: the script's main() with the command line a user would type.
    out = tmp_path / "results.json"
    throughput.main(["--models", "vgg16", "--image-size", "32", "--batch-size", "2", "--classes", "10",
                     "--rounds", "2", "--build-rounds", "1", "--steps", "1", "--warmup", "1",
                     "--matmul-size", "256", "--json", str(out), "--markdown"])
    printed = capsys.readouterr().out
    assert "kerasnets / keras.applications on" in printed
    assert "| model | input | train img/s kn |" in printed  # the Markdown table
    record = json.loads(out.read_text())
    (result,) = record["results"]
    assert result["model"] == "vgg16" and result["image_size"] == 32
    # The same architecture: the same parameters and multiply-adds, per the profiler.
    assert result["params"]["kerasnets"] == result["params"]["keras.applications"] == 33_638_218
    assert result["macs"]["kerasnets"] == result["macs"]["keras.applications"] > 0
    for kind in ("train", "infer"):
        assert all(len(times) == 2 and min(times) > 0 for times in result[kind].values())
        assert result[f"{kind}_ratio"] > 0
    assert record["matmul_macs_per_second"] > 0
    assert record["args"]["precision"] == "float32"


def test_first_step_benchmark_runs(capsys):
    """benchmarks/first_step.py, tiny: both ways time the first step of the same model."""
    results = first_step.main(["--models", "resnet20", "--rounds", "1", "--batch-size", "4", "--image-size", "16"])
    assert set(results) == {"resnet20"} and min(results["resnet20"].values()) > 0
    assert "resnet20" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        first_step.main(["--rounds", "0"])


@pytest.mark.parametrize("limit", ["abc", "0", "-1", "0.0"])
def test_ci_at_cpu_limit_rejects_a_bad_limit_before_any_work(limit, tmp_path):
    """benchmarks/ci_at_cpu_limit.sh checks its CPU limit before it makes a cgroup or a clone.

    The benchmark itself (CI at one CPU of time, 20-odd minutes as root) is not run here.
    """
    done = subprocess.run(["bash", os.path.join(ROOT, "benchmarks", "ci_at_cpu_limit.sh"), limit],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "usage:" in done.stderr and f"got '{limit}'" in done.stderr
    assert done.stdout == "" and not os.path.exists("/sys/fs/cgroup/cpu/kerasnets-ci-limit")
