"""Episodic samplers over simulated subtomograms, for training and evaluation."""

from cosnet_index.data.episodes import Episode, EpisodeSampler, SimulateFn, default_simulate

__all__ = ["Episode", "EpisodeSampler", "SimulateFn", "default_simulate"]
