"""A plugin module that fails to import."""

raise ImportError("this fake plugin is broken on purpose")
