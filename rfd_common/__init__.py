"""Helpers every package of the toolkit may import, none of them about data or models: user
errors (:mod:`errors`), atomic file writing (:mod:`files`), content fingerprints
(:mod:`fingerprints`), CSV tables (:mod:`tables`) and figure saving (:mod:`figures`).

It imports nothing from the other packages of the toolkit.
"""
