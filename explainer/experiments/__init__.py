"""The experiments the lessons run, as functions: a lesson prints what they measure, and the tests assert it.

One module per topic (e.g. `experiments.cfg`), each returning plain numbers and images, so a lesson cell
stays one line about the idea and a test can check that the lesson still shows what it claims.
"""
