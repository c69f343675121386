"""The theory lab (SPEC 3C): toy problems with closed forms, mixtures, and seed 001's ablation."""
