"""Models (torch), their training, ONNX export and the artifact manifest. See README.md here.

This package's __init__ imports nothing: `qa_engine.models.manifest` is torch-free and is read by
`qa_engine.inference`, which must never import torch.
"""
