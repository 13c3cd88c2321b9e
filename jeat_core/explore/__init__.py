"""Layer 5, what a reader looks at: figures, the notebooks' explorers (widgets, live training, the
site's gallery) and ``jeat lens``, the report on a user's own model beside the zoo. Imports only the
layers below; only the command line (:mod:`jeat_core.cli`) sits above it."""
