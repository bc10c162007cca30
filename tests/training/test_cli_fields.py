"""`vis-ws COMMAND --help` is made from the config dataclasses: their defaults and numpydoc text (issue 18)."""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass

import pytest

from training.cam.train import CAMTrainConfig
from training.cli import build_parser
from training.cli.fields import add_field, field_docs, plain_help
from training.detection.train import DetectionTrainConfig
from training.flow.config import FlowTrainConfig
from training.irn.train import IRNTrainConfig
from training.pipeline import PipelineSettings


@dataclass
class Example:
    """An example.

    Attributes
    ----------
    crop : int
        Side of the crop
        (:func:`~training.cam.train.train_cam`, ``0.1 %``).
    lr, momentum : float
        SGD.
    seed : int
    amp : bool
        Mixed precision.

    Notes
    -----
    not_a_field : int
        Not in the Attributes section.
    """

    crop: int = 224
    lr: float = 0.1
    momentum: float = 0.9
    seed: int = 0
    amp: bool = True


def test_field_docs_read_the_attributes_section_only_with_grouped_names():
    docs = field_docs(Example)
    assert docs == {
        "crop": "Side of the crop (:func:`~training.cam.train.train_cam`, ``0.1 %``).",
        "lr": "SGD.",
        "momentum": "SGD.",
        "seed": "",
        "amp": "Mixed precision.",
    }
    assert plain_help(docs["crop"]) == "Side of the crop (train_cam, 0.1 %%)."  # argparse turns %% into %


def test_add_field_types_defaults_and_switches_come_from_the_dataclass():
    p = argparse.ArgumentParser()
    add_field(p, Example(), "crop")
    add_field(p, Example(crop=96), "lr", prefix="cam-", what="classifier")
    add_field(p, Example(), "amp", flag="--no-amp")
    args = p.parse_args(["--crop", "64"])
    assert args.crop == 64 and args.cam_lr == 0.1 and args.no_amp is False
    assert p.parse_args(["--cam-lr", "0.5", "--no-amp"]).cam_lr == 0.5
    helps = {a.dest: a.help for a in p._actions}
    assert helps["cam_lr"] == "classifier: SGD." and helps["no_amp"].startswith("turns this off: Mixed precision")
    with pytest.raises(ValueError, match="seed"):
        add_field(p, Example(), "seed")  # listed without a description: no help to give
    with pytest.raises(ValueError, match="crop"):
        add_field(argparse.ArgumentParser(), Example(), "crop", help="hand-written")
    with pytest.raises(ValueError, match="not_a_field"):
        add_field(p, Example(), "not_a_field")


COMMANDS = {  # command → (config, {dest: field} of the options made from it)
    "train-cam": (CAMTrainConfig, {}),
    "train-irn": (IRNTrainConfig, {"irn_backbone": "backbone", **{f"irn_{f}": f for f in
                                   ("epochs", "batch_size", "crop", "lr", "radius")}}),  # fmt: skip
    "train": (DetectionTrainConfig, {"no_intra": "intra", "no_inter": "inter", "no_iom": "iom"}),
    "train-flow": (FlowTrainConfig, {"no_amp": "amp"}),
    "pipeline": (PipelineSettings, {}),
}
SHARED = {"instance_bg", "instance_norm", "instance_split"}
"""Options of `pipeline` and `pseudo-labels` whose help names the constants the defaults come from
(`add_instance_arguments`), not a field's text."""


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_config_option_of_a_command_shows_its_field_docstring_and_default(command):
    config, renamed = COMMANDS[command]
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    docs = field_docs(config)
    fields = {f.name for f in dataclasses.fields(config)}
    defaults = config(preset="cpu") if config is PipelineSettings else config()
    checked = 0
    for action in sub.choices[command]._actions:
        field = renamed.get(action.dest, action.dest if action.dest in fields else None)
        if field is None or field in {"preset", *SHARED} or not action.option_strings:
            continue
        checked += 1
        assert plain_help(docs[field]) in action.help, (command, action.dest)
        if not action.dest.startswith("no_") and field != "weights":  # weights: None = the backbone's own default
            expected = getattr(defaults, field)
            assert action.default == (list(expected) if isinstance(expected, tuple) else expected), action.dest
    assert checked >= 8, command  # the command's settings, not a handful of them
