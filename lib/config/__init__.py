"""Typed configs: the task YAML (``task``), the hypergraph YAML (``hyper``), the model switches of the
command line (``options``) and the flags that fill them (``cli``)."""
