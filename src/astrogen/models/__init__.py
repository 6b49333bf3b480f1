"""Network definitions and their LightningModules, one module per model family."""
