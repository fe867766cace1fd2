"""Tokens and the audit trail (admin)."""
