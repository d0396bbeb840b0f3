"""A small sound event detection system in the shape of the DCASE task 4 baseline.

``data`` makes synthetic 10 s soundscapes with strong labels, ``features`` turns
them into log-mel spectrograms, ``model`` is the CRNN, ``train`` fits and applies
it, ``decode`` turns frame probabilities into events and ``metrics`` scores them.
"""
