"""Data: annotation readers, prepared datasets, video probing, decoding, sampling and transforms."""
