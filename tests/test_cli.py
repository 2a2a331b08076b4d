"""The `kerasnets` command line: `list` and `summary`.

One run goes through a subprocess as a user types it (`python -m kerasnets ...`, which
pays TensorFlow's import): a usage error, whose exit status and one-line message are
what a shell sees. Every other test calls `kerasnets.cli.main` in-process, the function
the console script calls.
"""

import argparse
import importlib.util
import json
import os
import subprocess
import sys

import pytest

from _cli_runner import run_cli

from kerasnets.cli import main

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_help_lists_the_commands(capsys):
    run = run_cli(["--help"], capsys)
    assert run.returncode == 0, run.stderr
    assert "usage: kerasnets" in run.stdout
    for command in ("list", "summary"):
        assert command in run.stdout


def test_list_with_a_pattern(capsys):
    run = run_cli(["list", "resnet2*"], capsys)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].split() == ["model", "builder", "params", "MACs", "depth", "input", "ImageNet", "weights",
                                "(top-1", "%)", "paper"]
    rows = [line.split() for line in lines if line.startswith("resnet")]
    # ResNet-20 has no published ImageNet weights: "-" in that column.
    assert rows == [["resnet20", "ResNet20", "269.7K", "40.6M", "20", "32×32", "-", "He", "et", "al.,", "CVPR", "2016"]]
    assert "multiply-adds" in run.stdout  # the conventions are stated


def test_summary_googlenet_reads_like_table1(capsys):
    run = run_cli(["summary", "googlenet"], capsys)
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert out.startswith("Szegedy et al., Going Deeper with Convolutions")
    header = next(line for line in out.splitlines() if line.startswith("name"))
    assert header.split() == [
        "name", "type", "patch", "size/stride", "output", "size", "depth", "#1×1", "#3×3", "reduce",
        "#3×3", "#5×5", "reduce", "#5×5", "pool", "proj", "params", "MACs",
    ]
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.strip()}
    assert rows["inception_4a"][1:] == ["inception", "14×14×512", "2", "192", "96", "208", "16", "48", "64",
                                        "376.2K", "73.6M"]
    assert rows["conv1"][1:] == ["convolution", "7×7/2", "112×112×64", "1", "9.5K", "118.0M"]
    assert rows["pool4"][1:] == ["max", "pool", "3×3/2", "7×7×832", "0"]
    assert rows["aux1"][1:3] == ["auxiliary", "classifier"]
    assert "224×224×3 input" in out and "1.58G" in out


def test_unknown_model_is_a_usage_error():
    # As a shell sees it: the console command's exit status and its one line on stderr.
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONIOENCODING="utf-8")
    run = subprocess.run([sys.executable, "-m", "kerasnets", "summary", "resnt50"], cwd=REPO, env=env,
                         capture_output=True, text=True, encoding="utf-8", timeout=300)
    assert run.returncode == 2
    assert "kerasnets summary: error: Unknown model 'resnt50'. Did you mean: resnet50" in run.stderr
    assert "Traceback" not in run.stderr and run.stdout == ""


# ---------------------------------------------------------------------------
# Options, usage errors, the model table
# ---------------------------------------------------------------------------


def test_summary_json_with_model_options(capsys):
    assert main(["summary", "resnet20", "--width-multiplier", "0.5", "--classes", "7", "--input-size", "16",
                 "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["input_shape"] == [16, 16, 3]
    assert data["rows"][0] == {**data["rows"][0], "name": "conv1", "output_shape": [16, 16, 8]}
    assert data["rows"][-1]["name"] == "predictions" and data["rows"][-1]["output_shape"] == [7]
    assert data["macs"] == sum(layer["macs"] for layer in data["layers"])


def test_summary_per_layer_markdown_with_options(capsys):
    assert main(["summary", "resnet20", "--per-layer", "--markdown", "--exact", "-O", "residual=False",
                 "--option", "stage_widths=(8, 16, 32)"]) == 0
    out = capsys.readouterr().out
    table = [line for line in out.splitlines() if line.startswith("|")]
    assert table[0] == "| name | type | patch size/stride | output size | block | params | MACs |"
    conv = next(line for line in table if line.startswith("| conv2_block1_1_conv |"))
    assert conv.split("|")[5].strip() == "conv2_block1" and "32×32×8" in conv
    assert not any("_add |" in line for line in table)  # residual=False: no shortcuts


def test_summary_usage_errors(capsys):
    assert main(["summary", "resnet20", "-O", "foo=1"]) == 2
    err = capsys.readouterr().err
    assert "resnet20 does not take foo" in err and "width_multiplier" in err
    with pytest.raises(SystemExit) as exit_info:
        main(["summary", "alexnet", "-O", "novalue"])
    assert exit_info.value.code == 2
    assert "argument --option/-O: must be KEY=VALUE, KEY a Python name. Received: 'novalue'" in capsys.readouterr().err
    assert main(["summary", "alexnet", "--input-size", "16"]) == 2
    assert "at least" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["summary", "resnet18", "--width-multiplier", "-1"])
    assert exit_info.value.code == 2
    assert "must be a positive number" in capsys.readouterr().err


def test_list_variants(capsys):
    assert main(["list", "--names", "vgg1[13]*"]) == 0
    assert capsys.readouterr().out.split() == ["vgg11", "vgg11_bn", "vgg11_lrn", "vgg13", "vgg13_bn"]
    assert main(["list", "zzz*"]) == 2
    assert "No model matches the pattern" in capsys.readouterr().err
    assert main(["list", "resnet[23][02]", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [d["name"] for d in data] == ["resnet20", "resnet32"]
    assert data[0]["params"] == 269_722 and data[0]["input_size"] == 32


def test_subcommand_help(capsys):
    for command in ("list", "summary"):
        with pytest.raises(SystemExit) as exit_info:
            main([command, "--help"])
        assert exit_info.value.code == 0
    assert "--width-multiplier X" in capsys.readouterr().out


def test_model_kwargs_parses_literals():
    import argparse

    from kerasnets.cli import add_model_arguments, model_kwargs

    parser = argparse.ArgumentParser()
    add_model_arguments(parser)
    args = parser.parse_args(["ResNet50", "--input-size", "64", "-O", "downsample_on=3x3",
                              "-O", "stage_widths=(8, 16, 32, 64)", "-O", "include_top=False"])
    assert model_kwargs(args) == {
        "downsample_on": "3x3", "stage_widths": (8, 16, 32, 64), "include_top": False,
        "input_shape": (64, 64, 3),
    }


# ---------------------------------------------------------------------------
# scripts/model_table.py (the README's model table)
# ---------------------------------------------------------------------------


@pytest.fixture
def model_table(monkeypatch):
    spec = importlib.util.spec_from_file_location("model_table", os.path.join(REPO, "scripts", "model_table.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    import kerasnets.registry

    monkeypatch.setattr(kerasnets.registry, "list_models", lambda pattern=None: ["resnet20", "alexnet"])
    return module


def test_model_table_script(model_table, tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text("# kerasnets\n\nno markers here\n", encoding="utf-8")
    assert model_table.main(["--readme", str(readme), "--quiet"]) == 2
    assert "must hold the markers" in capsys.readouterr().err

    text = f"# kerasnets\n\n{model_table.START}\nold table\n{model_table.END}\n\nafter\n"
    readme.write_text(text, encoding="utf-8")
    assert model_table.main(["--readme", str(readme), "--check", "--quiet"]) == 1
    assert "stale" in capsys.readouterr().err
    assert readme.read_text(encoding="utf-8") == text  # --check writes nothing
    assert model_table.main(["--readme", str(readme), "--quiet"]) == 0
    updated = readme.read_text(encoding="utf-8")
    assert updated.startswith("# kerasnets\n\n<!-- model-table:start -->\n<!-- generated by")
    assert updated.endswith("<!-- model-table:end -->\n\nafter\n")
    table = [line for line in updated.splitlines() if line.startswith("|")]
    assert table[0] == "| model | builder | params | MACs | depth | input | ImageNet weights (top-1 %) | paper |"
    # alexnet (family "alexnet") sorts before resnet20 (family "resnet_cifar").
    assert table[2].startswith("| `alexnet` | AlexNet | 61.0M | 724.4M | 8 | 227×227 |")
    assert "[He et al., CVPR 2016](https://arxiv.org/abs/1512.03385)" in table[3]
    assert model_table.main(["--readme", str(readme), "--check", "--quiet"]) == 0


def _key_value_flags():
    """Every (command, flag) whose values go through `kerasnets.cli.key_value`."""
    from kerasnets.cli import build_parser, key_value

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    return [(command, action.option_strings[-1], action.dest)
            for command, sub in commands.items() for action in sub._actions if action.type is key_value]


def test_every_key_value_flag_reads_values_by_one_rule():
    from kerasnets.cli import build_parser

    flags = _key_value_flags()
    assert {(c, f) for c, f, _ in flags} == {("summary", "-O"), ("train", "-O"), ("train", "--set"), ("tune", "-O")}
    cases = {"none": None, "None": None, "NONE": None, "true": True, "True": True, "FALSE": False,
             "3x3": "3x3", "'none'": "none", "0.5": 0.5, "(8, 16)": (8, 16), '{"4a": {"b5": 64}}': {"4a": {"b5": 64}}}
    for command, flag, dest in flags:
        positional = ["resnet20"]  # MODEL
        for text, expected in cases.items():
            args = build_parser().parse_args([command, *positional, flag, f"zero-init={text}"])
            assert getattr(args, dest) == [("zero_init", expected)], (command, flag, text)


def test_a_key_given_twice_or_a_value_of_the_wrong_type_is_one_line(capsys):
    assert main(["summary", "resnet20", "-O", "residual=false", "-O", "residual=true"]) == 2
    assert capsys.readouterr().err.strip() == (
        "kerasnets summary: error: -O must be given once per key. Received: -O residual twice")
    with pytest.raises(SystemExit) as exit_info:
        main(["summary", "resnet20", "-O", "=1"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and "must be KEY=VALUE" in err, err
