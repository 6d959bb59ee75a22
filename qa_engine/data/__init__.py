"""Market data into the catalog: read kline files (klines), check them (validation), write Nautilus bars
stamped at bar close into a ParquetDataCatalog (ingest), and describe what a catalog holds (catalog).
Instruments are passed in; this package never imports adapters/ (see qa_engine.plugins.load_instrument).
"""
