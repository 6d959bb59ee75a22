"""The Guardian: a contrastive VAE over feature windows and market regimes on its latent space.

`network.py` the model (`GuardianConfig`, augmentations, `ContrastiveVAE`, the exported
`GuardianInference`); `regimes.py` k-means regimes and the persistence rule (torch-free); `train.py`
windows, the fitted `GuardianModel`, training, ONNX export, manifest and the run config
(`GuardianTrainConfig`, `train_guardian_from_config`); `report.py` regime statistics, fold stability,
plots and the regime report. Imports nothing here (see qa_engine/models/README.md).
"""
