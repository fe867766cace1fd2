"""Decisions: may this Promotion start? Answers, claims and the decision log."""
