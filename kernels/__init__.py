"""Measurement code: inference and compression microbenchmarks, the real digits model, payload codecs.

`kernels.suite.measure_profile` runs everything and returns a profile object in the format of
`lepton_sim.profiles`; `lepton-sim kernels measure` writes it to a file.
"""
