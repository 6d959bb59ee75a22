"""The Strategist: a Decision Transformer trained offline on behaviour-policy trajectories.

`network.py` the model (`DecisionTransformerConfig`, `DecisionTransformer`, the exported policy);
`trajectories.py` the offline dataset (behaviour policies, rollouts, returns-to-go); `train.py`
training, ONNX export, manifest, out-of-sample evaluation and report (`StrategistTrainConfig`,
`train_strategist_from_config`). Imports nothing here (see qa_engine/models/README.md).
"""
