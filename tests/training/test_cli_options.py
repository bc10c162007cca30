"""Every `vis-ws` command refuses a bad number in one line that names a flag the user can type (issue 18)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from training.cli import build_parser, main


@pytest.fixture(scope="module")
def tags(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("options")
    size = ["--videos", "1", "--frames", "2", "--height", "64", "--width", "64"]
    assert main(["sample", "--out", str(root), *size]) == 0
    return root / "tags.json"


def _commands(tags: Path, tmp: Path) -> dict[str, list[str]]:
    """The arguments each command needs before its options are checked (the folders need not exist)."""
    t, r = str(tags), str(tmp / "run")
    return {
        "pseudo-labels": ["pseudo-labels", t, "--out", r],
        "train-irn": ["train-irn", t, "--cam-model", str(tmp / "cam"), "--cams", str(tmp / "cams"), "--out", r],
        "train-cam": ["train-cam", t, "--out", r],
        "train": ["train", t, "--out", r, "--pseudo", str(tmp / "pseudo")],
        "train-flow": ["train-flow", t, "--out", r],
        "pipeline": ["pipeline", t, "--out", r],
        "cams": ["cams", t, "--model", str(tmp / "m"), "--out", r],
        "predict": ["predict", t, "--model", str(tmp / "m"), "--out", str(tmp / "r.json")],
    }


def _numeric_options() -> list[tuple[str, list[str], set[str]]]:
    """(command, [flag, value...] with every value -1, the command's flags) of each int or float option."""
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    found = []
    for name, parser in sub.choices.items():
        flags = {s for a in parser._actions for s in a.option_strings}
        for a in parser._actions:
            if a.type in (int, float):
                n = a.nargs if isinstance(a.nargs, int) else 1
                found.append((name, [a.option_strings[0], *["-1"] * n], flags))
    return found


def test_a_negative_number_is_refused_naming_only_flags_the_command_has(tags, tmp_path, capsys):
    # `pseudo-labels --irn-crop 30` said "--crop must be a multiple of 4", a flag pseudo-labels does not have.
    commands = _commands(tags, tmp_path)
    checked = 0
    for name, option, flags in _numeric_options():
        if name not in commands:
            continue
        flag = option[0]
        try:
            code = main([*commands[name], *option])
        except SystemExit as exc:  # argparse's own refusal (a type or a choice)
            code = exc.code
        err = capsys.readouterr().err.strip().splitlines()[-1]  # argparse's own refusals print the usage first
        assert code == 2 and "error:" in err, (name, flag, err)
        named = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", err))
        assert named <= flags, f"vis-ws {name} {flag} -1: {err!r} names {sorted(named - flags)}"
        checked += 1
    assert checked >= 50  # every numeric option of the eight commands


def test_pseudo_labels_names_the_irn_and_classifier_flags(tags, tmp_path, capsys):
    run = ["pseudo-labels", str(tags), "--out", str(tmp_path / "r")]
    assert main([*run, "--irn-crop", "30"]) == 2
    assert "--irn-crop must be a multiple of 4" in capsys.readouterr().err
    assert main([*run, "--cam-batch-size", "0"]) == 2
    assert "--cam-batch-size must be at least 1" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_every_training_option_defaults_to_its_config_dataclass(tmp_path):
    # One source per setting: `pseudo-labels --cam-epochs` defaulted to 5 while `train-cam --epochs` and
    # CAMTrainConfig said 10 (issue 18). A flag whose default is None means "the config's own choice".
    import dataclasses

    from training.cam.train import CAMTrainConfig
    from training.cli.irn_commands import CAM_OPTIONS, IRN_OPTIONS
    from training.detection.train import DetectionTrainConfig
    from training.flow.config import FlowTrainConfig
    from training.irn.train import IRNTrainConfig

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))

    def same_names(cls: type) -> dict[str, str]:
        return {f.name: f.name for f in dataclasses.fields(cls)}

    checks = [
        ("train-cam", CAMTrainConfig, same_names(CAMTrainConfig)),
        ("train-irn", IRNTrainConfig, IRN_OPTIONS),
        ("pseudo-labels", IRNTrainConfig, IRN_OPTIONS),
        ("pseudo-labels", CAMTrainConfig, CAM_OPTIONS),
        ("train", DetectionTrainConfig, same_names(DetectionTrainConfig)),
        ("train-flow", FlowTrainConfig, same_names(FlowTrainConfig)),
    ]
    compared = 0
    for command, cls, options in checks:
        defaults = {a.dest: a.default for a in sub.choices[command]._actions}
        config = {f.name: f.default for f in dataclasses.fields(cls)}
        for field, dest in options.items():
            if dest not in defaults or defaults[dest] is None:
                continue
            cli = tuple(defaults[dest]) if isinstance(defaults[dest], list) else defaults[dest]
            assert cli == config[field], f"vis-ws {command} --{dest.replace('_', '-')}: {cli!r} vs {cls.__name__}"
            compared += 1
    assert compared >= 40


def test_a_commands_options_as_data_carry_its_defaults_choices_and_help():
    from training.cam.train import CAMTrainConfig
    from training.cli.options import OptionSpec, command_options, options_json

    specs = {spec.flag: spec for spec in command_options("train-cam")}
    crop, pooling, amp = specs["--crop"], specs["--pooling"], specs["--no-amp"]
    assert (crop.kind, crop.default) == (int, CAMTrainConfig().crop) and "crop" in crop.help
    assert pooling.choices == ("gap", "lse") and amp.kind is bool and "--help" not in specs
    assert crop.argv(CAMTrainConfig().crop) == [] and crop.argv("192") == ["--crop", "192"]
    assert amp.argv(True) == ["--no-amp"] and amp.argv(False) == []
    assert specs["--lr"].argv(" ") == []  # an emptied field: the default
    with pytest.raises(ValueError, match=r"^--crop 'big': expected a number$"):
        crop.argv("big")
    with pytest.raises(ValueError, match="--pooling 'max': expected one of gap, lse"):
        pooling.argv("max")
    back = [OptionSpec.from_dict(d) for d in __import__("json").loads(options_json(["train-cam"]))["train-cam"]]
    assert back == list(specs.values())  # what napari's process reads from the child
