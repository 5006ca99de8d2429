"""The output layer every writing operator shares: directories committed by their manifest, the record layouts, the
run bookkeeping, lineage."""
