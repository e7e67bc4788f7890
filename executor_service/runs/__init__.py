"""The executor's runs: backup runs and their promises (leases, owed post chains),
maintenance windows, inline hooks, script tests, admission, and the checks of what a
client sends about them. Each kind opens its run here and hands its chains to ``chains/``."""
