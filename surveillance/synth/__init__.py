"""The synthetic nation: the embedded default data, with ground truth (``surveillance synth``).

``synthesise(out, seed, scale, quarter, quarters)`` writes one input bundle per quarter
(DESIGN.md section 4) and ``ground_truth.json``; same arguments give the same bytes.
"""

from surveillance.synth.build import BUNDLE_FILES, SynthSummary, bundle_quarters, synthesise

__all__ = ["BUNDLE_FILES", "SynthSummary", "bundle_quarters", "synthesise"]
