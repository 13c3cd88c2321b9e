"""Layer 4, the paper: its claims and the audit that decides them, the cached experiment context,
the producers of its figures and tables, the notebooks' verdict tables and prose numbers, and the
2-D toy task. Imports only the layers below."""
