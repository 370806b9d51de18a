"""Pure analyses of recordings: arrays in, arrays, DataFrames or small result objects out."""

__all__: list[str] = []
