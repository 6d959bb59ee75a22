"""Market data into the catalog: read kline files (klines), check them (validation), write Nautilus bars
stamped at bar close into a ParquetDataCatalog (ingest), and describe what a catalog holds (catalog).
Download from the venues, resumable (download: venue-neutral; the venue clients are adapters found through
qa_engine.plugins.load_historical_venue), funding rates as FundingRateUpdate (funding), whole-catalog checks
(catalog_validation). Instruments are passed in; this package never imports adapters/.
"""
