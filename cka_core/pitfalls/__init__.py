"""The pitfalls of CKA the pages demonstrate: transformations and the invariances they test,
translations that move CKA, the directions rows move along, linear separability, function-preserving
edits, fine-tuning towards a target map, sensitivity to principal components, block structure."""
