"""Chaos runs: a local multi-node cluster under a seeded fault schedule, and a checker.

``python -m raykafka.chaos --short`` (README, "Chaos runs"). The pure parts import no Ray:
``history`` (what a run observed), ``checker`` (the verdict), ``schedule`` (the faults, from a
seed). ``driver`` runs the cluster, the clients and the faults; ``faults`` injects them.
"""
