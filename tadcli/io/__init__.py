"""Reading and writing files: checkpoint formats (:mod:`tadcli.io.weights`)."""
