"""Writes to accounts, one module per subject; import from the module (accounts.services.tokens ...).

users: users and their field rules; tokens: API tokens; signup: opening accounts; oauth: provider sign-in.
"""
