"""Physics statistics for validating generated images against real ones (see the submodules)."""
