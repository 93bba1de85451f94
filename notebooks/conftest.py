# Notebooks in drafts/ need micro models that are not in the package yet (see drafts/README.md); they
# move up into notebooks/, where the test suite runs them, when their model ships.
collect_ignore_glob = ["drafts/*"]
