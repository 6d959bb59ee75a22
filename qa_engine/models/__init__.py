"""Models (torch), their training and ONNX export. See README.md here.

This package's __init__ imports nothing. The artifact manifest and everything else trading shares with
training (labels, the Guardian's regime rules, the Strategist's state transform and context, the
baselines' ensemble) live in the torch-free `qa_engine.contract`, which this package imports and the
trading side (`qa_engine.inference`, actors, strategies, replay, live) imports instead of this one.
"""
