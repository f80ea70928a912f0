"""Read models: what one service writes for others to read, as a typed contract both sides import.

A service never imports another service. When one needs another's state (the notifier reading the
profile cache and segment membership, the segmenter reading profiles), the owner writes it in a layout
declared here, and the reader reads it with the functions here: each module names its writer.
"""
