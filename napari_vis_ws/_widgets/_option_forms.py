"""A form of a command's options, generated from them (magicgui widgets): the Training dock's "More options".

Each field is one :class:`training.cli.options.OptionSpec`: a check box for a
switch, a drop-down for a choice, a spin box for an integer, a text field for
a number or text (a float spin box would round 1e-4 to 0; empty means the
command's default). Its label is the flag, its tooltip the command's help.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from magicgui.widgets import Container

    from training.cli.options import OptionSpec

INT_RANGE = 2**31 - 1


def _field(spec: OptionSpec) -> Any:
    from magicgui.widgets import CheckBox, ComboBox, LineEdit, SpinBox

    common = {"label": spec.label, "tooltip": f"{spec.flag}: {spec.help}", "name": spec.label.replace("-", "_")}
    if spec.kind is bool:
        return CheckBox(value=bool(spec.default), **common)
    if spec.choices is not None:
        return ComboBox(value=spec.default, choices=spec.choices, **common)
    if spec.kind is int and spec.default is not None:
        return SpinBox(value=int(spec.default), min=-INT_RANGE, max=INT_RANGE, **common)
    return LineEdit(value="" if spec.default is None else str(spec.default), **common)


def option_form(specs: list[OptionSpec]) -> Container:
    """A magicgui container with one field per option, each showing the command's default."""
    from magicgui.widgets import Container

    return Container(widgets=[_field(spec) for spec in specs], labels=True)


def form_argv(specs: list[OptionSpec], form: Container) -> list[str]:
    """The arguments that set what differs from the defaults in ``form`` (made by :func:`option_form` of ``specs``).

    Raises
    ------
    ValueError
        A field holds what its option cannot take (one line naming the flag).
    """
    argv: list[str] = []
    for spec, field in zip(specs, form, strict=True):
        argv += spec.argv(field.value)
    return argv
