"""Forms of a command's options, generated from them (magicgui widgets): the docks' "More options" and "Settings".

:class:`OptionForms` is the toggle that shows them: the options are read the
first time it opens (a child process, in a worker), one form per key (the
Training dock's stages; the Pipeline dock has one), only the chosen key's
form visible, each keeping its own values.

Each field is one :class:`training.cli.options.OptionSpec`: a check box for
a switch, a drop-down for a choice, a spin box for an integer, a text field
for a number or text (a float spin box would round 1e-4 to 0). Empty means
the command's default, in a drop-down too when that default is None. Its
label is the flag, its tooltip the command's help.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from qtpy.QtWidgets import QPushButton, QVBoxLayout, QWidget

from napari_vis_ws._workers import start_worker

if TYPE_CHECKING:
    from magicgui.widgets import Container

    from training.cli.options import OptionSpec

INT_RANGE = 2**31 - 1


def _field(spec: OptionSpec) -> Any:
    from magicgui.widgets import CheckBox, ComboBox, LineEdit, SpinBox

    common = {"label": spec.label, "tooltip": f"{spec.flag}: {spec.help}", "name": spec.label.replace("-", "_")}
    if spec.kind is bool:
        return CheckBox(value=bool(spec.default), **common)
    if spec.choices is not None:  # a default of None (the recorded setting) is the empty choice
        unset = [("", None)] if spec.default is None else []
        return ComboBox(value=spec.default, choices=[*unset, *((str(c), c) for c in spec.choices)], **common)
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


def form_values(specs: list[OptionSpec], form: Container) -> dict[str, Any]:
    """``{flag: value}`` of ``form``, None where the command's default stands (:meth:`OptionSpec.value`).

    Raises
    ------
    ValueError
        As :func:`form_argv`.
    """
    return {spec.flag: spec.value(field.value) for spec, field in zip(specs, form, strict=True)}


class OptionForms(QWidget):
    """A checkable button over generated option forms, one per key; the options are read when it first opens.

    Parameters
    ----------
    title, tooltip : str
        The button's text and tooltip.
    load : callable
        ``load() -> {key: [OptionSpec, ...]}``, run in a worker (it may start a child process).
    on_error : callable
        Told the one-line message when ``load`` fails.
    """

    def __init__(
        self, title: str, tooltip: str, load: Callable[[], dict[str, list[OptionSpec]]], on_error: Callable[[str], None]
    ) -> None:
        super().__init__()
        self.title, self._load, self._on_error = title, load, on_error
        self.forms: dict[str, tuple[list[OptionSpec], Container]] = {}  # key → (its OptionSpecs, its form)
        self.key = ""  # the key whose form is shown
        self.loader: Any = None  # the worker reading the options
        self.button = QPushButton(title)
        self.button.setCheckable(True)
        self.button.setToolTip(tooltip)
        self.button.toggled.connect(self._toggled)
        self.box = QWidget()
        self._box_layout = QVBoxLayout(self.box)
        self._box_layout.setContentsMargins(0, 0, 0, 0)
        self.box.setVisible(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.button)
        layout.addWidget(self.box)

    def _toggled(self, shown: bool) -> None:
        self.box.setVisible(shown)
        if shown and not self.forms and self.loader is None:
            self.button.setText(f"{self.title} (reading the commands' options)")
            self.loader = start_worker(self._load, self._read, self._failed)

    def _read(self, found: dict[str, list[OptionSpec]]) -> None:
        self.loader = None
        self.button.setText(self.title)
        for key, specs in found.items():
            form = option_form(specs)
            self.forms[key] = (specs, form)
            self._box_layout.addWidget(form.native)
        self.select(self.key)

    def _failed(self, message: str) -> None:
        self.loader = None
        self.button.setText(self.title)
        self._on_error(message)

    def select(self, key: str) -> None:
        """Show ``key``'s form only (the others keep their values)."""
        self.key = key
        for other, (_, form) in self.forms.items():
            form.native.setVisible(other == key)

    def argv(self, key: str) -> list[str]:
        """``key``'s options that differ from the command's defaults, as arguments ([] before the form was read).

        Raises
        ------
        ValueError
            A field its option cannot take (one line naming the flag).
        """
        if key not in self.forms:
            return []
        return form_argv(*self.forms[key])

    def values(self, key: str) -> dict[str, Any]:
        """``key``'s options as :func:`form_values` ({} before the form was read); raises as :meth:`argv`."""
        if key not in self.forms:
            return {}
        return form_values(*self.forms[key])
