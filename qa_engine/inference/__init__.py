"""onnxruntime only (never torch, never `qa_engine.models`): load a model artifact, check its manifest
(`qa_engine.contract`), run it.

from qa_engine.inference.artifact import load_artifact
from qa_engine.inference.runner import OnnxRunner
from qa_engine.inference.guardian import GuardianOnline, load_guardian_artifact
from qa_engine.inference.strategist import load_strategist
from qa_engine.inference.baseline import BaselineEnsemble, load_baseline_artifact
"""
