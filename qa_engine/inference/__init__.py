"""onnxruntime only (never torch): load a model artifact, check its manifest, run it.

from qa_engine.inference.artifact import load_artifact
from qa_engine.inference.runner import OnnxRunner
"""
