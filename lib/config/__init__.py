"""Typed configs: the task YAML (``task``) and the hypergraph YAML (``hyper``)."""
