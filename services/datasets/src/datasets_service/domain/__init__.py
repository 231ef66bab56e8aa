"""The datasets domain: records and their validation, pages, the dataset aggregate, and its errors
(stdlib and proto messages only)."""
