"""The application around the library: the ``streamdeq`` command (:mod:`.cli`), the online
runner behind ``streamdeq run`` (:mod:`.runner`, :mod:`.run_options`) and the demo
(:mod:`.demo`). Nothing in the library imports this package."""
