"""Backprop through attention, by hand, graded: one exercise per section of docs/backprop_through_attention.md.

Each numbered file is a stub to fill in (its docstring says what to compute, with shapes, and names the section
it practises); `python -m exercises` lists the track with a status per exercise, `python -m exercises check NAME`
grades one. The solutions are the engine's own code: each file names the file::function that solves it.
"""
