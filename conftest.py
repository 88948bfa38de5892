"""Repository-specific pytest setup. The workshop plugin itself is an installed plugin (pytest11)."""

pytest_plugins = ["pytester"]
