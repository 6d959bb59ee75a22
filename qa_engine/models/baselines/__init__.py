"""The baselines: direction classifiers (XGBoost, MLP, LSTM) the Trinity must beat.

`network.py` the classifiers and their ONNX export; `signals.py` the naive forecasts and the
class -> position policy; `train.py` walk-forward training and the artifacts; `evaluate.py`
classification metrics and the vectorised backtest; `report.py` the report tables and figures.
Imports nothing here (see qa_engine/models/README.md).
"""
