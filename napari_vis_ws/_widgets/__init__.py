"""Dock widgets of the plugin."""
