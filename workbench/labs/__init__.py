"""Labs: interactive widgets a lesson embeds with a ```lab <id> block.

The registry (:mod:`workbench.labs.registry`) holds only ids, titles and
parameter specs, so that checking lessons never imports the UI.
"""
