"""The Oracle: a Temporal Fusion Transformer forecasting quantiles of the next H log returns.

`network.py` the model (`TFTConfig`, `TemporalFusionTransformer`, `quantile_loss`); `train.py` the
walk-forward training, evaluation report, ONNX export and manifest (`OracleTrainConfig`,
`train_oracle`). Imports nothing here (see qa_engine/models/README.md).
"""
