"""Build a GPT: the track's checks (cases, drivers, answers from the engines) and its payoff (training the
learner's model and racing it against the engine's)."""
