"""Causal features with guarantees: specs, batch (polars) and streaming (incremental) twins.

- `spec`: FeatureSpec / FeatureSet (name, inputs, warm-up, params, version; stable sha256 hash).
- `sets`: registered sets (`default`: 52 per-bar features on OHLCV) and `get_feature_set(name)`.
- `registry.kind_of(name)`: the explicit registry of feature kinds (each a batch + streaming twin).
- `contexts`: `BatchContext` / `StreamContext`, what a family's twins are given; families import it,
  never `batch`, `streaming` or `registry` (tests/unit/features/test_import_graph.py: no circle).
- `batch.compute_features_batch(bars, set, interval_ns)`: every feature over a bar table.
- `streaming.StreamingFeatureEngine(set, interval_ns).update(ts, o, h, l, c, v[, taker])`: per bar.
- `build.build_feature_table(...)`: fit the FFD order on a training range, compute, drop warm-up.
- `families.fracdiff.choose_ffd_order / fit_feature_set`: FFD order on the training range only.
- `ticks`: tick-level order-flow imbalance from best bid/ask updates (batch + streaming).
- `io`: catalog / kline loading and the Parquet writer that puts the set's hash in the metadata.
Every feature at bar t reads bars <= t only; tests/property/test_features_causality.py proves it
for every feature of the default set, and tests/unit/features/test_parity.py that both twins agree.
Nothing is computed at import time; modules are imported where used.
"""
