"""The deploy tests use ``binmark.deploy.exact`` (models whose float arithmetic is exact)."""
