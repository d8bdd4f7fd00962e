"""Prefect flows and deployments: wiring only, every task is one call into ``surveillance``."""
