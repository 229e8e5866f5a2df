"""Reading and writing files: checkpoint formats (:mod:`tadcli.io.weights`), atomic writes
(:mod:`tadcli.io.atomic`, :mod:`tadcli.io.jsonio`), detected events (:mod:`tadcli.io.events`), their timeline
picture (:mod:`tadcli.io.timeline`) and backbone feature files (:mod:`tadcli.io.features`)."""
