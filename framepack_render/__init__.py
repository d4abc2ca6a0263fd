"""framepack-render: a declarative, cached, incremental batch renderer for FramePack."""

__version__ = "0.1.0"
