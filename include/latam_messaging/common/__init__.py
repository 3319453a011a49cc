"""Pieces shared by the three vendor hooks: transport, errors, time and phone parsing."""
