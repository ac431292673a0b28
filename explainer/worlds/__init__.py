"""The procedural worlds whose truth we know: `scenes` (things, grounds, skies, light; the scenes model's world).

The shapes world (flat shapes, exact geometry) lives in `explainer.shapes` and its judge in `explainer.judge`.
"""
