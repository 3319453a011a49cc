"""The outbound send pipeline shared by the three send DAGs: drops → validation → ledger → vendor."""
