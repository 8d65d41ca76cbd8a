"""The app layer: the ``avatar`` command (serve, route, render, prepare, models, smoke).

The only package that may import every other one: models ← avatar ← streaming ← here.
"""
