"""The widget: HeadPursuit (anywidget) and its parts: traits, actions, background work, snapshot, effects view."""

from .head_pursuit import HeadPursuit

__all__ = ["HeadPursuit"]
