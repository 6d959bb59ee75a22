"""Operations: alerts, Prometheus metrics and structured logs of live and paper runs."""
