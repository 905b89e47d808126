"""What GET /model says the model is for and not for: the short form of MODEL_CARD.md."""

from __future__ import annotations

INTENDED_USE = (
    "Aggregate analysis of name lists where the linguistic origin of a surname is the question (spelling "
    "conventions in a customer list, routing to a transliteration or pronunciation guide, checking a pipeline's "
    "script handling, research on character models), as one weak signal whose calibrated probabilities and "
    "abstentions are respected."
)
OUT_OF_SCOPE = (
    "A name is not a person's nationality, ethnicity, citizenship, religion or language.",
    "Never use it to decide anything about a person: eligibility, credit, hiring, pricing, policing, immigration, "
    "moderation, or the treatment of an individual; nor to infer protected characteristics or profile people.",
    "Names from outside its labels get one of its labels when it does not abstain.",
    "Given names alone: it was trained on surnames.",
)
KNOWN_LIMITATIONS = (
    "Small labels are guessed poorly (Portuguese, Arabic, Czech, French: test recall under 0.5; Vietnamese 0.5); "
    "the majority label (Russian, 53% of training names) pulls ambiguous names its way.",
    "The training files disagree with themselves (Russian.txt holds Durkin and Portnoy, English.txt Rashid).",
    "Romanized names score 14-17 points lower (label-balanced top-1) than the same names in their native script.",
    "Le, Do, La and Van, particles that are also Vietnamese names, start a Vietnamese name only before two or more "
    "Vietnamese syllables (Le Van Thanh); otherwise they join the next word as particles do (Le Pen), so a two-word "
    "Vietnamese name (Le Minh, Do Hung) is read as one surname and not answered Vietnamese.",
    "Upper case loses letters: YILMAZ cannot show its dotless i, STRASSE has no sharp s.",
)
