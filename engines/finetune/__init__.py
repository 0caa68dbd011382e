"""Fine-tuning and alignment: sentiment data and its lexicon judge, LoRA, classifier regimes, reward models, DPO."""
