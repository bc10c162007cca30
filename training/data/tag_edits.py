"""Editing one video's frame tags, keyboard first, one undo step per action (the plugin's Tags dock).

A frame is *untagged* (no ``frame_tags`` entry: unknown, the classifier does
not train on it), *empty* (an entry with no class: nothing there), or tagged
with some classes. :class:`TagSession` holds one video's tags as a (T, K)
matrix plus a (T,) "tagged" mask, the frame being looked at, and the undo
history; :meth:`TagSession.press` is the keyboard:

==================  ===========================================================
key                 action
==================  ===========================================================
``1`` … ``9``       toggle class N on the current frame (tagging it)
``shift+1`` …       class N from its last tagged frame before here (else after)
                    up to here
``0``               mark the current frame empty (nothing there)
``shift+0``         empty from the last empty frame up to here
``c``               copy the previous frame's tags here
``delete``          untag the current frame (unknown again)
``left``/``right``  previous / next frame; ``pageup``/``pagedown``: 10 frames
``home``/``end``    first / last frame
``ctrl+z``          undo the last action (``ctrl+shift+z`` redoes it)
==================  ===========================================================

Adding a class, renaming one and choosing its colour
(:meth:`TagSession.add_class`, :meth:`~TagSession.rename_class`,
:meth:`~TagSession.set_color`) are actions too: one undo step each, in the
same history as the tags.

:meth:`TagSession.tags` gives the whole frame-tags object back with this
video's entries replaced, for :func:`training.atomic.write_json`.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from training.errors import InputError

PAGE = 10  # frames a page key moves
State = tuple[np.ndarray, np.ndarray, list[dict[str, Any]]]  # (present, tagged, categories): what undo restores


class TagSession:
    """One video of a frame-tags object being tagged.

    Parameters
    ----------
    tags : dict
        A validated frame-tags object (:func:`training.data.tags.validate_tags`); not modified.
    video_id : int

    Attributes
    ----------
    present : (T, K) bool
        Class k is tagged in frame t (columns in the order of ``category_ids``).
    tagged : (T,) bool
        Frame t has an entry (False: unknown).
    categories : list of dict
        The file's classes (``id``, ``name``, optionally ``color``), in order: column k is ``categories[k]``.
    frame : int
        The frame being looked at.
    """

    def __init__(self, tags: dict[str, Any], video_id: int) -> None:
        video = next((v for v in tags["videos"] if v["id"] == video_id), None)
        if video is None:
            raise InputError(None, f"no video with id {video_id} in the tags")
        self._tags = copy.deepcopy(tags)
        self.video_id = video_id
        self.categories = [dict(c) for c in tags["categories"]]
        n = len(video["file_names"])
        self.present = np.zeros((n, len(self.categories)), bool)
        self.tagged = np.zeros(n, bool)
        col = {c: k for k, c in enumerate(self.category_ids)}
        for entry in tags["frame_tags"]:
            if entry["video_id"] == video_id:
                self.tagged[entry["frame"]] = True
                for c in entry["category_ids"]:
                    self.present[entry["frame"], col[c]] = True
        self.frame = 0
        self._undo: list[State] = []
        self._redo: list[State] = []

    @property
    def n_frames(self) -> int:
        """T, the video's length."""
        return len(self.tagged)

    @property
    def category_ids(self) -> list[int]:
        """The K class ids, column order."""
        return [int(c["id"]) for c in self.categories]

    def tags(self) -> dict[str, Any]:
        """The whole frame-tags object, this video's entries as edited (frame order)."""
        others = [e for e in self._tags["frame_tags"] if e["video_id"] != self.video_id]
        mine = [
            {"video_id": self.video_id, "frame": int(t),
             "category_ids": [self.category_ids[k] for k in np.flatnonzero(self.present[t])]}
            for t in np.flatnonzero(self.tagged)
        ]  # fmt: skip
        return {**self._tags, "categories": copy.deepcopy(self.categories), "frame_tags": others + mine}

    # -- actions: each one undo step -------------------------------------------------
    def _state(self) -> State:
        return self.present.copy(), self.tagged.copy(), copy.deepcopy(self.categories)

    def _edit(self) -> None:
        self._undo.append(self._state())
        self._redo.clear()

    def _check_name(self, name: str, category_id: int | None) -> str:
        name = name.strip()
        if not name:
            raise InputError(None, "a class name is empty")
        if any(c["name"] == name and c["id"] != category_id for c in self.categories):
            raise InputError(None, f"class name {name!r} is taken")
        return name

    def _category(self, category_id: int) -> dict[str, Any]:
        found = next((c for c in self.categories if c["id"] == category_id), None)
        if found is None:
            raise InputError(None, f"no class with id {category_id}")
        return found

    def add_class(self, name: str) -> int:
        """A new class (id after the largest), tagged nowhere yet; returns its id.

        Raises
        ------
        InputError
            The name is empty or another class's.
        """
        name = self._check_name(name, None)
        self._edit()
        new_id = max(self.category_ids, default=0) + 1
        self.categories.append({"id": new_id, "name": name})
        self.present = np.concatenate([self.present, np.zeros((self.n_frames, 1), bool)], axis=1)
        return new_id

    def rename_class(self, category_id: int, name: str) -> None:
        """Rename a class (its tags stay); refused like :meth:`add_class`."""
        name = self._check_name(name, category_id)
        category = self._category(category_id)
        self._edit()  # keeps a copy: ``category`` is still the live entry
        category["name"] = name

    def set_color(self, category_id: int, color: str) -> None:
        """The colour a class is shown in, ``"#rrggbb"`` (saved in the file's ``categories``)."""
        from training.data.ytvis import is_color

        if not is_color(color):
            raise InputError(None, f"colour {color!r} is not '#rrggbb'")
        category = self._category(category_id)
        self._edit()
        category["color"] = color.lower()

    def set_range(self, column: int, start: int, stop: int, on: bool = True) -> None:
        """Tag (``on``) or clear class ``column`` on frames ``start``..``stop`` (inclusive, either order)."""
        a, b = sorted((max(0, start), min(self.n_frames - 1, stop)))
        self._edit()
        self.present[a : b + 1, column] = on
        self.tagged[a : b + 1] = True

    def toggle(self, column: int) -> None:
        """Toggle class ``column`` on the current frame (an untagged frame becomes tagged with it)."""
        self._edit()
        on = not (self.tagged[self.frame] and self.present[self.frame, column])
        self.present[self.frame, column] = on
        self.tagged[self.frame] = True

    def extend(self, column: int | None) -> None:
        """Class ``column`` (None: empty frames) from its nearest tagged frame before here (else after) to here."""
        if column is None:
            marked = self.tagged & ~self.present.any(axis=1)
        else:
            marked = self.tagged & self.present[:, column]
        before = np.flatnonzero(marked[: self.frame])
        after = np.flatnonzero(marked[self.frame + 1 :]) + self.frame + 1
        start = int(before[-1]) if len(before) else int(after[0]) if len(after) else self.frame
        a, b = sorted((start, self.frame))
        self._edit()
        if column is None:
            self.present[a : b + 1] = False
        else:
            self.present[a : b + 1, column] = True
        self.tagged[a : b + 1] = True

    def mark_empty(self) -> None:
        """Tag the current frame as holding none of the classes."""
        self._edit()
        self.present[self.frame] = False
        self.tagged[self.frame] = True

    def copy_previous(self) -> None:
        """The previous frame's tags (or its being untagged) on the current frame."""
        if self.frame == 0:
            return
        self._edit()
        self.present[self.frame] = self.present[self.frame - 1]
        self.tagged[self.frame] = self.tagged[self.frame - 1]

    def untag(self) -> None:
        """The current frame back to unknown."""
        self._edit()
        self.present[self.frame] = False
        self.tagged[self.frame] = False

    def undo(self) -> bool:
        """Undo the last action; False when there is none."""
        if not self._undo:
            return False
        self._redo.append(self._state())
        self.present, self.tagged, self.categories = self._undo.pop()
        return True

    def redo(self) -> bool:
        """Redo the last undone action; False when there is none."""
        if not self._redo:
            return False
        self._undo.append(self._state())
        self.present, self.tagged, self.categories = self._redo.pop()
        return True

    def go(self, frame: int) -> None:
        """Look at ``frame`` (clipped to the video)."""
        self.frame = int(min(max(frame, 0), self.n_frames - 1))

    # -- the keyboard ------------------------------------------------------------------
    def press(self, key: str) -> bool:
        """Do what ``key`` does (see the module docstring); False for a key that does nothing here.

        Returns whether the key was one of the session's (the tags may have changed).
        """
        moves = {"left": -1, "right": 1, "pageup": -PAGE, "pagedown": PAGE}
        if key in moves:
            self.go(self.frame + moves[key])
        elif key in ("home", "end"):
            self.go(0 if key == "home" else self.n_frames - 1)
        elif key in ("ctrl+z", "ctrl+shift+z"):
            self.undo() if key == "ctrl+z" else self.redo()
        elif key == "c":
            self.copy_previous()
        elif key == "delete":
            self.untag()
        elif key == "0":
            self.mark_empty()
        elif key == "shift+0":
            self.extend(None)
        elif key.removeprefix("shift+") in {str(n) for n in range(1, min(len(self.category_ids), 9) + 1)}:
            column = int(key[-1]) - 1
            self.extend(column) if key.startswith("shift+") else self.toggle(column)
        else:
            return False
        return True
