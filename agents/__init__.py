"""The supervisor's domain logic (no Dagster imports): semantic layer client,
risk policy, drafting agent, digests, review ledger, outbound channels."""
